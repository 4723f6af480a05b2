import { isAscii, isUtf8 } from 'node:buffer';
import type {
  FastifyInstance,
  FastifyReply,
  FastifyRequest,
  FastifySchemaCompiler,
  FastifySchemaValidationError,
  FastifySerializerCompiler,
} from 'fastify';
import { errorCodes } from 'fastify';
import { ResponseSerializationError, validatorCompiler } from 'fastify-type-provider-zod';
import sjson from 'secure-json-parse';
import { bodyOverListLimits, bodyOverStructure, type ListLimits } from './body-limits.js';
import { type ResultEncoder, unpackTensors } from './encode.js';
import { EMPTY_BODY, Errors } from './errors.js';
import type { JsonWorkers } from './json-workers.js';
import { readBody, type UploadPace } from './read-body.js';
import { isPostRoute } from './schemas.js';
import { validateShown } from './validation-view.js';
import type { z } from './zod.js';

/**
 * The API's JSON, in and out. Bodies are parsed with fastify's own safety (secure-json-parse
 * refuses `__proto__` and `constructor.prototype` keys, so nothing a client sends can reach
 * Object.prototype) and messages that say what is wrong, then validated by the route's zod
 * schema. Large bodies and answers (megabytes of JSON numbers take 100 ms or more to parse
 * and validate) go to the JSON worker threads with the same schemas, so the event loop stays
 * free for /healthz and for every other request.
 */
export function useJsonBodies(api: FastifyInstance, workers: JsonWorkers, pace: UploadPace, limits: ListLimits): void {
  api.setValidatorCompiler(bodyValidatorCompiler);
  api.setSerializerCompiler(answerSerializerCompiler);
  api.removeAllContentTypeParsers(); // JSON only: any other content type gets a 415
  api.addContentTypeParser('application/json', (request, payload, done) => {
    const type = request.headers['content-type'] ?? '';
    if (!takesCharset(type)) {
      done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(), undefined); // errors.ts names the type
      return;
    }
    readBody(request, payload, pace, (err, bytes) => (err ? done(err, undefined) : parseBody(request, bytes!, done)));
  });
  // validation has run by now: the parse figure in Server-Timing (compute.ts) covers both
  api.addHook('preHandler', (request, _reply, done) => {
    if (request.bodyReceivedAt > 0) request.bodyParseMs = performance.now() - request.bodyReceivedAt;
    done();
  });

  /** A whole body: parsed and validated in a JSON thread if it is large, parsed here if not. */
  function parseBody(request: FastifyRequest, bytes: Buffer, done: (err: Error | null, body: unknown) => void): void {
    request.bodyReceivedAt = performance.now();
    const url = request.routeOptions.url;
    if (workers.offloads(bytes.length) && isPostRoute(url)) {
      // a body still waiting for the thread when its request times out (or its client leaves) is
      // dropped; one the thread has taken holds the request's read slot until the thread is done
      // with it (admission.ts), even when the request is answered first: the slots bound the
      // bodies held. Either way the request is answered then, not once the parse is done.
      const signal = request.computeSignal ?? undefined;
      const parsed = workers.parse(url, bytes, limits, signal);
      request.threadJob = settled(parsed);
      untilAborted(parsed, signal).then(
        (value) => done(null, new ValidatedBody(url, value)),
        (err: Error) => done(err, undefined),
      );
      return;
    }
    try {
      done(null, parseWithinLimits(url ?? '', bytes, limits));
    } catch (err) {
      done(err as Error, undefined);
    }
  }
}

/**
 * A body's bytes parsed as JSON, where their structure and lists are within `limits` (body-limits.ts);
 * throws LimitExceeded or InvalidJson. The same here and in a JSON thread (json-worker.ts).
 */
export function parseWithinLimits(url: string, bytes: Uint8Array, limits: ListLimits): unknown {
  const structure = bodyOverStructure(bytes, limits);
  if (structure !== undefined) throw new Errors.LimitExceeded(structure);
  const body = parseJson(bodyText(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)));
  const lists = bodyOverListLimits(url, body, limits);
  if (lists !== undefined) throw new Errors.LimitExceeded(lists);
  return body;
}

/** Resolves once `promise` settles, either way. */
const settled = (promise: Promise<unknown>): Promise<void> =>
  promise.then(
    () => undefined,
    () => undefined,
  );

/** `promise`, or a rejection with `signal`'s reason as soon as it aborts, whichever comes first. */
export function untilAborted<T>(promise: Promise<T>, signal: AbortSignal | null | undefined): Promise<T> {
  if (!signal) return promise;
  return new Promise<T>((resolve, reject) => {
    const abort = () => reject(signal.reason);
    if (signal.aborted) return abort();
    signal.addEventListener('abort', abort, { once: true });
    promise.then(resolve, reject).finally(() => signal.removeEventListener('abort', abort));
  });
}

/** JSON is UTF-8 (RFC 8259): a Content-Type that names another charset (utf-16, latin1) gets a 415, not misread text. */
function takesCharset(contentType: string): boolean {
  const charset = /;\s*charset\s*=\s*"?([^";\s]*)/i.exec(contentType)?.[1]?.toLowerCase();
  return charset === undefined || charset === 'utf-8' || charset === 'utf8' || charset === 'us-ascii';
}

/**
 * A body's bytes as text, or InvalidJson if they are not UTF-8. An ASCII body (the API's JSON
 * is all ASCII in practice) decodes as Latin-1, the same characters: Node makes a large one an external string in malloc's memory,
 * which malloc reuses from body to body, where UTF-8's string goes to a fresh region of V8's
 * large-object space and every page of it is a page fault (bench/RESULTS.md, "Page faults").
 */
export function bodyText(bytes: Buffer): string {
  if (isAscii(bytes)) return bytes.toString('latin1');
  // decoding would turn bytes that are not UTF-8 (Latin-1 text, say) into U+FFFD, silently
  if (!isUtf8(bytes)) throw new Errors.InvalidJson(NOT_UTF8);
  return bytes.toString('utf8');
}

const NOT_UTF8 = 'the body is not valid UTF-8; JSON is sent in UTF-8 (RFC 8259)';

/** Parse a request body's text, or throw InvalidJson saying why. */
export function parseJson(text: string): unknown {
  if (text.length === 0) throw new Errors.InvalidJson(EMPTY_BODY);
  try {
    // secure-json-parse scans the whole text with two regular expressions for the keys it
    // refuses (1.6 ms of a 1.8 MB body); a text without "__proto__", "constructor" or any
    // \u escape cannot match them, so it gets the same result from JSON.parse directly
    if (text.charCodeAt(0) !== 0xfeff && !text.includes('\\u') && !text.includes('__proto__') && !text.includes('constructor')) {
      return JSON.parse(text);
    }
    return sjson.parse(text, { protoAction: 'error', constructorAction: 'error' });
  } catch (err) {
    // V8 quotes up to ~30 characters of the text ("Unexpected token 's', "secret…" is not
    // valid JSON"): messages name what is wrong, never echo what was sent
    const reason = (err instanceof Error ? err.message : String(err)).replace(/, (?:\.\.\.)?".*"(?:\.\.\.)? is not valid JSON$/s, '');
    if (/forbidden prototype/.test(reason)) throw new Errors.InvalidJson(FORBIDDEN_KEY);
    // Python's json.dumps writes float('nan') and float('inf') as NaN and Infinity
    const nonFinite = /(?<![\w"])-?(NaN|Infinity)\b/.test(text) ? '; NaN and Infinity are not JSON, and inputs must be finite numbers' : '';
    throw new Errors.InvalidJson(`the body is not valid JSON: ${reason.slice(0, 200)}${nonFinite}`);
  }
}

const FORBIDDEN_KEY = 'the body has a "__proto__" or "constructor.prototype" key, which is refused (prototype pollution)';

/** A body a JSON worker has already validated with its route's schema (only the parser above makes these). */
class ValidatedBody {
  constructor(
    readonly url: string,
    readonly value: unknown,
  ) {}
}

type ValidationResult = { value?: unknown; error?: FastifySchemaValidationError[] };

/** Zod validation, except for bodies validated off the event loop: those pass as they are. */
const bodyValidatorCompiler: FastifySchemaCompiler<unknown> = (route) => {
  // fastify-type-provider-zod's validators answer synchronously, { value } or { error }
  const validate = validatorCompiler(route as Parameters<typeof validatorCompiler>[0]) as (data: unknown) => ValidationResult;
  return (data: unknown) => {
    if (!(data instanceof ValidatedBody)) return validateShown(validate, data);
    if (data.url !== route.url) throw new Error(`a body validated for ${data.url} reached ${route.url}`);
    return { value: data.value };
  };
};

/**
 * Answers are checked against the route's zod schema, then written by JSON.stringify.
 * fastify-type-provider-zod's serializer checks with zod's encode, which zod does not compile
 * ahead of time (zod.ts); the answer schemas hold no transforms or codecs, so parse checks
 * the same and is compiled: an M answer took 1–12 ms to encode and 0.3 ms to parse, an XOR
 * answer 4–5 µs and 0.3–0.5 µs (bench/RESULTS.md).
 */
export const answerSerializerCompiler: FastifySerializerCompiler<z.ZodType> = ({ schema, method, url }) => {
  return (data: unknown) => {
    const result = schema.safeParse(data);
    if (!result.success) throw new ResponseSerializationError(method, url, { cause: result.error });
    return JSON.stringify(result.data);
  };
};

/** gzip level of JSON answers: numbers shrink by 56% (level 6: 58%) at 2.4 times the speed. */
export const JSON_GZIP_LEVEL = 1;

/**
 * Whether an Accept-Encoding header takes gzip (or x-gzip, or *) with a quality above 0.
 * The JSON threads gzip large answers themselves for such clients: one synchronous gzip of
 * the whole answer there costs less than @fastify/compress's stream on the event loop
 * (13–16 ms per M answer). Other encodings (deflate) are left to @fastify/compress.
 */
export function acceptsGzip(header: string | undefined): boolean {
  if (!header) return false;
  let star = false;
  for (const part of header.toLowerCase().split(',')) {
    const [coding, ...params] = part.split(';').map((t) => t.trim());
    const q = params.find((p) => p.startsWith('q='));
    const accepted = q === undefined || Number(q.slice(2)) > 0;
    if (coding === 'gzip' || coding === 'x-gzip') return accepted;
    if (coding === '*') star = accepted;
  }
  return star;
}

/**
 * An Accept-Encoding header with its `*` spelled out as the `offered` codings it does not name
 * (RFC 9110 §12.5.3: `*` matches any coding not listed elsewhere in the field), for
 * @fastify/compress, which reads `*` as gzip even when the same header refuses gzip with q=0.
 */
export function spellOutWildcard(header: string, offered: readonly string[]): string {
  const parts = header
    .toLowerCase()
    .split(',')
    .map((p) => p.trim())
    .filter((p) => p !== '');
  const codingOf = (part: string) =>
    part
      .split(';', 1)[0]!
      .trim()
      .replace(/^x-gzip$/, 'gzip');
  const named = new Set(parts.map(codingOf));
  return parts
    .flatMap((part) => {
      if (codingOf(part) !== '*') return [part];
      const params = part.slice(part.indexOf(';') >= 0 ? part.indexOf(';') : part.length);
      return offered.filter((c) => !named.has(c)).map((c) => c + params);
    })
    .join(', ');
}

/**
 * About how long a float32 value is in JSON: JSON.stringify writes its float64 form,
 * "0.026457302272319794," (21 characters; 20–22 measured on answers).
 */
const JSON_BYTES_PER_VALUE = 20;

/**
 * Send a POST route's 200 answer, built by `enc` (its JSON tensors still float32, see
 * ResultEncoder). One that carries many tensor values is validated against the route's
 * schema and written in a JSON worker; small ones are written out here and take fastify's
 * usual path (the same schema, on the event loop). Answers in binary tensors are
 * not compressed: float32 bytes barely compress (gzip saves about a quarter of their base64,
 * at some 50 MB/s of CPU), while JSON numbers shrink by more than half.
 * Returns what the handler returns: the answer for fastify to serialize, or the reply when
 * it is already sent.
 */
export async function sendAnswer<T>(reply: FastifyReply, answer: T, enc: ResultEncoder): Promise<T | FastifyReply> {
  if (enc.encoding === 'base64') reply.request.headers['x-no-compression'] = 'binary tensors'; // read by @fastify/compress
  const workers = reply.server.jsonWorkers;
  const url = reply.request.routeOptions.url;
  if (!workers.offloads(enc.values * JSON_BYTES_PER_VALUE) || !isPostRoute(url)) return unpackTensors(answer) as T;
  const { headers } = reply.request;
  const gzip = reply.server.compressResponses && headers['x-no-compression'] === undefined && acceptsGzip(headers['accept-encoding']);
  // as a body's parse (parseBody): past the deadline the answer is a 503, and the thread's work holds the slot
  const signal = reply.request.computeSignal ?? undefined;
  const written = workers.write(url, answer, gzip, signal);
  reply.request.threadJob = settled(written);
  const json = await untilAborted(written, signal);
  const timing = reply.getHeader('server-timing');
  // from the encoder's start: binary tensors were encoded there, on the event loop
  const write = `write;dur=${(performance.now() - enc.startedAt).toFixed(2)};desc="answer encoded, validated and written as ${enc.encoding === 'base64' ? 'JSON with binary tensors' : 'JSON'}${gzip ? ', gzipped' : ''}"`;
  reply.header('server-timing', timing ? `${timing}, ${write}` : write);
  // already gzipped: @fastify/compress leaves an answer with a Content-Encoding alone
  if (gzip) reply.header('content-encoding', 'gzip').header('vary', 'accept-encoding');
  // sent as it is: fastify's serializer runs only on objects
  reply.type('application/json; charset=utf-8').send(json);
  return reply;
}
