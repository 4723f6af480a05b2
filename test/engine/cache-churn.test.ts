import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { Engine } from '../../src/engine/engine.js';
import { randomCase, rng, toEngineProblem } from '../helpers.js';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap plus memory outside it (wasm memories, typed arrays), after a full collection. */
function memoryMb(): number {
  gc();
  gc();
  const m = process.memoryUsage();
  return (m.heapUsed + m.external) / 2 ** 20;
}

describe('kernel cache under churn', () => {
  it('keeps memory bounded over a stream of distinct shapes: the LRU evicts and frees kernels', async () => {
    const capacity = 16;
    const engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: capacity });
    const rand = rng(5);
    let shape = 0;
    const runShapes = async (n: number) => {
      for (let i = 0; i < n; i++, shape++) {
        // every request a new (in, hidden) pair: a new key for each of its kernels
        const widths = [1 + (shape % 40), 1 + Math.floor(shape / 40), 1];
        await engine.valueAndGrad(toEngineProblem(randomCase(rand, { widths, batch: 8, activation: 'tanh' })));
      }
    };
    try {
      await runShapes(60);
      const warm = memoryMb();
      await runShapes(240);
      const grown = memoryMb() - warm;
      const stats = engine.info().kernelCache;
      assert.equal(stats.size, capacity);
      assert.ok(stats.compiles >= 300 * 2, `each shape compiled new kernels (${stats.compiles})`);
      assert.equal(stats.evictions, stats.compiles - stats.size, 'every compiled kernel beyond the capacity was evicted');
      assert.ok(grown < 24, `memory grew ${grown.toFixed(1)} MiB over 240 more shapes`);
    } finally {
      await engine.close();
    }
  });

  it('returns the memory of evicted kernels that ran on the worker threads, within its byte bound', async () => {
    const maxBytes = 16 * 2 ** 20;
    const engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 64, kernelCacheBytes: maxBytes });
    const rand = rng(6);
    // [256, h, 1] × 2048: kernels large enough to run split over the threads, in a shared
    // memory that each thread maps; each shape's kernels keep 5–7 MiB
    const runShape = (h: number) =>
      engine.valueAndGrad(toEngineProblem(randomCase(rand, { widths: [256, h, 1], batch: 2048, activation: 'tanh' })));
    const rssMb = async () => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 100)); // the threads collect after their releases
      gc();
      return process.memoryUsage().rss / 2 ** 20;
    };
    try {
      for (let h = 64; h < 64 + 4 * 8; h += 8) await runShape(h);
      const warm = await rssMb();
      for (let h = 96; h < 96 + 16 * 8; h += 8) await runShape(h);
      const grown = (await rssMb()) - warm;
      const stats = engine.info().kernelCache;
      assert.ok(stats.bytes <= maxBytes && stats.bytes > maxBytes / 2, `the cache keeps ${stats.bytes} bytes`);
      assert.ok(stats.evictions > 16 * 4, `${stats.evictions} evictions`);
      assert.ok(grown < 48, `RSS grew ${grown.toFixed(1)} MiB over 16 more shapes of 5–7 MiB each`);
    } finally {
      await engine.close();
    }
  });
});
