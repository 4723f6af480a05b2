import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { type Config, defaultConfig } from '../../src/runtime/config.js';
import { randomCase, rng, xorCase } from '../helpers.js';
import { relError, valueAndGrad64 } from '../reference/mlp64.js';

type Overrides = { limits?: Partial<Config['limits']>; admission?: Partial<Config['admission']> };

async function withServer(overrides: Overrides, body: (url: string, app: FastifyInstance, engine: Engine) => Promise<void>) {
  const base = defaultConfig();
  const config = {
    ...base,
    logLevel: 'silent' as const,
    limits: { ...base.limits, ...overrides.limits },
    admission: { ...base.admission, ...overrides.admission },
  };
  const engine = await Engine.create({ backend: 'webasm', kernelCacheSize: 64 });
  const app = await buildApp({ config, engine });
  try {
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    await body(url, app, engine);
  } finally {
    await app.close();
    await app.computeGate.idle();
    await engine.close();
  }
}

const post = (url: string, body: unknown, signal?: AbortSignal) =>
  fetch(`${url}/value-and-grad`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' }, signal });

/** A request that takes the engine a second or more here (first-call compiles included): 3 layers, 11 kernels. */
const heavy = randomCase(rng(7), { widths: [256, 512, 512, 1], batch: 2048, activation: 'tanh' });
const HEAVY_KERNELS = 11;

describe('work limits', () => {
  const cases: [string, Overrides['limits'], unknown, RegExp][] = [
    ['layers', { layers: 1 }, xorCase, /params has 2 layers; the limit is 1 \(GRADSERVE_MAX_LAYERS\)/],
    ['width', { width: 3 }, xorCase, /a layer is 4 wide; the limit is 3 \(GRADSERVE_MAX_WIDTH\)/],
    ['batch', { batch: 3 }, xorCase, /x has 4 rows; the batch limit is 3 \(GRADSERVE_MAX_BATCH\)/],
    ['work', { work: 47 }, xorCase, /work, batch × Σ in×out = 4\.80e\+1, is over the limit of 4\.70e\+1 \(GRADSERVE_MAX_WORK\)/],
  ];
  for (const [name, limits, request, message] of cases) {
    it(`refuses a request over the ${name} limit with a 413 that names it`, async () => {
      await withServer({ limits }, async (url) => {
        const res = await post(url, request);
        assert.equal(res.status, 413);
        const body = (await res.json()) as { code: string; message: string };
        assert.equal(body.code, 'GRADSERVE_LIMIT_EXCEEDED');
        assert.match(body.message, message);
      });
    });
  }

  it('accepts a request exactly at the work limit', async () => {
    await withServer({ limits: { work: 48 } }, async (url) => {
      assert.equal((await post(url, xorCase)).status, 200);
    });
  });
});

describe('overload, timeouts and abandoned work', () => {
  it('refuses what it cannot queue with 503 and Retry-After, keeps /healthz answering, and serves again after', async () => {
    await withServer({ admission: { maxConcurrency: 1, maxQueue: 1 } }, async (url) => {
      const flood = Array.from({ length: 6 }, async () => {
        const res = await post(url, heavy);
        return { status: res.status, retryAfter: res.headers.get('retry-after'), body: (await res.json()) as { code: string } };
      });
      const health = await fetch(`${url}/healthz`);
      assert.equal(health.status, 200, 'health checks are not gated');
      const answers = await Promise.all(flood);
      const refused = answers.filter((r) => r.status === 503);
      assert.equal(answers.filter((r) => r.status === 200).length, 2, 'one computing, one queued');
      assert.equal(refused.length, 4);
      for (const r of refused) {
        assert.ok(Number(r.retryAfter) >= 1, 'Retry-After in whole seconds');
        assert.equal(r.body.code, 'GRADSERVE_OVERLOADED');
      }
      assert.equal((await post(url, xorCase)).status, 200);
    });
  });

  it('answers 503 when a request runs past the timeout, and stops its work at the next kernel', async () => {
    await withServer({ admission: { requestTimeoutMs: 150 } }, async (url, app, engine) => {
      assert.equal((await post(url, xorCase)).status, 200); // warm: XOR's kernels are compiled
      const before = engine.info().kernelCache.compiles;
      const t0 = performance.now();
      const res = await post(url, heavy);
      const waited = performance.now() - t0;
      assert.equal(res.status, 503);
      assert.ok(Number(res.headers.get('retry-after')) >= 1);
      assert.equal(((await res.json()) as { code: string }).code, 'GRADSERVE_TIMEOUT');
      await app.computeGate.idle();
      const ran = engine.info().kernelCache.compiles - before;
      assert.ok(ran < HEAVY_KERNELS, `abandoned after ${ran} of ${HEAVY_KERNELS} kernels (answered in ${waited.toFixed(0)} ms)`);
      const xor = await post(url, xorCase);
      assert.equal(xor.status, 200, 'serving again');
    });
  });

  it('abandons the work of a client that disconnects', async () => {
    await withServer({}, async (url, app, engine) => {
      const controller = new AbortController();
      const pending = post(url, heavy, controller.signal).catch((err: Error) => err);
      await new Promise((r) => setTimeout(r, 100));
      controller.abort();
      assert.equal(((await pending) as Error).name, 'AbortError');
      await new Promise((r) => setTimeout(r, 50));
      await app.computeGate.idle();
      assert.ok(engine.info().kernelCache.compiles < HEAVY_KERNELS, 'stopped before the backward pass');
      assert.deepEqual(app.computeGate.stats(), { admitted: 0, running: 0, waiting: 0 });
    });
  });
});

describe('concurrency', () => {
  it('gives each of many concurrent mixed requests its own correct answer', async () => {
    const rand = rng(2026);
    const acts = ['tanh', 'relu', 'sigmoid', 'linear'] as const;
    const cases = Array.from({ length: 60 }, (_, i) => {
      const layers = 1 + Math.floor(rand() * 3);
      // few distinct widths, so requests share kernels (and run them concurrently)
      const widths = Array.from({ length: layers + 1 }, () => [1, 3, 8][Math.floor(rand() * 3)]!);
      const batch = 1 + Math.floor(rand() * 40);
      return randomCase(rand, {
        widths,
        batch,
        activation: acts[i % 4]!,
        reduction: i % 2 ? 'sum' : 'mean',
      });
    });
    await withServer({ admission: { maxConcurrency: 4, maxQueue: 100 } }, async (url) => {
      const answers = await Promise.all(cases.map(async (c) => (await post(url, c)).json()));
      answers.forEach((got, i) => {
        const want = valueAndGrad64(cases[i]!);
        const { loss, grads } = got as { loss: number; grads: { W: number[][]; b: number[] }[] };
        assert.ok(relError([loss], [want.loss]) <= 1e-5, `case ${i}: loss ${loss} vs ${want.loss}`);
        grads.forEach((g, l) => {
          assert.ok(relError(g.W.flat(), want.grads[l]!.W.flat()) <= 1e-5, `case ${i}: dW[${l}]`);
          assert.ok(relError(g.b, want.grads[l]!.b) <= 1e-5, `case ${i}: db[${l}]`);
        });
      });
    });
  });
});
