/**
 * An independent float64 reference for the MLP loss and its gradients: plain nested
 * arrays, plain loops, backprop written out by hand from the math (not from the engine's
 * code). Its own gradients are checked against central finite differences in the tests.
 */
export type Act = 'tanh' | 'relu' | 'sigmoid' | 'linear' | 'leaky_relu' | 'gelu' | 'silu' | 'softplus' | 'elu';
export type Loss64 = 'bce' | 'bce_logits' | 'mse' | 'softmax_cross_entropy' | 'softmax_cross_entropy_with_integer_labels';
export interface Layer64 {
  W: number[][];
  b: number[];
}
export interface Case64 {
  params: Layer64[];
  x: number[][];
  y: number[][];
  activation: Act;
  outputActivation: Act;
  loss: Loss64;
  reduction: 'mean' | 'sum';
}

const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const GELU_C = Math.sqrt(2 / Math.PI);

/** each activation in float64 */
export const activation64: Record<Act, (z: number) => number> = {
  tanh: Math.tanh,
  relu: (z) => Math.max(z, 0),
  sigmoid,
  linear: (z) => z,
  leaky_relu: (z) => (z >= 0 ? z : 0.01 * z),
  gelu: (z) => 0.5 * z * (1 + Math.tanh(GELU_C * (z + 0.044715 * z ** 3))),
  silu: (z) => z * sigmoid(z),
  softplus: (z) => Math.log1p(Math.exp(-Math.abs(z))) + Math.max(z, 0),
  elu: (z) => (z > 0 ? z : Math.expm1(z)),
};
/** derivative in terms of the pre-activation z */
const df: Record<Act, (z: number) => number> = {
  tanh: (z) => 1 - Math.tanh(z) ** 2,
  relu: (z) => (z > 0 ? 1 : 0),
  sigmoid: (z) => sigmoid(z) * (1 - sigmoid(z)),
  linear: () => 1,
  leaky_relu: (z) => (z >= 0 ? 1 : 0.01),
  gelu: (z) => {
    const t = Math.tanh(GELU_C * (z + 0.044715 * z ** 3));
    return 0.5 * (1 + t) + 0.5 * z * (1 - t * t) * GELU_C * (1 + 3 * 0.044715 * z * z);
  },
  silu: (z) => sigmoid(z) * (1 + z * (1 - sigmoid(z))),
  softplus: sigmoid,
  elu: (z) => (z > 0 ? 1 : Math.exp(z)),
};

const EPS = 1e-8;

type ElementLoss64 = Exclude<Loss64, 'softmax_cross_entropy' | 'softmax_cross_entropy_with_integer_labels'>;

/** Each loss element from the output pre-activation z, its activation p = act(z), and the target y. */
const lossTerm: Record<ElementLoss64, (p: number, z: number, y: number) => number> = {
  bce: (pr, _z, y) => {
    const p = Math.min(Math.max(pr, EPS), 1 - EPS);
    return -(y * Math.log(p) + (1 - y) * Math.log(1 - p));
  },
  bce_logits: (_p, z, y) => Math.max(z, 0) - z * y + Math.log1p(Math.exp(-Math.abs(z))),
  mse: (p, _z, y) => (p - y) ** 2,
};
/** d term / dz (through the output activation) */
const dLossTerm: Record<ElementLoss64, (p: number, z: number, y: number, act: Act) => number> = {
  bce: (pr, z, y, act) => {
    const inside = pr > EPS && pr < 1 - EPS ? 1 : 0;
    return -(y / pr - (1 - y) / (1 - pr)) * inside * df[act](z);
  },
  bce_logits: (_p, z, y) => sigmoid(z) - y,
  mse: (p, z, y, act) => 2 * (p - y) * df[act](z),
};

/** softmax cross-entropy of one row of logits: logsumexp(z)·Σy − Σ y·z */
function softmaxRow(z: number[], y: number[]): { loss: number; dz: number[] } {
  const max = Math.max(...z);
  const e = z.map((v) => Math.exp(v - max));
  const se = e.reduce((a, b) => a + b, 0);
  const lse = max + Math.log(se);
  const sy = y.reduce((a, b) => a + b, 0);
  return { loss: z.reduce((s, v, j) => s + y[j]! * (lse - v), 0), dz: e.map((v, j) => (v / se) * sy - y[j]!) };
}

/**
 * The loss's total and its derivative with respect to each output pre-activation, before the
 * reduction; `count` is what a mean divides by: every element, or every row for softmax.
 */
function head64(c: Case64, pred: number[][], z: number[][]): { total: number; count: number; dz: number[][] } {
  const loss = c.loss;
  if (loss === 'softmax_cross_entropy' || loss === 'softmax_cross_entropy_with_integer_labels') {
    // class indices (one per row) are one-hot rows
    const target = (n: number) => (loss === 'softmax_cross_entropy' ? c.y[n]! : z[n]!.map((_, j) => (j === c.y[n]![0] ? 1 : 0)));
    const rows = z.map((row, n) => softmaxRow(row, target(n)));
    return { total: rows.reduce((s, r) => s + r.loss, 0), count: rows.length, dz: rows.map((r) => r.dz) };
  }
  let total = 0;
  const dz = pred.map((row, n) =>
    row.map((p, j) => {
      total += lossTerm[loss](p, z[n]![j]!, c.y[n]![j]!);
      return dLossTerm[loss](p, z[n]![j]!, c.y[n]![j]!, c.outputActivation);
    }),
  );
  return { total, count: pred.length * pred[0]!.length, dz };
}

function layerForward(a: number[][], { W, b }: Layer64): number[][] {
  return a.map((row) => b.map((bj, j) => row.reduce((s, v, k) => s + v * W[k]![j]!, 0) + bj));
}

export function loss64(c: Case64): number {
  let a = c.x;
  const L = c.params.length;
  let z: number[][] = [];
  c.params.forEach((layer, l) => {
    z = layerForward(a, layer);
    const act = l === L - 1 ? c.outputActivation : c.activation;
    a = z.map((r) => r.map(activation64[act]));
  });
  const { total, count } = head64(c, a, z);
  return c.reduction === 'mean' ? total / count : total;
}

/** The network's outputs after the output activation. */
export function predict64(c: Pick<Case64, 'params' | 'x' | 'activation' | 'outputActivation'>): number[][] {
  return c.params.reduce((a, layer, l) => {
    const act = l === c.params.length - 1 ? c.outputActivation : c.activation;
    return layerForward(a, layer).map((r) => r.map(activation64[act]));
  }, c.x);
}

export function valueAndGrad64(c: Case64): { loss: number; grads: Layer64[] } {
  const L = c.params.length;
  const as: number[][][] = [c.x];
  const zs: number[][][] = [];
  c.params.forEach((layer, l) => {
    const z = layerForward(as[l]!, layer);
    zs.push(z);
    const act = l === L - 1 ? c.outputActivation : c.activation;
    as.push(z.map((r) => r.map(activation64[act])));
  });
  const head = head64(c, as[L]!, zs[L - 1]!);
  const scale = c.reduction === 'mean' ? 1 / head.count : 1;
  let delta = head.dz.map((row) => row.map((d) => scale * d));
  const grads: Layer64[] = new Array(L);
  for (let l = L - 1; l >= 0; l--) {
    const { W } = c.params[l]!;
    const aPrev = as[l]!;
    grads[l] = {
      W: W.map((_, i) => W[0]!.map((__, j) => aPrev.reduce((s, row, n) => s + row[i]! * delta[n]![j]!, 0))),
      b: W[0]!.map((_, j) => delta.reduce((s, row) => s + row[j]!, 0)),
    };
    if (l > 0) {
      const zPrev = zs[l - 1]!;
      delta = delta.map((row, n) => W.map((wi, i) => wi.reduce((s, wij, j) => s + wij * row[j]!, 0) * df[c.activation](zPrev[n]![i]!)));
    }
  }
  return { loss: loss64(c), grads };
}

/** Central finite difference of loss64 with respect to one parameter. */
export function finiteDiff64(c: Case64, layer: number, which: 'W' | 'b', i: number, j = 0, h = 1e-6): number {
  const bump = (delta: number): number => {
    const params = c.params.map((p) => ({ W: p.W.map((r) => [...r]), b: [...p.b] }));
    if (which === 'W') params[layer]!.W[i]![j]! += delta;
    else params[layer]!.b[i]! += delta;
    return loss64({ ...c, params });
  };
  return (bump(h) - bump(-h)) / (2 * h);
}

/** ‖got − ref‖ / ‖ref‖ over all entries (the acceptance metric). */
export function relError(got: number[], ref: number[]): number {
  let num = 0;
  let den = 0;
  ref.forEach((r, k) => {
    num += (got[k]! - r) ** 2;
    den += r * r;
  });
  return den === 0 ? Math.sqrt(num) : Math.sqrt(num / den);
}
