import { type WorkShape, workOf } from '../engine/dispatch.js';
import { rowsPerStep, type TrainOptions } from '../engine/train.js';
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

/** Σ (in + 1)·out: a network's weights and biases, and the multiply-adds of its forward pass per row. */
export const paramCount = (widths: number[]): number => widths.slice(1).reduce((s, out, l) => s + (widths[l]! + 1) * out, 0);

/**
 * /init's widths: the same layer and width limits as the other routes (so that it never makes
 * params they refuse), and a bound on the answer's size.
 */
export function enforceInitLimits(widths: number[], limits: Limits): void {
  const layers = widths.length - 1;
  if (layers > limits.layers) {
    throw new Errors.LimitExceeded(`layers makes ${layers} layers; the limit is ${limits.layers} (GRADSERVE_MAX_LAYERS)`);
  }
  const i = widths.findIndex((w) => w > limits.width);
  if (i >= 0) {
    throw new Errors.LimitExceeded(`layers[${i}] is ${widths[i]} wide; the limit is ${limits.width} (GRADSERVE_MAX_WIDTH)`);
  }
  const count = paramCount(widths);
  if (count > limits.initParams) {
    throw new Errors.LimitExceeded(
      `layers ${JSON.stringify(widths).slice(0, 80)} make ${count} parameters; the limit is ${limits.initParams} (GRADSERVE_MAX_INIT_PARAMS)`,
    );
  }
}

/** /train: the steps, and the whole run's work, before it starts (each step's own shape is enforceLimits'). */
export function enforceTrainLimits(shape: WorkShape, options: Pick<TrainOptions, 'steps' | 'batchSize'>, limits: Limits): void {
  if (options.steps > limits.trainSteps) {
    throw new Errors.LimitExceeded(`steps is ${options.steps}; the limit is ${limits.trainSteps} (GRADSERVE_MAX_TRAIN_STEPS)`);
  }
  const rows = rowsPerStep(options, shape.batch);
  const macs = paramCount(shape.widths);
  const work = options.steps * rows * macs;
  if (work > limits.trainWork) {
    throw new Errors.LimitExceeded(
      `steps × rows per step × Σ (in + 1)·out is ${options.steps} × ${rows} × ${macs} = ${work}; the limit is ${limits.trainWork} ` +
        '(GRADSERVE_MAX_TRAIN_WORK): use fewer steps, a smaller batchSize or a smaller network',
    );
  }
}
