import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Engine } from '../../engine/engine.js';
import type { Admission } from '../../runtime/config.js';
import type { Limits } from '../../runtime/limits.js';
import { mallocTuning } from '../../runtime/malloc.js';
import { InfoResponse } from '../schemas.js';

export interface InfoOptions {
  engine: Engine;
  version: string;
  limits: Limits;
  admission: Admission;
  jsonWorkers: number;
}

export const infoRoutes: FastifyPluginAsync<InfoOptions> = async (app, { engine, version, limits, admission, jsonWorkers }) => {
  const malloc = mallocTuning(); // fixed for the process's life: glibc reads it at start
  app.withTypeProvider<ZodTypeProvider>().get(
    '/info',
    {
      schema: {
        operationId: 'info',
        summary: 'Version, backend, limits, threads and kernel cache statistics',
        tags: ['operations'],
        response: { 200: InfoResponse },
      },
    },
    async () => {
      const info = engine.info();
      return {
        version,
        backend: engine.choice,
        backends: info.backends,
        gpu: info.gpu,
        kernelCache: info.kernelCache,
        limits,
        admission,
        threads: { webasm: info.webasmThreads, json: jsonWorkers },
        malloc,
      };
    },
  );
};
