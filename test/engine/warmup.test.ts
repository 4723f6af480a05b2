import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { loadConfig } from '../../src/runtime/config.js';
import { randomCase, rng, toEngineProblem } from '../helpers.js';
import { relError, valueAndGrad64 } from '../reference/mlp64.js';

describe('warm-up of configured shapes (GRADSERVE_WARMUP)', () => {
  it('reads shapes as widths×batch[:activation] and refuses anything else by name', () => {
    // by default a small webasm-sized network, which primes gpu.js's code generator
    assert.deepEqual(loadConfig({}).warmup, [{ widths: [16, 32, 32, 1], batch: 1024, activation: 'tanh' }]);
    assert.deepEqual(loadConfig({ GRADSERVE_WARMUP: '' }).warmup, []);
    assert.deepEqual(loadConfig({ GRADSERVE_WARMUP: 'none' }).warmup, []);
    assert.deepEqual(loadConfig({ GRADSERVE_WARMUP: '2,4,1x4; 64,128,1x1024:relu' }).warmup, [
      { widths: [2, 4, 1], batch: 4, activation: 'tanh' },
      { widths: [64, 128, 1], batch: 1024, activation: 'relu' },
    ]);
    for (const bad of ['2x4', '2,4,1', '2,4,1x4:swish', '2,0,1x4', '2,4,1x0']) {
      assert.throws(() => loadConfig({ GRADSERVE_WARMUP: bad }), new RegExp(`GRADSERVE_WARMUP: "${bad}" is not widths×batch`));
    }
  });

  it('compiles every kernel of those shapes, so that the first request of one compiles none and is right', async () => {
    const engine = await Engine.create({ backend: 'cpu', kernelCacheSize: 64 });
    try {
      const warm = await engine.warmUp([{ widths: [3, 5, 2], batch: 8, activation: 'relu' }]);
      assert.equal(warm.kernels, 5);
      // a batch of 7 falls in the same bucket as 8
      const c = randomCase(rng(3), { widths: [3, 5, 2], batch: 7, activation: 'relu' });
      const { stats, loss, grads } = await engine.valueAndGrad(toEngineProblem(c));
      assert.equal(stats.compiled.length, 0);
      const want = valueAndGrad64(c);
      assert.ok(relError([loss], [want.loss]) <= 1e-5);
      assert.ok(relError(Array.from(grads[0]!.W.data), want.grads[0]!.W.flat()) <= 1e-5);
    } finally {
      await engine.close();
    }
  });
});
