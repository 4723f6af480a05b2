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
    const engine = await Engine.create({ backend: 'webasm', kernelCacheSize: capacity });
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
});
