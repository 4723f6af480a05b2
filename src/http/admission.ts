import type { FastifyInstance } from 'fastify';
import type { Admission } from '../runtime/config.js';
import { BATCH_ADVICE } from '../runtime/limits.js';
import { Errors, retryAfter } from './errors.js';

/** At most `limit` holders at once; the rest wait in arrival order, and leave when their signal aborts. */
class Slots {
  private used = 0;
  private readonly queue: (() => void)[] = [];

  constructor(private readonly limit: number) {}

  /** Resolves with the slot taken; undefined (no promise to await) when one was free. */
  take(signal: AbortSignal): Promise<void> | undefined {
    signal.throwIfAborted();
    if (this.used < this.limit) {
      this.used++;
      return undefined;
    }
    return new Promise((resolve, reject) => {
      const take = () => {
        signal.removeEventListener('abort', leave);
        this.used++;
        resolve();
      };
      const leave = () => {
        const i = this.queue.indexOf(take);
        if (i >= 0) this.queue.splice(i, 1);
        reject(signal.reason);
      };
      this.queue.push(take);
      signal.addEventListener('abort', leave, { once: true });
    });
  }

  release(): void {
    this.used--;
    this.queue.shift()?.();
  }

  get held(): number {
    return this.used;
  }

  get waiting(): number {
    return this.queue.length;
  }
}

/**
 * Bounded compute, bounded memory and a long queue. A request is admitted before its body
 * is read: at most maxConcurrency + maxQueue at once, the rest get 503 with Retry-After.
 * An admitted request's body is read only once it holds a read slot (maxConcurrency +
 * readAhead of them): the others wait with their bodies unread, held back by TCP's flow
 * control, so that many waiting clients cost sockets, not memory, while a few bodies are
 * parsed ahead of the compute slots they will take (a client that hangs up meanwhile is
 * noticed when its turn comes: a socket not being read is not watched). A request keeps its
 * read slot until its answer is written. It computes when one of maxConcurrency slots is
 * free, and holds that slot until the compute really stops, even when the request was
 * answered early (timeout, client gone), so the bound is on work, not on open responses.
 */
export class ComputeGate {
  private admitted = 0;
  private readonly reads: Slots;
  private readonly computes: Slots;
  /** recent compute time per request, to tell refused clients when to come back */
  private ewmaMs = 100;
  private readonly inFlight = new Set<AbortController>();
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly options: Pick<Admission, 'maxConcurrency' | 'maxQueue' | 'readAhead'>) {
    this.reads = new Slots(options.maxConcurrency + options.readAhead);
    this.computes = new Slots(options.maxConcurrency);
  }

  /**
   * Admit a request, or refuse it with a 503 that carries Retry-After. `readable` settles
   * when its body may be read (it rejects with the signal's reason if that aborts first);
   * `release` gives back what the request holds, once its answer is written or its client gone.
   */
  admit(): { readable: (signal: AbortSignal) => Promise<void> | undefined; release: () => void } {
    const { maxConcurrency, maxQueue } = this.options;
    if (this.admitted >= maxConcurrency + maxQueue) {
      throw retryAfter(new Errors.Overloaded(this.admitted), this.retryAfterSeconds());
    }
    this.admitted++;
    let reading = false;
    let released = false;
    const took = () => {
      // answered (or gone) while it waited: the slot passes on
      if (released) this.reads.release();
      else reading = true;
    };
    return {
      readable: (signal) => {
        const wait = this.reads.take(signal);
        if (!wait) return void took();
        return wait.then(took);
      },
      release: () => {
        if (released) return;
        released = true;
        this.admitted--;
        if (reading) this.reads.release();
      },
    };
  }

  /**
   * Run `work` in a compute slot. Settles when `work` does, or as soon as `signal` aborts
   * (its reason is thrown); `work` sees the same signal and stops at its next check.
   */
  async run<T>(signal: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    await this.computes.take(signal);
    const t0 = performance.now();
    const job = work(signal).finally(() => {
      this.ewmaMs = 0.8 * this.ewmaMs + 0.2 * (performance.now() - t0);
      this.computes.release();
      if (this.computes.held === 0) for (const done of this.idleWaiters.splice(0)) done();
    });
    return raceAbort(job, signal);
  }

  /** Register a request's controller, for abortAll to reach; the function returned unregisters it. */
  track(controller: AbortController): () => void {
    this.inFlight.add(controller);
    return () => this.inFlight.delete(controller);
  }

  /** Shutdown's last resort: stop every computation still running or waiting. */
  abortAll(reason: Error): void {
    for (const c of this.inFlight) c.abort(reason);
  }

  /** Resolves when no computation is running (answered requests may still be computing). */
  idle(): Promise<void> {
    if (this.computes.held === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** admitted requests: computing, waiting for a compute slot, and waiting to have their bodies read */
  stats(): { admitted: number; running: number; waiting: number; unread: number } {
    return { admitted: this.admitted, running: this.computes.held, waiting: this.computes.waiting, unread: this.reads.waiting };
  }

  retryAfterSeconds(): number {
    const queued = Math.max(0, this.admitted - this.computes.held);
    return Math.max(1, Math.ceil(((queued + 1) * this.ewmaMs) / this.options.maxConcurrency / 1000));
  }
}

function raceAbort<T>(job: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener('abort', onAbort, { once: true });
    job.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

declare module 'fastify' {
  interface FastifyRequest {
    /** aborts when the request times out, its client goes away, or shutdown gives up on it */
    computeSignal: AbortSignal;
  }
}

/**
 * What a request that timed out can do besides retrying (which helps one that waited its turn
 * behind others): ask for less work at once, in the route's terms.
 */
const TIMEOUT_ADVICE: Record<string, string> = {
  '/train': 'train in several requests of fewer steps, each from the params the last one returned',
  '/forward': BATCH_ADVICE.rows,
  '/init': 'ask for a smaller network',
};

/**
 * Admission for the routes of `app` (an encapsulated plugin): refuse before the body is
 * read when the gate is full, hold the body unread until the request may read it, and give
 * each admitted request a signal that aborts on timeout or when its client disconnects, so
 * abandoned work stops.
 */
export function admitCompute(app: FastifyInstance, gate: ComputeGate, timeoutMs: number): void {
  app.decorateRequest('computeSignal', null as unknown as AbortSignal);
  app.addHook('onRequest', async (request, reply) => {
    const ticket = gate.admit();
    const controller = new AbortController();
    const untrack = gate.track(controller);
    // At the deadline, a request not yet answered times out. Whatever answer then goes out
    // (the timeout's, one already begun on a slow link, or one whose compute had ended and
    // that is still being written) gets as long again to be taken, then the connection is
    // closed: a client that does not read could otherwise hold its slots for as long as it liked.
    let answerDeadline = false;
    const onDeadline = () => {
      if (answerDeadline) return void reply.raw.destroy();
      if (!reply.raw.headersSent)
        controller.abort(
          retryAfter(
            new Errors.Timeout(timeoutMs, TIMEOUT_ADVICE[request.routeOptions.url ?? ''] ?? BATCH_ADVICE.shards),
            gate.retryAfterSeconds(),
          ),
        );
      answerDeadline = true;
      timer = setTimeout(onDeadline, timeoutMs);
    };
    let timer = setTimeout(onDeadline, timeoutMs);
    // 'finish': the answer is handed to the socket; 'close' alone: the client went away first
    let settled = false;
    const settle = (answered: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      untrack();
      // a body or answer a JSON thread still holds keeps its read slot until the thread lets it
      // go: the slots bound what is held in memory, answered (timed out, client gone) or not
      if (request.threadJob) void request.threadJob.then(() => ticket.release());
      else ticket.release();
      if (!answered) controller.abort(new Errors.ClientGone());
    };
    reply.raw.once('finish', () => settle(true));
    reply.raw.once('close', () => settle(reply.raw.writableFinished));
    request.computeSignal = controller.signal;
    // fastify reads the body after this hook: until it settles, the body stays in the socket
    await ticket.readable(controller.signal);
  });
}
