import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import type { OptimizerOptions } from '../../src/engine/optim.js';
import { BACKENDS } from '../../src/engine/types.js';
import { backendSkips } from '../backend-skips.js';
import { randomCase, rng, toEngineProblem, xorCase } from '../helpers.js';
import { relError } from '../reference/mlp64.js';
import { train64 } from '../reference/train64.js';

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
      engine = await Engine.create({ backend, kernelCacheSize: 64 });
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

    it('draws minibatches from the seed: the same seed gives the same run, another seed another', async () => {
      const c = randomCase(rng(4), { widths: [2, 6, 1], batch: 10, activation: 'tanh' });
      const run = (seed: number, batchSize?: number) =>
        engine.train(toEngineProblem(c), { optimizer: { name: 'sgd', learningRate: 0.1 }, steps: 7, batchSize, seed });
      const a = await run(1, 3);
      const b = await run(1, 3);
      const other = await run(2, 3);
      assert.deepEqual(a.params, b.params);
      assert.notDeepEqual(a.params, other.params);
      // a batchSize of the whole batch is the full batch, unshuffled
      assert.deepEqual((await run(1, 10)).params, (await run(5)).params);
    });

    it('stops at the first non-finite loss and keeps the params that produced it', async () => {
      const c = randomCase(rng(8), { widths: [2, 3, 1], batch: 4, activation: 'linear', loss: 'mse' });
      const result = await engine.train(toEngineProblem(c), { optimizer: { name: 'sgd', learningRate: 1e30 }, steps: 50, seed: 0 });
      assert.ok(result.stoppedAt !== undefined && result.stoppedAt < 50, `stopped at ${result.stoppedAt}`);
      assert.ok(!Number.isFinite(result.history.at(-1)!.loss));
    });
  });
}
