/**
 * An independent float64 reference for the MLP loss and its gradients: plain nested
 * arrays, plain loops, backprop written out by hand from the math (not from the engine's
 * code). Its own gradients are checked against central finite differences in the tests.
 */
export type Act = 'tanh' | 'relu' | 'sigmoid' | 'linear';
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
  reduction: 'mean' | 'sum';
}

const f: Record<Act, (z: number) => number> = {
  tanh: Math.tanh,
  relu: (z) => Math.max(z, 0),
  sigmoid: (z) => 1 / (1 + Math.exp(-z)),
  linear: (z) => z,
};
/** derivative in terms of the pre-activation z */
const df: Record<Act, (z: number) => number> = {
  tanh: (z) => 1 - Math.tanh(z) ** 2,
  relu: (z) => (z > 0 ? 1 : 0),
  sigmoid: (z) => {
    const s = 1 / (1 + Math.exp(-z));
    return s * (1 - s);
  },
  linear: () => 1,
};

const EPS = 1e-8;

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
    a = z.map((r) => r.map(f[act]));
  });
  let total = 0;
  let count = 0;
  a.forEach((row, n) => {
    row.forEach((pr, j) => {
      const p = Math.min(Math.max(pr, EPS), 1 - EPS);
      const y = c.y[n]![j]!;
      total += y * Math.log(p) + (1 - y) * Math.log(1 - p);
      count++;
    });
  });
  return c.reduction === 'mean' ? -total / count : -total;
}

export function valueAndGrad64(c: Case64): { loss: number; grads: Layer64[] } {
  const L = c.params.length;
  const as: number[][][] = [c.x];
  const zs: number[][][] = [];
  c.params.forEach((layer, l) => {
    const z = layerForward(as[l]!, layer);
    zs.push(z);
    const act = l === L - 1 ? c.outputActivation : c.activation;
    as.push(z.map((r) => r.map(f[act])));
  });
  const pred = as[L]!;
  const count = pred.length * pred[0]!.length;
  const scale = c.reduction === 'mean' ? 1 / count : 1;
  // dL/dpred for -scale * Σ [y log p + (1-y) log(1-p)], p = clip(pred) (inside the clip)
  let delta = pred.map((row, n) =>
    row.map((pr, j) => {
      const y = c.y[n]![j]!;
      const inside = pr > EPS && pr < 1 - EPS ? 1 : 0;
      const dp = -scale * (y / pr - (1 - y) / (1 - pr));
      return dp * inside * df[c.outputActivation](zs[L - 1]![n]![j]!);
    }),
  );
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
