/** Names shared by the engine and the HTTP layer. One vocabulary, as in tfjs-core. */
export const ACTIVATIONS = ['tanh', 'relu', 'sigmoid', 'linear', 'leaky_relu', 'gelu', 'silu', 'softplus', 'elu'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

/** What /forward may apply to the last layer: an activation, or a softmax over each row (class probabilities). */
export type PredictionActivation = Activation | 'softmax';

export const LOSSES = ['bce', 'bce_logits', 'mse', 'softmax_cross_entropy', 'softmax_cross_entropy_with_integer_labels'] as const;
export type Loss = (typeof LOSSES)[number];

export const REDUCTIONS = ['mean', 'sum'] as const;
export type Reduction = (typeof REDUCTIONS)[number];

export const BACKENDS = ['webasm', 'cpu', 'webgpu', 'headlessgl'] as const;
export type BackendName = (typeof BACKENDS)[number];
/**
 * `auto`: cpu and webasm, and webgpu on a hardware adapter (never headlessgl), each request sent
 * where the cost model says (dispatch.ts).
 */
export const BACKEND_CHOICES = ['auto', ...BACKENDS] as const;
export type BackendChoice = (typeof BACKEND_CHOICES)[number];

/** A row-major float32 matrix. A vector is a matrix with one row. */
export interface Matrix {
  rows: number;
  cols: number;
  data: Float32Array;
}

export interface Layer {
  W: Matrix; // in × out
  b: Float32Array; // out
}

/** A network and a batch of inputs: what a forward pass needs. */
export interface ForwardProblem {
  layers: Layer[];
  x: Matrix; // batch × in_0
  activation: Activation;
  outputActivation: PredictionActivation;
}

/** One loss or value-and-grad problem, already validated and in float32. */
export interface Problem extends ForwardProblem {
  outputActivation: Activation; // a loss applies its own softmax
  y: Matrix; // batch × out_last, or batch × 1 class indices (softmax_cross_entropy_with_integer_labels)
  loss: Loss;
  reduction: Reduction;
}

/** A network shape for Engine.warmUp to compile ahead of its first request. */
export interface WarmupShape {
  widths: number[];
  batch: number;
  activation: Activation;
}

/** A layer's gradients: the shapes of its W and b. */
export type LayerGrad = Layer;

/** A kernel built during a call: gpu.js compiles on first use, so this is its first call's time. */
export interface KernelCompile {
  backend: BackendName;
  op: string;
  ms: number;
}

/** What one engine call did, for Server-Timing and the request log. */
export interface RunStats {
  backend: BackendName;
  /** the kernels this call compiled, in order */
  compiled: KernelCompile[];
  /** their total time */
  compileMs: number;
  computeMs: number;
}

/** Facts about the result a client should hear about (saturation and the like). */
export interface HeadReport {
  /** predictions that hit exactly 1.0 in float32, so log(1 - p) = log(0) */
  saturatedHigh: number;
  /**
   * predictions in [0, 1e-8) for a target above 0: bce's clip holds them at 1e-8 with a
   * gradient of 0, so they cannot move towards their targets (a relu output's 0, a sigmoid
   * below about -18.4)
   */
  stuckAtLowClip: number;
  /** predictions below 0 or above 1 given to a loss that takes probabilities (most likely a wrong output activation) */
  predictionsBelowZero: number;
  predictionsAboveOne: number;
  /** targets outside [0, 1] given to a loss that takes labels in [0, 1] (most likely -1/+1 labels) */
  targetsOutsideUnit: number;
  /** rows of targets that are no probability distribution, given to a row loss (softmax cross-entropy) */
  targetRowsNotSummingToOne: number;
  /** predictions (batch × out) */
  count: number;
  /** the output activation the predictions came through (what the warnings' advice depends on) */
  outputActivation: PredictionActivation;
  /** rows of the batch */
  rows: number;
}

export interface LossResult {
  loss: number;
  head: HeadReport;
  stats: RunStats;
}

export interface ValueAndGradResult extends LossResult {
  grads: LayerGrad[];
}
