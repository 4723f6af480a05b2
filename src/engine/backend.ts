import { createRequire } from 'node:module';
import { exposeGcToNewThreads } from '../runtime/thread-gc.js';
import { assertHeadlessGl, headlessGlMaxTextureSize } from './headlessgl.js';
import type { CompiledKernel } from './kernel-cache.js';
import type { BackendName } from './types.js';
import { installNavigatorGpu } from './webgpu.js';

// gpu.js is CommonJS; its index.d.ts describes the module.
const require = createRequire(import.meta.url);
const { GPU } = require('gpu.js') as typeof import('gpu.js');
/** gpu.js shares one WebGPU device among all its webgpu-mode instances and leaves its teardown to us. */
const { WebGPUContext } = require('gpu.js') as { WebGPUContext: { destroy(): Promise<void> } };
let liveWebgpuBackends = 0;

/** Settings of gpu.js's webasm backend as patched for gradserve (patches/, bench/RESULTS.md). */
export interface WebasmKernelOptions {
  /**
   * The kernel returns Array(n) per thread, and its result is readPacked(the packed values,
   * planar: [z][y][component][x]), called on a view of the kernel's memory before the call
   * returns: building a view per cell costs more than the kernel, and reading in place
   * saves copying the result twice.
   */
  readPacked?: (packed: Float32Array) => unknown;
  /** the fewest cells worth splitting over the worker threads (gpu.js: 4096) */
  minThreadedCells?: number;
}

/**
 * A backend is one gpu.js GPU instance in one mode. `webasm` kernels run under the async
 * contract, which lets gpu.js split large kernels over its worker threads and keeps the
 * event loop free meanwhile; `cpu` is plain JavaScript, the reference; `webgpu` compiles
 * kernels to WGSL compute shaders run by Dawn (kernels answer with a promise); `headlessgl`
 * compiles them to WebGL 1 fragment shaders (GLSL, highp float under the `precision` tactic,
 * float32 textures in and out under single precision) run by the optional native package
 * `gl`, on the X display's GL (Mesa's llvmpipe under Xvfb here). GL kernels run synchronously
 * (WebGL 1 has no non-blocking readback), like cpu's: the engine yields between them.
 */
export interface Backend {
  readonly name: BackendName;
  /** the most batch rows, and the widest layer, its kernels can output (a GL texture's side); none when undefined */
  readonly maxExtent?: number;
  createKernel(source: string, output: number[], webasm?: WebasmKernelOptions): CompiledKernel;
  /** run a tiny kernel and check its answer; throws if the backend cannot be trusted */
  probe(): Promise<void>;
  destroy(): Promise<void>;
}

const PROBE_X = 64;

/**
 * `threads`: webasm's worker threads (gpu.js would start one per CPU of the machine, not of
 * the container's CPU limit).
 */
export function createBackend(name: BackendName, threads: number): Backend {
  if (name === 'webgpu') installNavigatorGpu();
  // gl, the display and float textures, named in a clear error before gpu.js gets to fail
  // on them (gpu.js would throw "not supported" without saying what is missing)
  if (name === 'headlessgl') assertHeadlessGl();
  if (name === 'webasm') exposeGcToNewThreads(); // its worker threads collect after releases (patches/)
  const gpu = new GPU({ mode: name });
  // counted once it exists, so that a constructor that throws leaves no count behind
  if (name === 'webgpu') liveWebgpuBackends++;
  const asyncMode = name === 'webasm';
  const createKernel = (source: string, output: number[], webasm?: WebasmKernelOptions): CompiledKernel => {
    if (webasm && name !== 'webasm') throw new Error(`webasm kernel options given to the ${name} backend`);
    const settings = {
      output,
      asyncMode,
      tactic: 'precision',
      precision: 'single',
      ...(asyncMode ? { poolSize: threads } : {}),
      ...(webasm?.readPacked ? { packedOutput: webasm.readPacked } : {}),
      ...(webasm?.minThreadedCells ? { minThreadedCells: webasm.minThreadedCells } : {}),
    } as const;
    const kernel = gpu.createKernel(source, settings);
    const run = (...args: unknown[]) => kernel(...(args as Parameters<typeof kernel>));
    const keepsMemory = name !== 'cpu';
    if (name !== 'headlessgl') return { run, destroy: () => kernel.destroy(), keepsMemory };
    // gpu.js replaces a GL kernel it cannot build (an argument type or output it does not
    // support) with a CPU one, and only warns: the result would be right but the backend
    // reported would not be, so a moved kernel is an error here
    let checked = false;
    return {
      run: (...args) => {
        const out = run(...args);
        if (!checked) {
          const actual = (kernel as unknown as { kernel: { constructor: { mode: string }; fallbackReason?: string | null } }).kernel;
          if (actual.constructor.mode === 'cpu') {
            throw new Error(`gpu.js moved a headlessgl kernel to its CPU fallback: ${actual.fallbackReason ?? 'no reason given'}`);
          }
          checked = true;
        }
        return out;
      },
      destroy: () => kernel.destroy(),
      keepsMemory,
    };
  };
  // compiled once and kept: /readyz runs the probe on every call
  let probeKernel: CompiledKernel | undefined;
  // webasm: 4096 cells per worker thread (see probe); the others: a couple of rows
  const PROBE_Y = asyncMode ? 64 * threads : 2;
  const PROBE_A = Array.from({ length: PROBE_Y }, (_, y) => new Float32Array([y]));
  const PROBE_B = [Float32Array.from({ length: PROBE_X }, (_, x) => x)];
  return {
    name,
    maxExtent: name === 'headlessgl' ? headlessGlMaxTextureSize() : undefined,
    createKernel,
    async probe() {
      // 4096 cells per thread: webasm runs it on every one of its worker threads (one per
      // 4096 cells, `threads` at most), which starts them now rather than on the first
      // large request, and checks them too
      probeKernel ??= createKernel('function(a, b) { return a[this.thread.y][0] * b[0][this.thread.x] + 1; }', [PROBE_X, PROBE_Y]);
      const out = (await probeKernel.run(PROBE_A, PROBE_B)) as Float32Array[];
      for (let y = 0; y < PROBE_Y; y++) {
        for (let x = 0; x < PROBE_X; x++) {
          if (out[y]![x] !== y * x + 1) {
            throw new Error(`backend ${name} answered ${out[y]![x]} at [${y}][${x}] of a probe that expects ${y * x + 1}`);
          }
        }
      }
    },
    async destroy() {
      await gpu.destroy();
      // the last webgpu backend destroys the shared device: a live Dawn device keeps the
      // process from exiting (and a thread busy)
      if (name === 'webgpu' && --liveWebgpuBackends === 0) await WebGPUContext.destroy();
    },
  };
}
