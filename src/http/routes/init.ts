import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { z } from 'zod';
import { initParams } from '../../engine/init.js';
import type { Limits } from '../../runtime/config.js';
import { ResultEncoder } from '../encode.js';
import { Errors } from '../errors.js';
import { sendAnswer } from '../json-body.js';
import { enforceInitLimits } from '../limits.js';
import { type InitResponse, postSchemas } from '../schemas.js';

export const initRoutes: FastifyPluginAsync<{ limits: Limits }> = async (app, { limits }) => {
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
      const { layers, seed, scheme, biasScheme, scale = 0.01 } = request.body;
      enforceInitLimits(layers, limits);
      const count = layers.slice(1).reduce((s, out, l) => s + (layers[l]! + 1) * out, 0);
      if (count > limits.initParams) {
        throw new Errors.LimitExceeded(
          `layers ${JSON.stringify(layers).slice(0, 80)} make ${count} parameters; the limit is ${limits.initParams} (GRADSERVE_MAX_INIT_PARAMS)`,
        );
      }
      // initial values are always finite: the encoder writes plain numbers
      const enc = new ResultEncoder(request.body.outputEncoding);
      const encoded = enc.layers(initParams({ layers, seed, scheme, biasScheme, scale }));
      return sendAnswer(reply, { params: encoded as z.infer<typeof InitResponse>['params'] }, enc);
    },
  );
};
