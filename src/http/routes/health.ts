import type { FastifyPluginAsync } from 'fastify';
import type { ZodTypeProvider } from 'fastify-type-provider-zod';
import type { Engine } from '../../engine/engine.js';
import { Errors } from '../errors.js';
import { HealthResponse, NotReadyResponse, ReadyResponse } from '../schemas.js';

export const healthRoutes: FastifyPluginAsync<{ engine: Engine }> = async (app, { engine }) => {
  const api = app.withTypeProvider<ZodTypeProvider>();

  api.get(
    '/healthz',
    {
      schema: { operationId: 'healthz', summary: 'Liveness: the process is serving', tags: ['health'], response: { 200: HealthResponse } },
    },
    async () => ({ status: 'ok' as const }),
  );

  api.get(
    '/readyz',
    {
      schema: {
        operationId: 'readyz',
        summary: 'Readiness: every backend is up and answers a probe kernel correctly',
        tags: ['health'],
        response: { 200: ReadyResponse, 503: NotReadyResponse },
      },
    },
    async () => {
      try {
        await engine.probe();
      } catch (err) {
        throw new Errors.EngineUnavailable(err instanceof Error ? err.message : String(err));
      }
      return { status: 'ready' as const, backend: engine.choice, backends: engine.info().backends };
    },
  );
};
