/** Names shared by the engine and the HTTP layer. One vocabulary, as in tfjs-core. */
export const ACTIVATIONS = ['tanh', 'relu', 'sigmoid', 'linear'] as const;
export type Activation = (typeof ACTIVATIONS)[number];

export const LOSSES = ['bce'] as const;
export type Loss = (typeof LOSSES)[number];

export const REDUCTIONS = ['mean', 'sum'] as const;
export type Reduction = (typeof REDUCTIONS)[number];

export const BACKENDS = ['webasm', 'cpu'] as const;
export type BackendName = (typeof BACKENDS)[number];

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

/** One loss or value-and-grad problem, already validated and in float32. */
export interface Problem {
  layers: Layer[];
  x: Matrix; // batch × in_0
  y: Matrix; // batch × out_last
  activation: Activation;
  outputActivation: Activation;
  loss: Loss;
  reduction: Reduction;
}

export interface LayerGrad {
  W: Matrix;
  b: Float32Array;
}

/** What one engine call did, for Server-Timing and the request log. */
export interface RunStats {
  backend: BackendName;
  kernelsCompiled: number;
  compileMs: number;
  computeMs: number;
}

/** Facts about the result a client should hear about (saturation and the like). */
export interface HeadReport {
  /** predictions that hit exactly 1.0 in float32, so log(1 - p) = log(0) */
  saturatedHigh: number;
  /** predictions below the clip's lower bound 1e-8 (clipped, gradient 0) */
  clippedLow: number;
  count: number;
}

export interface LossResult {
  loss: number;
  head: HeadReport;
  stats: RunStats;
}

export interface ValueAndGradResult extends LossResult {
  grads: LayerGrad[];
}
