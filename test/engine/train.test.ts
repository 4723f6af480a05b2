import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import type { OptimizerOptions } from '../../src/engine/optim.js';
import { BACKENDS } from '../../src/engine/types.js';
import { backendSkips } from '../backend-skips.js';
import { randomCase, rng, toEngineProblem, xorCase } from '../helpers.js';
import { relError } from '../reference/mlp64.js';
import { minibatchRows, train64 } from '../reference/train64.js';

const optimizers: OptimizerOptions[] = [
  { name: 'sgd', learningRate: 0.3 },
  { name: 'momentum', learningRate: 0.1, momentum: 0.9 },
  { name: 'adam', learningRate: 0.05, b1: 0.9, b2: 0.999, eps: 1e-8 },
];
const adam = optimizers[2]!;
/** a float32 trajectory drifts from the float64 one as steps compound their rounding (adam most: its step is ~lr·sign(g)) */
const TRAJECTORY_TOLERANCE = 5e-5;

const skips = await backendSkips();

for (const backend of BACKENDS) {
  describe(`training on ${backend}`, { skip: skips[backend] }, () => {
    let engine: Engine;
    before(async () => {
      engine = await Engine.create({ backend, kernelCacheCapacity: 64 });
    });
    after(() => engine?.close());

    for (const optimizer of optimizers) {
      it(`${optimizer.name}: params and losses follow optax's update rule in float64`, async () => {
        const c = randomCase(rng(21), { widths: [3, 5, 2], batch: 6, activation: 'silu', loss: 'mse' });
        const steps = 8;
        const got = await engine.train(toEngineProblem(c), { optimizer, steps, seed: 0 });
        const ref = train64(c, optimizer, steps);
        got.params.forEach((p, l) => {
          assert.ok(relError(Array.from(p.W.data), ref.params[l]!.W.flat()) <= TRAJECTORY_TOLERANCE, `W[${l}]`);
          assert.ok(relError(Array.from(p.b), ref.params[l]!.b) <= TRAJECTORY_TOLERANCE, `b[${l}]`);
        });
        assert.deepEqual(
          got.history.map((h) => h.step),
          [0, 1, 2, 3, 4, 5, 6, 7],
        );
        got.history.forEach((h) => {
          assert.ok(Math.abs(h.loss - ref.losses[h.step]!) <= TRAJECTORY_TOLERANCE * ref.losses[h.step]!, `loss at step ${h.step}`);
        });
        assert.ok(
          Math.abs(got.loss - ref.losses[steps]!) <= TRAJECTORY_TOLERANCE * ref.losses[steps]!,
          `final loss ${got.loss} vs ${ref.losses[steps]}`,
        );
      });
    }

    it('trains the XOR lesson to a loss below 0.05 (adam, learning rate 0.05, 500 steps)', async () => {
      const result = await engine.train(toEngineProblem(xorCase), { optimizer: adam, steps: 500, seed: 0 });
      assert.ok(result.loss < 0.05, `final loss ${result.loss}`);
      assert.equal(result.history.length, 101); // every 5th step and the last
      assert.deepEqual(result.history.at(-1)?.step, 499);
    });

    it('draws minibatches as the README describes (a seeded shuffle per epoch, epochs cut into batches), as the float64 reference does', async () => {
      const c = randomCase(rng(4), { widths: [2, 6, 1], batch: 10, activation: 'tanh' });
      const optimizer = { name: 'sgd', learningRate: 0.1 } as const;
      // 7 steps of 3 rows: 21 rows, so batches straddle epochs and three epochs' shuffles are used
      for (const seed of [0, 1]) {
        const got = await engine.train(toEngineProblem(c), { optimizer, steps: 7, batchSize: 3, seed });
        const ref = train64(c, optimizer, 7, { batchSize: 3, seed });
        got.params.forEach((p, l) => {
          assert.ok(relError(Array.from(p.W.data), ref.params[l]!.W.flat()) <= TRAJECTORY_TOLERANCE, `seed ${seed}: W[${l}]`);
          assert.ok(relError(Array.from(p.b), ref.params[l]!.b) <= TRAJECTORY_TOLERANCE, `seed ${seed}: b[${l}]`);
        });
        got.history.forEach((h) => {
          assert.ok(Math.abs(h.loss - ref.losses[h.step]!) <= TRAJECTORY_TOLERANCE * ref.losses[h.step]!, `seed ${seed}: step ${h.step}`);
        });
      }
      // the shuffles differ between epochs and between seeds (else the check above could pass by chance)
      const epochs = minibatchRows(10, 10, 0, 2);
      assert.notDeepEqual(epochs[0], epochs[1]);
      assert.notDeepEqual(minibatchRows(10, 10, 1, 1)[0], epochs[0]);
      // a batchSize of the whole batch is the full batch, as the reference's full-batch run
      const whole = await engine.train(toEngineProblem(c), { optimizer, steps: 3, batchSize: 10, seed: 1 });
      const full = train64(c, optimizer, 3);
      assert.ok(relError(Array.from(whole.params[0]!.W.data), full.params[0]!.W.flat()) <= TRAJECTORY_TOLERANCE);
    });

    it('stops at the first non-finite loss and keeps the params that produced it', async () => {
      const c = randomCase(rng(8), { widths: [2, 3, 1], batch: 4, activation: 'linear', loss: 'mse' });
      const optimizer = { name: 'sgd', learningRate: 1e30 } as const;
      const result = await engine.train(toEngineProblem(c), { optimizer, steps: 50, seed: 0 });
      const stoppedAt = result.stoppedAt;
      assert.ok(stoppedAt !== undefined && stoppedAt > 0 && stoppedAt < 50, `stopped at ${stoppedAt}`);
      assert.ok(!Number.isFinite(result.history.at(-1)!.loss));
      // the params are those before the step whose loss was not finite: a run of that many steps ends with them
      const before = await engine.train(toEngineProblem(c), { optimizer, steps: stoppedAt, seed: 0 });
      assert.deepEqual(result.params, before.params);
      for (const p of result.params) assert.ok([...p.W.data, ...p.b].every(Number.isFinite), 'finite params');
    });
  });
}
