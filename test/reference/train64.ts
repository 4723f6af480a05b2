import { threefry2x32 } from '../../src/engine/prng.js';
import { type Case64, type Layer64, loss64, valueAndGrad64 } from './mlp64.js';

/**
 * optax's sgd, momentum (trace) and adam written out in float64 from optax's documented
 * update rules, for comparison with the engine's float32 training loop; minibatches as the
 * README describes them (threefry2x32 itself is pinned by the /init tests).
 */
export type Optimizer64 =
  | { name: 'sgd'; learningRate: number }
  | { name: 'momentum'; learningRate: number; momentum: number }
  | { name: 'adam'; learningRate: number; b1: number; b2: number; eps: number };

/**
 * The README's minibatches: epoch e is a Fisher–Yates shuffle of the rows with the words of
 * stream 2³¹ + e (for i from n − 1 down to 1, j = ⌊word_i · (i + 1) / 2³²⌋, swap i and j);
 * the epochs, concatenated, are cut into consecutive batches of batchSize rows.
 */
export function minibatchRows(n: number, batchSize: number, seed: number, steps: number): number[][] {
  const sequence: number[] = [];
  for (let epoch = 0; sequence.length < steps * batchSize; epoch++) {
    const order = Array.from({ length: n }, (_, i) => i);
    for (let i = n - 1; i > 0; i--) {
      const word = threefry2x32(0, seed, 2 ** 31 + epoch, i)[0];
      const j = Math.floor((word * (i + 1)) / 2 ** 32);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    sequence.push(...order);
  }
  return Array.from({ length: steps }, (_, t) => sequence.slice(t * batchSize, (t + 1) * batchSize));
}

/** `losses[t]`: the loss of step t's (mini)batch before its update; the last, of the final params on the whole batch. */
export function train64(
  c: Case64,
  opt: Optimizer64,
  steps: number,
  minibatch?: { batchSize: number; seed: number },
): { params: Layer64[]; losses: number[] } {
  const batches = minibatch && minibatchRows(c.x.length, minibatch.batchSize, minibatch.seed, steps);
  let params = c.params.map((p) => ({ W: p.W.map((r) => [...r]), b: [...p.b] }));
  const zero = () => params.map((p) => ({ W: p.W.map((r) => r.map(() => 0)), b: p.b.map(() => 0) }));
  const m = zero(); // momentum trace, or adam's first moment
  const v = zero(); // adam's second moment
  const losses: number[] = [];
  for (let t = 1; t <= steps; t++) {
    const rows = batches?.[t - 1];
    const batch = rows ? { ...c, x: rows.map((r) => c.x[r]!), y: rows.map((r) => c.y[r]!) } : c;
    const { loss, grads } = valueAndGrad64({ ...batch, params });
    losses.push(loss);
    const step = (p: number, g: number, mi: { get: () => number; set: (x: number) => void }, vi: typeof mi): number => {
      if (opt.name === 'sgd') return p - opt.learningRate * g;
      if (opt.name === 'momentum') {
        mi.set(g + opt.momentum * mi.get());
        return p - opt.learningRate * mi.get();
      }
      mi.set((1 - opt.b1) * g + opt.b1 * mi.get());
      vi.set((1 - opt.b2) * g * g + opt.b2 * vi.get());
      const mHat = mi.get() / (1 - opt.b1 ** t);
      const vHat = vi.get() / (1 - opt.b2 ** t);
      return p - (opt.learningRate * mHat) / (Math.sqrt(vHat) + opt.eps);
    };
    const cell = (arr: number[], k: number) => ({ get: () => arr[k]!, set: (x: number) => (arr[k] = x) });
    params = params.map((p, l) => ({
      W: p.W.map((row, i) => row.map((w, j) => step(w, grads[l]!.W[i]![j]!, cell(m[l]!.W[i]!, j), cell(v[l]!.W[i]!, j)))),
      b: p.b.map((bj, j) => step(bj, grads[l]!.b[j]!, cell(m[l]!.b, j), cell(v[l]!.b, j))),
    }));
  }
  losses.push(loss64({ ...c, params }));
  return { params, losses };
}
