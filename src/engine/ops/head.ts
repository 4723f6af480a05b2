import { f32, f32Div } from '../float32.js';
import type { Activation, HeadReport, Loss, PredictionActivation, Reduction } from '../types.js';
import { activationOps } from './activations.js';
import { bce, bceLogits } from './bce.js';
import { mse } from './mse.js';
import { softmaxCrossEntropy, softmaxCrossEntropyWithIntegerLabels, softmaxRows } from './softmax.js';

/** What every loss says about the output layer it takes. */
interface LossBase {
  /** the output activation when the request names none */
  defaultOutputActivation: Activation;
  /** set when the loss applies its own squashing and accepts only this output activation */
  requiredOutputActivation?: Activation;
  /** the squashing it applies itself, for messages */
  squashing?: 'sigmoid' | 'softmax';
  /** the targets it takes are labels in [0, 1] */
  takesUnitTargets?: boolean;
}

/**
 * A loss, element by element, forward and backward side by side, in float32 as JAX
 * evaluates and differentiates it. The head sums the elements (in float64, rounded once:
 * within JAX's own pairwise-reduction error of its result) and applies the reduction over
 * all batch × out elements.
 */
export interface ElementLossOp extends LossBase {
  kind: 'element';
  /** one element's loss from the prediction and the target */
  forward: (pred: number, y: number) => number;
  /** d(element's loss)/d pred, given the element's cotangent `c` */
  backward: (c: number, pred: number, y: number) => number;
  /** predictions that put this loss at the edge of float32 (reported in warnings) */
  saturation?: (pred: number) => 'high' | 'low' | undefined;
  /** the predictions it takes are probabilities, in [0, 1] */
  takesProbabilities?: boolean;
}

/**
 * A loss with one value per row of the batch, from the row's `cols` pre-activations (the
 * output activation is linear): its reduction is over rows, as optax's per-example losses
 * are averaged.
 */
export interface RowLossOp extends LossBase {
  kind: 'row';
  /** y: a distribution per row (batch × out), or a class index per row (batch × 1) */
  targets: 'distribution' | 'index';
  /** the loss of row `row`, from its `cols` values of z (at row · cols) and its targets */
  forwardRow: (z: Float32Array, y: Float32Array, row: number, cols: number) => number;
  /** writes d(row's loss)/dz into dz at [row · cols, (row + 1) · cols), given the row's cotangent `c` */
  backwardRow: (c: number, z: Float32Array, y: Float32Array, row: number, cols: number, dz: Float32Array) => void;
}

export type LossOp = ElementLossOp | RowLossOp;

export const lossOps: Record<Loss, LossOp> = {
  bce,
  bce_logits: bceLogits,
  mse,
  softmax_cross_entropy: softmaxCrossEntropy,
  softmax_cross_entropy_with_integer_labels: softmaxCrossEntropyWithIntegerLabels,
};

/**
 * The loss head: the output layer's activation, the loss and its reduction, on the host.
 * Its cost is O(batch × out_last), small next to the dense layers.
 */
export interface HeadInput {
  z: Float32Array; // pre-activations of the output layer, count = batch × out
  y: Float32Array; // batch × out, or batch class indices for a row loss that takes them
  /** out: the values per row */
  cols: number;
  outputActivation: Activation;
  loss: Loss;
  reduction: Reduction;
}

export interface HeadForward {
  loss: number;
  pred: Float32Array;
  report: HeadReport;
}

/** The output activation applied to the output layer's pre-activations (batch × cols), as predictions. */
export function predict(z: Float32Array, outputActivation: PredictionActivation, cols: number): Float32Array {
  if (outputActivation === 'softmax') return softmaxRows(z, cols);
  return z.map(activationOps[outputActivation].hostForward);
}

export function headForward(input: HeadInput): HeadForward {
  const { z, y, cols, outputActivation, loss, reduction } = input;
  const op = lossOps[loss];
  const pred = predict(z, outputActivation, cols);
  const rows = pred.length / cols;
  const report: HeadReport = {
    saturatedHigh: 0,
    stuckAtLowClip: 0,
    predictionsBelowZero: 0,
    predictionsAboveOne: 0,
    targetsOutsideUnit: 0,
    targetRowsNotSummingToOne: 0,
    count: pred.length,
    rows,
    outputActivation,
  };
  if (op.takesUnitTargets) for (const t of y) if (!(t >= 0 && t <= 1)) report.targetsOutsideUnit++;
  let total = 0;
  if (op.kind === 'row') {
    for (let r = 0; r < rows; r++) {
      total += op.forwardRow(pred, y, r, cols);
      if (op.targets !== 'distribution') continue;
      let sum = 0;
      for (let j = r * cols; j < (r + 1) * cols; j++) sum += y[j]!;
      if (!(Math.abs(sum - 1) <= ROW_SUM_TOLERANCE)) report.targetRowsNotSummingToOne++;
    }
  } else {
    for (let i = 0; i < pred.length; i++) {
      const p = pred[i] as number;
      total += op.forward(p, y[i] as number);
      const edge = op.saturation?.(p);
      if (edge === 'high') report.saturatedHigh++;
      if (edge === 'low' && p >= 0 && (y[i] as number) > 0) report.stuckAtLowClip++;
      if (op.takesProbabilities && p < 0) report.predictionsBelowZero++;
      if (op.takesProbabilities && p > 1) report.predictionsAboveOne++;
    }
  }
  const sum = f32(total);
  return { loss: reduction === 'mean' ? f32Div(sum, reducedOver(op, input)) : sum, pred, report };
}

/** A row of targets further than this from summing to 1 is reported: a distribution per row is what a row loss takes. */
const ROW_SUM_TOLERANCE = 1e-3;

/** How many values a mean divides by: every element, or every row for a row loss. */
const reducedOver = (op: LossOp, { z, cols }: HeadInput) => (op.kind === 'row' ? z.length / cols : z.length);

/** Cotangent of the loss with respect to the output layer's pre-activations. */
export function headBackward(head: HeadInput, pred: Float32Array): Float32Array {
  const op = lossOps[head.loss];
  const { y, z, cols } = head;
  const n = pred.length;
  // mean(t): each value's cotangent is 1/N in float32; sum(t): 1
  const c = head.reduction === 'mean' ? f32Div(1, reducedOver(op, head)) : 1;
  const dz = new Float32Array(n);
  if (op.kind === 'row') {
    // its output activation is linear (requiredOutputActivation): pred is z
    for (let row = 0; row < n / cols; row++) op.backwardRow(c, pred, y, row, cols, dz);
    return dz;
  }
  const act = activationOps[head.outputActivation];
  for (let i = 0; i < n; i++) {
    const p = pred[i] as number;
    const dpred = op.backward(c, p, y[i] as number);
    dz[i] = act.hostBackward(dpred, act.derivativeOf === 'z' ? (z[i] as number) : p);
  }
  return dz;
}
