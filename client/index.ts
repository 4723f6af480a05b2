/**
 * Data-parallel value-and-grad over gradserve replicas: split a batch into contiguous
 * shards, ask for each shard's answer concurrently (with the caller's reduction), and add
 * them up in float64: sums as they are, a mean's shards weighted by their share of its terms.
 * Because a mean is a sum over rows, the answer equals one request's to float32 rounding.
 *
 * Typed from the OpenAPI document (openapi/api.d.ts); imports nothing of the server.
 * Needs Node ≥ 20 (fetch, Buffer).
 *
 *   const { loss, grads } = await valueAndGradSharded(['http://a:8080', 'http://b:8080'], request, { shards: 4 });
 */
import type { paths } from '../openapi/api.js';

type ValueAndGrad = paths['/value-and-grad']['post'];
export type ValueAndGradRequest = ValueAndGrad['requestBody']['content']['application/json'];
export type ValueAndGradResponse = ValueAndGrad['responses'][200]['content']['application/json'];
/** `{"dtype": "float32", "shape": [...], "data": "<base64>"}` */
export type Base64Tensor = Extract<ValueAndGradRequest['x'], { dtype: 'float32' }>;
type Num = ValueAndGradResponse['loss'];

export interface ShardedOptions {
  /** how many contiguous shards to split the batch into (at most one per row) */
  shards: number;
  /** further attempts per shard after a 502/503/504 or a network error (default 3) */
  retries?: number;
  /** the longest wait between attempts, whatever Retry-After says (default 10 000 ms) */
  maxRetryDelayMs?: number;
  /** per attempt (default 120 000 ms; Infinity for none); an attempt that times out is retried like a network error */
  timeoutMs?: number;
  /**
   * the most shards sent at once (default: all of them). Shards beyond what the replicas
   * admit (GRADSERVE_MAX_CONCURRENCY + GRADSERVE_MAX_QUEUE each) are refused with 503 and
   * retried; with short server queues, keep this at or below what they admit.
   */
  maxInFlight?: number;
  /** a fetch to use instead of the global one (tests, proxies, custom agents) */
  fetch?: typeof fetch;
  signal?: AbortSignal;
  /** told of each failed attempt that will be retried (for logs and metrics) */
  onRetry?: (retry: { shard: number; attempt: number; url: string; reason: string }) => void;
}

/**
 * One shard failed: which one, on which rows, and what the server said, its row numbers
 * (`x[5]`, `row 5`) made the batch's (the server counts from the shard's first row).
 */
export class ShardError extends Error {
  override readonly name = 'ShardError';
  constructor(
    message: string,
    /** 0-based index of the shard */
    readonly shard: number,
    /** HTTP status of the last attempt; 0 for a network error */
    readonly status: number,
    /** the server's error code (e.g. GRADSERVE_INVALID_REQUEST), when it sent one */
    readonly code?: string,
  ) {
    super(message);
  }
}

/** The longest delay a timer takes (2^31 - 1 ms); Node fires a longer one at once. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/** The route under a base URL, keeping the base's path (an ingress prefix) and query (a gateway's key). */
function routeUrl(base: string, route: string): string {
  // "localhost:8080" parses as a URL of the scheme "localhost:"
  const url = URL.canParse(base) ? new URL(base) : undefined;
  if (url?.protocol !== 'http:' && url?.protocol !== 'https:')
    throw new TypeError(`endpoint ${JSON.stringify(base)} is not an http(s) URL; give one like "http://gradserve:8080"`);
  url.pathname = `${url.pathname.replace(/\/$/, '')}/${route}`;
  return url.href;
}

/** Statuses that say "try again, maybe elsewhere": overload or shutdown (503), and a balancer with no healthy replica (502, 504). */
const RETRYABLE = new Set([502, 503, 504]);

export async function valueAndGradSharded(
  endpoints: string | string[],
  request: ValueAndGradRequest,
  options: ShardedOptions,
): Promise<ValueAndGradResponse> {
  const urls = (Array.isArray(endpoints) ? endpoints : [endpoints]).map((e) => routeUrl(e, 'value-and-grad'));
  if (urls.length === 0) throw new TypeError('endpoints is empty; give at least one gradserve URL');
  if (typeof options !== 'object' || options === null) throw new TypeError('options is missing; give at least { shards }');
  const { shards } = options;
  const shown = (v: unknown) => (typeof v === 'string' ? JSON.stringify(v) : String(v));
  if (!Number.isInteger(shards) || shards < 1) throw new TypeError(`shards is ${shown(shards)}; it must be a whole number ≥ 1`);
  const retries = options.retries ?? 3;
  if (!Number.isInteger(retries) || retries < 0) throw new TypeError(`retries is ${shown(retries)}; it must be a whole number ≥ 0`);
  const { timeoutMs = 120_000, maxInFlight = shards, maxRetryDelayMs = 10_000 } = options;
  // Infinity: no limit; a timer takes whole milliseconds up to 2^31 - 1 (about 24.8 days)
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0) || (Number.isFinite(timeoutMs) && timeoutMs > MAX_TIMER_MS))
    throw new TypeError(`timeoutMs is ${shown(timeoutMs)}; it must be a number of milliseconds > 0 and ≤ ${MAX_TIMER_MS}, or Infinity`);
  if (typeof maxRetryDelayMs !== 'number' || !(maxRetryDelayMs >= 0))
    throw new TypeError(`maxRetryDelayMs is ${shown(maxRetryDelayMs)}; it must be a number of milliseconds ≥ 0`);
  if (!Number.isInteger(maxInFlight) || maxInFlight < 1)
    throw new TypeError(`maxInFlight is ${shown(maxInFlight)}; it must be a whole number ≥ 1`);

  // The shards are sent with reduction and outputEncoding of their own: check the caller's
  // here, since the server never sees them.
  const { reduction = 'mean', outputEncoding = 'json' } = request;
  if (reduction !== 'mean' && reduction !== 'sum')
    throw new TypeError(`reduction is ${JSON.stringify(reduction)}; expected "mean" or "sum"`);
  if (outputEncoding !== 'json' && outputEncoding !== 'base64')
    throw new TypeError(`outputEncoding is ${JSON.stringify(outputEncoding)}; expected "json" or "base64"`);
  if (!Array.isArray(request.params))
    throw new TypeError(
      'params must be a list of layers in order, first to last: [{"W": …, "b": …}, …] (an object of named layers, as Flax keeps them, is not)',
    );
  // the server's words for the commonest slip, rather than a row count that does not match y's
  const flat = (v: unknown) => Array.isArray(v) && v.length > 0 && v.every((e) => typeof e === 'number');
  if (flat(request.x))
    throw new TypeError('x is a flat list of numbers; x takes rows, batch × in: one example per row ([[a], [b], …] for one input)');
  const x = rowsOf(request.x, 'x');
  const y = rowsOf(request.y, 'y');
  if (x.count !== y.count) throw new TypeError(`x has ${x.count} rows but y has ${y.count}; they must match`);
  if (x.count === 0) throw new TypeError('x is empty; it needs at least one row');
  const n = Math.min(shards, x.count);
  const bounds = Array.from({ length: n + 1 }, (_, i) => Math.floor((i * x.count) / n));

  // One shard's failure fails the call: stop the others rather than let them compute for nothing.
  const abort = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, abort.signal]) : abort.signal;
  // Every shard carries all of params: send them binary, so each replica parses them fast.
  const params = request.params.map((layer) => ({ ...layer, W: packed(layer.W, 2), b: packed(layer.b, 1) }));
  const inFlight = limiter(maxInFlight);
  const answers = Promise.all(
    bounds.slice(0, n).map((start, i) => {
      const end = bounds[i + 1]!;
      // Every shard asks for base64 tensors (exact float32, small, fast).
      const body = JSON.stringify({
        ...request,
        params,
        x: packed(x.slice(start, end), 2),
        y: packed(y.slice(start, end)),
        reduction,
        outputEncoding: 'base64',
      });
      const label = `shard ${i + 1} of ${n} (rows ${start}–${end - 1})`;
      return inFlight(() => postShard(urls, i, start, body, label, { ...options, retries, timeoutMs, signal }));
    }),
  );
  let replies: ShardReply[];
  try {
    replies = await answers;
  } catch (err) {
    abort.abort(err);
    throw err;
  }
  // a mean is over every prediction, except a softmax cross-entropy's: one loss per row, a mean over rows
  const perRow = request.loss === 'softmax_cross_entropy' || request.loss === 'softmax_cross_entropy_with_integer_labels';
  const termsPerRow = perRow ? 1 : y.width;
  const terms = bounds.slice(0, n).map((start, i) => (bounds[i + 1]! - start) * termsPerRow);
  return combine(replies, { reduction, terms, predictions: x.count * y.width, rows: x.count, encoding: outputEncoding });
}

/** Runs at most `limit` of the tasks given to it at once, the rest in the order given. */
function limiter(limit: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: (() => void)[] = [];
  return async (task) => {
    if (running >= limit) await new Promise<void>((resolve) => waiting.push(resolve));
    running++;
    try {
      return await task();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

/* ---------- splitting rows ---------- */

interface Rows {
  count: number;
  /** values per row (1 for a flat list of targets) */
  width: number;
  slice(start: number, end: number): unknown;
}

function rowsOf(t: ValueAndGradRequest['x'] | ValueAndGradRequest['y'], field: string): Rows {
  if (Array.isArray(t)) {
    const first = t[0];
    return { count: t.length, width: Array.isArray(first) ? first.length : 1, slice: (s, e) => t.slice(s, e) };
  }
  if (t && typeof t === 'object' && t.dtype === 'float32' && Array.isArray(t.shape) && typeof t.data === 'string') {
    if (t.shape.length < 1 || t.shape.length > 2)
      throw new TypeError(`${field}.shape has ${t.shape.length} dimensions; expected [rows] or [rows, cols]`);
    if (!t.shape.every((d) => Number.isInteger(d) && d >= 1))
      throw new TypeError(`${field}.shape is ${JSON.stringify(t.shape)}; each size must be a whole number ≥ 1`);
    const [count = 0, width = 1] = t.shape;
    const bytes = Buffer.from(t.data, 'base64');
    if (bytes.length !== count * width * 4)
      throw new TypeError(`${field}.data holds ${bytes.length} bytes; shape ${JSON.stringify(t.shape)} needs ${count * width * 4}`);
    const rowBytes = width * 4;
    return {
      count,
      width,
      slice: (s, e): Base64Tensor => ({
        dtype: 'float32',
        shape: t.shape.length === 1 ? [e - s] : [e - s, width],
        data: bytes.subarray(s * rowBytes, e * rowBytes).toString('base64'),
      }),
    };
  }
  throw new TypeError(`${field} must be a list of rows or a binary tensor {dtype: "float32", shape, data}`);
}

const FLOAT32_MAX = 3.4028234663852886e38;
const inRange = (v: unknown) => typeof v === 'number' && Math.abs(v) <= FLOAT32_MAX; // false for NaN too

/**
 * JSON numbers as a binary tensor: the server rounds every input to float32 either way, so the
 * answer is the same, and a binary tensor is a third of the size and parses far faster. Only
 * well-formed lists of the field's dimensions (`dims`: 1 for a vector, 2 for a matrix, either
 * when absent) are packed; anything else goes as it is, for the server to say what is wrong
 * in the client's own terms (a flat W, a b sent as a column).
 */
function packed<T>(t: T, dims?: 1 | 2): T | Base64Tensor {
  if (!Array.isArray(t) || t.length === 0) return t;
  const tensor = (shape: number[], values: number[]): Base64Tensor => ({
    dtype: 'float32',
    shape,
    data: Buffer.from(Float32Array.from(values).buffer).toString('base64'),
  });
  if (dims !== 2 && t.every(inRange)) return tensor([t.length], t);
  if (dims === 1) return t;
  const cols = Array.isArray(t[0]) ? t[0].length : 0;
  if (cols > 0 && t.every((row) => Array.isArray(row) && row.length === cols && row.every(inRange)))
    return tensor([t.length, cols], t.flat());
  return t;
}

/* ---------- one shard, with retries ---------- */

interface ShardReply {
  loss: number;
  grads: { W: Base64Tensor; b: Base64Tensor }[];
  warnings?: string[];
}

type PostOptions = Required<Pick<ShardedOptions, 'retries' | 'signal' | 'timeoutMs'>> & ShardedOptions;

async function postShard(
  urls: string[],
  shard: number,
  firstRow: number,
  body: string,
  label: string,
  o: PostOptions,
): Promise<ShardReply> {
  const doFetch = o.fetch ?? fetch;
  let last = '';
  let lastStatus = 0;
  let lastCode: string | undefined;
  for (let attempt = 0; ; attempt++) {
    // Round-robin: shard i starts on endpoint i, and each retry moves to the next one.
    const url = urls[(shard + attempt) % urls.length]!;
    let retryAfter: string | null = null;
    try {
      const res = await doFetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', accept: 'application/json' },
        body,
        signal: Number.isFinite(o.timeoutMs) ? AbortSignal.any([o.signal, AbortSignal.timeout(Math.ceil(o.timeoutMs))]) : o.signal,
      });
      const text = await res.text();
      if (res.ok) return parseReply(text, label, shard);
      const { code, message } = parseError(text);
      last = `${res.status}${code ? ` ${code}` : ''}: ${batchRows(message, firstRow)}`;
      lastStatus = res.status;
      lastCode = code;
      if (!RETRYABLE.has(res.status)) throw new ShardError(`${label} failed: ${last}`, shard, res.status, code);
      retryAfter = res.headers.get('retry-after');
    } catch (err) {
      if (err instanceof ShardError) throw err;
      if (o.signal.aborted) throw o.signal.reason;
      // A replica that died or is not there: connection refused, or reset mid-answer. Try the next one.
      last = `network error from ${url}: ${explain(err)}`;
      lastStatus = 0;
      lastCode = undefined;
    }
    if (attempt === o.retries) break;
    o.onRetry?.({ shard, attempt, url, reason: last });
    await sleep(backoff(attempt, retryAfter, o.maxRetryDelayMs), o.signal);
  }
  throw new ShardError(`${label} failed after ${o.retries + 1} attempts; last: ${last}`, shard, lastStatus, lastCode);
}

/**
 * Retry-After (seconds or an HTTP date) when the server sent one, else exponential from 100 ms;
 * up to half as long again at random, so that shards refused together do not all come back
 * together; capped.
 */
function backoff(attempt: number, retryAfter: string | null, capMs = 10_000): number {
  let ms = 100 * 2 ** attempt;
  if (retryAfter !== null && retryAfter.trim() !== '') {
    const seconds = Number(retryAfter);
    const date = Date.parse(retryAfter);
    if (Number.isFinite(seconds)) ms = seconds * 1000;
    else if (Number.isFinite(date)) ms = date - Date.now();
  }
  return Math.min(Math.max(ms, 0) * (1 + Math.random() / 2), capMs);
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const done = () => {
      signal.removeEventListener('abort', stop);
      resolve();
    };
    const timer = setTimeout(done, ms);
    const stop = () => {
      clearTimeout(timer);
      reject(signal.reason);
    };
    signal.addEventListener('abort', stop, { once: true });
  });
}

const explain = (err: unknown): string => {
  const cause = err instanceof Error && err.cause instanceof Error ? `: ${err.cause.message}` : '';
  return err instanceof Error ? `${err.message}${cause}` : String(err);
};

/** A shard's message with its row numbers (`x[1]`, `y[1]`, `row 1`) counted from the batch's first row. */
const batchRows = (message: string, firstRow: number): string =>
  firstRow === 0
    ? message
    : message
        .replace(/\b([xy])\[(\d+)\]/g, (_, field: string, i: string) => `${field}[${Number(i) + firstRow}]`)
        .replace(/\brow (\d+)\b/g, (_, i: string) => `row ${Number(i) + firstRow}`);

function parseError(text: string): { code?: string; message: string } {
  try {
    const e = JSON.parse(text) as { code?: string; message?: string };
    if (typeof e.message === 'string') return { code: e.code, message: e.message };
  } catch {}
  return { message: text.slice(0, 200) || '(empty body)' };
}

function parseReply(text: string, label: string, shard: number): ShardReply {
  let r: { loss: Num; grads: ShardReply['grads']; warnings?: string[] };
  try {
    r = JSON.parse(text);
  } catch {
    throw new ShardError(`${label} answered 200 with a body that is not JSON: ${text.slice(0, 100)}`, shard, 200);
  }
  if (!Array.isArray(r.grads)) throw new ShardError(`${label} answered 200 without grads`, shard, 200);
  return { loss: fromNum(r.loss), grads: r.grads, warnings: r.warnings };
}

/* ---------- adding the shards up ---------- */

interface Combining {
  reduction: 'mean' | 'sum';
  /** each shard's loss terms: its rows, times the outputs for the losses over every prediction */
  terms: number[];
  /** the whole batch's predictions (batch × out) and rows, as the server's warnings count them */
  predictions: number;
  rows: number;
  encoding: 'json' | 'base64';
}

function combine(replies: ShardReply[], { reduction, terms, predictions, rows, encoding }: Combining): ValueAndGradResponse {
  const total = terms.reduce((a, b) => a + b, 0);
  // A mean's gradients are each shard's mean weighted by its share of the terms, as one request
  // scales each term's cotangent by 1/total: they never form the whole batch's sum, which could
  // overflow where the mean does not. Accumulated in float64, rounded to float32 once.
  const weight = (k: number) => (reduction === 'sum' ? 1 : terms[k]! / total);
  let lossSum = 0; // the loss as a sum over every term, as one request's head forms it
  const sums = replies[0]!.grads.map((g) => ({
    W: { shape: g.W.shape, acc: new Float64Array(count(g.W)) },
    b: { shape: g.b.shape, acc: new Float64Array(count(g.b)) },
  }));
  replies.forEach((r, k) => {
    lossSum += reduction === 'sum' ? r.loss : r.loss * terms[k]!;
    r.grads.forEach((g, l) => {
      addInto(sums[l]!.W.acc, g.W, weight(k));
      addInto(sums[l]!.b.acc, g.b, weight(k));
    });
  });
  let nonFinite = 0;
  const counted = (v: number) => {
    if (!Number.isFinite(v)) nonFinite++;
    return v;
  };
  const finish = ({ shape, acc }: { shape: number[]; acc: Float64Array }) => {
    const out = new Float32Array(acc.length);
    for (let i = 0; i < acc.length; i++) out[i] = counted(Math.fround(acc[i]!));
    return encode(shape, out, encoding);
  };
  const grads = sums.map((s) => ({ W: finish(s.W), b: finish(s.b) })) as ValueAndGradResponse['grads'];
  // the loss's sum beyond float32's range overflowed in one request's float32 sum: so it does
  // here, before the division for a mean could bring it back into range
  const sum = Math.fround(lossSum);
  const loss = counted(reduction === 'mean' && Number.isFinite(sum) ? Math.fround(lossSum / total) : sum);
  const warnings = mergeWarnings(
    replies.map((r) => r.warnings ?? []),
    { predictions, rows },
    nonFinite,
    encoding,
  );
  return { loss: toNum(loss), grads, ...(warnings.length > 0 ? { warnings } : {}) };
}

/**
 * "3 of 8 predictions …", "2 of 8 targets …", "1 of 4 rows of targets …": counts over the
 * answer's elements or rows, added up over the shards
 */
const COUNTED = /^(\d+) of \d+ (predictions|targets|rows of targets) (.*)$/s;
/** the server's order */
const COUNTED_ORDER = [
  'predictions are below 0',
  'predictions are below 1e-8',
  'predictions are above 1',
  'targets lie outside',
  'rows of targets',
  'predictions are exactly',
];
const NOT_FINITE = /^\d+ result values? (?:is|are) not finite/;
/** the server's wording for non-finite values, by the answer's encoding (the shards' is always base64) */
const notFiniteRest = (encoding: 'json' | 'base64') =>
  ` (${encoding === 'base64' ? 'NaN or ±Infinity in the binary tensors' : 'in JSON written as "NaN", "Infinity" or "-Infinity"'}); ` +
  'float32 overflowed or took log(0), as it would in JAX.';

/**
 * The shards' warnings as one answer would have them: the server counts per request, so
 * "k of n predictions saturate" adds up over the shards (their rows are disjoint), "k result
 * values are not finite" is counted again in the combined answer (a NaN in one shard's
 * gradient is a NaN in the sum), and any other warning appears once.
 */
function mergeWarnings(
  perShard: string[][],
  whole: { predictions: number; rows: number },
  nonFinite: number,
  encoding: 'json' | 'base64',
): string[] {
  const others = new Set<string>();
  const counted = new Map<string, number>(); // "predictions lie outside…" → how many, over all shards
  for (const w of perShard.flat()) {
    const count = COUNTED.exec(w);
    const nan = NOT_FINITE.exec(w);
    if (count) {
      const what = `${count[2]} ${count[3]}`;
      counted.set(what, (counted.get(what) ?? 0) + Number(count[1]));
    } else if (!nan) others.add(w);
  }
  const out = [...others];
  // in the order the server writes them
  const rank = (what: string) => COUNTED_ORDER.findIndex((start) => what.startsWith(start));
  for (const [what, k] of [...counted].sort(([a], [b]) => rank(a) - rank(b)))
    out.push(`${k} of ${what.startsWith('rows of') ? whole.rows : whole.predictions} ${what}`);
  if (nonFinite > 0) out.push(`${nonFinite} result value${nonFinite > 1 ? 's are' : ' is'} not finite${notFiniteRest(encoding)}`);
  return out;
}

const count = (t: Base64Tensor) => t.shape.reduce((a, b) => a * b, 1);

function addInto(acc: Float64Array, t: Base64Tensor, weight: number): void {
  const bytes = Buffer.from(t.data, 'base64');
  if (bytes.length !== acc.length * 4) throw new Error(`shards disagree on a gradient's shape: ${JSON.stringify(t.shape)}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (let i = 0; i < acc.length; i++) acc[i]! += weight * view.getFloat32(i * 4, true);
}

function encode(shape: number[], data: Float32Array, encoding: 'json' | 'base64') {
  if (encoding === 'base64') {
    return { dtype: 'float32' as const, shape, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
  }
  const values = Array.from(data, toNum);
  if (shape.length === 1) return values;
  const cols = shape[1]!;
  return Array.from({ length: shape[0]! }, (_, r) => values.slice(r * cols, (r + 1) * cols));
}

/** JSON has no NaN or Infinity; the API writes them as strings, both ways. */
function toNum(v: number): Num {
  if (Number.isNaN(v)) return 'NaN';
  if (v === Number.POSITIVE_INFINITY) return 'Infinity';
  if (v === Number.NEGATIVE_INFINITY) return '-Infinity';
  return v;
}

function fromNum(v: Num): number {
  return typeof v === 'number' ? v : Number(v);
}
