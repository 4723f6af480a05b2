import { readFileSync } from 'node:fs';
import compress from '@fastify/compress';
import Fastify, { type FastifyInstance, type FastifyRequest, LogController } from 'fastify';
import type { Engine } from './engine/engine.js';
import type { RunStats } from './engine/types.js';
import { ComputeGate } from './http/admission.js';
import { registerDocs } from './http/docs.js';
import { drainOnClose } from './http/drain.js';
import { clientErrorHandler, expectsContinue, installErrorHandlers, unfinishedStatus, urlPath } from './http/errors.js';
import { JSON_GZIP_LEVEL, spellOutWildcard, useJsonBodies } from './http/json-body.js';
import { JsonWorkers } from './http/json-workers.js';
import { registerMetrics } from './http/metrics.js';
import { computeRoutes } from './http/routes/compute.js';
import { healthRoutes } from './http/routes/health.js';
import { infoRoutes } from './http/routes/info.js';
import { initRoutes } from './http/routes/init.js';
import { trainRoutes } from './http/routes/train.js';
import type { Config } from './runtime/config.js';
import { loggerOptions, requestIdFrom } from './runtime/logger.js';

declare module 'fastify' {
  interface FastifyInstance {
    /** admission and concurrency for compute routes (shutdown aborts what is left in it) */
    computeGate: ComputeGate;
    /** threads for large JSON bodies and answers (json-body.ts) */
    jsonWorkers: JsonWorkers;
    /** whether answers are compressed for clients that accept it (GRADSERVE_COMPRESS_RESPONSES) */
    compressResponses: boolean;
    /** the app's connections: drained() resolves once closing has ended them all; cutOff() closes the rest */
    connections: ReturnType<typeof drainOnClose>;
  }
  interface FastifyRequest {
    /** what the engine did for this request, for the log line */
    runStats: RunStats | null;
    /** when the whole body had arrived (performance.now()), and how long parsing and validating it took (json-body.ts) */
    bodyReceivedAt: number;
    bodyParseMs: number;
    /** settles when a JSON thread is done with this request's body or answer: its read slot is held till then (admission.ts) */
    threadJob: Promise<void> | null;
  }
}

const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
export const VERSION = pkg.version;

export interface AppDeps {
  config: Pick<Config, 'logLevel' | 'limits' | 'admission' | 'jsonOffload' | 'compressResponses'>;
  engine: Engine;
  /** started early by server.ts, so that they boot while the engine probes its backends; made here otherwise */
  jsonWorkers?: JsonWorkers;
}

/** The codings answers may come in, by preference. */
const ANSWER_CODINGS = ['gzip', 'deflate'] as const;

/** How often Node looks for requests not received in full within the request timeout (its default: 30 s). */
const OVERDUE_CHECK_MS = 1000;

/** A request's URL for its log line: the route's pattern, or an unknown path without its query (which may hold secrets). */
const loggedUrl = (request: FastifyRequest) => request.routeOptions.url ?? urlPath(request.url);

/** Build the app without listening: server.ts listens, tests use inject or listen on port 0. */

export async function buildApp({ config, engine, jsonWorkers = new JsonWorkers(config.jsonOffload) }: AppDeps): Promise<FastifyInstance> {
  const app = Fastify({
    logger: loggerOptions(config),
    bodyLimit: config.limits.bodyBytes,
    genReqId: (req) => requestIdFrom(req.headers['x-request-id']),
    logController: new LogController({ disableRequestLogging: true }), // one line per request, below
    return503OnClosing: false, // drain.ts answers them, in the service's shape and with Retry-After
    forceCloseConnections: false, // drain.ts ends them gracefully instead
    // a client that cannot send its whole request within the request timeout gets a 408 and
    // loses its connection, so slow uploads cannot hold admission slots for long. Node applies
    // it only when given to http.createServer (fastify sets it on the server afterwards, which
    // Node 20 ignores, and would set 0 if it were left out here), and looks for overdue
    // requests every connectionsCheckingInterval
    requestTimeout: config.admission.requestTimeoutMs,
    // a missing Host is refused by installErrorHandlers' hook, with a body (Node's 400 has none)
    http: { requestTimeout: config.admission.requestTimeoutMs, connectionsCheckingInterval: OVERDUE_CHECK_MS, requireHostHeader: false },
    clientErrorHandler: clientErrorHandler(config.admission.requestTimeoutMs),
  });

  const gate = new ComputeGate(config.admission);
  app.decorate('computeGate', gate);
  app.decorate('jsonWorkers', jsonWorkers);
  app.decorate('compressResponses', config.compressResponses);
  app.addHook('onClose', () => jsonWorkers.close());
  app.decorateRequest('runStats', null);
  app.decorateRequest('bodyReceivedAt', 0);
  app.decorateRequest('bodyParseMs', 0);
  app.decorateRequest('threadJob', null);
  app.decorate('connections', drainOnClose(app));
  app.addHook('onSend', async (request, reply) => {
    reply.header('x-request-id', request.id);
    // an answer may come compressed or not by Accept-Encoding (over 1 KiB): caches must know,
    // also of the answers that happened to be small (@fastify/compress marks only those it compresses)
    if (config.compressResponses && !String(reply.getHeader('vary') ?? '').includes('accept-encoding')) {
      const vary = reply.getHeader('vary');
      reply.header('vary', vary ? `${vary}, accept-encoding` : 'accept-encoding');
    }
  });
  // Expect: 100-continue (curl's large uploads): the 100 goes out just before the body is
  // read, after admission (admission.ts), so a client that waits for it sends nothing while
  // its request queues, and nothing at all when it is refused. Node would send it at once.
  app.server.on('checkContinue', (req, res) => app.server.emit('request', req, res));
  // any other expectation gets its 417 from installErrorHandlers' hook, with a body (Node's has none)
  app.server.on('checkExpectation', (req, res) => app.server.emit('request', req, res));
  app.addHook('preParsing', (request, reply, payload, done) => {
    if (expectsContinue(request)) reply.raw.writeContinue();
    done(null, payload);
  });
  app.addHook('onResponse', async (request, reply) => {
    const stats = request.runStats;
    request.log.info(
      {
        method: request.method,
        url: loggedUrl(request),
        status: reply.statusCode,
        durationMs: Number(reply.elapsedTime.toFixed(2)),
        backend: stats?.backend,
        kernelsCompiled: stats?.compiled.length,
      },
      'request',
    );
  });

  // a connection closed before its answer was written (the client hung up, or shut its
  // sending side, which Node takes as hanging up; or a stalled upload got its 408): its work
  // is abandoned (admission.ts), and it gets its log line here
  app.addHook('onRequest', async (request, reply) => {
    reply.raw.once('close', () => {
      if (reply.raw.writableFinished) return;
      request.log.info(
        {
          method: request.method,
          url: loggedUrl(request),
          status: unfinishedStatus(reply.raw),
          durationMs: Number(reply.elapsedTime.toFixed(2)),
        },
        'request',
      );
    });
  });

  installErrorHandlers(app, config.limits.bodyBytes);
  // gzip/deflate both ways: request bodies by Content-Encoding (the body limit applies to
  // the decompressed bytes), responses by Accept-Encoding unless GRADSERVE_COMPRESS_RESPONSES=0,
  // large ones streamed off the loop (the largest JSON answers come gzipped from the JSON
  // threads, see json-body.ts)
  // content codings are case-insensitive, and x-gzip is gzip (RFC 9110 §8.4.1); @fastify/compress
  // compares them as sent
  app.addHook('onRequest', (request, _reply, done) => {
    const coding = request.headers['content-encoding']?.trim().toLowerCase();
    if (coding !== undefined) request.headers['content-encoding'] = coding === 'x-gzip' ? 'gzip' : coding;
    const accepted = request.headers['accept-encoding'];
    if (accepted?.includes('*')) request.headers['accept-encoding'] = spellOutWildcard(accepted, ANSWER_CODINGS);
    done();
  });
  await app.register(compress, {
    globalCompression: config.compressResponses,
    encodings: [...ANSWER_CODINGS],
    requestEncodings: ['gzip', 'deflate', 'identity'],
    threshold: 1024,
    zlibOptions: { level: JSON_GZIP_LEVEL },
  });
  await registerDocs(app, VERSION);
  registerMetrics(app, engine);

  // zod compiles only the API's schemas: set inside this encapsulated plugin, not on the
  // root, so plugins with JSON-schema routes (the Swagger UI's) keep fastify's compilers.
  await app.register(async (api) => {
    useJsonBodies(
      api,
      jsonWorkers,
      { minBytesPerSecond: config.admission.minUploadRate, graceMs: config.admission.uploadGraceMs },
      config.limits,
    );
    const compute = { engine, gate, limits: config.limits, admission: config.admission };
    // the Swagger UI lists them in this order, a lesson's: init, forward, loss, value-and-grad, train
    await api.register(initRoutes, compute);
    await api.register(computeRoutes, compute);
    await api.register(trainRoutes, compute);
    await api.register(healthRoutes, { engine });
    await api.register(infoRoutes, {
      engine,
      version: VERSION,
      limits: config.limits,
      admission: config.admission,
      jsonWorkers: config.jsonOffload.workers,
    });
  });

  return app;
}
