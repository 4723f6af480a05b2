import { setTimeout as nextTimerTurn } from 'node:timers/promises';
import { usableCpus } from '../runtime/cpus.js';
import { type Backend, createBackend } from './backend.js';
import { DEFAULT_CPU_MAX_WORK, DEFAULT_GPU_MIN_WORK, pickBackend, shapeOf, type Thresholds, type WorkShape, workOf } from './dispatch.js';
import { KernelCache, type KernelCacheStats, type Lease } from './kernel-cache.js';
import { backward, forward, predictions, type RunKernel } from './mlp.js';
import { type KernelSpec, unpackRows } from './ops/dense.js';
import { PRIME_SHAPE, type PrimeResult, Primer } from './priming.js';
import { rowsPerStep, type TrainLoop, type TrainOptions, trainLoop } from './train.js';
import type {
  BackendChoice,
  BackendName,
  ForwardProblem,
  KernelCompile,
  LossResult,
  Matrix,
  Problem,
  RunStats,
  ValueAndGradResult,
  WarmupShape,
} from './types.js';
import { type AdapterInfo, findAdapter, hasGpuDevice } from './webgpu.js';

/** Longest stretch of kernels run back to back before the engine yields to the event loop. */
const YIELD_AFTER_MS = 10;

/**
 * webasm kernels this large (batch × their widest side, in values) get a turn of the event
 * loop's timers before they run (bench/RESULTS.md, "A timer turn between the large kernel steps").
 */
const LARGE_KERNEL_VALUES = 1 << 20;
const valuesOf = ({ params }: KernelSpec) => Number(params.batch) * Math.max(Number(params.in ?? 0), Number(params.out ?? 0));

export interface EngineOptions {
  /** one backend, or `auto` (see BACKEND_CHOICES): each request sent where the cost model says */
  backend: BackendChoice;
  kernelCacheCapacity: number;
  /** the most memory the cached kernels may keep (default DEFAULT_KERNEL_CACHE_BYTES) */
  kernelCacheBytes?: number;
  /** webasm's worker threads (default: one per usable CPU) */
  webasmThreads?: number;
  /** with `auto`: the most work (batch × Σ in×out) sent to cpu, the least sent to a GPU */
  thresholds?: Partial<Thresholds>;
  /** fail unless webgpu starts on a hardware adapter (a GPU host must not serve from its CPU unnoticed) */
  requireGpu?: boolean;
}

export interface TrainResult extends TrainLoop, LossResult {}

export interface EngineInfo {
  backends: BackendName[];
  /** what start-up found of a GPU for webgpu, and whether it is used, in a sentence (gpuFinding) */
  gpu: string;
  kernelCache: KernelCacheStats;
  /** webasm's worker threads, when webasm is one of the backends */
  webasmThreads?: number;
}

/**
 * The compute engine: its backends, one kernel cache, and the dispatcher that picks a
 * backend per call. Every call keeps its intermediate values to itself (nothing per
 * request is stored on shared objects), so calls may overlap; kernels are shared and
 * leased from the cache for the length of a call.
 */
export class Engine {
  private readonly compileListeners: ((compile: KernelCompile) => void)[] = [];
  private readonly primer = new Primer((signal) => this.warmUp([PRIME_SHAPE], signal));
  /** the probe under way, which callers meanwhile share */
  private probing?: Promise<void>;

  private constructor(
    readonly choice: BackendChoice,
    private readonly backends: Map<BackendName, Backend>,
    private readonly cache: KernelCache,
    private readonly thresholds: Thresholds,
    private readonly gpu: string,
    private readonly webasmThreads: number,
  ) {}

  /**
   * Create the backends and probe each with a tiny kernel before trusting it. `auto` starts
   * cpu and webasm, and webgpu only on a hardware adapter: on a software one (llvmpipe) it
   * is slower than webasm, and a live Dawn device keeps a thread busy. `auto` never starts
   * headlessgl: it is optional (a native build, and an X display at run time) and on the
   * software GL these machines have (Mesa's llvmpipe under Xvfb) it is slower than webasm
   * (measured before webasm's tuning: M 66 against 32–38 ms, L 6.1 against 2.7 s; bench/RESULTS.md);
   * it runs only when forced.
   */
  static async create(options: EngineOptions): Promise<Engine> {
    const auto = options.backend === 'auto';
    const deviceNode = hasGpuDevice();
    const gpuAdapter = (auto && deviceNode) || options.backend === 'webgpu' ? await findAdapter() : undefined;
    const names: BackendName[] = auto ? ['cpu', 'webasm'] : [options.backend as BackendName];
    if (auto && gpuAdapter && !gpuAdapter.software) names.push('webgpu');
    const gpu = gpuFinding(options.backend, deviceNode, gpuAdapter, names.includes('webgpu'));
    if (options.requireGpu && !(names.includes('webgpu') && gpuAdapter && !gpuAdapter.software)) {
      throw new Error(`a GPU is required (GRADSERVE_REQUIRE_GPU=1), but ${gpu}`);
    }
    const backends = new Map<BackendName, Backend>();
    const webasmThreads = options.webasmThreads ?? usableCpus();
    try {
      for (const name of names) {
        const backend = createBackend(name, webasmThreads);
        backends.set(name, backend);
        await backend.probe();
      }
    } catch (err) {
      await Promise.all([...backends.values()].map((b) => b.destroy()));
      throw err;
    }
    const thresholds = { cpuMaxWork: DEFAULT_CPU_MAX_WORK, gpuMinWork: DEFAULT_GPU_MIN_WORK, ...options.thresholds };
    return new Engine(
      options.backend,
      backends,
      new KernelCache(options.kernelCacheCapacity, options.kernelCacheBytes),
      thresholds,
      gpu,
      webasmThreads,
    );
  }

  /** Where a problem of this size runs. */
  backendFor(problem: ForwardProblem): BackendName {
    return this.backendForShape(shapeOf(problem));
  }

  /**
   * Why the backend a problem of this shape would run on cannot take it, or undefined when it
   * can: headlessgl's kernels output textures, whose sides its GL bounds (16384 on llvmpipe).
   * `advice` ends the message for a batch too long (what the route lets a client do about it).
   */
  backendCannotTake(shape: WorkShape, advice: string): string | undefined {
    const name = this.backendForShape(shape);
    const most = this.backends.get(name)!.maxExtent;
    if (most === undefined) return undefined;
    const why = `the ${name} backend takes at most ${most} (the longest side of its GL's textures)`;
    if (shape.batch > most) return `x has ${shape.batch} rows; ${why}: ${advice}`;
    const widest = Math.max(...shape.widths);
    if (widest > most) return `a layer is ${widest} wide; ${why}`;
    return undefined;
  }

  private backendForShape(shape: WorkShape): BackendName {
    return pickBackend(workOf(shape), [...this.backends.keys()], this.thresholds);
  }

  // Every call takes an optional `signal` that abandons it: the call stops before its next
  // kernel and rejects with the signal's reason.

  async forward(problem: ForwardProblem, signal?: AbortSignal): Promise<{ predictions: Matrix; stats: RunStats }> {
    return this.withRunner(problem, signal, async (run, stats) => ({ predictions: await predictions(problem, run), stats }));
  }

  async loss(problem: Problem, signal?: AbortSignal): Promise<LossResult> {
    return this.withRunner(problem, signal, async (run, stats) => {
      const pass = await forward(problem, run);
      return { loss: pass.loss, head: pass.report, stats };
    });
  }

  async valueAndGrad(problem: Problem, signal?: AbortSignal): Promise<ValueAndGradResult> {
    return this.withRunner(problem, signal, async (run, stats) => {
      const pass = await forward(problem, run);
      const grads = await backward(problem, pass, run);
      return { loss: pass.loss, grads, head: pass.report, stats };
    });
  }

  /** Train from problem.layers; `loss` and `head` are those of the final params on the whole batch. */
  async train(problem: Problem, options: TrainOptions, signal?: AbortSignal): Promise<TrainResult> {
    // each step's size is its minibatch's
    const step = { ...problem, x: { ...problem.x, rows: rowsPerStep(options, problem.x.rows) } };
    return this.withRunner(step, signal, async (run, stats) => {
      const loop = await trainLoop(problem, options, async (p) => {
        const pass = await forward(p, run);
        return { loss: pass.loss, grads: await backward(p, pass, run) };
      });
      const final = await forward({ ...problem, layers: loop.params }, run);
      return { ...loop, loss: final.loss, head: final.report, stats };
    });
  }

  /**
   * Compile every kernel a value-and-grad of these shapes needs (on the backend the
   * dispatcher picks for each), so that the first requests of those shapes compile nothing.
   * Returns how many kernels were compiled and how long that took.
   */
  async warmUp(shapes: WarmupShape[], signal?: AbortSignal): Promise<{ kernels: number; ms: number }> {
    let kernels = 0;
    let ms = 0;
    for (const { widths, batch, activation } of shapes) {
      const over = this.backendCannotTake({ widths, batch }, 'warm up a smaller batch');
      if (over) throw new Error(`the warm-up shape ${widths.join(',')}x${batch} cannot run: ${over}`);
      const zeros = (rows: number, cols: number) => ({ rows, cols, data: new Float32Array(rows * cols) });
      const layers = widths.slice(1).map((out, l) => ({ W: zeros(widths[l]!, out), b: new Float32Array(out) }));
      const problem: Problem = {
        layers,
        x: zeros(batch, widths[0]!),
        y: zeros(batch, widths.at(-1)!),
        activation,
        outputActivation: 'sigmoid',
        loss: 'bce',
        reduction: 'mean',
      };
      const { stats } = await this.valueAndGrad(problem, signal);
      kernels += stats.compiled.length;
      ms += stats.compileMs;
    }
    return { kernels, ms };
  }

  /**
   * Compile PRIME_SHAPE's kernels and run its value-and-grad in the background, so that V8
   * compiles gpu.js's code generator and the engine's host code before the first request of
   * a new shape needs them (in process: M's first call 88–111 ms of compiling and 8–10 of
   * host code against 139–149 and 24–32; bench/RESULTS.md). It gives way: any other call
   * pauses it before its next kernel, so a request waits for one of its compiles at most, and
   * it resumes where it was once the engine has had no call for PRIME_RESUME_AFTER_MS
   * (`paused` counts the pauses; `kernels` and `ms` are its last run's). It ends early
   * (`stopped`) only by stopPriming(). The service primes once it is ready, where a warm-up
   * before listening cost start-up more than it saved the first request.
   */
  prime(): Promise<PrimeResult> {
    return this.primer.run();
  }

  /** End priming for good (shutdown, close): prime() resolves before its next kernel. */
  stopPriming(): void {
    this.primer.stop();
  }

  /** Hear of every kernel compiled, with its time (metrics); returns the way to stop. */
  onCompile(listener: (compile: KernelCompile) => void): () => void {
    this.compileListeners.push(listener);
    return () => {
      const i = this.compileListeners.indexOf(listener);
      if (i >= 0) this.compileListeners.splice(i, 1);
    };
  }

  info(): EngineInfo {
    return {
      backends: [...this.backends.keys()],
      gpu: this.gpu,
      kernelCache: this.cache.stats(),
      ...(this.backends.has('webasm') ? { webasmThreads: this.webasmThreads } : {}),
    };
  }

  /**
   * Are the backends still answering? Used by /readyz. Callers at the same time share one
   * run: a burst of probes (every replica's balancer and kubelet) costs the worker threads one.
   */
  probe(): Promise<void> {
    const probeAll = async () => {
      for (const backend of this.backends.values()) await backend.probe();
    };
    this.probing ??= probeAll().finally(() => {
      this.probing = undefined;
    });
    return this.probing;
  }

  /** Free every kernel and backend (a WebGPU device must be destroyed before the process exits). */
  async close(): Promise<void> {
    this.stopPriming();
    this.cache.clear();
    await Promise.all([...this.backends.values()].map((b) => b.destroy()));
  }

  private async withRunner<T>(
    sizing: ForwardProblem,
    signal: AbortSignal | undefined,
    body: (run: RunKernel, stats: RunStats) => Promise<T>,
  ): Promise<T> {
    const primingRun = this.primer.owns(signal);
    const backend = this.backends.get(this.backendFor(sizing))!;
    const stats: RunStats = { backend: backend.name, compiled: [], compileMs: 0, computeMs: 0 };
    // one lease per kernel for the whole call (a training run calls each kernel many times)
    const leases = new Map<string, Lease>();
    const compiled = (op: string) => (ms: number) => {
      const compile = { backend: backend.name, op, ms };
      stats.compiled.push(compile);
      stats.compileMs += ms;
      for (const listener of this.compileListeners) listener(compile);
    };
    let lastYield = performance.now();
    const lease = (spec: KernelSpec): Lease => {
      let held = leases.get(spec.key);
      if (!held) {
        held = this.cache.lease(
          spec.key,
          () =>
            backend.createKernel(
              spec.source,
              spec.output,
              spec.blocked ? { readPacked: (packed) => unpackRows(spec, packed), minThreadedCells: spec.minThreadedCells } : undefined,
            ),
          compiled(spec.op),
        );
        leases.set(spec.key, held);
      }
      return held;
    };
    // Not async: a synchronous backend's result (cpu, headlessgl) is returned as it is, which
    // spares small problems a chain of promises per kernel call (bench/RESULTS.md).
    const runKernel = (spec: KernelSpec, ...args: unknown[]): unknown => {
      const launch = (yielded: boolean) => {
        if (yielded) lastYield = performance.now();
        signal?.throwIfAborted();
        return lease(spec).call(...args);
      };
      // A large webasm kernel's copies (the last kernel's result read out, its arguments
      // copied in) take the event loop for milliseconds each: a timer turn between them lets
      // timers and I/O in (setImmediate, called where a worker's answer resumed the engine,
      // would run before them). Not on the GPU backends, unmeasured there, where a turn's 1 ms
      // would weigh more against kernels that take a few. Kernels that gpu.js runs on this
      // thread (all of them on cpu, small ones on webasm) hold the event loop too: let I/O
      // through between them.
      if (backend.name === 'webasm' && valuesOf(spec) >= LARGE_KERNEL_VALUES) return nextTimerTurn(0).then(() => launch(true));
      if (performance.now() - lastYield > YIELD_AFTER_MS) return new Promise(setImmediate).then(() => launch(true));
      return launch(false);
    };
    const run: RunKernel = Object.assign(runKernel, { backend: backend.name });
    if (!primingRun) this.primer.callStarted();
    const t0 = performance.now();
    try {
      return await body(run, stats);
    } finally {
      stats.computeMs = performance.now() - t0 - stats.compileMs;
      for (const lease of leases.values()) lease.release();
      if (!primingRun) this.primer.callEnded();
    }
  }
}

/**
 * What start-up found of a GPU for the webgpu backend, and whether it is used, in a
 * sentence: for /info, the ready log line, and GRADSERVE_REQUIRE_GPU's refusal to start.
 */
function gpuFinding(choice: BackendChoice, deviceNode: boolean, adapter: AdapterInfo | undefined, used: boolean): string {
  if (adapter && used) return `webgpu runs on ${adapter.software ? 'a software' : 'a hardware'} adapter (${adapter.description})`;
  if (choice !== 'auto' && choice !== 'webgpu') return `not looked for: the backend is ${choice}, not auto or webgpu`;
  if (choice === 'auto' && !deviceNode) return 'no GPU device node (/dev/dri or /dev/nvidia*), so Dawn was not loaded';
  if (!adapter) return 'no WebGPU adapter was found (no Vulkan driver for the GPU, or no Dawn)';
  return `the WebGPU adapter is a software one (${adapter.description}), slower than webasm: auto leaves it unused`;
}
