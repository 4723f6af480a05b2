import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createBackend } from '../../src/engine/backend.js';
import { Engine } from '../../src/engine/engine.js';
import { jsonWorkersFor, loadConfig } from '../../src/runtime/config.js';
import { usableCpus } from '../../src/runtime/cpus.js';

/** The process's OS threads (Linux): each webasm worker is one. */
const threads = () => readdirSync('/proc/self/task').length;

describe('usable CPUs: the affinity, capped by a cgroup CPU quota', () => {
  /** a file system of cgroup files: path → text */
  const files =
    (tree: Record<string, string>) =>
    (path: string): string | undefined =>
      tree[path];
  const v2 = (path: string, cpuMax: Record<string, string>) =>
    files({
      '/proc/self/cgroup': `0::${path}\n`,
      ...Object.fromEntries(Object.entries(cpuMax).map(([d, t]) => [`/sys/fs/cgroup${d}/cpu.max`, t])),
    });

  it('reads a container limit (cgroup v2, docker --cpus, a Kubernetes CPU limit), rounded up', () => {
    assert.equal(usableCpus(v2('/', { '': '200000 100000\n' }), 64), 2);
    assert.equal(usableCpus(v2('/', { '': '150000 100000\n' }), 64), 2);
    assert.equal(usableCpus(v2('/', { '': '20000 100000\n' }), 64), 1);
  });

  it('takes the smallest quota of the cgroup and its parents (systemd CPUQuota on a slice)', () => {
    const read = v2('/system.slice/gradserve.service', {
      '': 'max 100000',
      '/system.slice': '300000 100000',
      '/system.slice/gradserve.service': 'max 100000',
    });
    assert.equal(usableCpus(read, 16), 3);
  });

  it('reads cgroup v1 quotas, where -1 is none', () => {
    const v1 = (quota: string) =>
      files({
        '/proc/self/cgroup': '1:cpu:/\n',
        '/sys/fs/cgroup/cpu/cpu.cfs_quota_us': quota,
        '/sys/fs/cgroup/cpu/cpu.cfs_period_us': '100000',
      });
    assert.equal(usableCpus(v1('400000\n'), 32), 4);
    assert.equal(usableCpus(v1('-1\n'), 32), 32);
  });

  it('is the affinity without a quota, or when the quota is larger', () => {
    assert.equal(usableCpus(v2('/', { '': 'max 100000\n' }), 12), 12);
    assert.equal(usableCpus(files({}), 12), 12);
    assert.equal(usableCpus(v2('/', { '': '800000 100000' }), 2), 2);
  });

  it('sizes the JSON threads to a third of the CPUs, at least one', () => {
    assert.deepEqual([1, 2, 3, 4, 8, 16, 192, 193, 1000].map(jsonWorkersFor), [1, 1, 1, 2, 3, 6, 64, 64, 64]);
    assert.equal(loadConfig({ GRADSERVE_JSON_WORKERS: '0' }).jsonOffload.workers, 0);
  });
});

describe('webasm worker threads (GRADSERVE_WEBASM_THREADS)', () => {
  it('defaults to one per usable CPU and refuses nonsense', () => {
    assert.equal(loadConfig({}).webasmThreads, usableCpus());
    assert.equal(loadConfig({ GRADSERVE_WEBASM_THREADS: '3' }).webasmThreads, 3);
    assert.throws(() => loadConfig({ GRADSERVE_WEBASM_THREADS: '0' }), /GRADSERVE_WEBASM_THREADS/);
  });

  it('starts exactly that many threads at start-up (the probe), shared by all kernels, and ends them on destroy', async () => {
    const before = threads();
    for (const n of [1, 3]) {
      const backend = createBackend('webasm', n);
      await backend.probe();
      const rows = Array.from({ length: 256 }, (_, y) => new Float32Array(256).fill(y));
      for (let k = 0; k < 3; k++) {
        // three more kernels large enough to be threaded: gpu.js would start a pool for each
        const kernel = backend.createKernel(`function(a) { return a[this.thread.y][this.thread.x] * ${k + 2}; }`, [256, 256]);
        const out = (await kernel.run(rows)) as Float32Array[];
        assert.equal(out[255]![0], 255 * (k + 2));
      }
      assert.equal(threads() - before, n, `${n} worker threads`);
      await backend.destroy();
      for (let i = 0; i < 50 && threads() > before; i++) await sleep(20);
      assert.equal(threads(), before, 'all ended');
    }
  });
});

describe("the engine's probe (/readyz)", () => {
  it('runs one probe for callers at the same time, and a new one after it ends', async () => {
    const engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 8 });
    try {
      const first = engine.probe();
      assert.equal(engine.probe(), first, 'a caller meanwhile shares the probe under way');
      await first;
      const next = engine.probe();
      assert.notEqual(next, first, 'a later caller gets a new probe');
      await next;
    } finally {
      await engine.close();
    }
  });
});

describe('webasm SIMD coverage (the gpu.js patch)', () => {
  it('computes every cell of rows whose width is a multiple of 4 in run_simd alone, on the event loop and across threads', async () => {
    // rows 4k cells wide compile no scalar kernel (its `run` traps), so a cell that reached it
    // would throw; other widths mix run_simd with a scalar tail. Threaded sizes split unevenly.
    const backend = createBackend('webasm', 3);
    await backend.probe();
    try {
      for (const [width, height] of [
        [4, 1],
        [8, 3],
        [12, 5],
        [5, 3],
        [7, 2],
        [260, 17],
        [132, 61],
        [257, 19],
      ] as const) {
        const rows = Array.from({ length: height }, (_, y) => Float32Array.from({ length: width }, (_, x) => x - y));
        const kernel = backend.createKernel('function(a) { return a[this.thread.y][this.thread.x] * 2 + this.thread.y; }', [width, height]);
        const out = (await kernel.run(rows)) as Float32Array[];
        for (let y = 0; y < height; y++) {
          for (let x = 0; x < width; x++) assert.equal(out[y]![x], (x - y) * 2 + y, `${width}×${height} at (${x}, ${y})`);
        }
      }
    } finally {
      await backend.destroy();
    }
  });
});
