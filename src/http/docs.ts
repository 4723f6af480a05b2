import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { requestExamples } from './examples.js';

export const API_TITLE = 'gradserve';

/** The OpenAPI document (generated from the zod schemas) and the Swagger UI at /docs. */
export async function registerDocs(app: FastifyInstance, version: string): Promise<void> {
  await app.register(swagger, {
    openapi: {
      openapi: '3.1.0',
      info: {
        title: API_TITLE,
        version,
        description:
          "jax.value_and_grad over HTTP: send an MLP's parameters with a batch, get the loss and a gradient tree " +
          'shaped like the parameters, computed in float32 as JAX does.',
        license: { name: 'MIT', identifier: 'MIT' },
      },
      servers: [{ url: '/' }],
      tags: [
        { name: 'compute', description: 'The lesson series: init, forward, loss, gradients, training' },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'operations', description: 'Version, configuration and statistics (Prometheus metrics at GET /metrics)' },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: (doc) => withRequestExamples('openapiObject' in doc ? doc.openapiObject : {}),
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    uiConfig: { docExpansion: 'list', deepLinking: true, tryItOutEnabled: true },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

type OpenApi = Partial<{ paths: Record<string, Record<string, { requestBody?: { content?: Record<string, { examples?: unknown }> } }>> }>;

function withRequestExamples<T>(doc: T): T {
  for (const [path, examples] of Object.entries(requestExamples)) {
    const media = (doc as OpenApi).paths?.[path]?.post?.requestBody?.content?.['application/json'];
    if (media) media.examples = examples;
  }
  return doc;
}
