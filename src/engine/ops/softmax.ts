import { f32, f32Add, f32Div, f32Exp, f32Log, f32Mul, f32Sub } from '../float32.js';
import type { RowLossOp } from './head.js';

/**
 * The softmax cross-entropies, per row of the output layer's pre-activations (logits; the
 * output activation must be linear). log_softmax is jax.nn.log_softmax's: shifted =
 * z - stop_gradient(max(z)), differentiated primitive by primitive as JAX does (no gradient
 * through the max). Sums over a row are taken in float64 and rounded once, as the head sums
 * elements.
 *
 * optax.softmax_cross_entropy(logits, labels) = -Σ_j labels_j · log_softmax(logits)_j, one
 * value per row: y holds a probability distribution per row (one-hot for class labels).
 */
export const softmaxCrossEntropy: RowLossOp = {
  kind: 'row',
  defaultOutputActivation: 'linear',
  requiredOutputActivation: 'linear',
  squashing: 'softmax',
  takesUnitTargets: true,
  targets: 'distribution',
  forwardRow: (z, y, row, cols) => {
    const start = row * cols;
    const { max, sumExp } = shift(z, start, cols);
    const lse = f32Log(sumExp);
    let sum = 0;
    for (let j = start; j < start + cols; j++) sum += f32Mul(y[j]!, f32Sub(f32Sub(z[j]!, max), lse));
    return -f32(sum);
  },
  backwardRow: (c, z, y, row, cols, dz) => {
    const start = row * cols;
    const { max, sumExp } = shift(z, start, cols);
    // the row's value is -Σ(y·logp): each logp_j gets g_j = (-c)·y_j
    let sumG = 0;
    for (let j = start; j < start + cols; j++) {
      dz[j] = f32Mul(-c, y[j]!);
      sumG += dz[j]!;
    }
    // logp = shifted - log(s), s = Σ exp(shifted): s gets -Σg / s, each exp(shifted_j) that, times itself
    const ds = f32Div(-f32(sumG), sumExp);
    for (let j = start; j < start + cols; j++) dz[j] = f32Add(dz[j]!, f32Mul(ds, f32Exp(f32Sub(z[j]!, max))));
  },
};

/**
 * optax.softmax_cross_entropy_with_integer_labels(logits, labels): y holds one class index
 * per row, and the row's value is log(Σ exp(shifted)) - shifted[label], as optax computes it
 * (the same numbers as one-hot rows given to softmax_cross_entropy).
 */
export const softmaxCrossEntropyWithIntegerLabels: RowLossOp = {
  kind: 'row',
  defaultOutputActivation: 'linear',
  requiredOutputActivation: 'linear',
  squashing: 'softmax',
  targets: 'index',
  forwardRow: (z, y, row, cols) => {
    const start = row * cols;
    const { max, sumExp } = shift(z, start, cols);
    return f32Sub(f32Log(sumExp), f32Sub(z[start + y[row]!]!, max));
  },
  backwardRow: (c, z, y, row, cols, dz) => {
    const start = row * cols;
    const { max, sumExp } = shift(z, start, cols);
    // log(s) gets c, so s gets c / s and each exp(shifted_j) that, times itself; shifted[label] gets -c
    const ds = f32Div(c, sumExp);
    for (let j = start; j < start + cols; j++) dz[j] = f32Mul(ds, f32Exp(f32Sub(z[j]!, max)));
    const k = start + y[row]!;
    dz[k] = f32Add(dz[k]!, -c);
  },
};

/**
 * jax.nn.softmax over each row of batch × cols logits, in float32: exp(z − max(z)) divided by
 * the row's sum of them (a sum in float64, rounded once, as the losses' rows are summed).
 */
export function softmaxRows(z: Float32Array, cols: number): Float32Array {
  const out = new Float32Array(z.length);
  for (let start = 0; start < z.length; start += cols) {
    const { max, sumExp } = shift(z, start, cols);
    for (let j = start; j < start + cols; j++) out[j] = f32Div(f32Exp(f32Sub(z[j]!, max)), sumExp);
  }
  return out;
}

/** A row's largest logit and Σ exp(z - max), in float32. */
function shift(z: Float32Array, start: number, cols: number): { max: number; sumExp: number } {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = start; j < start + cols; j++) max = Math.max(max, z[j]!);
  let sum = 0;
  for (let j = start; j < start + cols; j++) sum += f32Exp(f32Sub(z[j]!, max));
  return { max, sumExp: f32(sum) };
}
