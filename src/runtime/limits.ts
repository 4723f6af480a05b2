import { type WorkShape, workOf } from '../engine/dispatch.js';
import { rowsPerStep, type TrainOptions } from '../engine/train.js';

/** The most layers GRADSERVE_MAX_LAYERS may allow; request schemas refuse more before checking each one. */
export const LAYERS_CEILING = 1024;

/** What one request may ask of the engine; over any of these it gets a 413 naming the limit. */
export interface Limits {
  bodyBytes: number;
  layers: number;
  /** the widest layer input or output */
  width: number;
  batch: number;
  /** batch × Σ in×out: one value-and-grad costs about 6 flops per unit */
  work: number;
  /** batch × Σ out: the values the layers output, which a value-and-grad holds for its backward pass */
  activations: number;
  /** /train: most optimizer steps in one request */
  trainSteps: number;
  /** /train: most steps × rows per step × Σ (in + 1)·out (the forward pass's multiply-adds, biases counted) */
  trainWork: number;
  /** /init: most parameters (weights and biases) in one response */
  initParams: number;
}

// Each check returns what is over which limit, naming its value and setting, or undefined when
// nothing is: the routes answer it as a 413, the configuration refuses a warm-up shape with it.

/**
 * What a client can do about a batch over a limit, which depends on the route: a loss and its
 * gradients add up over shards of the batch, predictions are per row, and /train's loss is
 * over its whole batch.
 */
export const BATCH_ADVICE = {
  shards: 'split the batch into shards with reduction "sum"',
  rows: 'send the rows in several requests',
  train: 'train on fewer rows, or a smaller network',
} as const;
export type BatchAdvice = (typeof BATCH_ADVICE)[keyof typeof BATCH_ADVICE];

/** The first limit a network and batch exceed; `advice` ends the messages of the limits a smaller batch would meet. */
export function overLimit(shape: WorkShape, limits: Limits, advice: BatchAdvice = BATCH_ADVICE.shards): string | undefined {
  const layers = layersOverLimit('params', shape.widths.length - 1, limits.layers);
  if (layers !== undefined) return layers;
  const i = shape.widths.findIndex((w) => w > limits.width);
  if (i >= 0) return `${widthAt(shape.widths, i)}; the limit is ${limits.width} (GRADSERVE_MAX_WIDTH)`;
  if (shape.batch > limits.batch) return `x has ${shape.batch} rows; the batch limit is ${limits.batch} (GRADSERVE_MAX_BATCH)`;
  const work = workOf(shape);
  if (work > limits.work) {
    return (
      `the request's work, batch × Σ in×out = ${shape.batch} × ${work / shape.batch} = ${work}, is over the limit of ${limits.work} ` +
      `(GRADSERVE_MAX_WORK); ${advice}`
    );
  }
  // memory, which work does not bound: [1, 8192, 1] × 65536 is little work in a 640 KB body,
  // and its 537M activations took 8.5 GB before it was abandoned (bench/RESULTS.md)
  const outputs = shape.widths.slice(1).reduce((a, b) => a + b, 0);
  const activations = shape.batch * outputs;
  if (activations > limits.activations) {
    return (
      `the request's activations, batch × Σ out = ${shape.batch} × ${outputs} = ${activations} values (${memory(activations * BYTES_PER_ACTIVATION)}), ` +
      `are over the limit of ${limits.activations} (GRADSERVE_MAX_ACTIVATIONS); ${advice}`
    );
  }
  return undefined;
}

/** Memory, in the unit that reads best: "about 1.5 GiB of memory", "about 12 MiB …", "under 1 MiB …" (a low limit's). */
const memory = (bytes: number): string =>
  bytes >= 2 ** 30
    ? `about ${(bytes / 2 ** 30).toFixed(1)} GiB of memory`
    : bytes >= 2 ** 20
      ? `about ${Math.round(bytes / 2 ** 20)} MiB of memory`
      : 'under 1 MiB of memory';

/** More layers than the limit, in params or in /init's widths (one more than its layers). */
export function layersOverLimit(field: 'params' | 'layers', layers: number, limit: number): string | undefined {
  if (layers <= limit) return undefined;
  const count = field === 'params' ? 'params has' : `layers has ${layers + 1} widths, so`;
  return `${count} ${layers} layers; the limit is ${limit} (GRADSERVE_MAX_LAYERS)`;
}

/** The field that makes widths[i] (the network's widths, input first): what a width limit names. */
function widthAt(widths: number[], i: number): string {
  if (i === 0) return `the input is ${widths[0]} wide (x's columns, params[0].W's rows)`;
  return `params[${i - 1}] is ${widths[i]} wide (params[${i - 1}].W's columns)`;
}

/** Peak memory per activation of a value-and-grad on webasm: 32–45 bytes measured (bench/memory.ts, bench/RESULTS.md). */
const BYTES_PER_ACTIVATION = 40;

/** Σ (in + 1)·out: a network's weights and biases, and the multiply-adds of its forward pass per row. */
const paramCount = (widths: number[]): number => widths.slice(1).reduce((s, out, l) => s + (widths[l]! + 1) * out, 0);

/**
 * /init's widths: the same layer and width limits as the other routes (so that it never makes
 * params they refuse), and a bound on the answer's size.
 */
export function initOverLimit(widths: number[], limits: Limits): string | undefined {
  const layers = layersOverLimit('layers', widths.length - 1, limits.layers);
  if (layers !== undefined) return layers;
  const i = widths.findIndex((w) => w > limits.width);
  if (i >= 0) return `layers[${i}] is ${widths[i]} wide; the limit is ${limits.width} (GRADSERVE_MAX_WIDTH)`;
  const count = paramCount(widths);
  if (count > limits.initParams) {
    return `layers ${JSON.stringify(widths).slice(0, 80)} make ${count} parameters; the limit is ${limits.initParams} (GRADSERVE_MAX_INIT_PARAMS)`;
  }
  return undefined;
}

/** /train: the steps, and the whole run's work, before it starts (each step's own shape is overLimit's). */
export function trainOverLimit(shape: WorkShape, options: Pick<TrainOptions, 'steps' | 'batchSize'>, limits: Limits): string | undefined {
  if (options.steps > limits.trainSteps) return `steps is ${options.steps}; the limit is ${limits.trainSteps} (GRADSERVE_MAX_TRAIN_STEPS)`;
  const rows = rowsPerStep(options, shape.batch);
  const macs = paramCount(shape.widths);
  const work = options.steps * rows * macs;
  if (work > limits.trainWork) {
    return (
      `steps × rows per step × Σ (in + 1)·out is ${options.steps} × ${rows} × ${macs} = ${work}; the limit is ${limits.trainWork} ` +
      '(GRADSERVE_MAX_TRAIN_WORK): use fewer steps, a smaller batchSize or a smaller network'
    );
  }
  return undefined;
}
