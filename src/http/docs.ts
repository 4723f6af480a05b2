import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import type { FastifyInstance } from 'fastify';
import { jsonSchemaTransform } from 'fastify-type-provider-zod';
import { answerExamples, requestExamples } from './request-examples.js';
import { POST_ROUTES } from './schemas.js';

const API_TITLE = 'gradserve';

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
          'shaped like the parameters, computed in float32 as JAX does. Request bodies may come compressed ' +
          '(`Content-Encoding: gzip` or `deflate`; the body limit applies to the decompressed bytes), and answers ' +
          'over 1 KiB are compressed for an `Accept-Encoding` that takes gzip or deflate. Every error is ' +
          '`{statusCode, code, error, message}`; an unknown path gets 404, a known path with another method 405 with `Allow`. ' +
          "Every answer carries `x-request-id`: the request's own when it sent a plain token (1–128 of `A–Z a–z 0–9 . _ : -`), else a new UUID.",
        license: { name: 'MIT', identifier: 'MIT' },
      },
      servers: [{ url: '/' }],
      tags: [
        {
          name: 'compute',
          description:
            'Gradients with the loss (jax.value_and_grad), the loss alone, predictions, training, and initial params (a lesson takes them in this order: init, forward, loss, gradients, train)',
        },
        { name: 'health', description: 'Liveness and readiness' },
        { name: 'operations', description: 'Version, configuration and statistics (Prometheus metrics at GET /metrics)' },
      ],
    },
    transform: jsonSchemaTransform,
    transformObject: (doc) => withErrorAnswers(withRequestExamples('openapiObject' in doc ? doc.openapiObject : {})),
  });
  await app.register(swaggerUi, {
    routePrefix: '/docs',
    theme: { title: `${API_TITLE}: the API` },
    uiConfig: { docExpansion: 'list', deepLinking: true, tryItOutEnabled: true },
  });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
}

interface Operation {
  requestBody?: { content?: Record<string, { examples?: unknown }> };
  responses?: Record<string, { description?: string; headers?: Record<string, unknown>; content?: Record<string, { examples?: unknown }> }>;
}
type OpenApi = Partial<{ paths: Record<string, Record<string, Operation>> }>;

/** When each of a compute route's error answers comes (the zod schema is one for all). */
const ERROR_DESCRIPTIONS: Record<string, string> = {
  400: 'The body is not valid JSON or does not fit the schema; `message` names the field and says why.',
  408: 'The body did not arrive in full within GRADSERVE_REQUEST_TIMEOUT_MS, or arrived slower than GRADSERVE_MIN_UPLOAD_RATE; the connection is closed.',
  413:
    'Over a limit: the body size (FST_ERR_CTP_BODY_TOO_LARGE), or the layers, widths, batch, work or activations this server takes, ' +
    "/train's steps and their work, /init's parameters, or an answer larger than a body may be (GRADSERVE_LIMIT_EXCEEDED); " +
    '`message` names the limit and its setting.',
  415: 'The body is not `application/json` in UTF-8, or its `Content-Encoding` is not gzip, deflate or identity.',
  417: 'An `Expect` other than 100-continue; the connection is closed.',
  501: 'A `Transfer-Encoding` other than chunked (compress with `Content-Encoding` instead); the connection is closed.',
  503:
    'At capacity (GRADSERVE_OVERLOADED), past GRADSERVE_REQUEST_TIMEOUT_MS (GRADSERVE_TIMEOUT), shutting down or the engine not answering: ' +
    'retry after `Retry-After` seconds, here or on another replica.',
};

/** A compute answer's timing header (README, "Timing"). */
const SERVER_TIMING = {
  'Server-Timing': {
    description:
      'parse (body parsed and validated), compile (kernels compiled, with one compile-kernel per kernel), compute (desc: the backend), ' +
      'and write for a large answer; /init: parse, compute (desc "draw"), write.',
    schema: { type: 'string' },
  },
};

/** Every compute route's error answers (what brings each, and 503's Retry-After header), and its 200's Server-Timing. */
function withErrorAnswers<T>(doc: T): T {
  for (const path of Object.keys(POST_ROUTES)) {
    const responses = (doc as OpenApi).paths?.[path]?.post?.responses ?? {};
    if (responses['200']) responses['200'].headers = SERVER_TIMING;
    for (const [status, description] of Object.entries(ERROR_DESCRIPTIONS)) {
      const answer = responses[status];
      if (!answer) continue;
      answer.description = description;
      if (status === '503')
        answer.headers = {
          'Retry-After': { description: 'Seconds to wait before retrying.', schema: { type: 'integer', minimum: 1 } },
        };
    }
  }
  return doc;
}

function withRequestExamples<T>(doc: T): T {
  for (const [path, examples] of Object.entries(requestExamples)) {
    const post = (doc as OpenApi).paths?.[path]?.post;
    const media = post?.requestBody?.content?.['application/json'];
    if (media) media.examples = examples;
    const answer = post?.responses?.['200']?.content?.['application/json'];
    if (answer && path in answerExamples) answer.examples = { xor: answerExamples[path] };
  }
  return doc;
}
