import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import { createOptimizer, type OptimizerOptions } from './optim.js';
import { words } from './prng.js';
import type { Layer, LayerGrad, Matrix, Problem } from './types.js';

export interface TrainOptions {
  optimizer: OptimizerOptions;
  steps: number;
  /** rows per step; the whole batch when absent or not smaller than it */
  batchSize?: number;
  /** seed of the minibatch shuffle */
  seed: number;
}

/** How many rows each step computes: batchSize, or the whole batch when it is absent or larger. */
export const rowsPerStep = (options: Pick<TrainOptions, 'batchSize'>, rows: number): number => Math.min(options.batchSize ?? rows, rows);

export interface HistoryEntry {
  step: number;
  loss: number;
}

export interface TrainLoop {
  params: Layer[];
  history: HistoryEntry[];
  /** the step whose loss was not finite, where training stopped (its update not applied) */
  stoppedAt?: number;
}

/** The loss and gradients of one step's problem (the engine runs it on its kernels). */
export type ValueAndGrad = (problem: Problem) => Promise<{ loss: number; grads: LayerGrad[] }>;

/** History keeps every step up to this many, then every ⌈steps / HISTORY_POINTS⌉-th and the last. */
const HISTORY_POINTS = 100;

/** The first stream of the minibatch shuffle; epoch e uses stream SHUFFLE_STREAM + e. */
const SHUFFLE_STREAM = 0x80000000;

/**
 * Gradient descent as an optax loop: at each step value_and_grad on a minibatch, then one
 * optimizer update. Minibatches: each epoch is a Fisher–Yates shuffle of the rows (random
 * words from prng.ts, the seed's stream SHUFFLE_STREAM + epoch); epochs are concatenated
 * and cut into consecutive batches of batchSize, so every batch is full and a batch may
 * straddle two epochs. Yields to the event loop between steps.
 */
export async function trainLoop(problem: Problem, options: TrainOptions, valueAndGrad: ValueAndGrad): Promise<TrainLoop> {
  const params = problem.layers.map((p) => ({ W: { ...p.W, data: Float32Array.from(p.W.data) }, b: Float32Array.from(p.b) }));
  const tensors = params.flatMap((p) => [p.W.data, p.b]);
  const update = createOptimizer(
    options.optimizer,
    tensors.map((t) => t.length),
  );
  const n = problem.x.rows;
  const batchSize = rowsPerStep(options, n);
  const nextBatch = batchSize < n ? minibatches(n, batchSize, options.seed) : undefined;
  const interval = Math.ceil(options.steps / HISTORY_POINTS);
  const history: HistoryEntry[] = [];
  for (let step = 0; step < options.steps; step++) {
    const rows = nextBatch?.();
    const batch = rows ? { ...problem, x: pick(problem.x, rows), y: pick(problem.y, rows) } : problem;
    const { loss, grads } = await valueAndGrad({ ...batch, layers: params });
    if (step % interval === 0 || step === options.steps - 1 || !Number.isFinite(loss)) history.push({ step, loss });
    if (!Number.isFinite(loss)) return { params, history, stoppedAt: step };
    update(
      tensors,
      grads.flatMap((g) => [g.W.data, g.b]),
    );
    await yieldToEventLoop(); // on cpu the kernels are synchronous: let other requests in
  }
  return { params, history };
}

function minibatches(n: number, batchSize: number, seed: number): () => number[] {
  let epoch = -1;
  let order: number[] = [];
  let next = n;
  return () => {
    const rows: number[] = [];
    while (rows.length < batchSize) {
      if (next === n) {
        epoch++;
        order = shuffle(n, words(seed, SHUFFLE_STREAM + epoch));
        next = 0;
      }
      rows.push(order[next++]!);
    }
    return rows;
  };
}

/** Fisher–Yates: j = ⌊word · (i + 1) / 2³²⌋, exact in float64 for any batch a request can carry. */
function shuffle(n: number, word: (i: number) => number): number[] {
  const order = Array.from({ length: n }, (_, i) => i);
  for (let i = n - 1; i > 0; i--) {
    const j = Math.floor((word(i) * (i + 1)) / 2 ** 32);
    [order[i], order[j]] = [order[j]!, order[i]!];
  }
  return order;
}

function pick(m: Matrix, rows: number[]): Matrix {
  const data = new Float32Array(rows.length * m.cols);
  rows.forEach((r, k) => {
    data.set(m.data.subarray(r * m.cols, (r + 1) * m.cols), k * m.cols);
  });
  return { rows: rows.length, cols: m.cols, data };
}
