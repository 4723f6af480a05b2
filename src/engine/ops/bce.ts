import { f32, f32Add, f32Div, f32Log, f32Mul, f32Sub } from '../float32.js';
import type { Activation, HeadReport, Reduction } from '../types.js';
import { activationOps } from './activations.js';

/**
 * The loss head: output activation + binary cross-entropy, forward and backward, in
 * float32 exactly as JAX evaluates
 *   p = jnp.clip(pred, 1e-8, 1 - 1e-8); -mean(y*log(p) + (1-y)*log(1-p))
 * and differentiates it primitive by primitive. In float32 `1 - 1e-8` is 1.0, so the
 * upper clip does nothing and a saturated prediction gives log(0): NaN/±Inf as in JAX.
 * Its cost is O(batch × out_last), small next to the dense layers.
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

export interface BceHeadInput {
  z: Float32Array; // pre-activations of the output layer, count = batch × out
  y: Float32Array;
  outputActivation: Activation;
  reduction: Reduction;
}

export interface BceForward {
  loss: number;
  pred: Float32Array;
  report: HeadReport;
}

export function bceForward({ z, y, outputActivation, reduction }: BceHeadInput): BceForward {
  const act = activationOps[outputActivation];
  const n = z.length;
  const pred = new Float32Array(n);
  let saturatedHigh = 0;
  let clippedLow = 0;
  // Accumulate in float64 and round once: closer to the exact sum than a float32 running
  // sum, and within JAX's own (pairwise) reduction error of its result.
  let total = 0;
  for (let i = 0; i < n; i++) {
    const pr = act.hostForward(z[i] as number);
    pred[i] = pr;
    if (pr >= CLIP_HI) saturatedHigh++;
    if (pr < CLIP_LO) clippedLow++;
    const p = Math.min(Math.max(pr, CLIP_LO), CLIP_HI);
    const yi = y[i] as number;
    const term = f32Add(f32Mul(yi, f32Log(p)), f32Mul(f32Sub(1, yi), f32Log(f32Sub(1, p))));
    total += term;
  }
  const sum = f32(total);
  const loss = reduction === 'mean' ? -f32Div(sum, n) : -sum;
  return { loss, pred, report: { saturatedHigh, clippedLow, count: n } };
}

/** Cotangent of the loss with respect to the output layer's pre-activations. */
export function bceBackward(head: BceHeadInput, pred: Float32Array): Float32Array {
  const act = activationOps[head.outputActivation];
  const { y } = head;
  const n = pred.length;
  // -mean(t): the cotangent of each term is -1/N (float32), of -sum(t) it is -1.
  const g = head.reduction === 'mean' ? -f32Div(1, n) : -1;
  const dz = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const pr = pred[i] as number;
    const yi = y[i] as number;
    const m = Math.max(pr, CLIP_LO);
    const p = Math.min(m, CLIP_HI);
    // y*log(p): d/dp = (g*y)/p ; (1-y)*log(1-p): d/dp = -((g*(1-y))/(1-p))
    const dp1 = f32Div(f32Mul(g, yi), p);
    const dp2 = -f32Div(f32Mul(g, f32Sub(1, yi)), f32Sub(1, p));
    const dp = f32Add(dp1, dp2);
    const dpred = f32Mul(f32Mul(dp, minGrad(m, CLIP_HI)), maxGrad(pr, CLIP_LO));
    dz[i] = act.hostBackward(dpred, pr);
  }
  return dz;
}
