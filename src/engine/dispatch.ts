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
export const DEFAULT_CPU_MAX_WORK = 2048;

/**
 * The cost model. The `cpu` backend (plain JavaScript on the event loop) has the least
 * overhead per kernel call, which wins for tiny problems such as the XOR lesson; above a
 * few thousand units of work WebAssembly's SIMD (and, for large kernels, its worker
 * threads) wins by a growing margin. The crossover is measured by bench/dispatch.ts and
 * set by GRADSERVE_CPU_MAX_WORK.
 */
export function pickBackend(work: number, available: readonly BackendName[], cpuMaxWork: number): BackendName {
  if (available.length === 1) return available[0]!;
  return work <= cpuMaxWork && available.includes('cpu') ? 'cpu' : 'webasm';
}
