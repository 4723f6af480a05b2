import { createRequire } from 'node:module';
import type { CompiledKernel } from './kernel-cache.js';
import type { BackendName } from './types.js';
import { installNavigatorGpu } from './webgpu.js';

// gpu.js is CommonJS; its index.d.ts describes the module.
const require = createRequire(import.meta.url);
const { GPU } = require('gpu.js') as typeof import('gpu.js');
/** gpu.js shares one WebGPU device among all its webgpu-mode instances and leaves its teardown to us. */
const { WebGPUContext } = require('gpu.js') as { WebGPUContext: { destroy(): Promise<void> } };
let liveWebgpuBackends = 0;

/**
 * A backend is one gpu.js GPU instance in one mode. `webasm` kernels run under the async
 * contract, which lets gpu.js split large kernels over its worker threads and keeps the
 * event loop free meanwhile; `cpu` is plain JavaScript, the reference; `webgpu` compiles
 * kernels to WGSL compute shaders run by Dawn (kernels answer with a promise).
 */
export interface Backend {
  readonly name: BackendName;
  /**
   * `packed`: the kernel returns Array(n) per thread and its result is wanted as one packed
   * Float32Array ([y][x][component]), not rows of per-cell views (webasm only: gpu.js as
   * patched for gradserve, patches/; building a view per cell costs more than the kernel)
   */
  createKernel(source: string, output: number[], packed?: boolean): CompiledKernel;
  /** run a tiny kernel and check its answer; throws if the backend cannot be trusted */
  probe(): Promise<void>;
  destroy(): Promise<void>;
}

export function createBackend(name: BackendName): Backend {
  if (name === 'webgpu') {
    installNavigatorGpu();
    liveWebgpuBackends++;
  }
  const gpu = new GPU({ mode: name });
  const asyncMode = name === 'webasm';
  const createKernel = (source: string, output: number[], packed = false): CompiledKernel => {
    if (packed && name !== 'webasm') throw new Error(`packed kernel results are a webasm feature, not ${name}'s`);
    const settings = { output, asyncMode, tactic: 'precision', precision: 'single', ...(packed ? { packedOutput: true } : {}) } as const;
    const kernel = gpu.createKernel(source, settings);
    return {
      run: (...args) => kernel(...(args as Parameters<typeof kernel>)),
      destroy: () => kernel.destroy(),
    };
  };
  // compiled once and kept: /readyz runs the probe on every call
  let probeKernel: CompiledKernel | undefined;
  return {
    name,
    createKernel,
    async probe() {
      probeKernel ??= createKernel('function(a, b) { return a[this.thread.y][0] * b[0][this.thread.x] + 1; }', [2, 2]);
      const out = (await probeKernel.run([new Float32Array([2]), new Float32Array([3])], [new Float32Array([5, 7])])) as Float32Array[];
      const got = out.flatMap((row) => Array.from(row));
      const want = [11, 15, 16, 22];
      if (got.some((v, i) => v !== want[i])) {
        throw new Error(`backend ${name} answered ${JSON.stringify(got)} to a probe that expects ${JSON.stringify(want)}`);
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
