import { f32, f32Div } from '../float32.js';
import type { Activation, HeadReport, Loss, Reduction } from '../types.js';
import { activationOps } from './activations.js';
import { bce, bceLogits } from './bce.js';
import { mse } from './mse.js';

/**
 * A loss, element by element, forward and backward side by side, in float32 as JAX
 * evaluates and differentiates it. The head sums the elements (in float64, rounded once:
 * within JAX's own pairwise-reduction error of its result) and applies the reduction.
 */
export interface LossOp {
  /** the output activation when the request names none */
  defaultOutputActivation: Activation;
  /** set when the loss applies its own squashing and accepts only this output activation */
  requiredOutputActivation?: Activation;
  /** one element's loss from the prediction and the target */
  forward: (pred: number, y: number) => number;
  /** d(element's loss)/d pred, given the element's cotangent `c` */
  backward: (c: number, pred: number, y: number) => number;
  /** predictions that put this loss at the edge of float32 (reported in warnings) */
  saturation?: (pred: number) => 'high' | 'low' | undefined;
  /** the predictions it takes are probabilities, in [0, 1] */
  takesProbabilities?: boolean;
  /** the targets it takes are labels in [0, 1] */
  takesUnitTargets?: boolean;
}

export const lossOps: Record<Loss, LossOp> = { bce, bce_logits: bceLogits, mse };

/**
 * The loss head: the output layer's activation, the loss and its reduction, on the host.
 * Its cost is O(batch × out_last), small next to the dense layers.
 */
export interface HeadInput {
  z: Float32Array; // pre-activations of the output layer, count = batch × out
  y: Float32Array;
  outputActivation: Activation;
  loss: Loss;
  reduction: Reduction;
}

export interface HeadForward {
  loss: number;
  pred: Float32Array;
  report: HeadReport;
}

/** The output activation applied to the output layer's pre-activations, as predictions. */
export function predict(z: Float32Array, outputActivation: Activation): Float32Array {
  return z.map(activationOps[outputActivation].hostForward);
}

export function headForward({ z, y, outputActivation, loss, reduction }: HeadInput): HeadForward {
  const op = lossOps[loss];
  const pred = predict(z, outputActivation);
  const report: HeadReport = {
    saturatedHigh: 0,
    clippedLow: 0,
    predictionsBelowZero: 0,
    predictionsAboveOne: 0,
    targetsOutsideUnit: 0,
    count: pred.length,
  };
  let total = 0;
  for (let i = 0; i < pred.length; i++) {
    const p = pred[i] as number;
    const t = y[i] as number;
    total += op.forward(p, t);
    const edge = op.saturation?.(p);
    if (edge === 'high') report.saturatedHigh++;
    if (edge === 'low') report.clippedLow++;
    if (op.takesProbabilities && p < 0) report.predictionsBelowZero++;
    if (op.takesProbabilities && p > 1) report.predictionsAboveOne++;
    if (op.takesUnitTargets && !(t >= 0 && t <= 1)) report.targetsOutsideUnit++;
  }
  const sum = f32(total);
  return { loss: reduction === 'mean' ? f32Div(sum, pred.length) : sum, pred, report };
}

/** Cotangent of the loss with respect to the output layer's pre-activations. */
export function headBackward(head: HeadInput, pred: Float32Array): Float32Array {
  const op = lossOps[head.loss];
  const act = activationOps[head.outputActivation];
  const { y, z } = head;
  const n = pred.length;
  // mean(t): each element's cotangent is 1/N in float32; sum(t): 1
  const c = head.reduction === 'mean' ? f32Div(1, n) : 1;
  const dz = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const p = pred[i] as number;
    const dpred = op.backward(c, p, y[i] as number);
    dz[i] = act.hostBackward(dpred, act.derivativeOf === 'z' ? (z[i] as number) : p);
  }
  return dz;
}
