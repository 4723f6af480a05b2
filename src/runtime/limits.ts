import { type WorkShape, workOf } from '../engine/dispatch.js';
import { rowsPerStep, type TrainOptions } from '../engine/train.js';
import type { OutputEncoding } from '../http/tensors.js';

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

/** Σ (in + 1)·out: a network's weights and biases, and the multiply-adds of its forward pass per row. */
const paramCount = (widths: number[]): number => widths.slice(1).reduce((s, out, l) => s + (widths[l]! + 1) * out, 0);

/** Memory, in the unit that reads best: "about 1.5 GiB of memory", "about 12 MiB …", "under 1 MiB …" (a low limit's). */
const memory = (bytes: number): string => (bytes >= 2 ** 20 ? `about ${size(bytes)} of memory` : 'under 1 MiB of memory');

/** A size in the unit that reads best: "1.5 GiB", "12 MiB", "300 KiB", "900 bytes". */
const size = (bytes: number): string =>
  bytes >= 2 ** 30
    ? `${(bytes / 2 ** 30).toFixed(1)} GiB`
    : bytes >= 2 ** 20
      ? `${Math.round(bytes / 2 ** 20)} MiB`
      : bytes >= 1024
        ? `${Math.round(bytes / 1024)} KiB`
        : `${Math.round(bytes)} bytes`;

/**
 * What an answer takes per value, to bound it before it is computed: a float32 written as
 * JSON takes 19–22 bytes (24 at most), as a base64 tensor 4 × 4/3.
 */
export const ANSWER_BYTES_PER_VALUE: Record<OutputEncoding, number> = { json: 20, base64: 16 / 3 };

/** What an answer holds: its values, and what they are ("params of 3 layers, Σ (in + 1)·out"). */
export interface AnswerSize {
  values: number;
  what: string;
}

/** The answer of /init or /train (the params) or of /value-and-grad (their gradients). */
export const paramsAnswer = (widths: number[], what: 'params' | 'grads'): AnswerSize => ({
  values: paramCount(widths),
  what: `${what} of ${widths.length - 1} layer${widths.length === 2 ? '' : 's'}, Σ (in + 1)·out`,
});

/**
 * An answer larger than the largest request body (GRADSERVE_BODY_LIMIT), which bounds answers
 * too: a 352 KB /forward body asked for 16.7 million predictions, 319 MB of JSON, and ten
 * clients that left theirs unread took the service to 3.8 GB (bench/RESULTS.md). `advice` is
 * what the client can change besides the encoding.
 */
export function answerOverLimit(answer: AnswerSize, encoding: OutputEncoding, limits: Limits, advice: string): string | undefined {
  const bytes = answer.values * ANSWER_BYTES_PER_VALUE[encoding];
  if (bytes <= limits.bodyBytes) return undefined;
  const base64 = answer.values * ANSWER_BYTES_PER_VALUE.base64;
  const askBase64 = encoding === 'json' && base64 <= limits.bodyBytes;
  return (
    `the answer would hold ${answer.what} = ${answer.values} values, about ${size(bytes)} as ${encoding === 'json' ? 'JSON' : 'base64 tensors'}, ` +
    `over the ${size(limits.bodyBytes)} that a body may take either way (GRADSERVE_BODY_LIMIT); ` +
    (askBase64 ? `ask for "outputEncoding": "base64" (4 bytes a value, about ${size(base64)}), or ${advice}` : advice)
  );
}

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
