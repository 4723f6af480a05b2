import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { shapeOf } from '../../engine/dispatch.js';
import { type HistoryEntry, rowsPerStep } from '../../engine/train.js';
import { answerOverLimit, BATCH_ADVICE, paramsAnswer, trainOverLimit } from '../../runtime/limits.js';
import { admitCompute } from '../admission.js';
import { ResultEncoder } from '../encode.js';
import { refuseOverLimit } from '../errors.js';
import { sendAnswer } from '../json-body.js';
import { toProblem } from '../problem.js';
import { postSchemas } from '../schemas.js';
import { type ComputeRouteOptions, reportStats, SMALLER_NETWORK, within } from './compute.js';

export const trainRoutes: FastifyPluginAsync<ComputeRouteOptions> = async (app, { engine, gate, limits, admission }) => {
  admitCompute(app, gate, admission.requestTimeoutMs);
  app.withTypeProvider<ZodTypeProvider>().post(
    '/train',
    {
      schema: {
        operationId: 'train',
        summary: 'Train by gradient descent (an optax loop)',
        description:
          'Runs `steps` optimizer steps from `params`: at each, value_and_grad on a minibatch (the whole batch unless ' +
          '`batchSize`), then the optimizer update, in float32 as optax does. Returns the final params, their loss on ' +
          'the whole batch and a loss history. Stops early, with a warning, if the loss stops being finite.',
        tags: ['compute'],
        ...postSchemas('/train'),
      },
    },
    async (request, reply) => {
      const body = request.body;
      const { optimizer, steps, batchSize, seed } = body;
      const problem = within(toProblem(body), limits, engine, BATCH_ADVICE.train);
      refuseOverLimit(trainOverLimit(shapeOf(problem), { steps, batchSize }, limits));
      const params = paramsAnswer(shapeOf(problem).widths, 'params');
      refuseOverLimit(answerOverLimit(params, body.outputEncoding, limits, SMALLER_NETWORK));
      const result = await gate.run(request.computeSignal, (signal) =>
        engine.train(problem, { optimizer, steps, batchSize, seed }, signal),
      );
      reportStats(request, reply, result.stats);
      const enc = new ResultEncoder(request.body.outputEncoding);
      const history = result.history.map((h) => ({ step: h.step, loss: enc.number(h.loss) }));
      const wholeBatch = rowsPerStep({ batchSize }, problem.x.rows) === problem.x.rows;
      const said = [
        ...(result.stoppedAt === undefined
          ? roseWarning(result.history, result.loss, wholeBatch)
          : [stoppedWarning(result.stoppedAt, result.head.saturatedHigh > 0, result.history, wholeBatch)]),
        ...unusedSeedWarning(seed, batchSize, problem.x.rows),
      ];
      const answer = {
        params: enc.layers(result.params),
        loss: enc.number(result.loss),
        history,
        warnings: enc.warnings(result.head, said),
      };
      return sendAnswer(reply, answer, enc);
    },
  );
};

const TOO_LARGE = 'the learningRate is most likely too large for this network: try one ten times smaller.';

/** A loss for a warning's text: four digits say what happened. */
const shown = (loss: number) => (Number.isFinite(loss) ? loss.toPrecision(4) : String(loss));

/**
 * Why training stopped early, and what to change. At step 0 no update has happened yet: the
 * given params' loss is not finite, which no learning rate would change. A loss that had not
 * fallen below step 0's before it stopped diverged: the learning rate is too large (sgd at
 * 1e6 on XOR stops at step 1); only said where every step's loss is the whole batch's, as a
 * minibatch's differs from the next one's. An output that saturated after the loss fell is
 * what a fit that drives bce towards 0 ends in (the XOR recipe run for 15,000 steps): a
 * smaller learning rate only delays it.
 */
function stoppedWarning(step: number, saturated: boolean, history: HistoryEntry[], wholeBatch: boolean): string {
  if (step === 0)
    return 'training stopped at step 0: the loss of the given params is not finite, so no step was taken; see the other warnings';
  const stopped = `training stopped at step ${step}: its loss is not finite; the params returned are those that gave it (before step ${step}'s update).`;
  const start = history[0]!.loss;
  if (wholeBatch && !history.some((h) => h.step < step && h.loss < start))
    return `${stopped} The loss never fell below step 0's (${shown(start)}): ${TOO_LARGE}`;
  return saturated
    ? `${stopped} The fit drove predictions to exactly 1.0 in float32 (see the warning on them); a smaller learningRate would only delay that. Train with "loss": "bce_logits", or for fewer steps.`
    : `${stopped} Try a smaller learningRate.`;
}

/**
 * A run whose loss ended ten times where it began without ever falling below it (sgd at 50
 * on XOR: 0.73 to 9.2), or ended not finite without falling (sgd at 1e6 for one step). Not
 * from a loss already near 0: params trained on with a fresh adam state move by about the
 * learning rate at first, which can raise a fitted loss many times over. Said only where
 * step 0's loss is the whole batch's, as the final one is.
 */
function roseWarning(history: HistoryEntry[], loss: number, wholeBatch: boolean): string[] {
  const start = history[0]!.loss;
  if (!wholeBatch || history.some((h) => h.loss < start)) return [];
  const diverged = !Number.isFinite(loss) || (start >= FITTED_LOSS && loss >= 10 * start);
  return diverged ? [`the loss rose from ${shown(start)} at step 0 to ${shown(loss)}: ${TOO_LARGE}`] : [];
}

/** A loss below which params count as fitted already (roseWarning). */
const FITTED_LOSS = 1e-3;

/**
 * A seed that changed nothing: it only drives the shuffle that draws minibatches, and without
 * one (no batchSize, or the whole batch) every step uses every row in order. Learners often
 * expect it to seed the starting params, which is /init's seed. The default 0 is not
 * reported, so a client that always sends `"seed": 0` hears nothing.
 */
function unusedSeedWarning(seed: number, batchSize: number | undefined, rows: number): string[] {
  if (seed === 0 || rowsPerStep({ batchSize }, rows) < rows) return [];
  const why = batchSize === undefined ? 'without batchSize' : `with batchSize ${batchSize}, the whole batch,`;
  return [
    `seed ${seed} changed nothing: it seeds the shuffle that draws minibatches, and ${why} every step uses every row. ` +
      'Starting params drawn from a seed come from POST /init.',
  ];
}
