import type { Readable } from 'node:stream';
import { errorCodes, type FastifyRequest } from 'fastify';
import { Errors } from './errors.js';

type Payload = Readable & { receivedEncodedLength?: number };

/**
 * How fast a body must arrive once it is read: after `graceMs`, at `minBytesPerSecond` on
 * average (Apache's mod_reqtimeout rule: each byte received buys the time it takes at that
 * rate). The request timeout alone let a stalled or trickling upload hold a read slot for
 * its whole length (30 s); 0 turns the minimum off.
 */
export interface UploadPace {
  minBytesPerSecond: number;
  graceMs: number;
}

/**
 * A request body's bytes, read as fastify's own `parseAs: 'buffer'` reads them (its limit,
 * its errors, its Content-Length check) with one difference: when Content-Length says how
 * long the body is and nothing decodes it on the way (no Content-Encoding), each chunk is
 * copied into one buffer of that length as it arrives. fastify keeps the chunks and joins them
 * when the last arrives: one copy of the whole body in a single turn of the event loop, which
 * for an L body (19.7 MiB) blocked it for 105 ms here, its fresh pages faulted in at once
 * (bench/RESULTS.md, "Page faults"). The buffer owns its memory, so it can be handed to a
 * JSON thread without a copy. A body slower than `pace` gets a 408.
 */
export function readBody(
  request: FastifyRequest,
  payload: Payload,
  pace: UploadPace,
  done: (err: Error | null, body?: Buffer) => void,
): void {
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

  const startedAt = performance.now();
  // bytes as sent: a compressed body is paced by what crosses the wire, not by what it inflates to
  const sent = () => payload.receivedEncodedLength ?? received;
  let paceTimer: NodeJS.Timeout | undefined;
  const checkPace = () => {
    const elapsed = performance.now() - startedAt;
    const late = elapsed - (pace.graceMs + (sent() / pace.minBytesPerSecond) * 1000);
    if (late < 0) {
      paceTimer = setTimeout(checkPace, Math.ceil(-late));
      return;
    }
    stop();
    done(new Errors.SlowUpload(sent(), Math.round(elapsed), pace.minBytesPerSecond, pace.graceMs));
  };
  if (pace.minBytesPerSecond > 0) paceTimer = setTimeout(checkPace, pace.graceMs);

  const stop = () => {
    clearTimeout(paceTimer);
    payload.removeListener('data', onData);
    payload.removeListener('end', onEnd);
    payload.removeListener('error', onError);
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
  /** the stream's own error (a broken gzip body, say): a 400 unless it carries a 4xx or 5xx */
  function onError(err: Error & { statusCode?: number }): void {
    stop();
    if (!(typeof err.statusCode === 'number' && err.statusCode >= 400)) err.statusCode = 400;
    done(err);
  }
  function onEnd(): void {
    stop();
    if (!Number.isNaN(contentLength) && (payload.receivedEncodedLength || received) !== contentLength) {
      done(new errorCodes.FST_ERR_CTP_INVALID_CONTENT_LENGTH());
      return;
    }
    done(null, whole ?? Buffer.concat(chunks, received));
  }
  payload.on('data', onData);
  payload.on('end', onEnd);
  payload.on('error', onError);
  payload.resume();
}
