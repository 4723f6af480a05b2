import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { PRIME_RESUME_AFTER_MS, PRIME_SHAPE } from '../../src/engine/priming.js';
import { loadConfig } from '../../src/runtime/config.js';
import { randomCase, rng, toEngineProblem } from '../helpers.js';
import { relError, valueAndGrad64 } from '../reference/mlp64.js';

describe('warm-up of configured shapes (GRADSERVE_WARMUP)', () => {
  it('reads shapes as widths×batch[:activation] and refuses anything else by name', () => {
    // none by default: the engine primes gpu.js's code generator once the service is ready (Engine.prime)
    assert.deepEqual(loadConfig({}).warmup, []);
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
    const engine = await Engine.create({ backend: 'cpu', kernelCacheCapacity: 64 });
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

  it('primes the kernel compiler in the background, gives way to a request at its next kernel, and resumes when the engine is quiet', async () => {
    const engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 64 });
    try {
      assert.equal(
        engine.backendFor(toEngineProblem(randomCase(rng(1), { ...PRIME_SHAPE }))),
        'webasm',
        'primes the backend M-sized requests use',
      );
      const primed = await engine.prime();
      assert.deepEqual([primed.stopped, primed.paused, primed.kernels], [false, 0, 8]);
      assert.equal(engine.info().kernelCache.compiles, 8);
    } finally {
      await engine.close();
    }
    const busy = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 64 });
    try {
      const priming = busy.prime();
      const c = randomCase(rng(4), { widths: [8, 12, 1], batch: 64, activation: 'tanh' });
      const { loss } = await busy.valueAndGrad(toEngineProblem(c));
      // it compiled at most the kernel it was in when the request came, and the request its own 5
      assert.ok(busy.info().kernelCache.compiles <= 6, `${busy.info().kernelCache.compiles} kernels compiled`);
      assert.ok(relError([loss], [valueAndGrad64(c).loss]) <= 1e-5);
      // a second call within the quiet time (at once: a sleep could overrun it on a busy machine) keeps it paused
      const compilesBefore = busy.info().kernelCache.compiles;
      await busy.valueAndGrad(toEngineProblem(c));
      assert.equal(busy.info().kernelCache.compiles, compilesBefore, 'nothing compiled while paused');
      const started = performance.now();
      const primed = await priming;
      assert.deepEqual([primed.stopped, primed.paused], [false, 1], 'resumed once, and finished');
      assert.ok(performance.now() - started >= PRIME_RESUME_AFTER_MS - 5, 'after a quiet spell');
      assert.equal(busy.info().kernelCache.compiles, 5 + 8, "the request's 5 and priming's 8, each once");
    } finally {
      await busy.close();
    }
    // stopped for good (shutdown) while it waits for a quiet spell
    const stopping = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 64 });
    try {
      const priming = stopping.prime();
      await stopping.valueAndGrad(toEngineProblem(randomCase(rng(5), { widths: [8, 12, 1], batch: 64, activation: 'tanh' })));
      stopping.stopPriming();
      const primed = await priming;
      assert.deepEqual([primed.stopped, primed.paused], [true, 1]);
      await new Promise((resolve) => setTimeout(resolve, PRIME_RESUME_AFTER_MS * 2));
      assert.ok(stopping.info().kernelCache.compiles <= 6, 'no priming after stopPriming');
    } finally {
      await stopping.close();
    }
  });
});
