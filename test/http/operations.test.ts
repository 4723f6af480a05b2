import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp, VERSION } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { xorRequest } from '../../src/http/request-examples.js';
import { defaultConfig } from '../../src/runtime/config.js';
import { MALLOC_TUNABLES, mallocTuning } from '../../src/runtime/malloc.js';

/** The value of one sample in Prometheus's text format; 0 when absent. */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

describe('operations: /info and /metrics', () => {
  let app: FastifyInstance;
  let engine: Engine;
  before(async () => {
    engine = await Engine.create({ backend: 'cpu', kernelCacheCapacity: 64 });
    app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine });
  });
  after(async () => {
    await app.close();
    await engine.close();
  });

  it('GET /info names the version, the backends, the limits and the kernel cache', async () => {
    const info = (await app.inject('/info')).json();
    assert.equal(info.version, VERSION);
    assert.equal(info.backend, 'cpu');
    assert.deepEqual(info.backends, ['cpu']);
    assert.equal(info.gpu, 'not looked for: the backend is cpu, not auto or webgpu');
    const config = defaultConfig();
    assert.deepEqual(info.limits, config.limits);
    assert.deepEqual(info.admission, config.admission);
    assert.deepEqual(info.threads, { json: config.jsonOffload.workers }, 'no webasm threads without webasm');
    assert.equal(info.kernelCache.capacity, 64);
    assert.equal(info.malloc, mallocTuning(), "glibc malloc's settings as this process has them");
  });

  it("tells glibc malloc's settings apart: ours, an operator's own, none, and another C library", () => {
    assert.equal(mallocTuning({ GLIBC_TUNABLES: MALLOC_TUNABLES }, true), 'tuned');
    assert.equal(mallocTuning({ GLIBC_TUNABLES: 'glibc.pthread.rseq=0:glibc.malloc.mmap_threshold=1048576' }, true), 'tuned');
    assert.equal(mallocTuning({}, true), 'default');
    assert.equal(mallocTuning({ GLIBC_TUNABLES: 'glibc.malloc.trim_threshold=134217728' }, true), 'default', 'no mmap threshold');
    assert.equal(mallocTuning({ GLIBC_TUNABLES: 'xglibc.malloc.mmap_threshold=1' }, true), 'default');
    assert.equal(mallocTuning({ GLIBC_TUNABLES: MALLOC_TUNABLES }, false), 'not glibc');
    assert.notEqual(mallocTuning({}), 'not glibc', 'this machine runs glibc (Debian)');
  });

  it("GET /info names webasm's threads where webasm runs", async () => {
    const webasm = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 4, webasmThreads: 3 });
    const other = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine: webasm });
    try {
      assert.equal((await other.inject('/info')).json().threads.webasm, 3);
    } finally {
      await other.close();
      await webasm.close();
    }
  });

  it('GET /metrics: request, latency, compute and kernel counters move with traffic', async () => {
    const scrape = async () => {
      const res = await app.inject('/metrics');
      assert.equal(res.statusCode, 200);
      assert.match(String(res.headers['content-type']), /^text\/plain; version=0\.0\.4/);
      return res.body;
    };
    const before = await scrape();
    assert.equal(sample(before, 'gradserve_backend_info', 'choice="cpu",backend="cpu"'), 1);
    assert.match(before, /^nodejs_eventloop_lag_seconds /m);
    const vg = 'method="POST",route="/value-and-grad",status="200"';
    const first = await app.inject({ method: 'POST', url: '/value-and-grad', payload: xorRequest });
    assert.equal(first.statusCode, 200);
    // Server-Timing: parsing, the compile total, then each of the 5 kernels by op, then the compute
    const timing = String(first.headers['server-timing']);
    assert.match(timing, /^parse;dur=\d+\.\d\d;desc="body parsed and validated", compile;/);
    assert.ok(Number(/^parse;dur=([\d.]+)/.exec(timing)?.[1]) > 0, timing);
    const perKernel = [...timing.matchAll(/compile-kernel;dur=([\d.]+);desc="([\w.]+)"/g)];
    assert.deepEqual(perKernel.map((m) => m[2]).sort(), ['dense.dW', 'dense.dW', 'dense.dZprev', 'dense.forward', 'dense.forward']);
    const total = Number(/compile;dur=([\d.]+);desc="5 kernels"/.exec(timing)?.[1]);
    assert.ok(Math.abs(perKernel.reduce((s, m) => s + Number(m[1]), 0) - total) < 0.05, timing);
    await app.inject({ method: 'POST', url: '/value-and-grad', payload: xorRequest });
    await app.inject({ method: 'POST', url: '/value-and-grad', payload: { ...xorRequest, x: [] } });
    await app.inject('/no/such/path?api_key=secret');
    await app.inject({ method: 'PROPFIND', url: '/no/such/path' });
    const after = await scrape();
    const moved = (name: string, labels = '') => sample(after, name, labels) - sample(before, name, labels);
    assert.equal(moved('gradserve_http_requests_total', vg), 2);
    assert.equal(moved('gradserve_http_requests_total', 'method="POST",route="/value-and-grad",status="400"'), 1);
    assert.equal(moved('gradserve_http_requests_total', 'method="GET",route="unmatched",status="404"'), 1);
    assert.equal(moved('gradserve_http_requests_total', 'method="other",route="unmatched",status="404"'), 1);
    assert.equal(moved('gradserve_http_request_duration_seconds_count', vg), 2);
    assert.equal(moved('gradserve_engine_compute_seconds_count', 'route="/value-and-grad",backend="cpu"'), 2);
    assert.equal(moved('gradserve_kernel_compiles_total'), 5); // the first request compiled the XOR network's kernels
    assert.equal(moved('gradserve_kernel_cache_hits_total'), 5); // the second found them all
    assert.ok(moved('gradserve_kernel_compile_seconds_sum', 'backend="cpu",op="dense.forward"') > 0);
    assert.doesNotMatch(after, /^gradserve_kernel_compile_seconds_total/m, 'no counter in the histogram family');
    assert.equal(moved('gradserve_kernel_compile_seconds_count', 'backend="cpu",op="dense.forward"'), 2);
    assert.equal(moved('gradserve_kernel_compile_seconds_count', 'backend="cpu",op="dense.dZprev"'), 1);
    assert.equal(sample(after, 'gradserve_kernel_cache_size'), 5);
  });

  it('keeps a registry per app: two apps count their own requests', async () => {
    const other = await Engine.create({ backend: 'cpu', kernelCacheCapacity: 4 });
    const second = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine: other });
    try {
      await second.inject('/healthz');
      const text = (await second.inject('/metrics')).body;
      assert.equal(sample(text, 'gradserve_http_requests_total', 'method="GET",route="/healthz",status="200"'), 1);
      assert.equal(sample(text, 'gradserve_http_requests_total', 'method="POST",route="/value-and-grad",status="200"'), 0);
    } finally {
      await second.close();
      await other.close();
    }
  });
});
