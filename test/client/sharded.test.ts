import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import {
  type Base64Tensor,
  ShardError,
  type ValueAndGradRequest,
  type ValueAndGradResponse,
  valueAndGradSharded,
} from '../../client/index.js';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { defaultConfig } from '../../src/runtime/config.js';
import { randomCase, rng } from '../helpers.js';
import type { Case64 } from '../reference/mlp64.js';
import { assertSameAnswer } from './compare.js';

const toBase64 = (rows: number[][]): Base64Tensor => ({
  dtype: 'float32',
  shape: [rows.length, rows[0]!.length],
  data: Buffer.from(Float32Array.from(rows.flat()).buffer).toString('base64'),
});

async function single(url: string, request: ValueAndGradRequest): Promise<ValueAndGradResponse> {
  const res = await fetch(`${url}/value-and-grad`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(request),
  });
  assert.equal(res.status, 200, await res.clone().text());
  return (await res.json()) as ValueAndGradResponse;
}

async function startServer(admission: Partial<ReturnType<typeof defaultConfig>['admission']> = {}) {
  const engine = await Engine.create({ backend: 'auto', kernelCacheCapacity: 64 });
  const config = defaultConfig();
  const app = await buildApp({ config: { ...config, logLevel: 'silent', admission: { ...config.admission, ...admission } }, engine });
  const url = await app.listen({ port: 0, host: '127.0.0.1' });
  return { app, engine, url };
}

/** A URL where nothing listens: what a killed replica looks like (connection refused). */
async function deadUrl(): Promise<string> {
  const { createServer } = await import('node:net');
  const probe = createServer();
  await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
  const { port } = probe.address() as { port: number };
  await new Promise((r) => probe.close(r));
  return `http://127.0.0.1:${port}`;
}

describe('client: valueAndGradSharded', () => {
  let app: FastifyInstance;
  let engine: Engine;
  let url: string;
  before(async () => {
    ({ app, engine, url } = await startServer());
  });
  after(async () => {
    await app.close();
    await engine.close();
  });

  const cases: { name: string; c: Case64 }[] = [
    { name: 'bce, tanh, 2 outputs, mean', c: randomCase(rng(1), { widths: [3, 8, 2], batch: 257, activation: 'tanh' }) },
    {
      name: 'mse, relu, sum',
      c: randomCase(rng(2), { widths: [5, 16, 16, 1], batch: 300, activation: 'relu', loss: 'mse', reduction: 'sum' }),
    },
    { name: 'bce_logits, gelu, mean', c: randomCase(rng(3), { widths: [4, 12, 3], batch: 129, activation: 'gelu', loss: 'bce_logits' }) },
    // a softmax cross-entropy's mean is over rows, not over rows × classes
    {
      name: 'softmax_cross_entropy over 3 classes, relu, mean',
      c: randomCase(rng(12), { widths: [4, 8, 3], batch: 90, activation: 'relu', loss: 'softmax_cross_entropy' }),
    },
    {
      name: 'softmax_cross_entropy_with_integer_labels over 4 classes, tanh, mean',
      c: randomCase(rng(13), { widths: [4, 8, 4], batch: 90, activation: 'tanh', loss: 'softmax_cross_entropy_with_integer_labels' }),
    },
  ];
  for (const { name, c } of cases) {
    it(`equals one request and the float64 reference: ${name}, JSON rows`, async () => {
      const request = c as ValueAndGradRequest;
      const got = await valueAndGradSharded(url, request, { shards: 4 });
      assertSameAnswer(got, await single(url, request), c);
    });
  }

  it('takes binary tensors and flat targets, and answers in base64 when asked', async () => {
    const c = randomCase(rng(4), { widths: [6, 10, 1], batch: 1000, activation: 'silu' });
    const request: ValueAndGradRequest = { ...c, x: toBase64(c.x), y: c.y.map((r) => r[0]!), outputEncoding: 'base64' };
    const got = await valueAndGradSharded([url, url], request, { shards: 7 });
    assert.ok(!Array.isArray(got.grads[0]!.W), 'grads come back as binary tensors');
    assert.deepEqual((got.grads[0]!.W as Base64Tensor).shape, [6, 10]);
    assertSameAnswer(got, await single(url, request), c);
    const yBinary = await valueAndGradSharded(
      url,
      { ...request, y: { ...toBase64([c.y.map((r) => r[0]!)]), shape: [1000] } },
      { shards: 3 },
    );
    assertSameAnswer(yBinary, await single(url, request), c);
  });

  it("uses at most one shard per row, and sends the caller's reduction with binary tensors", async () => {
    const c = randomCase(rng(5), { widths: [2, 4, 1], batch: 3, activation: 'tanh' });
    let calls = 0;
    const counting: typeof fetch = (input, init) => {
      calls++;
      // binary tensors for params and rows
      const sent = JSON.parse(String(init?.body));
      assert.equal(sent.reduction, c.reduction);
      for (const t of [sent.x, sent.y, sent.params[0].W, sent.params[1].b]) assert.equal(t.dtype, 'float32');
      return fetch(input, init);
    };
    const got = await valueAndGradSharded(url, c as ValueAndGradRequest, { shards: 16, fetch: counting });
    assert.equal(calls, 3);
    assertSameAnswer(got, await single(url, c as ValueAndGradRequest), c);
  });

  it('gives the warnings one request would: saturated predictions added up, non-finite values counted again', async () => {
    // sigmoid(20) is exactly 1.0 in float32: rows 0 and 2 saturate, each in a shard of its own
    const request = { params: [{ W: [[20]], b: [0] }], x: [[1], [0], [1], [0.5]], y: [0, 0, 0, 0] } as ValueAndGradRequest;
    const whole = await single(url, request);
    const got = await valueAndGradSharded(url, request, { shards: 4 });
    assert.match(whole.warnings?.[0] ?? '', /^2 of 4 predictions are exactly 1\.0/);
    assert.match(whole.warnings?.[1] ?? '', /^3 result values are not finite/);
    assert.deepEqual(got.warnings, whole.warnings);
    assert.deepEqual([got.loss, got.grads], [whole.loss, whole.grads]);
    // in binary tensors, the same warnings in that encoding's words
    const binary = { ...request, outputEncoding: 'base64' } as ValueAndGradRequest;
    const wholeBinary = await single(url, binary);
    assert.match(wholeBinary.warnings?.[1] ?? '', /^3 result values are not finite \(NaN or ±Infinity in the binary tensors\)/);
    assert.deepEqual((await valueAndGradSharded(url, binary, { shards: 4 })).warnings, wholeBinary.warnings);

    // targets outside [0, 1] (-1/+1 labels) and predictions outside it (a linear output with bce), counted over the shards
    const mistaken = {
      params: [{ W: [[2]], b: [0] }],
      x: [[1], [0.2], [-1], [0.3]],
      y: [1, -1, -1, 1],
      outputActivation: 'linear',
    } as ValueAndGradRequest;
    const one = await single(url, mistaken);
    assert.match(one.warnings?.[0] ?? '', /^1 of 4 predictions are below 0/);
    assert.match(one.warnings?.[1] ?? '', /^1 of 4 predictions are above 1/);
    assert.match(one.warnings?.[2] ?? '', /^2 of 4 targets lie outside \[0, 1\]/);
    assert.deepEqual((await valueAndGradSharded(url, mistaken, { shards: 4 })).warnings, one.warnings);

    // rows of targets that do not sum to 1, counted over the batch's rows, in the server's order
    const rowsOff = {
      params: [
        {
          W: [
            [0.5, -0.2, 0.1],
            [0.3, 0.4, -0.6],
          ],
          b: [0, 0, 0],
        },
      ],
      x: [
        [1, 2],
        [0, 1],
        [-1, 0.5],
        [2, -1],
        [1, 1],
        [0, 0],
      ],
      y: [
        [0.5, 0, 0],
        [1, 0, 0],
        [0, 0.3, 0],
        [0, 0.3, 0],
        [2, 0, 0],
        [0, 0, 1],
      ],
      loss: 'softmax_cross_entropy',
    } as ValueAndGradRequest;
    const rowsWhole = await single(url, rowsOff);
    assert.match(rowsWhole.warnings?.[1] ?? '', /^4 of 6 rows of targets do not sum to 1/);
    assert.deepEqual((await valueAndGradSharded(url, rowsOff, { shards: 3 })).warnings, rowsWhole.warnings);
  });

  it('overflows where one request would: a total beyond float32 is Infinity before the mean divides it, with the warning', async () => {
    // each row's squared error is 1e38: finite per shard, 8e38 in all, beyond float32's 3.4e38
    const base = { params: [{ W: [[1e19]], b: [0] }], x: Array.from({ length: 8 }, () => [1]), y: Array(8).fill(0) };
    for (const reduction of ['mean', 'sum'] as const) {
      const request = { ...base, loss: 'mse', outputActivation: 'linear', reduction } as ValueAndGradRequest;
      const whole = await single(url, request);
      assert.equal(whole.loss, 'Infinity');
      const got = await valueAndGradSharded(url, request, { shards: 8 });
      assert.deepEqual([got.loss, got.grads, got.warnings], [whole.loss, whole.grads, whole.warnings], reduction);
    }
  });

  it("gives a mean's gradients where one request gives them, though the batch's sum of them would overflow", async () => {
    // mse on 4 rows of prediction 1e38: each row's gradient 2e38, their sum beyond float32, their mean not
    const request = { params: [{ W: [[0]], b: [1e38] }], x: [[0], [0], [0], [0]], y: [0, 0, 0, 0], loss: 'mse' } as ValueAndGradRequest;
    const whole = await single(url, request);
    assert.equal(Number((whole.grads[0]!.b as number[])[0]), Math.fround(2e38));
    for (const shards of [1, 2, 4]) {
      const got = await valueAndGradSharded(url, request, { shards });
      assert.deepEqual([got.loss, got.grads, got.warnings], [whole.loss, whole.grads, whole.warnings], `${shards} shards`);
    }
  });

  it('sends at most maxInFlight shards at once, and still equals one request', async () => {
    const c = randomCase(rng(11), { widths: [3, 8, 1], batch: 64, activation: 'tanh' }) as ValueAndGradRequest;
    let open = 0;
    let most = 0;
    const counting: typeof fetch = async (input, init) => {
      most = Math.max(most, ++open);
      try {
        return await fetch(input, init);
      } finally {
        open--;
      }
    };
    const got = await valueAndGradSharded(url, c, { shards: 8, maxInFlight: 2, fetch: counting });
    assert.equal(most, 2);
    assertSameAnswer(got, await single(url, c), c as unknown as Case64);
  });

  it("fails the whole call when one shard is refused, naming the shard and the server's message", async () => {
    const c = randomCase(rng(6), { widths: [2, 4, 1], batch: 40, activation: 'tanh' });
    const x = c.x.map((r) => [...r]);
    x[35] = [1, 2, 3]; // a bad row in the last of 4 shards (rows 30–39)
    await assert.rejects(valueAndGradSharded(url, { ...c, x } as ValueAndGradRequest, { shards: 4 }), (err: unknown) => {
      assert.ok(err instanceof ShardError);
      assert.equal(err.shard, 3);
      assert.equal(err.status, 400);
      // the batch's row numbers, not the shard's (x[5] and row 0 there)
      assert.match(err.message, /^shard 4 of 4 \(rows 30–39\) failed: 400 GRADSERVE_INVALID_REQUEST: x\[35\] has 3 entries; row 30 has 2/);
      return true;
    });
    // a W sent flat, and x sent flat: the server's own words for them, not a packed tensor's or a row count's
    const flatW = { ...c, params: [{ ...c.params[0]!, W: c.params[0]!.W.flat() }, c.params[1]!] } as unknown as ValueAndGradRequest;
    await assert.rejects(valueAndGradSharded(url, flatW, { shards: 2 }), /params\[0\]\.W is a flat list of numbers; W takes rows/);
    await assert.rejects(
      valueAndGradSharded(url, { ...c, x: [0, 1] } as unknown as ValueAndGradRequest, { shards: 2 }),
      /^TypeError: x is a flat list of numbers; x takes rows/,
    );
  });

  it('refuses bad options and mismatched rows before sending anything', async () => {
    const c = randomCase(rng(7), { widths: [2, 4, 1], batch: 8, activation: 'tanh' }) as ValueAndGradRequest;
    await assert.rejects(valueAndGradSharded(url, c, { shards: 0 }), /shards is 0; it must be a whole number ≥ 1/);
    await assert.rejects(valueAndGradSharded([], c, { shards: 2 }), /endpoints is empty/);
    await assert.rejects(valueAndGradSharded(url, { ...c, y: [0, 1] }, { shards: 2 }), /x has 8 rows but y has 2/);
    await assert.rejects(
      valueAndGradSharded(url, { ...c, reduction: 'avg' as 'mean' }, { shards: 2 }),
      /reduction is "avg"; expected "mean" or "sum"/,
    );
    await assert.rejects(valueAndGradSharded(url, { ...c, outputEncoding: 'hex' as 'json' }, { shards: 2 }), /outputEncoding is "hex"/);
    await assert.rejects(
      valueAndGradSharded(url, { ...c, x: { dtype: 'float32', shape: [8, 2], data: 'AAAA' } }, { shards: 2 }),
      /x.data holds 3 bytes/,
    );
    const cube = { dtype: 'float32' as const, shape: [8, 1, 2], data: Buffer.alloc(64).toString('base64') };
    await assert.rejects(valueAndGradSharded(url, { ...c, x: cube }, { shards: 2 }), /x.shape has 3 dimensions/);
    await assert.rejects(valueAndGradSharded(url, c, { shards: 2, timeoutMs: -5 }), /timeoutMs is -5/);
    await assert.rejects(valueAndGradSharded(url, c, { shards: 2, maxInFlight: 0 }), /maxInFlight is 0/);
    await assert.rejects(valueAndGradSharded(url, c, undefined as unknown as { shards: number }), /options is missing/);
    // what a timer cannot take, said at once rather than as every attempt failing
    await assert.rejects(
      valueAndGradSharded(url, c, { shards: 2, timeoutMs: 2 ** 31 }),
      /timeoutMs is 2147483648; .* ≤ 2147483647, or Infinity/,
    );
    await assert.rejects(valueAndGradSharded(url, c, { shards: 2, maxRetryDelayMs: -1 }), /maxRetryDelayMs is -1/);
    await assert.rejects(valueAndGradSharded(url, c, { shards: '2' as unknown as number }), /shards is "2"; it must be a whole number/);
    for (const schemeless of [new URL(url).host, `localhost:${new URL(url).port}`])
      await assert.rejects(
        valueAndGradSharded(schemeless, c, { shards: 2 }),
        /is not an http\(s\) URL; give one like "http:\/\/gradserve:8080"/,
      );
    const negative = { dtype: 'float32' as const, shape: [-1, 2], data: '' };
    await assert.rejects(
      valueAndGradSharded(url, { ...c, x: negative }, { shards: 2 }),
      /x.shape is \[-1,2\]; each size must be a whole number ≥ 1/,
    );
    // no timeout at all, and a fractional one, are taken
    const single8 = await single(url, c);
    for (const timeoutMs of [Number.POSITIVE_INFINITY, 30_000.5]) {
      assertSameAnswer(await valueAndGradSharded(url, c, { shards: 2, timeoutMs }), single8, c as unknown as Case64);
    }
  });

  it("posts to the route under each base URL, keeping the base's path prefix and query", async () => {
    const c = randomCase(rng(10), { widths: [2, 3, 1], batch: 6, activation: 'tanh' }) as ValueAndGradRequest;
    const posted: string[] = [];
    const viaGateway: typeof fetch = (input, init) => {
      posted.push(String(input));
      return fetch(`${url}/value-and-grad`, init);
    };
    const bases = ['http://gw.example/team/gradserve?key=k1', 'http://gw.example/other/?key=k2', 'http://gw.example'];
    await valueAndGradSharded(bases, c, { shards: 3, fetch: viaGateway });
    assert.deepEqual(posted.sort(), [
      'http://gw.example/other/value-and-grad?key=k2',
      'http://gw.example/team/gradserve/value-and-grad?key=k1',
      'http://gw.example/value-and-grad',
    ]);
  });

  describe('failures, with a fetch that behaves as a network could', { timeout: 10_000 }, () => {
    const c = randomCase(rng(8), { widths: [3, 6, 1], batch: 64, activation: 'tanh' }) as ValueAndGradRequest;
    /** A fetch that never answers, until its signal aborts it (as the real one rejects). */
    const hanging = (init?: RequestInit) =>
      new Promise<Response>((_, reject) => {
        init?.signal?.addEventListener('abort', () => reject(init.signal!.reason), { once: true });
      });

    it('gives up on an attempt after timeoutMs and retries it', async () => {
      let attempts = 0;
      const slowFirst: typeof fetch = (input, init) => (attempts++ === 0 ? hanging(init) : fetch(input, init));
      const t0 = performance.now();
      const got = await valueAndGradSharded(url, c, { shards: 1, timeoutMs: 200, fetch: slowFirst });
      assert.equal(attempts, 2);
      assert.ok(performance.now() - t0 < 5000);
      assertSameAnswer(got, await single(url, c), c as Case64);
    });

    it("stops at once when the caller's signal aborts: rejects with its reason and sends nothing more", async () => {
      let attempts = 0;
      const counting: typeof fetch = (_input, init) => {
        attempts++;
        return hanging(init);
      };
      const controller = new AbortController();
      const call = valueAndGradSharded(url, c, { shards: 2, fetch: counting, signal: controller.signal });
      await new Promise((r) => setTimeout(r, 50));
      controller.abort(new Error('caller gave up'));
      await assert.rejects(call, /caller gave up/);
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(attempts, 2, 'no retries after the abort');
    });

    it('retries 502 and 504 as it does 503 (a balancer with no healthy replica)', async () => {
      for (const status of [502, 504]) {
        let attempts = 0;
        const gateway: typeof fetch = (input, init) =>
          attempts++ === 0 ? Promise.resolve(new Response('<html>bad gateway</html>', { status })) : fetch(input, init);
        const got = await valueAndGradSharded(url, c, { shards: 1, fetch: gateway, maxRetryDelayMs: 10 });
        assert.equal(attempts, 2, `${status} retried`);
        assertSameAnswer(got, await single(url, c), c as Case64);
      }
    });

    it("aborts the other shards' requests when one fails for good", async () => {
      const aborted: boolean[] = [];
      const oneRefused: typeof fetch = (_input, init) => {
        const body = JSON.parse(String(init?.body)) as { x: { shape: number[] } };
        const first = aborted.length === 0;
        aborted.push(false);
        if (first) return Promise.resolve(new Response('{"code":"GRADSERVE_INVALID_REQUEST","message":"no"}', { status: 400 }));
        const k = aborted.length - 1;
        init?.signal?.addEventListener('abort', () => {
          aborted[k] = true;
        });
        assert.ok(body.x.shape[0]! > 0);
        return hanging(init);
      };
      await assert.rejects(valueAndGradSharded(url, c, { shards: 3, fetch: oneRefused }), /failed: 400 GRADSERVE_INVALID_REQUEST: no/);
      assert.deepEqual(aborted, [false, true, true], 'the two pending shards were aborted');
    });
  });

  it('retries 503s, honouring Retry-After, and moves past a dead replica', async () => {
    const c = randomCase(rng(8), { widths: [3, 6, 1], batch: 64, activation: 'tanh' });
    const request = c as ValueAndGradRequest;
    // The first attempt of every shard meets a 503 that says "come back in 1 s".
    const tried = new Set<string>();
    let refused = 0;
    const flaky: typeof fetch = (input, init) => {
      const key = String(init?.body);
      if (!tried.has(key)) {
        tried.add(key);
        refused++;
        return Promise.resolve(
          new Response('{"statusCode":503,"code":"GRADSERVE_OVERLOADED","message":"busy"}', {
            status: 503,
            headers: { 'retry-after': '1' },
          }),
        );
      }
      return fetch(input, init);
    };
    const t0 = performance.now();
    const got = await valueAndGradSharded(url, request, { shards: 2, fetch: flaky });
    assert.equal(refused, 2);
    assert.ok(performance.now() - t0 >= 950, 'waited for Retry-After');
    assertSameAnswer(got, await single(url, request), c);

    // Shard 1 starts on the dead replica (connection refused) and moves to the live one.
    const viaDead = await valueAndGradSharded([await deadUrl(), url], request, { shards: 2 });
    assertSameAnswer(viaDead, await single(url, request), c);
  });

  it('gives up after the retries, saying what the last attempt got; caps Retry-After', async () => {
    const c = randomCase(rng(9), { widths: [2, 4, 1], batch: 8, activation: 'tanh' }) as ValueAndGradRequest;
    const busy: typeof fetch = async () =>
      new Response('{"code":"GRADSERVE_OVERLOADED","message":"busy"}', { status: 503, headers: { 'retry-after': '30' } });
    const t0 = performance.now();
    await assert.rejects(valueAndGradSharded(url, c, { shards: 2, retries: 2, maxRetryDelayMs: 20, fetch: busy }), (err: unknown) => {
      assert.ok(err instanceof ShardError);
      assert.match(err.message, /shard \d of 2 \(rows \d–\d\) failed after 3 attempts; last: 503 GRADSERVE_OVERLOADED: busy/);
      assert.equal(err.code, 'GRADSERVE_OVERLOADED', "the last attempt's code");
      return true;
    });
    assert.ok(performance.now() - t0 < 1000, 'Retry-After capped by maxRetryDelayMs');
    await assert.rejects(
      valueAndGradSharded(await deadUrl(), c, { shards: 1, retries: 1 }),
      /shard 1 of 1 \(rows 0–7\) failed after 2 attempts; last: network error/,
    );
  });

  it('completes against a real overloaded server (one slot, no queue) by retrying', async () => {
    const busy = await startServer({ maxConcurrency: 1, maxQueue: 0 });
    try {
      const c = randomCase(rng(10), { widths: [8, 32, 1], batch: 2048, activation: 'tanh' });
      const request = { ...c, x: toBase64(c.x) } as ValueAndGradRequest;
      let overloaded = 0;
      const counting: typeof fetch = async (input, init) => {
        const res = await fetch(input, init);
        if (res.status === 503) overloaded++;
        return res;
      };
      // another client holds the one slot with a large request (its kernels compile, then
      // it computes for a while): the shards' first attempts are refused, whatever the timing
      const big = randomCase(rng(11), { widths: [64, 256, 256, 1], batch: 4096, activation: 'tanh' });
      const occupier = single(busy.url, { ...big, x: toBase64(big.x) } as ValueAndGradRequest);
      while (busy.app.computeGate.stats().running === 0) await new Promise((r) => setTimeout(r, 1));
      const got = await valueAndGradSharded(busy.url, request, { shards: 4, retries: 100, maxRetryDelayMs: 50, fetch: counting });
      await occupier;
      assert.ok(overloaded > 0, 'some shards were refused at first');
      assertSameAnswer(got, await single(busy.url, request), c);
    } finally {
      await busy.app.close();
      await busy.engine.close();
    }
  });
});
