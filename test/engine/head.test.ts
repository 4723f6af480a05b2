import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { activationOps } from '../../src/engine/ops/activations.js';
import { type HeadInput, headBackward, headForward } from '../../src/engine/ops/head.js';
import { ACTIVATIONS, type Activation, type Loss } from '../../src/engine/types.js';
import { activation64 } from '../reference/mlp64.js';

const head = (z: number[], y: number[], loss: Loss = 'bce', outputActivation: Activation = 'linear', cols = 1): HeadInput => ({
  z: Float32Array.from(z),
  y: Float32Array.from(y),
  cols,
  outputActivation,
  loss,
  reduction: 'sum',
});

function gradOf(h: HeadInput): Float32Array {
  return headBackward(h, headForward(h).pred);
}

/** central finite difference of one element's float64 loss */
const centralDiff = (f: (v: number) => number, v: number, step = 1e-4) => (f(v + step) - f(v - step)) / (2 * step);

describe('bce head', () => {
  it("follows jnp.clip's gradient: 1 inside, 0 outside, 0.5 exactly at a bound", () => {
    const lo = Math.fround(1e-8);
    const dz = gradOf(head([0.5, lo, lo / 2, 1.5], [1, 1, 1, 0]));
    assert.equal(dz[0], Math.fround(-1 / 0.5)); // inside: d/dp of -log(p) = -1/p
    assert.equal(dz[1], Math.fround(-1 / lo) * 0.5); // at the lower bound: half
    assert.equal(Object.is(dz[2], 0) || Object.is(dz[2], -0), true); // below it: clipped, no gradient
    // above 1: clip to 1 (1 - 1e-8 is 1.0 in float32), gradient 0 times an infinite cotangent → NaN
    assert.ok(Number.isNaN(dz[3]));
  });

  it('matches the float64 derivative inside the clip for every output activation', () => {
    for (const act of ACTIVATIONS) {
      const act64 = activation64[act];
      // the points of a grid whose prediction is well inside the clip (only there is bce's
      // gradient smooth), at least three of them for every activation
      const z = Array.from({ length: 25 }, (_, k) => -3 + k / 4).filter((v) => act64(v) > 0.01 && act64(v) < 0.99);
      assert.ok(z.length >= 3, `${act}: ${z.length} points checked`);
      const y = z.map((_, i) => i % 2);
      const dz = gradOf(head(z, y, 'bce', act));
      z.forEach((zi, i) => {
        const f = (v: number) => {
          const p = act64(v);
          return -(y[i]! * Math.log(p) + (1 - y[i]!) * Math.log(1 - p));
        };
        const fd = centralDiff(f, zi, 1e-3);
        assert.ok(Math.abs(dz[i]! - fd) <= 1e-3 * Math.max(1, Math.abs(fd)), `${act} at ${zi}: ${dz[i]} vs ${fd}`);
      });
    }
  });

  it('counts predictions under the clip only where they are stuck: below 1e-8 for a target above 0', () => {
    // relu: 0, 0, 0 and 0.5 for targets 0, 1, 0.25, 1: the first is right where it is
    const { report } = headForward(head([-30, -1, 0, 0.5], [0, 1, 0.25, 1], 'bce', 'relu'));
    assert.equal(report.stuckAtLowClip, 2);
    assert.equal(report.predictionsBelowZero, 0);
  });

  it('saturates exactly where float32 does: sigmoid(16.5) < 1, sigmoid(16.7) = 1, and reports it', () => {
    assert.ok(activationOps.sigmoid.hostForward(16.5) < 1);
    assert.equal(activationOps.sigmoid.hostForward(16.7), 1);
    const { report } = headForward(head([16.7, 0, -30], [0, 1, 1], 'bce', 'sigmoid'));
    assert.deepEqual(report, {
      saturatedHigh: 1,
      stuckAtLowClip: 1,
      predictionsBelowZero: 0,
      predictionsAboveOne: 0,
      targetsOutsideUnit: 0,
      targetRowsNotSummingToOne: 0,
      count: 3,
      rows: 3,
      outputActivation: 'sigmoid',
    });
  });
});

describe('bce_logits head', () => {
  it("is optax's sigmoid_binary_cross_entropy: log(1 + e^z) - z·y, finite even at |z| = 100", () => {
    const z = [-100, -3, -0.25, 0, 0.5, 4, 100];
    const y = [1, 0, 1, 1, 0, 1, 0];
    const { loss } = headForward(head(z, y, 'bce_logits'));
    const want = z.reduce((s, zi, i) => s + Math.max(zi, 0) - zi * y[i]! + Math.log1p(Math.exp(-Math.abs(zi))), 0);
    assert.ok(Math.abs(loss - want) <= 1e-6 * want, `${loss} vs ${want}`);
    const dz = gradOf(head(z, y, 'bce_logits'));
    z.forEach((zi, i) => {
      const want = 1 / (1 + Math.exp(-zi)) - y[i]!; // sigmoid(z) - y
      assert.ok(Math.abs(dz[i]! - want) <= 1e-6, `dz at ${zi}: ${dz[i]} vs ${want}`);
    });
    assert.equal(dz[3], -0.5); // z = 0: max's tie gives 0.5, |z|' = 0
  });
});

describe('mse head', () => {
  it('is the sum (or mean) of (pred - y)² with gradient 2(pred - y) through the output activation', () => {
    for (const act of ACTIVATIONS) {
      const op = activationOps[act];
      const z = [-1.3, -0.4, 0.2, 0.9];
      const y = [0.5, -0.25, 1, 0];
      const sum = headForward(head(z, y, 'mse', act)).loss;
      const want = z.reduce((s, zi, i) => s + (op.hostForward(zi) - y[i]!) ** 2, 0);
      assert.ok(Math.abs(sum - want) <= 1e-6 * Math.max(1, want), `${act}: ${sum} vs ${want}`);
      const mean = headForward({ ...head(z, y, 'mse', act), reduction: 'mean' }).loss;
      assert.ok(Math.abs(mean - want / 4) <= 1e-6 * Math.max(1, want), `${act} mean`);
      const dz = gradOf(head(z, y, 'mse', act));
      z.forEach((zi, i) => {
        const fd = centralDiff((v) => (op.hostForward(v) - y[i]!) ** 2, zi, 1e-3);
        assert.ok(Math.abs(dz[i]! - fd) <= 2e-3 * Math.max(1, Math.abs(fd)), `${act} at ${zi}: ${dz[i]} vs ${fd}`);
      });
    }
  });
});

describe('activation derivatives', () => {
  for (const act of ACTIVATIONS) {
    it(`${act}: host derivative matches central finite differences`, () => {
      const op = activationOps[act];
      for (const z of [-2.1, -0.4, 0.3, 1.7]) {
        const fd = centralDiff((v) => Math.fround(op.hostForward(v)), z, 1e-3);
        const got = op.hostBackward(1, op.derivativeOf === 'z' ? z : op.hostForward(z));
        assert.ok(Math.abs(got - fd) <= 2e-3 * Math.max(1, Math.abs(fd)), `${act}'(${z}) = ${got}, fd ${fd}`);
      }
    });
  }
  it("relu'(0) = 0 as jax.nn.relu defines it; leaky_relu'(0) = 1 and elu'(0) = 1 as JAX's where picks", () => {
    const at0 = (act: Activation) => {
      const op = activationOps[act];
      return op.hostBackward(1, op.derivativeOf === 'z' ? 0 : op.hostForward(0));
    };
    assert.equal(at0('relu'), 0);
    assert.equal(at0('leaky_relu'), 1);
    assert.equal(at0('elu'), 1);
  });
});

describe('softmax_cross_entropy head', () => {
  /** float64: per row, logsumexp(z)·Σy − Σ y·z, and its gradient softmax(z)·Σy − y */
  const rowLoss64 = (z: number[], y: number[]) => {
    const max = Math.max(...z);
    const lse = max + Math.log(z.reduce((s, v) => s + Math.exp(v - max), 0));
    return z.reduce((s, v, j) => s + y[j]! * (lse - v), 0);
  };
  const rowGrad64 = (z: number[], y: number[]) => {
    const max = Math.max(...z);
    const e = z.map((v) => Math.exp(v - max));
    const se = e.reduce((a, b) => a + b, 0);
    const sy = y.reduce((a, b) => a + b, 0);
    return e.map((v, j) => (v / se) * sy - y[j]!);
  };
  const z = [2, -1, 0.5, 100, -100, 99.5, -3, -3, -3];
  const y = [0, 1, 0, 0, 0, 1, 0.2, 0.5, 0.3];

  it("is optax's softmax_cross_entropy, one value per row and finite at |z| = 100, and mean averages rows", () => {
    const rows = [0, 1, 2].map((r) => rowLoss64(z.slice(3 * r, 3 * r + 3), y.slice(3 * r, 3 * r + 3)));
    const sum = headForward(head(z, y, 'softmax_cross_entropy', 'linear', 3)).loss;
    assert.ok(Math.abs(sum - rows.reduce((a, b) => a + b)) <= 1e-6 * Math.abs(sum), `sum ${sum} vs ${rows}`);
    const mean = headForward({ ...head(z, y, 'softmax_cross_entropy', 'linear', 3), reduction: 'mean' }).loss;
    assert.equal(mean, Math.fround(sum / 3), 'the mean of 3 rows, not of 9 elements');
  });

  it('has the gradient softmax(z)·Σy − y, through log_softmax with no gradient through the max', () => {
    const dz = gradOf(head(z, y, 'softmax_cross_entropy', 'linear', 3));
    for (let r = 0; r < 3; r++) {
      const want = rowGrad64(z.slice(3 * r, 3 * r + 3), y.slice(3 * r, 3 * r + 3));
      for (const [j, g] of want.entries()) assert.ok(Math.abs(dz[3 * r + j]! - g) <= 1e-6, `row ${r}[${j}]: ${dz[3 * r + j]} vs ${g}`);
    }
    // and against a central difference of the float64 loss, one logit at a time
    const fd = centralDiff((v) => rowLoss64([v, -1, 0.5], [0, 1, 0]), 2);
    assert.ok(Math.abs(dz[0]! - fd) <= 1e-6, `${dz[0]} vs ${fd}`);
  });

  it('gives class indices (softmax_cross_entropy_with_integer_labels) exactly the loss and gradient of one-hot rows', () => {
    const logits = [2, -1, 0.5, 100, -100, 99.5, -3, -3, -3.5];
    const labels = [1, 2, 0];
    const oneHot = labels.flatMap((k) => [0, 1, 2].map((j) => (j === k ? 1 : 0)));
    const byIndex = head(logits, labels, 'softmax_cross_entropy_with_integer_labels', 'linear', 3);
    const byRow = head(logits, oneHot, 'softmax_cross_entropy', 'linear', 3);
    assert.equal(headForward(byIndex).loss, headForward(byRow).loss);
    assert.deepEqual(gradOf(byIndex), gradOf(byRow));
    assert.equal(headForward(byIndex).report.targetRowsNotSummingToOne, 0);
  });

  it('reports target rows that are no distribution (class indices, unnormalised scores)', () => {
    const { report } = headForward(head([1, 2, 3, 4], [1, 1, 0, 0.5], 'softmax_cross_entropy', 'linear', 2));
    assert.equal(report.targetRowsNotSummingToOne, 2);
    assert.equal(report.rows, 2);
  });
});
