import { randomUUID } from 'node:crypto';
import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import createError from '@fastify/error';
import type { FastifyError, FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { hasZodFastifySchemaValidationErrors } from 'fastify-type-provider-zod';
import { type Issue, validationMessage } from './validation-message.js';
import { validationView } from './validation-view.js';

/** The service's own error codes, one place (fastify's FST_ERR_* codes pass through as they are). */
export const Errors = {
  InvalidRequest: createError<[string]>('GRADSERVE_INVALID_REQUEST', '%s', 400),
  InvalidJson: createError<[string]>('GRADSERVE_INVALID_JSON', '%s', 400),
  NotFound: createError<[string, string]>('GRADSERVE_NOT_FOUND', 'no route %s %s; the API is at /docs (/openapi.json)', 404),
  MethodNotAllowed: createError<[string, string, string]>('GRADSERVE_METHOD_NOT_ALLOWED', '%s takes %s, not %s', 405),
  // Node refuses these before fastify has a request (clientErrorHandler)
  BadHttp: createError('GRADSERVE_BAD_HTTP', 'the request is not valid HTTP/1.1', 400),
  HeadersTooLarge: createError('GRADSERVE_HEADERS_TOO_LARGE', 'the request headers are larger than the server accepts', 431),
  // Node answers these with an empty body unless told otherwise (app.ts hands them to fastify)
  MissingHost: createError('GRADSERVE_BAD_HTTP', 'an HTTP/1.1 request must carry a Host header (RFC 9112, section 3.2)', 400),
  // Node decodes only chunked framing: a body in another transfer coding would reach the parser still coded
  UnknownTransferCoding: createError<[string]>(
    'GRADSERVE_TRANSFER_CODING',
    'Transfer-Encoding "%s" is not supported: only chunked is (RFC 9112, section 6.1); send a compressed body with Content-Encoding: gzip',
    501,
  ),
  UnknownExpectation: createError<[string]>(
    'GRADSERVE_EXPECTATION_FAILED',
    'the request expects "%s"; the only expectation this server meets is 100-continue',
    417,
  ),
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
  Timeout: createError<[number, string]>(
    'GRADSERVE_TIMEOUT',
    'the request did not finish within %d ms (GRADSERVE_REQUEST_TIMEOUT_MS) and its work was abandoned; retry later, or %s',
    503,
  ),
  UploadTimeout: createError<[number]>(
    'GRADSERVE_UPLOAD_TIMEOUT',
    'the request was not received in full within %d ms (GRADSERVE_REQUEST_TIMEOUT_MS); the connection is closed',
    408,
  ),
  SlowUpload: createError<[number, number, number, number]>(
    'GRADSERVE_UPLOAD_TOO_SLOW',
    'the request body arrived too slowly: %d bytes in %d ms, where at least %d bytes a second after the first %d ms are required (GRADSERVE_MIN_UPLOAD_RATE, GRADSERVE_UPLOAD_GRACE_MS); the connection is closed',
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
function errorBody(statusCode: number, code: string, message: string) {
  return { statusCode, code, error: STATUS_CODES[statusCode] ?? 'Client Error', message };
}

/** The message for a POST without a body, whether or not it named a Content-Type. */
export const EMPTY_BODY = 'the body is empty; send a JSON object';

const sentBody = (request: FastifyRequest) =>
  request.headers['transfer-encoding'] !== undefined || Number(request.headers['content-length'] ?? 0) > 0;

/** A 413 for what a limit check (runtime/limits.ts) found over its limit; nothing when it found nothing. */
export function refuseOverLimit(over: string | undefined): void {
  if (over !== undefined) throw new Errors.LimitExceeded(over);
}

/** A 503 that tells the client when to come back (the Retry-After header). */
export function retryAfter<E extends Error>(err: E, seconds: number): E & { retryAfter: number } {
  return Object.assign(err, { retryAfter: seconds });
}

/**
 * Errors in fastify's shape; 4xx say what is wrong; 503s say why the service cannot serve now
 * (overload, shutdown, or on /readyz the failed probe of a backend, for its operator); other
 * 5xx say nothing of the internals.
 */
export function installErrorHandlers(app: FastifyInstance, bodyLimit: number): void {
  app.setErrorHandler((err: FastifyError & { retryAfter?: number }, request, reply) => {
    // answered before its body has arrived in full (refused, timed out, too large): the rest
    // of the body would have to be read and thrown away, or, if it stalls, would earn a 408
    // after this answer; the connection ends with this answer instead
    if (!request.raw.complete) reply.header('connection', 'close');
    if (hasZodFastifySchemaValidationErrors(err)) {
      // a POST with no body and no Content-Type reaches validation as null, not the parser
      if (request.body == null && !sentBody(request)) {
        const e = new Errors.InvalidJson(EMPTY_BODY);
        return reply.code(400).send(errorBody(400, e.code, e.message));
      }
      const e = new Errors.InvalidRequest(
        validationMessage(err.validation as Issue[], validationView(request.body), request.routeOptions.url),
      );
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
    if (err.code === 'FST_ERR_CTP_INVALID_MEDIA_TYPE') {
      // fastify's 415 and the charset check's (json-body.ts): JSON in another charset than UTF-8 is the latter
      const type = (request.headers['content-type'] || 'none').slice(0, 100); // an empty header too
      const send = /^application\/json\b/i.test(type) ? 'send the body in UTF-8 as' : 'send';
      message = `Unsupported Media Type: ${type}; ${send} Content-Type: application/json`;
    }
    return reply.code(status).send(errorBody(status, err.code ?? new Errors.BadRequest(message).code, message));
  });
  app.setNotFoundHandler(answerNoRoute);
  // answered before fastify parses a body for it (or admits the request): HTTP it does not
  // take, and an unknown URL, a 404 (or 405) whatever it was sent
  app.addHook('onRequest', async (request, reply) => {
    // for clientErrorHandler, which sees only the socket
    Object.assign(reply.raw, { [REQUEST_ID]: request.id });
    const refused = refusedHttp(request);
    if (refused) {
      const status = refused.statusCode ?? 400;
      request.log.warn({ code: refused.code }, refused.message);
      return reply
        .code(status)
        .header('connection', 'close')
        .send(errorBody(status, refused.code, refused.message));
    }
    if (request.is404) return answerNoRoute(request, reply);
  });
}

/** What Node would refuse with an empty body, refused here in the service's shape (app.ts passes these on). */
function refusedHttp(request: FastifyRequest): FastifyError | undefined {
  if (request.raw.httpVersion !== '1.1') return undefined;
  if (request.headers.host === undefined) return new Errors.MissingHost();
  const expect = request.headers.expect;
  if (expect !== undefined && !expectsContinue(request)) return new Errors.UnknownExpectation(expect.slice(0, 100));
  const coding = request.headers['transfer-encoding'];
  if (coding?.split(',').some((c) => c.trim().toLowerCase() !== 'chunked')) return new Errors.UnknownTransferCoding(coding.slice(0, 100));
  return undefined;
}

/** Whether an HTTP/1.1 request waits for a 100 Continue before sending its body (Node's own test of Expect). */
export const expectsContinue = (request: FastifyRequest): boolean =>
  request.raw.httpVersion === '1.1' && /(?:^|\W)100-continue(?:$|\W)/i.test(request.headers.expect ?? '');

/** A request URL's path, without its query (which may hold secrets), at most 200 characters: for messages and log lines. */
export const urlPath = (url: string): string => url.split('?', 1)[0]!.slice(0, 200);

/** 405 with Allow for a known path asked with another method, 404 otherwise. */
function answerNoRoute(request: FastifyRequest, reply: FastifyReply): FastifyReply {
  const path = urlPath(request.url);
  const allowed = HTTP_METHODS.filter((method) => request.server.hasRoute({ method, url: path }));
  if (allowed.length > 0) {
    const e = new Errors.MethodNotAllowed(
      path,
      allowed.length > 1 ? `${allowed.slice(0, -1).join(', ')} or ${allowed.at(-1)}` : allowed[0]!,
      request.method,
    );
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
  (
    socket as Duplex & {
      _httpMessage?: ServerResponse & { [REQUEST_ID]?: string };
    }
  )._httpMessage;

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
    // bad bytes after a whole request (pipelined): that request's answer goes first, in order,
    // then this one, and the connection ends
    if (response?.req?.complete && !response.writableFinished) {
      // Node reports each later chunk of bad bytes again: one answer is enough
      if (deferred.has(socket)) return;
      deferred.add(socket);
      const reqId = randomUUID();
      this.log.warn({ reqId, code: e.code, err: err.message }, e.message);
      response.once('finish', () => {
        if (socket.writable) socket.write(rawAnswer(status, e.code, e.message, reqId));
        socket.destroy();
      });
      response.once('close', () => socket.destroy());
      return;
    }
    // a stalled upload's request has its id; Node refuses the others before fastify has a request
    const reqId = response?.[REQUEST_ID] ?? randomUUID();
    this.log.warn({ reqId, code: e.code, err: err.message }, e.message);
    // as Node's own handler does: never write into an answer under way on this socket (one
    // answered before its body arrived has closed the connection, see installErrorHandlers)
    const answering = response?.headersSent;
    // the request under way, if any, is logged and counted with this status, not as a hang-up
    if (response) Object.assign(response, { [CLOSED_WITH]: status });
    if (socket.writable && !answering) socket.write(rawAnswer(status, e.code, e.message, reqId));
    socket.destroy(err);
  };
}

/** Sockets whose error answer waits for the answer before it (clientErrorHandler). */
const deferred = new WeakSet<Duplex>();

/** An error answer written straight to a socket, in the service's shape, that ends the connection. */
function rawAnswer(status: number, code: string, message: string, reqId: string): string {
  const body = JSON.stringify(errorBody(status, code, message));
  return `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json; charset=utf-8\r\nX-Request-Id: ${reqId}\r\nConnection: close\r\n\r\n${body}`;
}
