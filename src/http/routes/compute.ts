import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Engine } from '../../engine/engine.js';
import type { Problem, RunStats } from '../../engine/types.js';
import type { Admission, Limits } from '../../runtime/config.js';
import { admitCompute, type ComputeGate } from '../admission.js';
import { ResultEncoder } from '../encode.js';
import { enforceLimits } from '../limits.js';
import { toProblem } from '../problem.js';
import { ComputeRequest, ErrorResponse, LossResponse, ValueAndGradResponse } from '../schemas.js';

const errors = { 400: ErrorResponse, 413: ErrorResponse, 415: ErrorResponse, 503: ErrorResponse };

export interface ComputeRouteOptions {
  engine: Engine;
  gate: ComputeGate;
  limits: Limits;
  admission: Admission;
}

/** The validated body as an engine problem, refused with a 413 if it is over a work limit. */
function problemWithin(body: ComputeRequest, limits: Limits): Problem {
  const problem = toProblem(body);
  enforceLimits({ widths: [problem.x.cols, ...problem.layers.map((l) => l.W.cols)], batch: problem.x.rows }, limits);
  return problem;
}

/** Record what the engine did: in Server-Timing for the client, on the request for the log line. */
function reportStats(request: FastifyRequest, reply: FastifyReply, stats: RunStats): void {
  request.runStats = stats;
  reply.header(
    'server-timing',
    `compile;dur=${stats.compileMs.toFixed(2)};desc="${stats.kernelsCompiled} kernels", ` +
      `compute;dur=${stats.computeMs.toFixed(2)};desc="${stats.backend}"`,
  );
}

export const computeRoutes: FastifyPluginAsync<ComputeRouteOptions> = async (app, { engine, gate, limits, admission }) => {
  const api = app.withTypeProvider<ZodTypeProvider>();
  admitCompute(app, gate, admission.requestTimeoutMs);

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
        body: ComputeRequest,
        response: { 200: ValueAndGradResponse, ...errors },
      },
    },
    async (request, reply) => {
      const problem = problemWithin(request.body, limits);
      const result = await gate.run(request.computeSignal, (signal) => engine.valueAndGrad(problem, signal));
      reportStats(request, reply, result.stats);
      const enc = new ResultEncoder();
      const loss = enc.number(result.loss);
      const grads = enc.grads(result.grads);
      return { loss, grads, warnings: enc.warnings(result.head) };
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
        body: ComputeRequest,
        response: { 200: LossResponse, ...errors },
      },
    },
    async (request, reply) => {
      const problem = problemWithin(request.body, limits);
      const result = await gate.run(request.computeSignal, (signal) => engine.loss(problem, signal));
      reportStats(request, reply, result.stats);
      const enc = new ResultEncoder();
      const loss = enc.number(result.loss);
      return { loss, warnings: enc.warnings(result.head) };
    },
  );
};
