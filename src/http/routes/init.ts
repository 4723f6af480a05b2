import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { DEFAULT_SCALE, initParams } from '../../engine/init.js';
import { answerOverLimit, initOverLimit, paramsAnswer } from '../../runtime/limits.js';
import { admitCompute } from '../admission.js';
import { ResultEncoder } from '../encode.js';
import { Errors, refuseOverLimit } from '../errors.js';
import { sendAnswer } from '../json-body.js';
import { type InitResponse, postSchemas } from '../schemas.js';
import { type ComputeRouteOptions, SMALLER_NETWORK } from './compute.js';

/**
 * /init draws on the main thread (yielding to the event loop as the engine does) and can answer
 * tens of MB: it is admitted, bounded and timed like the compute routes, so that clients that
 * do not read their answers cannot pile them up.
 */
export const initRoutes: FastifyPluginAsync<ComputeRouteOptions> = async (app, { gate, limits, admission }) => {
  admitCompute(app, gate, admission.requestTimeoutMs);
  app.withTypeProvider<ZodTypeProvider>().post(
    '/init',
    {
      schema: {
        operationId: 'init',
        summary: 'Initial parameters (jax.nn.initializers)',
        description:
          "Parameters for a network of the given widths, drawn from jax.nn.initializers' distributions with a documented " +
          'counter-based PRNG (Threefry-2x32): the same seed gives the same params on every machine.',
        tags: ['compute'],
        ...postSchemas('/init'),
      },
    },
    async (request, reply) => {
      const { layers, seed, scheme, biasScheme, scale = DEFAULT_SCALE, outputEncoding } = request.body;
      refuseOverLimit(
        initOverLimit(layers, limits) ?? answerOverLimit(paramsAnswer(layers, 'params'), outputEncoding, limits, SMALLER_NETWORK),
      );
      let drawMs = 0;
      const params = await gate.run(request.computeSignal, async (signal) => {
        const t0 = performance.now();
        const drawn = await initParams({ layers, seed, scheme, biasScheme, scale }, signal);
        drawMs = performance.now() - t0;
        return drawn;
      });
      // as the compute routes' Server-Timing: the body's parse, then the work (the draw, on the event loop)
      reply.header(
        'server-timing',
        `parse;dur=${request.bodyParseMs.toFixed(2)};desc="body parsed and validated", compute;dur=${drawMs.toFixed(2)};desc="draw"`,
      );
      const enc = new ResultEncoder(outputEncoding); // from here on, Server-Timing's write
      const encoded = enc.layers(params);
      // a scale near float32's largest value makes draws beyond it: initial params must be finite
      if (enc.nonFinite > 0) {
        throw new Errors.InvalidRequest(
          `scale ${scale} makes ${enc.nonFinite} parameters overflow float32 (its largest is 3.4028235e38); use a smaller scale`,
        );
      }
      return sendAnswer(reply, { params: encoded as z.infer<typeof InitResponse>['params'] }, enc);
    },
  );
};
