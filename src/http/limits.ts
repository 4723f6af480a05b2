import { type WorkShape, workOf } from '../engine/dispatch.js';
import type { Limits } from '../runtime/config.js';
import { Errors } from './errors.js';

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

/** /init's widths: the same layer and width limits, so that it never makes params the other routes refuse. */
export function enforceInitLimits(widths: number[], limits: Limits): void {
  const layers = widths.length - 1;
  if (layers > limits.layers) {
    throw new Errors.LimitExceeded(`layers makes ${layers} layers; the limit is ${limits.layers} (GRADSERVE_MAX_LAYERS)`);
  }
  const i = widths.findIndex((w) => w > limits.width);
  if (i >= 0) {
    throw new Errors.LimitExceeded(`layers[${i}] is ${widths[i]} wide; the limit is ${limits.width} (GRADSERVE_MAX_WIDTH)`);
  }
}
