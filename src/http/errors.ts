import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import createError from '@fastify/error';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { FIELDS_AT, isPostRoute } from './schemas.js';
import { meantField, meantOption } from './suggest.js';

/** The service's own error codes, one place (fastify's FST_ERR_* codes pass through as they are). */
export const Errors = {
  InvalidRequest: createError<[string]>('GRADSERVE_INVALID_REQUEST', '%s', 400),
  InvalidJson: createError<[string]>('GRADSERVE_INVALID_JSON', '%s', 400),
  NotFound: createError<[string, string]>('GRADSERVE_NOT_FOUND', 'no route %s %s', 404),
  MethodNotAllowed: createError<[string, string, string]>('GRADSERVE_METHOD_NOT_ALLOWED', '%s takes %s, not %s', 405),
  // Node refuses these before fastify has a request (clientErrorHandler)
  BadHttp: createError('GRADSERVE_BAD_HTTP', 'the request is not valid HTTP/1.1', 400),
  HeadersTooLarge: createError('GRADSERVE_HEADERS_TOO_LARGE', 'the request headers are larger than the server accepts', 431),
  // a fastify error that carries no code of its own
  BadRequest: createError<[string]>('GRADSERVE_BAD_REQUEST', '%s', 400),
  Internal: createError('GRADSERVE_INTERNAL', 'internal error; the request id is in the x-request-id header', 500),
  EngineUnavailable: createError<[string]>('GRADSERVE_ENGINE_UNAVAILABLE', 'the compute engine is not answering: %s', 503),
  // a body within the size limit that asks for more work or output than a setting allows
  LimitExceeded: createError<[string]>('GRADSERVE_LIMIT_EXCEEDED', '%s', 413),
  Overloaded: createError<[number]>(
    'GRADSERVE_OVERLOADED',
    'the service is at capacity (%d requests admitted, GRADSERVE_MAX_CONCURRENCY + GRADSERVE_MAX_QUEUE); retry after Retry-After seconds',
    503,
  ),
  Timeout: createError<[number]>(
    'GRADSERVE_TIMEOUT',
    'the request did not finish within %d ms (GRADSERVE_REQUEST_TIMEOUT_MS) and its work was abandoned; retry later, or split the batch',
    503,
  ),
  UploadTimeout: createError<[number]>(
    'GRADSERVE_UPLOAD_TIMEOUT',
    'the request was not received in full within %d ms (GRADSERVE_REQUEST_TIMEOUT_MS); the connection is closed',
    408,
  ),
  ClientGone: createError('GRADSERVE_CLIENT_GONE', 'the client closed the connection; its work was abandoned', 499),
  ShuttingDown: createError(
    'GRADSERVE_SHUTTING_DOWN',
    'the server is shutting down and did not complete this request; retry on another replica',
    503,
  ),
};

/** The methods a route may have; metrics count any other as "other". */
export const HTTP_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'] as const;

/** Every error answer's body: fastify's shape, with the service's code. */
export function errorBody(statusCode: number, code: string, message: string) {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Client Error', message };
}

/** A 503 that tells the client when to come back (the Retry-After header). */
export function retryAfter<E extends Error>(err: E, seconds: number): E & { retryAfter: number } {
  return Object.assign(err, { retryAfter: seconds });
}

/** How many validation problems one message lists before it says "and N more". */
const MAX_ISSUES = 5;

/** ['params', 1, 'W', 0] → params[1].W[0] */
function fieldPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out ? `.${String(part)}` : String(part);
  }
  return out || 'body';
}

/** A validation entry as fastify-type-provider-zod reports a zod issue. */
interface Issue {
  keyword?: string;
  instancePath?: string;
  message: string;
  /** the allowed options: `values` of an enum, `options` of a discriminator */
  params?: { keys?: string[]; errors?: ZodIssue[][]; values?: unknown[]; options?: unknown[] };
}

/** A zod issue inside a union's report, its path relative to the union's value. */
interface ZodIssue {
  code: string;
  path: PropertyKey[];
  message: string;
  keys?: string[];
  errors?: ZodIssue[][];
}

const asIssue = (z: ZodIssue, parent: string): Issue => ({
  keyword: z.code,
  instancePath: [parent, ...z.path.map(String)].join('/'),
  message: z.message,
  params: { keys: z.keys, errors: z.errors },
});

/**
 * A field that takes several forms (rows of numbers, a flat list, a binary tensor) fails as
 * a zod union that lists every form's issues. Report the form the client evidently meant:
 * not those that failed on the value's type at the root; of the others the one that got
 * furthest into the value, then the one with fewer complaints. A value wholly in another
 * form than the field takes (x as one flat row, b as a column) is said so in one message.
 */
function unionBranch(issue: Issue, body: unknown): Issue[] {
  const branches = issue.params?.errors ?? [];
  const wrongType = (b: ZodIssue[]) => b.length === 1 && b[0]!.code === 'invalid_type' && b[0]!.path.length === 0;
  const candidates = branches.filter((b) => !wrongType(b));
  if (candidates.length === 0) {
    const received = /received (\w+)/.exec(branches[0]?.[0]?.message ?? '')?.[1] ?? 'something else';
    if (received === 'undefined') return [{ ...issue, keyword: 'invalid_type', message: 'expected array, received undefined' }];
    return [
      { ...issue, keyword: 'invalid_type', message: `${issue.message.replace(/^Invalid input$/, 'invalid input')}, received ${received}` },
    ];
  }
  const at = pathOf(issue.instancePath);
  const value = valueAt(body, at);
  const elements: unknown[] = Array.isArray(value) ? value : [];
  const rows = elements.filter(Array.isArray).length;
  const numbers = elements.filter((e) => typeof e === 'number').length;
  const custom = (message: string): Issue[] => [{ ...issue, keyword: 'custom', message }];
  // y takes rows or numbers: both a row form and a number form are candidates
  if (candidates.length > 1 && rows > 0 && numbers > 0) return custom('mixes numbers and rows; send all rows or all numbers');
  const only = (expected: string, received: string) =>
    candidates.length === 1 &&
    candidates[0]!.every((i) => i.path.length === 1 && i.message === `Invalid input: expected ${expected}, received ${received}`);
  if (elements.length > 0 && numbers === elements.length && only('array', 'number')) {
    const field = at.at(-1);
    if (field === 'W')
      return custom('is a flat list of numbers; W takes rows, in × out: one row per input (a 1-output W is a column, [[a], [b]])');
    if (field === 'x') return custom('is a flat list of numbers; x takes rows, batch × in: for one example send [[0, 1]], not [0, 1]');
    return custom('is a flat list of numbers; it takes a list of rows');
  }
  if (elements.length > 0 && rows === elements.length && only('number', 'array')) {
    return custom('is a list of rows; it takes a flat list of numbers, e.g. [0, 0.1], not [[0], [0.1]]');
  }
  const depth = (b: ZodIssue[]) => Math.max(...b.map((i) => i.path.length));
  // deeper, then fewer complaints, then (a string "0" in a flat y) the form that wanted a number there
  const better = (a: ZodIssue[], b: ZodIssue[]) =>
    depth(b) !== depth(a) ? depth(b) > depth(a) : b.length !== a.length ? b.length < a.length : wantsRows(a) && !wantsRows(b);
  const best = candidates.reduce((a, b) => (better(a, b) ? b : a));
  return best.flatMap((z) => expand(asIssue(z, issue.instancePath ?? ''), body));
}

/** A form that complained of an element not being a row. */
const wantsRows = (branch: ZodIssue[]) => branch.some((i) => i.message.startsWith('Invalid input: expected array'));

function expand(issue: Issue, body: unknown): Issue[] {
  return issue.keyword === 'invalid_union' && issue.params?.errors ? unionBranch(issue, body) : [issue];
}

/** '/params/1/W' → ['params', 1, 'W'] */
function pathOf(instancePath = ''): (string | number)[] {
  return instancePath
    .split('/')
    .filter((s) => s !== '')
    .map((s) => (/^\d+$/.test(s) ? Number(s) : s));
}

const quote = (name: string) => JSON.stringify(name.length > 40 ? `${name.slice(0, 40)}…` : name);

/** The value at `path` in the body the client sent. */
function valueAt(body: unknown, path: (string | number)[]): unknown {
  let value = body;
  for (const part of path) value = value !== null && typeof value === 'object' ? (value as Record<string, unknown>)[part] : undefined;
  return value;
}

/** The fields each object of a body may hold, by path with `*` for array indices (schemas.ts, FIELDS_AT). */
type FieldsAt = ReadonlyMap<string, ReadonlySet<string>>;

function describeIssue(issue: Issue, body: unknown, fieldsAt: FieldsAt | undefined): string {
  const at = pathOf(issue.instancePath);
  const path = fieldPath(at);
  const keys = issue.params?.keys;
  if (issue.keyword === 'unrecognized_keys' && keys) {
    const names = keys.slice(0, MAX_ISSUES).map((k) => {
      const meant = meantField(k, fieldsAt?.get(at.map((p) => (typeof p === 'number' ? '*' : p)).join('.')) ?? []);
      return meant ? `${quote(k)} (did you mean "${meant}"?)` : quote(k);
    });
    if (keys.length > MAX_ISSUES) names.push(`and ${keys.length - MAX_ISSUES} more`);
    // optax writes momentum as an option of sgd; here it is an optimizer of its own
    const momentum =
      at.at(-1) === 'optimizer' && keys.includes('momentum')
        ? '; momentum is an optimizer of its own here: {"name": "momentum", "learningRate": …, "momentum": 0.9}'
        : '';
    return `${path} has unknown field${keys.length > 1 ? 's' : ''} ${names.join(', ')}${momentum}`;
  }
  // an option spelt as another library spells it: say which of ours it means
  const allowed = issue.params?.values ?? issue.params?.options;
  const given = valueAt(body, at);
  if (allowed?.every((v) => typeof v === 'string') && typeof given === 'string') {
    const meant = meantOption(given, allowed as string[]);
    const list = (allowed as string[]).map((v) => `"${v}"`).join(', ');
    return `${path} is ${quote(given)}; ${meant ? `did you mean "${meant}"? (one of ${list})` : `expected one of ${list}`}`;
  }
  // our cross-field checks phrase their message to follow the field's name
  if (issue.keyword === 'custom') return `${path} ${issue.message}`;
  const message = issue.message.replace(/^Invalid input: /, '');
  if (path === 'body' && message === 'expected object, received string')
    return 'body is a JSON string, not an object: was it encoded twice?';
  const missing = /^expected (\w+), received undefined$/.exec(message);
  if (missing) return `${path} is required (${missing[1]})`;
  return `${path}: ${message}`;
}

/** The 400's message for zod's issues with `body`, the parsed body they are about, sent to `route`. */
export function validationMessage(reported: Issue[], body: unknown, route: string | undefined): string {
  const fieldsAt = isPostRoute(route) ? FIELDS_AT[route] : undefined;
  const issues = reported.flatMap((issue) => expand(issue, body));
  let hinted = false;
  const shown = issues.slice(0, MAX_ISSUES).map((issue) => {
    const text = describeIssue(issue, body, fieldsAt);
    // a number sent in quotes ("0.5"): said once, on the first
    const given = valueAt(body, pathOf(issue.instancePath));
    if (
      hinted ||
      !text.endsWith('expected number, received string') ||
      typeof given !== 'string' ||
      !Number.isFinite(Number(given)) ||
      given.trim() === ''
    )
      return text;
    hinted = true;
    return `${text} (numbers are not quoted in JSON)`;
  });
  const more = issues.length - shown.length;
  return shown.join('; ') + (more > 0 ? `; and ${more} more` : '');
}

/** Errors in fastify's shape; 4xx say what is wrong, 5xx say nothing of the internals. */
export function installErrorHandlers(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((err: FastifyError & { retryAfter?: number }, request, reply) => {
    // answered before its body has arrived in full (refused, timed out, too large): the rest
    // of the body would have to be read and thrown away, or, if it stalls, would earn a 408
    // after this answer; the connection ends with this answer instead
    if (!request.raw.complete) reply.header('connection', 'close');
    if (hasZodFastifySchemaValidationErrors(err)) {
      const e = new Errors.InvalidRequest(validationMessage(err.validation as Issue[], request.body, request.routeOptions.url));
      return reply.code(400).send(errorBody(400, e.code, e.message));
    }
    const status = err.statusCode && err.statusCode >= 400 ? err.statusCode : 500;
    if (err.retryAfter !== undefined) reply.header('retry-after', String(err.retryAfter));
    if (status >= 500) {
      if (status === 503) {
        request.log.warn({ code: err.code }, err.message);
        return reply.code(503).send(errorBody(503, err.code ?? new Errors.Internal().code, err.message));
      }
      request.log.error({ err }, 'request failed');
      const e = new Errors.Internal();
      return reply.code(status).send(errorBody(status, e.code, e.message));
    }
    let message = err.message;
    if (err.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      message = `request body is larger than the limit of ${bodyLimit} bytes (GRADSERVE_BODY_LIMIT)`;
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') message = `${err.message}; send Content-Type: application/json`;
    return reply.code(status).send(errorBody(status, err.code ?? new Errors.BadRequest(message).code, message));
  });
  app.setNotFoundHandler(answerNoRoute);
  // answered before fastify parses a body for it: an unknown URL is a 404 (or 405) whatever it was sent
  app.addHook('onRequest', async (request, reply) => {
    // for clientErrorHandler, which sees only the socket
    Object.assign(reply.raw, { [REQUEST_ID]: request.id });
    if (request.is404) return answerNoRoute(request, reply);
  });
}

/** 405 with Allow for a known path asked with another method, 404 otherwise. */
function answerNoRoute(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = request.url.split('?')[0]!.slice(0, 200);
  const allowed = HTTP_METHODS.filter((method) => request.server.hasRoute({ method, url: path }));
  if (allowed.length > 0) {
    const e = new Errors.MethodNotAllowed(path, allowed.join(', '), request.method);
    return reply
      .code(405)
      .header('allow', allowed.join(', '))
      .send(errorBody(405, e.code, e.message));
  }
  const e = new Errors.NotFound(request.method, path);
  return reply.code(404).send(errorBody(404, e.code, e.message));
}

const CLOSED_WITH = Symbol('status clientErrorHandler wrote');

/**
 * The status a request's log line and metrics give an answer that never finished: what
 * clientErrorHandler wrote to its socket (408 for a stalled upload), else 499 (the client
 * closed the connection first, as nginx logs it).
 */
export function unfinishedStatus(response: object): number {
  return (response as { [CLOSED_WITH]?: number })[CLOSED_WITH] ?? 499;
}

/**
 * What a socket error that Node's HTTP server reports (its 'clientError' event) is answered:
 * undefined when the client hung up (reset, or closed its side before its request was whole:
 * it gets no answer, and a request under way is logged and counted as 499).
 */
export function clientErrorStatus(err: Error & { code?: string }, socket: Duplex): 400 | 408 | 431 | undefined {
  if (err.code === 'ECONNRESET' || err.code === 'HPE_INVALID_EOF_STATE' || socket.destroyed) return undefined;
  return err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : err.code === 'HPE_HEADER_OVERFLOW' ? 431 : 400;
}

/** Where the id of a request under way is kept on its raw response, for clientErrorHandler. */
const REQUEST_ID = Symbol('request id');

/** The response of the request under way on a socket, if any (Node keeps it there). */
export const responseOn = (socket: Duplex) =>
  (socket as Duplex & { _httpMessage?: { headersSent?: boolean; [REQUEST_ID]?: string } })._httpMessage;

/**
 * Errors that Node's HTTP server finds before a request reaches fastify, or while its body
 * arrives: the request timeout (a stalled upload), oversized headers, malformed HTTP. The
 * answer is written to the socket, which is then closed, as fastify's default does, in the
 * service's error shape.
 */
export function clientErrorHandler(timeoutMs: number) {
  return function (this: FastifyInstance, err: Error & { code?: string }, socket: Duplex): void {
    const status = clientErrorStatus(err, socket);
    if (status === undefined) return void socket.destroy();
    const e = status === 408 ? new Errors.UploadTimeout(timeoutMs) : status === 431 ? new Errors.HeadersTooLarge() : new Errors.BadHttp();
    const response = responseOn(socket);
    // a stalled upload's request has its id; Node refuses the others before fastify has a request
    const reqId = response?.[REQUEST_ID] ?? randomUUID();
    this.log.warn({ reqId, code: e.code, err: err.message }, e.message);
    // as Node's own handler does: never write into an answer under way on this socket (one
    // answered before its body arrived has closed the connection, see installErrorHandlers)
    const answering = response?.headersSent;
    // the request under way, if any, is logged and counted with this status, not as a hang-up
    if (response) Object.assign(response, { [CLOSED_WITH]: status });
    if (socket.writable && !answering) {
      const body = JSON.stringify(errorBody(status, e.code, e.message));
      socket.write(
        `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nX-Request-Id: ${reqId}\r\nConnection: close\r\n\r\n${body}`,
      );
    }
    socket.destroy(err);
  };
}
