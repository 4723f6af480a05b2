import type { Readable } from 'node:stream';
import { errorCodes, type FastifyRequest } from 'fastify';

type Payload = Readable & { receivedEncodedLength?: number };

/**
 * A request body's bytes, read as fastify's own `parseAs: 'buffer'` reads them (its limit,
 * its errors, its Content-Length check) with one difference: when Content-Length says how
 * long the body is and nothing decodes it on the way (no Content-Encoding), each chunk is
 * copied into one buffer of that length as it arrives. fastify keeps the chunks and joins them
 * when the last arrives: one copy of the whole body in a single turn of the event loop, which
 * for an L body (19.7 MiB) blocked it for 105 ms here, its fresh pages faulted in at once
 * (bench/RESULTS.md, "Page faults"). The buffer owns its memory, so it can be handed to a
 * JSON thread without a copy.
 */
export function readBody(request: FastifyRequest, payload: Payload, done: (err: Error | null, body?: Buffer) => void): void {
  const limit = request.routeOptions.bodyLimit ?? Number.POSITIVE_INFINITY;
  const contentLength = Number(request.headers['content-length']);
  if (contentLength > limit) {
    done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
    return;
  }
  const sized = payload === request.raw && Number.isSafeInteger(contentLength) && contentLength >= 0;
  const whole = sized ? Buffer.allocUnsafeSlow(contentLength) : undefined;
  const chunks: Buffer[] = [];
  let received = 0;

  const stop = () => {
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onEnd);
  };
  function onData(data: Buffer | string): void {
    const chunk = typeof data === 'string' ? Buffer.from(data) : data; // a preParsing stream may emit strings
    // the decoded length must stay under the limit too (a zip bomb), as fastify checks it
    if (received + chunk.length > limit || (payload.receivedEncodedLength ?? 0) > limit) {
      stop();
      done(new errorCodes.FST_ERR_CTP_BODY_TOO_LARGE());
      return;
    }
    if (whole && received + chunk.length > whole.length) {
      stop();
      done(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      return;
    }
    // a copy either way: a chunk may be a view of the socket's shared read buffer
    if (whole) chunk.copy(whole, received);
    else chunks.push(chunk);
    received += chunk.length;
  }
  function onEnd(err?: Error & { statusCode?: number }): void {
    stop();
    if (err) {
      if (!(typeof err.statusCode === 'number' && err.statusCode >= 400)) err.statusCode = 400;
      done(err);
      return;
    }
    if (!Number.isNaN(contentLength) && (payload.receivedEncodedLength || received) !== contentLength) {
      done(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      return;
    }
    done(null, whole ?? Buffer.concat(chunks, received));
  }
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onEnd);
  payload.resume();
}
