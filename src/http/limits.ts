import type { Limits } from '../runtime/config.js';
import { Errors } from './errors.js';

/** The sizes a limit looks at, taken from a request that already passed its shape checks. */
export interface WorkShape {
  /** layer widths, input to output: [in_0, out_0, out_1, ...] */
  widths: number[];
  batch: number;
}

/** batch × Σ in×out: a forward pass is 2 flops per unit, a value-and-grad about 6. */
export function workOf({ widths, batch }: WorkShape): number {
  let perRow = 0;
  for (let l = 1; l < widths.length; l++) perRow += widths[l - 1]! * widths[l]!;
  return batch * perRow;
}

/** Throw a 413 naming the first limit the request exceeds, with the limit's value and setting. */
export function enforceLimits(shape: WorkShape, limits: Limits): void {
  const layers = shape.widths.length - 1;
  if (layers > limits.layers) {
    throw new Errors.LimitExceeded(`params has ${layers} layers; the limit is ${limits.layers} (GRADSERVE_MAX_LAYERS)`);
  }
  const widest = Math.max(...shape.widths);
  if (widest > limits.width) {
    throw new Errors.LimitExceeded(`a layer is ${widest} wide; the limit is ${limits.width} (GRADSERVE_MAX_WIDTH)`);
  }
  if (shape.batch > limits.batch) {
    throw new Errors.LimitExceeded(`x has ${shape.batch} rows; the batch limit is ${limits.batch} (GRADSERVE_MAX_BATCH)`);
  }
  const work = workOf(shape);
  if (work > limits.work) {
    throw new Errors.LimitExceeded(
      `the request's work, batch × Σ in×out = ${work.toExponential(2)}, is over the limit of ${limits.work.toExponential(2)} ` +
        '(GRADSERVE_MAX_WORK); split the batch into shards with reduction "sum"',
    );
  }
}
