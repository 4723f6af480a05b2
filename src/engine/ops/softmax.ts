import { f32, f32Add, f32Div, f32Exp, f32Log, f32Mul, f32Sub } from '../float32.js';
import type { RowLossOp } from './head.js';

/**
 * optax.softmax_cross_entropy(logits, labels) = -Σ_j labels_j · log_softmax(logits)_j, one
 * value per row, on the output layer's pre-activations (the output activation must be
 * linear). log_softmax is jax.nn.log_softmax's: shifted = z - stop_gradient(max(z)),
 * shifted - log(Σ exp(shifted)), differentiated primitive by primitive as JAX does (no
 * gradient through the max). Sums over a row are taken in float64 and rounded once, as the
 * head sums elements.
 */
export const softmaxCrossEntropy: RowLossOp = {
  kind: 'row',
  defaultOutputActivation: 'linear',
  requiredOutputActivation: 'linear',
  squashing: 'softmax',
  takesUnitTargets: true,
  forwardRow: (z, y, start, cols) => {
    const { max, sumExp } = shift(z, start, cols);
    const lse = f32Log(sumExp);
    let sum = 0;
    for (let j = start; j < start + cols; j++) sum += f32Mul(y[j]!, f32Sub(f32Sub(z[j]!, max), lse));
    return -f32(sum);
  },
  backwardRow: (c, z, y, start, cols, dz) => {
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

/** A row's largest logit and Σ exp(z - max), in float32. */
function shift(z: Float32Array, start: number, cols: number): { max: number; sumExp: number } {
  let max = Number.NEGATIVE_INFINITY;
  for (let j = start; j < start + cols; j++) max = Math.max(max, z[j]!);
  let sum = 0;
  for (let j = start; j < start + cols; j++) sum += f32Exp(f32Sub(z[j]!, max));
  return { max, sumExp: f32(sum) };
}
