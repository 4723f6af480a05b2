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
function layersOverLimit(field: 'params' | 'layers', layers: number, limit: number): string | undefined {
  if (layers <= limit) return undefined;
  const count = field === 'params' ? 'params has' : `layers has ${layers + 1} widths, so`;
  return `${count} ${layers} layers; the limit is ${limit} (GRADSERVE_MAX_LAYERS)`;
}

/** The limits a body's lists are held to before its schema checks their elements. */
export type ListLimits = Pick<Limits, 'layers' | 'batch' | 'width'>;

/**
 * A body's lists longer than any field may hold, counted before its schema checks each
 * element: zod checks every one (in a union once per branch, with an issue for each that
 * fails), so a few KB of gzip holding millions of rows took gigabytes of memory and a minute
 * to refuse, and could take a JSON thread (or, without them, the process) down. The same 413
 * for 33 layers or a million (the schemas' own bound, LAYERS_CEILING, would answer a 400).
 * A list over its own limit but within the longest is left to the checks after validation,
 * whose messages know the network. Only JSON lists: a binary tensor's data is decoded only
 * when its shape fits it.
 */
export function bodyOverListLimits(url: string, body: unknown, limits: ListLimits): string | undefined {
  if (!isRecord(body)) return undefined;
  if (url === '/init') return Array.isArray(body.layers) ? layersOverLimit('layers', body.layers.length - 1, limits.layers) : undefined;
  const longest = Math.max(limits.batch, limits.width);
  const batch = { longest, limit: limits.batch, setting: 'batch' } as const;
  const width = { longest, limit: limits.width, setting: 'width' } as const;
  const { params } = body;
  if (Array.isArray(params)) {
    const over = layersOverLimit('params', params.length, limits.layers);
    if (over !== undefined) return over;
    for (let l = 0; l < params.length; l++) {
      const layer: unknown = params[l];
      if (!isRecord(layer)) continue;
      const overW = listOverLimit(`params[${l}].W`, layer.W, width, limits.width);
      if (overW !== undefined) return overW;
      const overB = listOverLimit(`params[${l}].b`, layer.b, width);
      if (overB !== undefined) return overB;
    }
  }
  return listOverLimit('x', body.x, batch, limits.width) ?? listOverLimit('y', body.y, batch, limits.width);
}

const isRecord = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

const SETTINGS = { batch: 'GRADSERVE_MAX_BATCH', width: 'GRADSERVE_MAX_WIDTH' } as const;

interface ListBound {
  /** the longest list checked element by element */
  longest: number;
  /** and the limit a longer one is told of */
  limit: number;
  setting: keyof typeof SETTINGS;
}

/** A JSON list longer than `bound.longest`, or, when it holds rows (up to `width` long), one of its rows. */
function listOverLimit(field: string, list: unknown, bound: ListBound, width?: number): string | undefined {
  if (!Array.isArray(list)) return undefined;
  const unit = width !== undefined && Array.isArray(list[0]) ? 'rows' : 'entries';
  if (list.length > bound.longest)
    return `${field} has ${list.length} ${unit}; the ${bound.setting} limit is ${bound.limit} (${SETTINGS[bound.setting]})`;
  if (width === undefined) return undefined;
  for (let r = 0; r < list.length; r++) {
    const row: unknown = list[r];
    if (Array.isArray(row) && row.length > bound.longest) {
      return `${field}[${r}] has ${row.length} entries; the width limit is ${width} (${SETTINGS.width})`;
    }
  }
  return undefined;
}

/**
 * More lists or objects than any body within the limits holds, counted in its bytes before it
 * is parsed: JSON.parse makes one for each `[` and `{`, so 64 MiB of `[],` (64 KB of gzip)
 * took a JSON thread seconds and a gigabyte to parse into 22 million empty lists. A body
 * within the limits holds at most x's and y's rows and every W's rows, and a few objects.
 * Brackets in strings count too: no valid body has any. A few thousand memchr calls for an
 * M-sized body.
 */
export function bodyOverBrackets(bytes: Uint8Array, limits: ListLimits): string | undefined {
  // (objects are far fewer, but held to the same bound: the layer limit's 413 names a params of 100000 {})
  const most = 2 * limits.batch + limits.layers * (limits.width + 4) + 16;
  for (const [bracket, what] of [
    [0x5b, 'lists ("[")'],
    [0x7b, 'objects ("{")'],
  ] as const) {
    let count = 0;
    for (let i = bytes.indexOf(bracket); i !== -1; i = bytes.indexOf(bracket, i + 1)) {
      if (++count > most) {
        return `the body holds more than ${most} ${what}, more than any body within the limits (GRADSERVE_MAX_BATCH, GRADSERVE_MAX_WIDTH, GRADSERVE_MAX_LAYERS)`;
      }
    }
  }
  return undefined;
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
