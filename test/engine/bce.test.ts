import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { activationOps } from '../../src/engine/ops/activations.js';
import { type BceHeadInput, bceBackward, bceForward } from '../../src/engine/ops/bce.js';
import { ACTIVATIONS } from '../../src/engine/types.js';

const head = (z: number[], y: number[], outputActivation: BceHeadInput['outputActivation'] = 'linear'): BceHeadInput => ({
  z: Float32Array.from(z),
  y: Float32Array.from(y),
  outputActivation,
  reduction: 'sum',
});

describe('bce head', () => {
  it("follows jnp.clip's gradient: 1 inside, 0 outside, 0.5 exactly at a bound", () => {
    const lo = Math.fround(1e-8);
    const h = head([0.5, lo, lo / 2, 1.5], [1, 1, 1, 0]);
    const { pred } = bceForward(h);
    const dz = bceBackward(h, pred);
    assert.equal(dz[0], Math.fround(-1 / 0.5)); // inside: d/dp of -log(p) = -1/p
    assert.equal(dz[1], Math.fround(-1 / lo) * 0.5); // at the lower bound: half
    assert.equal(Object.is(dz[2], 0) || Object.is(dz[2], -0), true); // below it: clipped, no gradient
    // above 1: clip to 1 (1 - 1e-8 is 1.0 in float32), gradient 0 times an infinite cotangent → NaN
    assert.ok(Number.isNaN(dz[3]));
  });

  it('matches the float64 derivative inside the clip for every output activation', () => {
    for (const act of ACTIVATIONS) {
      const z = [-0.7, -0.2, 0.3, 0.6];
      const y = [0, 1, 1, 0];
      const usable = z.filter((v) => {
        const p = activationOps[act].hostForward(v);
        return p > 0.01 && p < 0.99;
      });
      if (usable.length === 0) continue;
      const ys = y.slice(0, usable.length);
      const h = head(usable, ys, act);
      const dz = bceBackward(h, bceForward(h).pred);
      usable.forEach((zi, i) => {
        const f = (v: number) => {
          const p = activationOps[act].hostForward(v);
          return -(ys[i]! * Math.log(p) + (1 - ys[i]!) * Math.log(1 - p));
        };
        const hstep = 1e-3;
        const fd = (f(zi + hstep) - f(zi - hstep)) / (2 * hstep);
        assert.ok(Math.abs(dz[i]! - fd) <= 1e-3 * Math.max(1, Math.abs(fd)), `${act} at ${zi}: ${dz[i]} vs ${fd}`);
      });
    }
  });

  it('saturates exactly where float32 does: sigmoid(16.5) < 1, sigmoid(16.7) = 1', () => {
    assert.ok(activationOps.sigmoid.hostForward(16.5) < 1);
    assert.equal(activationOps.sigmoid.hostForward(16.7), 1);
  });
});

describe('activation derivatives', () => {
  for (const act of ACTIVATIONS) {
    it(`${act}: host derivative matches central finite differences`, () => {
      const op = activationOps[act];
      for (const z of [-2.1, -0.4, 0.3, 1.7]) {
        const h = 1e-3;
        const fd = (Math.fround(op.hostForward(z + h)) - Math.fround(op.hostForward(z - h))) / (2 * h);
        const got = op.hostBackward(1, op.hostForward(z));
        assert.ok(Math.abs(got - fd) <= 2e-3 * Math.max(1, Math.abs(fd)), `${act}'(${z}) = ${got}, fd ${fd}`);
      }
    });
  }
  it("relu'(0) = 0, as jax.nn.relu defines it", () => {
    assert.equal(activationOps.relu.hostBackward(1, activationOps.relu.hostForward(0)), 0);
  });
});
