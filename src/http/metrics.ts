import type { Duplex } from 'node:stream';
import type { FastifyInstance, FastifyRequest } from 'fastify';
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';
import type { Engine } from '../engine/engine.js';
import { clientErrorStatus, HTTP_METHODS, responseOn, unfinishedStatus } from './errors.js';

/** Methods counted by name; any other is counted as "other". */
const COMMON_METHODS = new Set<string>(HTTP_METHODS);

const LATENCY_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/**
 * GET /metrics in Prometheus's text format, from a registry of this app's own (not
 * prom-client's global one, so tests can build several apps): requests and their latency
 * per route and status, admitted requests, engine compute time, the kernel cache (read from
 * the engine's counters at scrape time), the backend, and Node's default metrics (event-loop
 * lag, memory, GC).
 */
export function registerMetrics(app: FastifyInstance, engine: Engine): void {
  const registers = [new Registry()];
  const [registry] = registers as [Registry];
  collectDefaultMetrics({ register: registry });

  const labelNames = ['method', 'route', 'status'] as const;
  const requests = new Counter({
    name: 'gradserve_http_requests_total',
    help: 'HTTP requests by status (499: the client closed the connection before its answer)',
    labelNames,
    registers,
  });
  const latency = new Histogram({
    name: 'gradserve_http_request_duration_seconds',
    help: 'Time to answer an HTTP request',
    labelNames,
    buckets: LATENCY_BUCKETS,
    registers,
  });
  const compute = new Histogram({
    name: 'gradserve_engine_compute_seconds',
    help: 'Engine time per request, kernel compiles excluded, by the backend the dispatcher chose',
    labelNames: ['route', 'backend'],
    buckets: LATENCY_BUCKETS,
    registers,
  });

  const compiles = new Histogram({
    name: 'gradserve_kernel_compile_seconds',
    help: "Each kernel's compile time (its first call) by backend and op",
    labelNames: ['backend', 'op'],
    buckets: [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers,
  });
  const stopHearing = engine.onCompile((k) => compiles.observe({ backend: k.backend, op: k.op }, k.ms / 1000));
  app.addHook('onClose', async () => stopHearing());

  const cache = () => engine.info().kernelCache;
  /** a counter that mirrors one of the engine's own running totals */
  const mirrored = (name: string, help: string, read: () => number) =>
    new Counter({
      name,
      help,
      registers,
      collect() {
        this.reset();
        this.inc(read());
      },
    });
  new Counter({
    name: 'gradserve_json_offloaded_total',
    help: 'Large JSON bodies parsed and validated (parse), and answers written (write), in the JSON worker threads',
    labelNames: ['kind'],
    registers,
    collect() {
      const stats = app.jsonWorkers.stats();
      this.reset();
      this.inc({ kind: 'parse' }, stats.parse);
      this.inc({ kind: 'write' }, stats.write);
    },
  });
  mirrored('gradserve_kernel_compiles_total', 'Kernels compiled', () => cache().compiles);
  mirrored('gradserve_kernel_cache_hits_total', 'Kernel cache hits', () => cache().hits);
  mirrored('gradserve_kernel_cache_evictions_total', 'Kernels evicted from the cache', () => cache().evictions);
  new Gauge({
    name: 'gradserve_kernel_cache_size',
    help: 'Kernels in the cache',
    registers,
    collect() {
      this.set(cache().size);
    },
  });
  new Gauge({
    name: 'gradserve_kernel_cache_bytes',
    help: 'Memory the cached kernels keep (their arguments and results), bounded by GRADSERVE_KERNEL_CACHE_BYTES',
    registers,
    collect() {
      this.set(cache().bytes);
    },
  });
  new Gauge({
    name: 'gradserve_admitted_requests',
    help: 'Admitted compute requests: computing (running), waiting for a compute slot (waiting), waiting with their bodies unread (unread), and the rest: receiving or parsing their bodies, or sending their answers (io)',
    labelNames: ['state'],
    registers,
    collect() {
      const gate = app.computeGate.stats();
      this.set({ state: 'running' }, gate.running);
      this.set({ state: 'waiting' }, gate.waiting);
      this.set({ state: 'unread' }, gate.unread);
      // a stalled upload shows here, holding its read slot until the request timeout
      // (a timed-out request's computation keeps its slot until its next kernel check, after its ticket is returned)
      this.set({ state: 'io' }, Math.max(0, gate.admitted - gate.running - gate.waiting - gate.unread));
    },
  });
  const backendInfo = new Gauge({
    name: 'gradserve_backend_info',
    help: 'GRADSERVE_BACKEND (choice) and the backends started',
    labelNames: ['choice', 'backend'],
    registers,
  });
  for (const backend of engine.info().backends) backendInfo.set({ choice: engine.choice, backend }, 1);

  // the route's pattern, never the raw URL, and the common methods by name: what a client
  // sends must not make new label values without end
  const count = (request: FastifyRequest | undefined, status: number, seconds: number) => {
    const method = request && COMMON_METHODS.has(request.method) ? request.method : 'other';
    const labels = { method, route: request?.routeOptions.url ?? 'unmatched', status: String(status) };
    requests.inc(labels);
    latency.observe(labels, seconds);
  };
  app.addHook('onResponse', async (request, reply) => {
    count(request, reply.statusCode, reply.elapsedTime / 1000);
    const stats = request.runStats;
    if (stats) compute.observe({ route: request.routeOptions.url ?? 'unmatched', backend: stats.backend }, stats.computeMs / 1000);
  });
  // answers that never finished (499, 408) are counted and timed too, to when the connection closed
  app.addHook('onRequest', async (request, reply) => {
    reply.raw.once('close', () => {
      if (!reply.raw.writableFinished) count(request, unfinishedStatus(reply.raw), reply.elapsedTime / 1000);
    });
  });

  // answers Node's server asks for before fastify has a request (malformed HTTP, headers too
  // large); one for a request under way is counted by that request, above. First, before
  // the clientErrorHandler (errors.ts, given to fastify) closes the socket
  app.server.prependListener('clientError', (err: Error, socket: Duplex) => {
    const status = clientErrorStatus(err, socket);
    if (status !== undefined && !responseOn(socket)) count(undefined, status, 0);
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.type(registry.contentType);
    return registry.metrics();
  });
}
