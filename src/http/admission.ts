import type { FastifyInstance } from 'fastify';
import type { Admission } from '../runtime/config.js';
import { Errors, retryAfter } from './errors.js';

/**
 * Bounded compute with a bounded queue. A request is admitted before its body is read
 * (so a flood is refused without parsing it): at most maxConcurrency + maxQueue are
 * admitted at once, the rest get 503 with Retry-After. An admitted request runs its
 * compute when one of maxConcurrency slots is free. A slot is held until the compute
 * really stops, even when the request was answered early (timeout, client gone), so the
 * bound is on work, not on open responses.
 */
export class ComputeGate {
  private admitted = 0;
  private running = 0;
  private readonly waiting: (() => void)[] = [];
  /** recent compute time per request, to tell refused clients when to come back */
  private ewmaMs = 100;
  private readonly inFlight = new Set<AbortController>();
  private readonly idleWaiters: (() => void)[] = [];

  constructor(private readonly options: Admission) {}

  /** Admit a request, or refuse it with a 503 that carries Retry-After. Returns its release. */
  admit(): () => void {
    const { maxConcurrency, maxQueue } = this.options;
    if (this.admitted >= maxConcurrency + maxQueue) {
      throw retryAfter(new Errors.Overloaded(this.admitted), this.retryAfterSeconds());
    }
    this.admitted++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.admitted--;
    };
  }

  /**
   * Run `work` in a compute slot. Settles when `work` does, or as soon as `signal` aborts
   * (its reason is thrown); `work` sees the same signal and stops at its next check.
   */
  async run<T>(signal: AbortSignal, work: (signal: AbortSignal) => Promise<T>): Promise<T> {
    await this.slot(signal);
    const t0 = performance.now();
    const job = work(signal).finally(() => {
      this.ewmaMs = 0.8 * this.ewmaMs + 0.2 * (performance.now() - t0);
      this.running--;
      this.waiting.shift()?.();
      if (this.running === 0) for (const done of this.idleWaiters.splice(0)) done();
    });
    return raceAbort(job, signal);
  }

  /** A per-request signal that aborts after the request timeout; register it for abortAll. */
  track(controller: AbortController): () => void {
    this.inFlight.add(controller);
    return () => this.inFlight.delete(controller);
  }

  /** Shutdown's last resort: stop every computation still running. */
  abortAll(reason: Error): void {
    for (const c of this.inFlight) c.abort(reason);
  }

  /** Resolves when no computation is running (answered requests may still be computing). */
  idle(): Promise<void> {
    if (this.running === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  stats(): { admitted: number; running: number; waiting: number } {
    return { admitted: this.admitted, running: this.running, waiting: this.waiting.length };
  }

  retryAfterSeconds(): number {
    const queued = Math.max(0, this.admitted - this.running);
    return Math.max(1, Math.ceil(((queued + 1) * this.ewmaMs) / this.options.maxConcurrency / 1000));
  }

  private slot(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    if (this.running < this.options.maxConcurrency) {
      this.running++;
      return Promise.resolve();
    }
    return new Promise((resolve, reject) => {
      const take = () => {
        signal.removeEventListener('abort', leave);
        this.running++;
        resolve();
      };
      const leave = () => {
        const i = this.waiting.indexOf(take);
        if (i >= 0) this.waiting.splice(i, 1);
        reject(signal.reason);
      };
      this.waiting.push(take);
      signal.addEventListener('abort', leave, { once: true });
    });
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
 * Admission for the routes of `app` (an encapsulated plugin): refuse before the body is
 * read when the gate is full, and give each admitted request a signal that aborts on
 * timeout or when its client disconnects, so abandoned work stops.
 */
export function admitCompute(app: FastifyInstance, gate: ComputeGate, timeoutMs: number): void {
  app.decorateRequest('computeSignal', null as unknown as AbortSignal);
  app.addHook('onRequest', async (request, reply) => {
    const release = gate.admit();
    const controller = new AbortController();
    const untrack = gate.track(controller);
    const timer = setTimeout(() => controller.abort(retryAfter(new Errors.Timeout(timeoutMs), gate.retryAfterSeconds())), timeoutMs);
    // 'finish': the answer is handed to the socket; 'close' alone: the client went away first
    let settled = false;
    const settle = (answered: boolean) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      untrack();
      release();
      if (!answered) controller.abort(new Errors.ClientGone());
    };
    reply.raw.once('finish', () => settle(true));
    reply.raw.once('close', () => settle(reply.raw.writableFinished));
    request.computeSignal = controller.signal;
  });
}
