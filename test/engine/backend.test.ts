import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createBackend } from '../../src/engine/backend.js';
import { loadConfig } from '../../src/runtime/config.js';

/** The process's OS threads (Linux): each webasm worker is one. */
const threads = () => readdirSync('/proc/self/task').length;

describe('webasm worker threads (GRADSERVE_WEBASM_THREADS)', () => {
  it('defaults to one per CPU and refuses nonsense', () => {
    assert.ok(loadConfig({}).webasmThreads >= 1);
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
