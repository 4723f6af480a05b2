import type { Socket } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { Errors, retryAfter } from './errors.js';

/** How long a connection ended at shutdown waits for its client to close it. */
const LINGER_MS = 1000;

/**
 * Closing without cutting anyone off. Node's own close destroys "idle" keep-alive sockets,
 * which cuts the tail of an answer still in the socket's buffer, and leaves connections that
 * become idle later holding close() open. Instead, from the moment the app starts closing: answers
 * carry `Connection: close`, and every connection is ended gracefully (FIN after its last
 * byte, then closed by a second later) as soon as it has no request in flight. `drained()` resolves when all have closed.
 */
export function drainOnClose(app: FastifyInstance): { drained: () => Promise<void>; cutOff: () => number } {
  const sockets = new Set<Socket>();
  const inFlight = new Map<Socket, number>();
  let closing = false;
  // A second after our FIN has gone (every byte of the last answer handed to the kernel) the
  // connection is closed if the client has not closed it: one that keeps its side open (a
  // pooled session that reads nothing until its next request) must not hold shutdown open.
  // Not at once: a close with input still unread sends a reset, which can cost the client the
  // tail of an answer still in flight.
  const lingering = new WeakSet<Socket>();
  const linger = (socket: Socket) => {
    const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref();
    socket.once('close', () => clearTimeout(timer));
  };
  const endIfIdle = (socket: Socket) => {
    if (!closing || inFlight.has(socket) || lingering.has(socket)) return;
    lingering.add(socket);
    socket.end();
    if (socket.writableFinished) linger(socket);
    else socket.once('finish', () => linger(socket));
  };

  app.server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.once('close', () => {
      sockets.delete(socket);
      inFlight.delete(socket);
    });
  });
  app.addHook('onRequest', async (request, reply) => {
    const socket = request.raw.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    reply.raw.once('close', () => {
      const left = (inFlight.get(socket) ?? 1) - 1;
      if (left > 0) inFlight.set(socket, left);
      else inFlight.delete(socket);
      endIfIdle(socket);
    });
    // rare: a request Node had read off a connection just as closing began. Answered in the
    // service's shape, logged and counted (fastify's own return503OnClosing does none of these)
    if (closing) throw retryAfter(new Errors.ShuttingDown(), 1);
  });
  app.addHook('onSend', async (request, reply) => {
    // the connection's last answer says close; one with another request queued behind it
    // (pipelined, or sent before this answer arrived) leaves that request its own answer
    if (closing && (inFlight.get(request.raw.socket) ?? 0) <= 1) reply.header('connection', 'close');
  });
  app.addHook('preClose', async () => {
    closing = true;
    for (const socket of sockets) endIfIdle(socket);
  });
  // http.Server.close() calls this, and Node's version destroys every connection without a
  // request, discarding an answer still in the socket's buffer: end them gracefully instead.
  app.server.closeIdleConnections = () => {
    for (const socket of sockets) endIfIdle(socket);
  };

  return {
    drained: async () => {
      while (sockets.size > 0) await new Promise((resolve) => setTimeout(resolve, 20));
    },
    /** Shutdown's last step: close every connection still open (a client not reading its answer); how many. */
    cutOff: () => {
      for (const socket of sockets) socket.destroy();
      return sockets.size;
    },
  };
}
