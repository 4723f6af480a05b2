/**
 * A JSON worker thread (see json-workers.ts): parses and validates large request bodies, and
 * validates and writes large answers, with the routes' own zod schemas and the same error
 * messages as the event loop's path (json-body.ts, errors.ts).
 */
import { parentPort } from 'node:worker_threads';
import { gzipSync } from 'node:zlib';
import { validatorCompiler } from 'fastify-type-provider-zod';
import { LAYERS_CEILING } from '../runtime/limits.js';
import { ResultEncoder, unpackTensors } from './encode.js';
import { Errors } from './errors.js';
import { answerSerializerCompiler, JSON_GZIP_LEVEL, parseWithinLimits } from './json-body.js';
import type { JsonJob, JsonJobResult } from './json-workers.js';
import { POST_ROUTES, type PostRoute } from './schemas.js';
import { validationMessage } from './validation-message.js';
import { validateShown, validationView } from './validation-view.js';

type Compiled<T> = Record<PostRoute, T>;
type CompilerInput = Parameters<typeof validatorCompiler>[0];
const routes = Object.entries(POST_ROUTES) as [PostRoute, (typeof POST_ROUTES)[PostRoute]][];
const validators = Object.fromEntries(
  routes.map(([url, s]) => [url, validatorCompiler({ schema: s.body, method: 'POST', url, httpPart: 'body' } as CompilerInput)]),
) as Compiled<(data: unknown) => { value?: unknown; error?: unknown }>;
const serializers = Object.fromEntries(
  routes.map(([url, s]) => [url, answerSerializerCompiler({ schema: s.ok, method: 'POST', url, httpStatus: '200' })]),
) as Compiled<(data: unknown) => string>;

function handle(job: JsonJob): { result: JsonJobResult; transfer: ArrayBuffer[] } {
  const { id } = job;
  if (job.kind === 'write') {
    const json = new TextEncoder().encode(serializers[job.url](unpackTensors(job.answer)));
    const bytes = job.gzip ? new Uint8Array(gzipSync(json, { level: JSON_GZIP_LEVEL })) : json; // a copy that owns its buffer
    return { result: { id, ok: true, value: bytes }, transfer: [bytes.buffer as ArrayBuffer] };
  }
  let body: unknown;
  try {
    body = parseWithinLimits(job.url, job.bytes, job.limits);
  } catch (err) {
    const error = err instanceof Errors.LimitExceeded ? 'limit-exceeded' : 'invalid-json';
    return { result: { id, ok: false, error, message: (err as Error).message }, transfer: [] };
  }
  const checked = validateShown(validators[job.url], body);
  if (checked.error) {
    const message = validationMessage(checked.error as Parameters<typeof validationMessage>[0], validationView(body), job.url);
    return { result: { id, ok: false, error: 'invalid-request', message }, transfer: [] };
  }
  return { result: { id, ok: true, value: checked.value }, transfer: ownBuffers(checked.value) };
}

/** The memory of every typed array in a validated body that owns all of it: handed over, not copied. */
function ownBuffers(value: unknown, found: ArrayBuffer[] = []): ArrayBuffer[] {
  if (ArrayBuffer.isView(value)) {
    const buffer = value.buffer as ArrayBuffer;
    if (value.byteLength === buffer.byteLength && !found.includes(buffer)) found.push(buffer);
  } else if (value !== null && typeof value === 'object') {
    for (const v of Object.values(value)) ownBuffers(v, found);
  }
  return found;
}

/** No limits on the warm-up's own body, a small one. */
const WARM_UP_LIMITS = { layers: LAYERS_CEILING, batch: Number.MAX_SAFE_INTEGER, width: Number.MAX_SAFE_INTEGER };

/**
 * Run a small request and answer through /value-and-grad's parse and write before the first job:
 * V8 compiles this thread's validation code while the service starts, not during the first
 * large request (whose parse, with the thread started only after listen, took 91–154 ms
 * against 25 once warm; bench/RESULTS.md, "Compile cost").
 */
function warmUp(): void {
  const rows = (n: number, m: number) =>
    Array.from({ length: n }, (_, i) => Array.from({ length: m }, (_, j) => ((i * m + j) % 7) / 7 - 0.5));
  const params = [
    { W: rows(16, 32), b: rows(1, 32)[0]! },
    { W: rows(32, 1), b: [0] },
  ];
  const request = { params, x: rows(128, 16), y: rows(128, 1).map((r) => (r[0]! > 0 ? 1 : 0)) };
  const bytes = new TextEncoder().encode(JSON.stringify(request));
  const matrix = (m: number[][]) => ({ rows: m.length, cols: m[0]!.length, data: Float32Array.from(m.flat()) });
  const grads = params.map((p) => ({ W: matrix(p.W), b: Float32Array.from(p.b) }));
  for (let i = 0; i < 5; i++) {
    handle({ id: -1, kind: 'parse', url: '/value-and-grad', bytes, limits: WARM_UP_LIMITS });
    const enc = new ResultEncoder('json');
    const answer = { loss: enc.number(0.5), grads: enc.layers(grads) };
    handle({ id: -1, kind: 'write', url: '/value-and-grad', answer, gzip: i % 2 === 0 });
  }
}
warmUp();

/**
 * A large body or answer leaves hundreds of MB of garbage in this thread's heap (after a
 * 42 MB body, 115 MiB of the process's RSS), and on Node 20 and 22 a thread that only waits
 * for its next job never collects it: so it collects at the next turn of its event loop
 * after such a job (bench/RESULTS.md, "Memory kept between requests").
 */
const COLLECT_AFTER_BYTES = 4 * 2 ** 20;
/** exposed to this thread before it started (runtime/thread-gc.ts) */
const collect = (globalThis as { gc?: () => void }).gc;
let collectScheduled = false;
function collectSoon(): void {
  if (collectScheduled || !collect) return;
  collectScheduled = true;
  setTimeout(() => {
    collectScheduled = false;
    collect();
  }, 0);
}

parentPort!.on('message', (job: JsonJob) => {
  let answer: { result: JsonJobResult; transfer: ArrayBuffer[] };
  try {
    answer = handle(job);
  } catch (err) {
    answer = { result: { id: job.id, ok: false, error: 'internal', message: (err as Error).message }, transfer: [] };
  }
  // the size before the answer's bytes are handed over
  const bytes = job.kind === 'parse' ? job.bytes.byteLength : answer.result.ok ? (answer.result.value as Uint8Array).byteLength : 0;
  parentPort!.postMessage(answer.result, answer.transfer);
  if (bytes > COLLECT_AFTER_BYTES) collectSoon();
});
