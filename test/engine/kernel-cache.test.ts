import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KernelCache, kernelBytes, kernelKey } from '../../src/engine/kernel-cache.js';
import { batchBucket } from '../../src/engine/matrix.js';
import { activationSpec, forwardSpec, inputGradSpec, weightGradSpec } from '../../src/engine/ops/dense.js';

/** Kernels that answer `result(name)` and note when they are destroyed. */
function counted(result: (name: string) => unknown = (name) => name) {
  const destroyed: string[] = [];
  const make =
    (name: string, keepsMemory = true) =>
    () => ({
      run: () => result(name),
      destroy: () => destroyed.push(name),
      keepsMemory,
    });
  return { destroyed, make };
}

describe('kernel cache', () => {
  it('is bounded: the least recently used kernel is evicted and destroyed', () => {
    const cache = new KernelCache(2);
    const { destroyed, make } = counted();
    const noop = () => {};
    cache.lease('a', make('a'), noop).release();
    cache.lease('b', make('b'), noop).release();
    cache.lease('a', make('a2'), noop).release(); // hit: a is now most recent
    cache.lease('c', make('c'), noop).release(); // evicts b
    assert.deepEqual(destroyed, ['b']);
    const s = cache.stats();
    assert.equal(s.size, 2);
    assert.equal(s.hits, 1);
    assert.equal(s.evictions, 1);
  });

  it('does not keep a kernel whose first call failed: the next lease builds it anew', async () => {
    const cache = new KernelCache(4);
    let builds = 0;
    const destroyed: number[] = [];
    const make = () => {
      const build = ++builds;
      return {
        run: () => {
          if (build === 1) throw new Error('build failed');
          return build;
        },
        destroy: () => destroyed.push(build),
        keepsMemory: false,
      };
    };
    const first = cache.lease('a', make, () => {});
    await assert.rejects(async () => first.call(), /build failed/);
    assert.equal(cache.stats().size, 0);
    assert.deepEqual(destroyed, [], 'not destroyed under its lease');
    first.release();
    assert.deepEqual(destroyed, [1]);
    const second = cache.lease('a', make, () => {});
    assert.equal(await second.call(), 2);
    second.release();
    assert.deepEqual([cache.stats().size, cache.stats().evictions], [1, 0]);
  });

  it('never destroys a kernel that a request still holds', () => {
    const cache = new KernelCache(1);
    const { destroyed, make } = counted();
    const held = cache.lease('a', make('a'), () => {});
    cache.lease('b', make('b'), () => {}).release(); // a is evicted while leased
    assert.deepEqual(destroyed, []);
    held.release();
    assert.deepEqual(destroyed, ['a']);
  });

  it('keeps at most maxBytes of kernel memory: the least recently used beyond it are freed', async () => {
    const cache = new KernelCache(10, 1000);
    // kernels of 100 bytes of arguments and 400 of result: 500 bytes
    const { destroyed, make } = counted(() => new Float32Array(100));
    const use = async (name: string, keepsMemory = true) => {
      const lease = cache.lease(name, make(name, keepsMemory), () => {});
      await lease.call([new Float32Array(5), new Float32Array(20)]);
      lease.release();
    };
    await use('a');
    await use('b');
    assert.deepEqual(destroyed, []);
    assert.equal(cache.stats().bytes, 1000);
    await use('c');
    assert.deepEqual(destroyed, ['a']);
    assert.equal(cache.stats().bytes, 1000);
    assert.equal(cache.stats().size, 2);
    await use('cpu', false); // a kernel that keeps nothing between calls (cpu's) counts nothing
    assert.deepEqual([cache.stats().bytes, cache.stats().size, destroyed], [1000, 3, ['a']]);
  });

  it('does not keep a kernel larger than its memory bound, but lets its request finish with it', async () => {
    const cache = new KernelCache(10, 100);
    const { destroyed, make } = counted(() => new Float32Array(50));
    const lease = cache.lease('big', make('big'), () => {});
    await lease.call();
    assert.equal(((await lease.call()) as Float32Array).length, 50, 'still runs for the request that holds it');
    assert.deepEqual(destroyed, []);
    lease.release();
    assert.deepEqual(destroyed, ['big']);
    assert.deepEqual([cache.stats().size, cache.stats().bytes], [0, 0]);
  });

  it("counts a kernel's memory as its arguments and result: typed arrays, rows of them, numbers", () => {
    const rows = [new Float32Array(3), new Float32Array(3)];
    assert.equal(kernelBytes([rows, new Float32Array(2), 7], rows), 24 + 8 + 4 + 24);
    assert.equal(kernelBytes([], undefined), 0);
  });

  it('times the first call of a kernel as its compile, and only the first', async () => {
    const cache = new KernelCache(4);
    const { make } = counted();
    const compiles: number[] = [];
    const lease = cache.lease('k', make('k'), (ms) => compiles.push(ms));
    assert.equal(await lease.call(), 'k');
    assert.equal(await lease.call(), 'k');
    lease.release();
    assert.equal(compiles.length, 1);
    assert.equal(cache.stats().compiles, 1);
  });
});

describe('batch buckets', () => {
  it('round up to powers of two to 16, then four steps an octave', () => {
    assert.deepEqual(
      [1, 2, 3, 4, 5, 9, 16, 17, 20, 21, 33, 257, 1024].map(batchBucket),
      [1, 2, 4, 4, 8, 16, 16, 20, 20, 24, 40, 320, 1024],
    );
  });
  it('never pad more than 25% above 16', () => {
    for (let n = 17; n < 5000; n++) assert.ok(batchBucket(n) >= n && batchBucket(n) <= n * 1.25, `${n}`);
  });
});

describe('kernel specs', () => {
  it('are built once per backend and arguments, and keyed by everything that changes the compiled code', () => {
    const spec = forwardSpec('tanh', 3, 5, 8, 'webasm');
    assert.equal(forwardSpec('tanh', 3, 5, 8, 'webasm'), spec);
    assert.equal(spec.key, kernelKey({ backend: 'webasm', op: 'dense.forward', ...spec.params }));
    const keys = [
      spec,
      forwardSpec('tanh', 3, 5, 8, 'cpu'),
      forwardSpec('relu', 3, 5, 8, 'webasm'),
      forwardSpec('tanh', 3, 6, 8, 'webasm'),
      forwardSpec('tanh', 3, 5, 16, 'webasm'),
      weightGradSpec(3, 5, 8, 'webasm'),
      inputGradSpec('tanh', 3, 5, 8, 'webasm'),
      activationSpec('gelu', 5, 8, 'webasm'),
    ].map((s) => s.key);
    assert.equal(new Set(keys).size, keys.length);
    assert.ok(Object.isFrozen(spec), 'shared between requests, so never changed');
  });
});
