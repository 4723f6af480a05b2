import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { buildApp } from '../../src/app.js';
import { pickBackend, workOf } from '../../src/engine/dispatch.js';
import { Engine } from '../../src/engine/engine.js';
import { findAdapter } from '../../src/engine/webgpu.js';
import { defaultConfig, loadConfig } from '../../src/runtime/config.js';
import { assertGradsMatch, randomCase, rng, toEngineProblem, xorCase } from '../helpers.js';
import { valueAndGrad64 } from '../reference/mlp64.js';

describe('the dispatcher (backend auto)', () => {
  it('sends work up to the crossover to cpu, the largest to a hardware GPU, the rest to webasm', () => {
    assert.equal(workOf({ widths: [2, 4, 1], batch: 4 }), 48);
    const t = { cpuMaxWork: 2048, gpuMinWork: 1e6 };
    assert.equal(pickBackend(48, ['webasm', 'cpu'], t), 'cpu');
    assert.equal(pickBackend(2048, ['webasm', 'cpu'], t), 'cpu');
    assert.equal(pickBackend(2049, ['webasm', 'cpu'], t), 'webasm');
    assert.equal(pickBackend(1e7, ['webasm', 'cpu'], t), 'webasm', 'no GPU started: webasm takes the largest');
    assert.equal(pickBackend(1e7, ['cpu', 'webasm', 'webgpu'], t), 'webgpu', 'a hardware GPU takes the largest');
    assert.equal(pickBackend(1e5, ['cpu', 'webasm', 'webgpu'], t), 'webasm');
    assert.equal(pickBackend(48, ['webgpu'], t), 'webgpu', 'a forced backend takes everything');
  });

  it('answers small and large problems correctly on the backend it chose, and says which', async () => {
    const engine = await Engine.create({ backend: 'auto', kernelCacheCapacity: 64 });
    const app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine });
    try {
      assert.deepEqual(engine.info().backends, ['cpu', 'webasm'], 'no webgpu without a hardware adapter');
      // what /info says of the GPU: these machines have no GPU device node, so auto never loads Dawn
      assert.equal((await app.inject('/info')).json().gpu, 'no GPU device node (/dev/dri or /dev/nvidia*), so Dawn was not loaded');
      const large = randomCase(rng(8), { widths: [32, 64, 1], batch: 64, activation: 'tanh' }); // 135,168 units
      for (const [c, backend] of [
        [xorCase, 'cpu'],
        [large, 'webasm'],
      ] as const) {
        assert.equal(engine.backendFor(toEngineProblem(c)), backend);
        const res = await app.inject({ method: 'POST', url: '/value-and-grad', payload: c });
        assert.equal(res.statusCode, 200, res.body);
        assert.match(String(res.headers['server-timing']), new RegExp(`compute;dur=[\\d.]+;desc="${backend}"`));
        const want = valueAndGrad64(c);
        assertGradsMatch(res.json().grads, want.grads, backend);
      }
      const metrics = (await app.inject('/metrics')).body;
      assert.match(metrics, /gradserve_engine_compute_seconds_count\{route="\/value-and-grad",backend="cpu"\} 1/);
      assert.match(metrics, /gradserve_engine_compute_seconds_count\{route="\/value-and-grad",backend="webasm"\} 1/);
    } finally {
      await app.close();
      await engine.close();
    }
  });

  it('with GRADSERVE_REQUIRE_GPU=1 refuses to start without webgpu on a hardware adapter, and says why', async () => {
    assert.equal(defaultConfig().requireGpu, false);
    assert.equal(loadConfig({ GRADSERVE_REQUIRE_GPU: '1' }).requireGpu, true);
    assert.throws(() => loadConfig({ GRADSERVE_REQUIRE_GPU: 'yes' }), /GRADSERVE_REQUIRE_GPU/);
    const options = { kernelCacheCapacity: 8, requireGpu: true };
    // this machine has no GPU device node (as the test above assumes): auto does not look for an adapter
    await assert.rejects(Engine.create({ backend: 'auto', ...options }), /GPU is required.*, but no GPU device node \(\/dev\/dri/);
    await assert.rejects(Engine.create({ backend: 'webasm', ...options }), /GPU is required.*the backend is webasm/);
    const adapter = await findAdapter(); // llvmpipe where Mesa's Vulkan is installed (CI)
    await assert.rejects(
      Engine.create({ backend: 'webgpu', ...options }),
      adapter ? /GPU is required.*, but webgpu runs on a software adapter \(.*llvmpipe/ : /GPU is required.*no WebGPU adapter/,
    );
  });
});
