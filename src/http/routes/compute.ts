import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import { shapeOf } from '../../engine/dispatch.js';
import type { Engine } from '../../engine/engine.js';
import type { ForwardProblem, RunStats } from '../../engine/types.js';
import type { Admission } from '../../runtime/config.js';
import { answerOverLimit, BATCH_ADVICE, type BatchAdvice, type Limits, overLimit, paramsAnswer } from '../../runtime/limits.js';
import { admitCompute, type ComputeGate } from '../admission.js';
import { ResultEncoder } from '../encode.js';
import { refuseOverLimit } from '../errors.js';
import { sendAnswer } from '../json-body.js';
import { toForwardProblem, toProblem } from '../problem.js';
import { postSchemas } from '../schemas.js';

/** What every compute route needs: the engine, and the gate and limits that bound its use. */
export interface ComputeRouteOptions {
  engine: Engine;
  gate: ComputeGate;
  limits: Limits;
  admission: Admission;
}

/**
 * Refuse a problem over a work limit, or beyond what its backend can take, with a 413 before
 * it reaches the engine (its message ends with the route's `advice`); returns it unchanged.
 */
export function within<P extends ForwardProblem>(problem: P, limits: Limits, engine: Engine, advice: BatchAdvice): P {
  const shape = shapeOf(problem);
  refuseOverLimit(overLimit(shape, limits, advice) ?? engine.backendCannotTake(shape, advice));
  return problem;
}

/** What a client can do about params, or their gradients, too large to answer. */
export const SMALLER_NETWORK = 'use a smaller network';

/** Record what the engine did: in Server-Timing for the client, on the request for the log line. */
export function reportStats(request: FastifyRequest, reply: FastifyReply, stats: RunStats): void {
  request.runStats = stats;
  // parsing and validating the body, the compile total, each kernel compiled (named by its
  // op), then the compute itself
  const parse = `parse;dur=${request.bodyParseMs.toFixed(2)};desc="body parsed and validated"`;
  const kernels = stats.compiled.map((k) => `compile-kernel;dur=${k.ms.toFixed(2)};desc="${k.op}"`);
  const total = `compile;dur=${stats.compileMs.toFixed(2)};desc="${stats.compiled.length} kernel${stats.compiled.length === 1 ? '' : 's'}"`;
  const compute = `compute;dur=${stats.computeMs.toFixed(2)};desc="${stats.backend}"`;
  reply.header('server-timing', [parse, total, ...kernels, compute].join(', '));
}

export const computeRoutes: FastifyPluginAsync<ComputeRouteOptions> = async (app, { engine, gate, limits, admission }) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  admitCompute(app, gate, admission.requestTimeoutMs);

  // in a lesson's order, which the Swagger UI keeps: predictions, the loss, then its gradients
  api.post(
    '/forward',
    {
      schema: {
        operationId: 'forward',
        summary: 'Predictions (the forward pass)',
        description: "The network's outputs for a batch of inputs, after the output activation; no targets, no loss.",
        tags: ['compute'],
        ...postSchemas('/forward'),
      },
    },
    async (request, reply) => {
      const problem = within(toForwardProblem(request.body), limits, engine, BATCH_ADVICE.rows);
      const { rows } = problem.x;
      const outputs = shapeOf(problem).widths.at(-1)!;
      const predictions = { values: rows * outputs, what: `predictions, ${rows} rows × ${outputs} output${outputs === 1 ? '' : 's'}` };
      refuseOverLimit(answerOverLimit(predictions, request.body.outputEncoding, limits, BATCH_ADVICE.rows));
      const result = await gate.run(request.computeSignal, (signal) => engine.forward(problem, signal));
      reportStats(request, reply, result.stats);
      const enc = new ResultEncoder(request.body.outputEncoding);
      return sendAnswer(reply, { predictions: enc.matrix(result.predictions), warnings: enc.warnings() }, enc);
    },
  );

  api.post(
    '/loss',
    {
      schema: {
        operationId: 'loss',
        summary: 'Loss only',
        description: 'The forward pass and the loss, without the backward pass. Same request as /value-and-grad.',
        tags: ['compute'],
        ...postSchemas('/loss'),
      },
    },
    async (request, reply) => {
      const problem = within(toProblem(request.body), limits, engine, BATCH_ADVICE.shards);
      const result = await gate.run(request.computeSignal, (signal) => engine.loss(problem, signal));
      reportStats(request, reply, result.stats);
      const enc = new ResultEncoder(request.body.outputEncoding);
      const loss = enc.number(result.loss);
      return { loss, warnings: enc.warnings(result.head) };
    },
  );

  api.post(
    '/value-and-grad',
    {
      schema: {
        operationId: 'valueAndGrad',
        summary: 'Loss and gradients (jax.value_and_grad)',
        description:
          'Runs the forward pass, the loss and the reverse pass in float32, as `jax.jit(jax.value_and_grad(loss_fn))` ' +
          'does, and returns the loss with a gradient tree shaped exactly like `params`.',
        tags: ['compute'],
        ...postSchemas('/value-and-grad'),
      },
    },
    async (request, reply) => {
      const problem = within(toProblem(request.body), limits, engine, BATCH_ADVICE.shards);
      const grads = paramsAnswer(shapeOf(problem).widths, 'grads');
      refuseOverLimit(answerOverLimit(grads, request.body.outputEncoding, limits, SMALLER_NETWORK));
      const result = await gate.run(request.computeSignal, (signal) => engine.valueAndGrad(problem, signal));
      reportStats(request, reply, result.stats);
      const enc = new ResultEncoder(request.body.outputEncoding);
      const loss = enc.number(result.loss);
      return sendAnswer(reply, { loss, grads: enc.layers(result.grads), warnings: enc.warnings(result.head) }, enc);
    },
  );
};
