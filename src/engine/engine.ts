import { type Backend, createBackend } from './backend.js';
import { KernelCache, type KernelCacheStats, kernelKey, type Lease } from './kernel-cache.js';
import { backward, forward, predictions, type RunKernel } from './mlp.js';
import { type TrainLoop, type TrainOptions, trainLoop } from './train.js';
import type { BackendName, ForwardProblem, LossResult, Matrix, Problem, RunStats, ValueAndGradResult } from './types.js';

/** Longest stretch of kernels run back to back before the engine yields to the event loop. */
const YIELD_AFTER_MS = 10;

export interface EngineOptions {
  backend: BackendName;
  kernelCacheSize: number;
}

export interface TrainResult extends TrainLoop, LossResult {}

export interface EngineInfo {
  backend: BackendName;
  kernelCache: KernelCacheStats;
}

/**
 * The compute engine: one backend, one kernel cache. Every call keeps its intermediate
 * values to itself (nothing per request is stored on shared objects), so calls may
 * overlap; kernels are shared and leased from the cache for the length of a call.
 */
export class Engine {
  private constructor(
    private readonly backend: Backend,
    private readonly cache: KernelCache,
  ) {}

  /** Create the backend and probe it with a tiny kernel before trusting it. */
  static async create(options: EngineOptions): Promise<Engine> {
    const backend = createBackend(options.backend);
    try {
      await backend.probe();
    } catch (err) {
      backend.destroy();
      throw err;
    }
    return new Engine(backend, new KernelCache(options.kernelCacheSize));
  }

  get backendName(): BackendName {
    return this.backend.name;
  }

  // Every call takes an optional `signal` that abandons it: the call stops before its next
  // kernel and rejects with the signal's reason.

  async forward(problem: ForwardProblem, signal?: AbortSignal): Promise<{ predictions: Matrix; stats: RunStats }> {
    return this.withRunner(signal, async (run, stats) => ({ predictions: await predictions(problem, run), stats }));
  }

  async loss(problem: Problem, signal?: AbortSignal): Promise<LossResult> {
    return this.withRunner(signal, async (run, stats) => {
      const pass = await forward(problem, run);
      return { loss: pass.loss, head: pass.report, stats };
    });
  }

  async valueAndGrad(problem: Problem, signal?: AbortSignal): Promise<ValueAndGradResult> {
    return this.withRunner(signal, async (run, stats) => {
      const pass = await forward(problem, run);
      const grads = await backward(problem, pass, run);
      return { loss: pass.loss, grads, head: pass.report, stats };
    });
  }

  /** Train from problem.layers; `loss` and `head` are those of the final params on the whole batch. */
  async train(problem: Problem, options: TrainOptions, signal?: AbortSignal): Promise<TrainResult> {
    return this.withRunner(signal, async (run, stats) => {
      const loop = await trainLoop(problem, options, async (p) => {
        const pass = await forward(p, run);
        return { loss: pass.loss, grads: await backward(p, pass, run) };
      });
      const final = await forward({ ...problem, layers: loop.params }, run);
      return { ...loop, loss: final.loss, head: final.report, stats };
    });
  }

  info(): EngineInfo {
    return { backend: this.backend.name, kernelCache: this.cache.stats() };
  }

  /** Is the backend still answering? Used by /readyz. */
  probe(): Promise<void> {
    return this.backend.probe();
  }

  close(): void {
    this.cache.clear();
    this.backend.destroy();
  }

  private async withRunner<T>(signal: AbortSignal | undefined, body: (run: RunKernel, stats: RunStats) => Promise<T>): Promise<T> {
    const stats: RunStats = { backend: this.backend.name, kernelsCompiled: 0, compileMs: 0, computeMs: 0 };
    // one lease per kernel for the whole call (a training run calls each kernel many times)
    const leases = new Map<string, Lease>();
    const onCompile = (ms: number) => {
      stats.kernelsCompiled++;
      stats.compileMs += ms;
    };
    let lastYield = performance.now();
    const run: RunKernel = async (spec, ...args) => {
      // Kernels that gpu.js runs on this thread (all of them on cpu, small ones on webasm)
      // hold the event loop: let I/O through between them so health checks keep answering.
      if (performance.now() - lastYield > YIELD_AFTER_MS) {
        await new Promise(setImmediate);
        lastYield = performance.now();
      }
      signal?.throwIfAborted();
      const key = kernelKey({ backend: this.backend.name, op: spec.op, ...spec.params });
      let lease = leases.get(key);
      if (!lease) {
        lease = this.cache.lease(key, () => this.backend.createKernel(spec.source, spec.output), onCompile);
        leases.set(key, lease);
      }
      return lease.call(...args);
    };
    const t0 = performance.now();
    try {
      return await body(run, stats);
    } finally {
      stats.computeMs = performance.now() - t0 - stats.compileMs;
      for (const lease of leases.values()) lease.release();
    }
  }
}
