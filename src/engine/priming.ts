import type { WarmupShape } from './types.js';

/**
 * prime()'s network: small, and sent to webasm by the dispatcher (to webgpu on a GPU host,
 * where M-sized requests go there), so that it exercises the code generator they use.
 */
export const PRIME_SHAPE: WarmupShape = { widths: [16, 32, 32, 1], batch: 1024, activation: 'tanh' };
/** how long the engine must have had no call before priming, paused by one, resumes */
export const PRIME_RESUME_AFTER_MS = 100;

export interface PrimeResult {
  kernels: number;
  ms: number;
  /** how many times calls paused it */
  paused: number;
  /** stop() ended it */
  stopped: boolean;
}

/**
 * A background warm-up that gives way to the engine's calls: each call pauses it before its
 * next kernel, and it starts again once the engine has had no call for PRIME_RESUME_AFTER_MS.
 * The engine tells it of every call's start and end; calls that carry priming's own signal
 * are its own and pause nothing.
 */
export class Primer {
  /** the current run: any other call aborts it */
  private running?: AbortController;
  /** stop() was called: run() ends rather than resuming */
  private ended = false;
  /** the wait for a quiet engine, re-armed by every call that starts or ends */
  private quietWaiter?: { arm: () => void; end: (quiet: boolean) => void };
  /** engine calls in flight, priming's aside */
  private calls = 0;

  constructor(private readonly warmUp: (signal: AbortSignal) => Promise<{ kernels: number; ms: number }>) {}

  /** Run the warm-up to its end, pausing for calls; `kernels` and `ms` are its last run's. */
  async run(): Promise<PrimeResult> {
    if (this.ended) return { kernels: 0, ms: 0, paused: 0, stopped: true };
    for (let paused = 0; ; paused++) {
      const controller = new AbortController();
      this.running = controller;
      try {
        return { ...(await this.warmUp(controller.signal)), paused, stopped: false };
      } catch (err) {
        if (!controller.signal.aborted) throw err;
      } finally {
        if (this.running === controller) this.running = undefined;
      }
      if (this.ended || !(await this.quietFor(PRIME_RESUME_AFTER_MS))) return { kernels: 0, ms: 0, paused: paused + 1, stopped: true };
    }
  }

  /** End priming for good (shutdown, close): run() resolves before its next kernel. */
  stop(): void {
    this.ended = true;
    this.running?.abort(new Error('priming stopped'));
    this.quietWaiter?.end(false);
  }

  /** Is this the signal of priming's own engine call? */
  owns(signal: AbortSignal | undefined): boolean {
    return signal !== undefined && signal === this.running?.signal;
  }

  /** Another call starts: pause priming, and hold its resumption until the engine is quiet. */
  callStarted(): void {
    this.running?.abort(new Error('priming paused: a call came'));
    this.calls++;
    this.quietWaiter?.arm();
  }

  callEnded(): void {
    this.calls--;
    this.quietWaiter?.arm();
  }

  /** Resolves true once the engine has had no call for `ms`, false if stop() comes first. */
  private quietFor(ms: number): Promise<boolean> {
    return new Promise((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const waiter = {
        // a call that starts cancels the countdown; the last one to end starts it again
        arm: () => {
          clearTimeout(timer);
          timer = this.calls === 0 ? setTimeout(() => waiter.end(true), ms) : undefined;
        },
        end: (quiet: boolean) => {
          clearTimeout(timer);
          if (this.quietWaiter === waiter) this.quietWaiter = undefined;
          resolve(quiet);
        },
      };
      this.quietWaiter = waiter;
      waiter.arm();
    });
  }
}
