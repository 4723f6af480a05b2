import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Limits } from '../../runtime/config.js';
import { admitCompute } from '../admission.js';
import { ResultEncoder } from '../encode.js';
import { Errors } from '../errors.js';
import { sendAnswer } from '../json-body.js';
import { toProblem } from '../problem.js';
import { postSchemas, type TrainRequest } from '../schemas.js';
import { type ComputeRouteOptions, reportStats, within } from './compute.js';

/** Refuse a run over the settings' limits before it starts, naming the setting. */
function checkTrainLimits(body: TrainRequest, limits: Limits): void {
  if (body.steps > limits.trainSteps) {
    throw new Errors.LimitExceeded(`steps is ${body.steps}; the limit is ${limits.trainSteps} (GRADSERVE_MAX_TRAIN_STEPS)`);
  }
  const batch = body.x.shape[0]!;
  const rows = Math.min(body.batchSize ?? batch, batch);
  const macs = body.params.reduce((s, p) => s + (p.W.shape[0]! + 1) * p.W.shape[1]!, 0);
  const work = body.steps * rows * macs;
  if (work > limits.trainWork) {
    throw new Errors.LimitExceeded(
      `steps × rows per step × Σ (in + 1)·out is ${body.steps} × ${rows} × ${macs} = ${work}; the limit is ${limits.trainWork} ` +
        '(GRADSERVE_MAX_TRAIN_WORK): use fewer steps, a smaller batchSize or a smaller network',
    );
  }
}

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
      checkTrainLimits(body, limits);
      const problem = within(toProblem(body), limits);
      const { optimizer, steps, batchSize, seed } = body;
      const result = await gate.run(request.computeSignal, (signal) =>
        engine.train(problem, { optimizer, steps, batchSize, seed }, signal),
      );
      reportStats(request, reply, result.stats);
      const enc = new ResultEncoder(request.body.outputEncoding);
      const history = result.history.map((h) => ({ step: h.step, loss: enc.number(h.loss) }));
      // at step 0 no update has happened yet: the given params' loss is not finite (a
      // saturated output, say), which no learning rate would change
      const stopped =
        result.stoppedAt === undefined
          ? []
          : result.stoppedAt === 0
            ? ['training stopped at step 0: the loss of the given params is not finite, so no step was taken; see the other warnings']
            : [
                `training stopped at step ${result.stoppedAt}: its loss is not finite; params are those before that step. Try a smaller learningRate.`,
              ];
      const params = enc.layers(result.params);
      const answer = { params, loss: enc.number(result.loss), history, warnings: enc.warnings(result.head, stopped) };
      return sendAnswer(reply, answer, enc);
    },
  );
};
