import type { BackendName, ForwardProblem } from './types.js';

/** The sizes that decide a problem's cost: layer widths [in_0, out_0, out_1, ...] and the batch. */
export interface WorkShape {
  widths: number[];
  batch: number;
}

export const shapeOf = (p: ForwardProblem): WorkShape => ({ widths: [p.x.cols, ...p.layers.map((l) => l.W.cols)], batch: p.x.rows });

/** batch × Σ in×out: a forward pass is 2 flops per unit, a value-and-grad about 6. */
export function workOf({ widths, batch }: WorkShape): number {
  let perRow = 0;
  for (let l = 1; l < widths.length; l++) perRow += widths[l - 1]! * widths[l]!;
  return batch * perRow;
}

/** The cost model's crossover on the machines measured (bench/dispatch.ts, bench/RESULTS.md). */
export const DEFAULT_CPU_MAX_WORK = 6144;
/**
 * Below this much work a GPU loses to webasm on the cost of moving data and launching
 * shaders (webgpu's floor is about 1.5 ms a call). Measured on an H200 host with 4 and 16
 * webasm threads (`bench/dispatch.ts gpu`, bench/RESULTS.md): a tie near 400k units, the
 * GPU 1.5–2× faster from 1.6M and 4× from 6M.
 */
export const DEFAULT_GPU_MIN_WORK = 1 << 20;

export interface Thresholds {
  cpuMaxWork: number;
  gpuMinWork: number;
}

/**
 * The cost model. The `cpu` backend (plain JavaScript on the event loop) has the least
 * overhead per kernel call, which wins for tiny problems such as the XOR lesson; above a
 * few thousand units of work WebAssembly's SIMD (and, for large kernels, its worker
 * threads) wins by a growing margin; a hardware GPU (webgpu, only started when there is
 * one) takes the largest problems.
 */
export function pickBackend(work: number, available: readonly BackendName[], t: Thresholds): BackendName {
  if (available.length === 1) return available[0]!;
  if (work <= t.cpuMaxWork && available.includes('cpu')) return 'cpu';
  if (work >= t.gpuMinWork && available.includes('webgpu')) return 'webgpu';
  return available.includes('webasm') ? 'webasm' : available[0]!;
}
