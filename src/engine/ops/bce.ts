import { f32, f32Add, f32Div, f32Exp, f32Log, f32Log1p, f32Mul, f32Sub } from '../float32.js';
import type { ElementLossOp } from './head.js';

/**
 * Binary cross-entropy, on probabilities (bce) and on logits (bce_logits).
 *
 * bce is JAX's  p = jnp.clip(pred, 1e-8, 1 - 1e-8); -mean(y*log(p) + (1-y)*log(1-p)),
 * differentiated primitive by primitive. In float32 `1 - 1e-8` is 1.0, so the upper clip
 * does nothing and a saturated prediction gives log(0): NaN/±Inf as in JAX.
 */
const CLIP_LO = f32(1e-8);
const CLIP_HI = f32(1 - 1e-8); // === 1

/** d max(x, lo)/dx and d min(x, hi)/dx with JAX's tie rule: 0.5 when both arguments are equal. */
function maxGrad(x: number, lo: number): number {
  if (x === lo) return 0.5;
  return x > lo ? 1 : 0;
}
function minGrad(x: number, hi: number): number {
  if (x === hi) return 0.5;
  return x < hi ? 1 : 0;
}

export const bce: ElementLossOp = {
  kind: 'element',
  defaultOutputActivation: 'sigmoid',
  takesProbabilities: true,
  takesUnitTargets: true,
  forward: (pred, y) => {
    const p = Math.min(Math.max(pred, CLIP_LO), CLIP_HI);
    return -f32Add(f32Mul(y, f32Log(p)), f32Mul(f32Sub(1, y), f32Log(f32Sub(1, p))));
  },
  backward: (c, pred, y) => {
    const g = -c; // the element is -(y*log(p) + (1-y)*log(1-p))
    const m = Math.max(pred, CLIP_LO);
    const p = Math.min(m, CLIP_HI);
    // y*log(p): d/dp = (g*y)/p ; (1-y)*log(1-p): d/dp = -((g*(1-y))/(1-p))
    const dp = f32Add(f32Div(f32Mul(g, y), p), -f32Div(f32Mul(g, f32Sub(1, y)), f32Sub(1, p)));
    return f32Mul(f32Mul(dp, minGrad(m, CLIP_HI)), maxGrad(pred, CLIP_LO));
  },
  saturation: (pred) => {
    // exactly 1.0: a saturated sigmoid (above 1 is no probability, predictionsAboveOne's warning)
    if (pred === CLIP_HI) return 'high';
    return pred < CLIP_LO ? 'low' : undefined;
  },
};

/**
 * optax.sigmoid_binary_cross_entropy on the output layer's pre-activation z (the output
 * activation must be linear): -y·log_sigmoid(z) - (1 - y)·log_sigmoid(-z), computed as
 * max(z, 0) - z*y + log1p(exp(-|z|)), which never overflows. Its derivative is optax's,
 * sigmoid(z) - y, also at z = 0 (0.5 - y, where max's tie gives 0.5 and sign(0) is 0).
 */
export const bceLogits: ElementLossOp = {
  kind: 'element',
  squashing: 'sigmoid',
  defaultOutputActivation: 'linear',
  takesUnitTargets: true,
  requiredOutputActivation: 'linear',
  forward: (z, y) => f32Add(f32Sub(Math.max(z, 0), f32Mul(z, y)), f32Log1p(f32Exp(-Math.abs(z)))),
  backward: (c, z, y) => {
    const e = f32Exp(-Math.abs(z));
    // d log1p(e)/dz = 1/(1 + e) · e · -sign(z); sign(0) = 0 and max's tie gives 0.5 at z = 0
    const dSoft = f32Mul(f32Mul(f32Div(c, f32Add(1, e)), e), -Math.sign(z));
    return f32Add(f32Sub(f32Mul(c, maxGrad(z, 0)), f32Mul(c, y)), dSoft);
  },
};
