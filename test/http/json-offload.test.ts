import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { isResponseSerializationError } from 'fastify-type-provider-zod';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { ResultEncoder, unpackTensors } from '../../src/http/encode.js';
import { acceptsGzip, answerSerializerCompiler, spellOutWildcard, untilAborted } from '../../src/http/json-body.js';
import { JsonWorkers } from '../../src/http/json-workers.js';
import { POST_ROUTES } from '../../src/http/schemas.js';
import { defaultConfig, type JsonOffload, loadConfig } from '../../src/runtime/config.js';
import { randomCase, rng } from '../helpers.js';
import { predict64, relError, valueAndGrad64 } from '../reference/mlp64.js';

/**
 * Large JSON bodies are parsed and validated, and large answers written, in worker threads
 * (src/http/json-workers.ts). Here "large" is lowered to 1 KiB so that small, checkable
 * problems take that path; the answers must match the float64 reference, and every refusal
 * must read exactly as it does on the event loop.
 */
describe('JSON worker threads', () => {
  let engine: Engine;
  let offloaded: FastifyInstance;
  let inline: FastifyInstance;
  const make = (jsonOffload: JsonOffload) => buildApp({ config: { ...defaultConfig(), logLevel: 'silent', jsonOffload }, engine });
  before(async () => {
    engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 64 });
    offloaded = await make({ workers: 1, minBytes: 1024 });
    inline = await make({ workers: 0, minBytes: 1024 });
  });
  after(async () => {
    await offloaded.close();
    await inline.close();
    await engine.close();
  });
  const post = (app: FastifyInstance, url: string, payload: string) =>
    app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });

  const c = randomCase(rng(7), { widths: [12, 24, 3], batch: 40, activation: 'relu', loss: 'bce' });

  it('answers value-and-grad and forward from a worker-validated body as the float64 reference does', async () => {
    const before = offloaded.jsonWorkers.stats();
    const res = await post(offloaded, '/value-and-grad', JSON.stringify(c));
    assert.equal(res.statusCode, 200, res.body);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    // Server-Timing names the parse (in the worker) and the write (in the worker) too
    assert.match(
      String(res.headers['server-timing']),
      /^parse;dur=[\d.]+;.*compute;dur=[\d.]+;.*, write;dur=[\d.]+;desc="answer encoded, validated and written as JSON"$/,
    );
    const got = res.json();
    const want = valueAndGrad64(c);
    assert.ok(relError([got.loss], [want.loss]) <= 1e-5);
    got.grads.forEach((g: { W: number[][]; b: number[] }, l: number) => {
      assert.ok(relError(g.W.flat(), want.grads[l]!.W.flat()) <= 1e-5, `layer ${l} W`);
      assert.ok(relError(g.b, want.grads[l]!.b) <= 1e-5, `layer ${l} b`);
    });
    const fwd = await post(
      offloaded,
      '/forward',
      JSON.stringify({ params: c.params, x: c.x, activation: c.activation, outputActivation: c.outputActivation }),
    );
    assert.equal(fwd.statusCode, 200, fwd.body);
    assert.ok(relError(fwd.json().predictions.flat(), predict64(c).flat()) <= 1e-5);
    const after = offloaded.jsonWorkers.stats();
    assert.equal(after.parse - before.parse, 2, 'both bodies went to a worker');
    assert.ok(after.write - before.write >= 1, 'the gradient answer was written by a worker');
    // and byte for byte what the event loop's path answers
    assert.equal(res.body, (await post(inline, '/value-and-grad', JSON.stringify(c))).body);
  });

  it('writes a large /init answer in a worker, equal to the event loop’s', async () => {
    const body = JSON.stringify({ layers: [64, 64, 1], seed: 3, scheme: 'glorot_normal' });
    const before = offloaded.jsonWorkers.stats().write;
    const a = await post(offloaded, '/init', body);
    assert.equal(a.statusCode, 200, a.body);
    assert.equal(offloaded.jsonWorkers.stats().write, before + 1);
    assert.equal(a.body, (await post(inline, '/init', body)).body);
  });

  it('refuses bad large bodies with the same 400 and message as the event loop', async () => {
    const good = JSON.stringify(c);
    const pad = (s: string) => s.padEnd(4096, ' ');
    const bad: Record<string, string> = {
      truncated: good.slice(0, 3000),
      empty: ' '.repeat(4096),
      proto: pad(`{"__proto__": {"polluted": 1}, ${good.slice(1)}`),
      'a string for a number': good.replace(/\[\[(-?[\d.e-]+)/, '[["1"'),
      'a ragged row': JSON.stringify({ ...c, x: [c.x[0], c.x[1]!.slice(1), ...c.x.slice(2)] }),
      'beyond float32': JSON.stringify({ ...c, x: [[1e39, ...c.x[0]!.slice(1)], ...c.x.slice(1)] }),
      'an unknown field': JSON.stringify({ ...c, learning_rate: 0.1 }),
      // bodies that are not all ASCII are decoded as UTF-8 (ASCII ones as Latin-1, the same text)
      'an unknown field named in UTF-8': JSON.stringify({ ...c, 'taux_d’apprentissage_η': 0.1 }),
      'a wrong-sized binary tensor': JSON.stringify({ ...c, x: { dtype: 'float32', shape: [40, 12], data: 'AAAAAA==' } }),
      'mismatched shapes': JSON.stringify({ ...c, x: c.x.map((r) => r.slice(1)) }),
    };
    for (const [what, payload] of Object.entries(bad)) {
      assert.ok(payload.length >= 1024, `${what} is large enough to go to a worker`);
      const a = await post(offloaded, '/value-and-grad', payload);
      const b = await post(inline, '/value-and-grad', payload);
      assert.equal(a.statusCode, 400, `${what}: ${a.body}`);
      assert.deepEqual(a.json(), b.json(), what);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    const named = await post(offloaded, '/value-and-grad', bad['an unknown field named in UTF-8']!);
    assert.match(named.json().message, /taux_d’apprentissage_η/, 'the key as the client wrote it');
    const bom = await post(offloaded, '/value-and-grad', `\ufeff${good}`);
    assert.equal(bom.statusCode, 200, 'a UTF-8 byte-order mark is skipped, as on the event loop');
  });

  it('gzips a large JSON answer in the worker for clients that take gzip; leaves deflate to @fastify/compress', async () => {
    const payload = JSON.stringify(c);
    const send = (acceptEncoding: string) =>
      offloaded.inject({
        method: 'POST',
        url: '/value-and-grad',
        payload,
        headers: { 'content-type': 'application/json', 'accept-encoding': acceptEncoding },
      });
    const plain = (await post(inline, '/value-and-grad', payload)).body;
    for (const accept of ['gzip', 'br, gzip;q=0.5', '*']) {
      const res = await send(accept);
      assert.equal(res.statusCode, 200, accept);
      assert.equal(res.headers['content-encoding'], 'gzip', accept);
      assert.match(String(res.headers.vary), /accept-encoding/i, accept);
      assert.match(
        String(res.headers['server-timing']),
        /write;dur=[\d.]+;desc="answer encoded, validated and written as JSON, gzipped"/,
        accept,
      );
      assert.equal(gunzipSync(res.rawPayload).toString(), plain, `${accept}: the same answer, gzipped`);
    }
    const deflated = await send('gzip;q=0, deflate');
    assert.equal(deflated.headers['content-encoding'], 'deflate', 'gzip refused: @fastify/compress deflates');
    assert.equal(inflateSync(deflated.rawPayload).toString(), plain);
    const identity = await send('identity');
    assert.equal(identity.headers['content-encoding'], undefined);
    assert.equal(identity.body, plain);
  });

  it('writes answers uncompressed whatever the client accepts with GRADSERVE_COMPRESS_RESPONSES=0, and still takes gzip bodies', async () => {
    assert.equal(loadConfig({}).compressResponses, true);
    assert.equal(loadConfig({ GRADSERVE_COMPRESS_RESPONSES: '0' }).compressResponses, false);
    const uncompressed = await buildApp({
      config: { ...defaultConfig(), logLevel: 'silent', jsonOffload: { workers: 1, minBytes: 1024 }, compressResponses: false },
      engine,
    });
    try {
      const plain = (await post(inline, '/value-and-grad', JSON.stringify(c))).body;
      // a large answer (written by the JSON thread) and a small one (by @fastify/compress's hook)
      const small = randomCase(rng(8), { widths: [16, 32, 1], batch: 8, activation: 'tanh' });
      const smallPlain = (await post(inline, '/value-and-grad', JSON.stringify(small))).body;
      assert.ok(smallPlain.length > 1024, "over @fastify/compress's threshold");
      for (const [request, want] of [
        [c, plain],
        [small, smallPlain],
      ] as const) {
        for (const accept of ['gzip', 'gzip, deflate', 'deflate', '*']) {
          const res = await uncompressed.inject({
            method: 'POST',
            url: '/value-and-grad',
            payload: gzipSync(JSON.stringify(request)),
            headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'accept-encoding': accept },
          });
          assert.equal(res.statusCode, 200, res.body);
          assert.equal(res.headers['content-encoding'], undefined, accept);
          assert.equal(res.body, want, accept);
        }
      }
    } finally {
      await uncompressed.close();
    }
  });

  it('reads Accept-Encoding as RFC 9110 does for gzip', () => {
    const cases: [string | undefined, boolean][] = [
      [undefined, false],
      ['', false],
      ['gzip', true],
      ['GZip', true],
      ['x-gzip', true],
      ['deflate, gzip;q=0.1', true],
      ['gzip;q=0', false],
      ['gzip; q=0.000', false],
      ['*', true],
      ['*;q=0', false],
      ['gzip;q=0, *', false],
      ['deflate, br', false],
      ['identity', false],
    ];
    for (const [header, want] of cases) assert.equal(acceptsGzip(header), want, String(header));
  });

  it("spells out Accept-Encoding's * as the codings it does not name, for @fastify/compress", () => {
    const offered = ['gzip', 'deflate'];
    const cases: [string, string][] = [
      ['*', 'gzip, deflate'],
      ['gzip;q=0, *', 'gzip;q=0, deflate'],
      ['X-GZIP;q=0, *;q=0.5', 'x-gzip;q=0, deflate;q=0.5'],
      ['gzip;q=0, deflate;q=0, *', 'gzip;q=0, deflate;q=0'],
      ['br, *;q=0', 'br, gzip;q=0, deflate;q=0'],
    ];
    for (const [header, want] of cases) assert.equal(spellOutWildcard(header, offered), want, header);
  });

  it('keeps JSON tensors as float32 values until written, on the event loop or in a thread, as the same numbers', () => {
    const enc = new ResultEncoder('json');
    const big = Float32Array.from([9, 9, 0.1, Number.NaN, Number.POSITIVE_INFINITY, -0, Number.NEGATIVE_INFINITY, 3e-39, 9]);
    const W = { rows: 3, cols: 2, data: big.subarray(2, 8) }; // a view: only its own values travel
    const answer = { loss: enc.number(Number.NaN), grads: enc.layers([{ W, b: Float32Array.of(1.5, -2) }]), warnings: ['w'] };
    const sent = structuredClone(answer) as unknown as { grads: { W: { packedFloat32: Float32Array } }[] };
    assert.equal(sent.grads[0]!.W.packedFloat32.buffer.byteLength, 6 * 4);
    const written = unpackTensors(answer) as typeof answer;
    assert.deepEqual(unpackTensors(sent), written);
    assert.deepEqual(written.grads[0]!.W, [
      [Math.fround(0.1), 'NaN'],
      ['Infinity', -0],
      ['-Infinity', Math.fround(3e-39)],
    ]);
    assert.deepEqual(written.grads[0]!.b, [1.5, -2]);
    assert.equal(written.loss, 'NaN');
    assert.equal(enc.nonFinite, 4);
  });

  it("checks answers against the route's schema: keys it does not name are dropped, and a wrong answer throws", () => {
    const serialize = answerSerializerCompiler({
      schema: POST_ROUTES['/value-and-grad'].ok,
      method: 'POST',
      url: '/value-and-grad',
      httpStatus: '200',
    });
    const grads = [{ W: [[0.5, -1]], b: [0.25, 'NaN'] }];
    assert.deepEqual(JSON.parse(serialize({ loss: 0.5, grads, internal: 'x' })), { loss: 0.5, grads });
    assert.throws(
      () => serialize({ loss: 'half', grads }),
      (err: Error) => isResponseSerializationError(err as never) && /loss/.test(JSON.stringify((err as Error & { cause: unknown }).cause)),
    );
  });

  it('gives back the memory of a large body once its thread is idle', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    const rssMb = async () => {
      gc();
      await new Promise((resolve) => setTimeout(resolve, 300)); // the thread collects when idle
      gc();
      return process.memoryUsage().rss / 2 ** 20;
    };
    const workers = new JsonWorkers({ workers: 1, minBytes: 0 });
    const bodyOf = (rows: number, cols: number) => {
      const x = Array.from({ length: rows }, (_, i) => Array.from({ length: cols }, (_, j) => Math.sin(i * cols + j)));
      const params = [{ W: Array.from({ length: cols }, () => [0.5]), b: [0] }];
      return Buffer.from(JSON.stringify({ params, x, y: x.map(() => [1]) }));
    };
    try {
      await workers.parse('/value-and-grad', bodyOf(64, 64), defaultConfig().limits);
      const big = bodyOf(4096, 384); // 29 MB of JSON, handed over to the thread
      const mb = (big.length / 2 ** 20).toFixed(0);
      const before = await rssMb();
      const { x } = (await workers.parse('/value-and-grad', big, defaultConfig().limits)) as { x: { shape: number[] } };
      assert.deepEqual(x.shape, [4096, 384], 'parsed and validated');
      const grown = (await rssMb()) - before;
      assert.ok(grown < 32, `RSS grew ${grown.toFixed(1)} MiB after a ${mb} MB body`);
    } finally {
      await workers.close();
    }
  });

  it('fails only the requests of a worker that dies, and starts a new one for the next', async () => {
    const workers = offloaded.jsonWorkers as unknown as {
      threads: { worker: { terminate(): Promise<number> }; pending: Map<number, unknown> }[];
    };
    const big = JSON.stringify(randomCase(rng(8), { widths: [64, 64, 1], batch: 2048, activation: 'tanh' }));
    const pending = post(offloaded, '/value-and-grad', big);
    while (!workers.threads.some((t) => t.pending.size > 0)) await new Promise((r) => setImmediate(r));
    await workers.threads[0]!.worker.terminate();
    const lost = await pending;
    assert.equal(lost.statusCode, 500, lost.body);
    assert.doesNotMatch(lost.body, /worker|thread/, 'no internals in the answer');
    const next = await post(offloaded, '/value-and-grad', JSON.stringify(c));
    assert.equal(next.statusCode, 200, next.body);
  });

  it("answers a request whose signal aborts while its body is parsed at once (untilAborted), where the parse's own end may come later", async () => {
    let finish!: (v: string) => void;
    const parse = new Promise<string>((resolve) => {
      finish = resolve;
    });
    const controller = new AbortController();
    const answer = untilAborted(parse, controller.signal);
    controller.abort(new Error('timed out'));
    await assert.rejects(answer, /^Error: timed out$/);
    finish('parsed');
    assert.equal(await untilAborted(parse, new AbortController().signal), 'parsed');
    await assert.rejects(untilAborted(parse, AbortSignal.abort(new Error('gone'))), /gone/);
  });

  it('holds the read slot of a client gone while a JSON thread still parses its body, so that the slots bound the bodies held', async () => {
    const app = await make({ workers: 1, minBytes: 0 });
    try {
      const url = new URL(await app.listen({ port: 0, host: '127.0.0.1' }));
      // ~30 MB of JSON: a JSON thread parses it in hundreds of ms
      const body = Buffer.from(JSON.stringify(randomCase(rng(9), { widths: [384, 1], batch: 4096, activation: 'tanh' })));
      const threads = (app.jsonWorkers as unknown as { threads: { pending: Map<number, unknown> }[] }).threads;
      const parsing = () => threads.some((t) => t.pending.size > 0);
      const socket = connect(Number(url.port), '127.0.0.1');
      socket.on('error', () => {});
      socket.write(`POST /value-and-grad HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`);
      socket.write(body);
      // the client leaves once the server has read its body and handed it to the thread
      while (!parsing()) await new Promise((resolve) => setTimeout(resolve, 1));
      socket.destroy();
      let heldWhileParsing = 0;
      while (parsing()) {
        assert.equal(app.computeGate.stats().admitted, 1, 'the slot is held while the thread holds the body');
        heldWhileParsing++;
        await new Promise((resolve) => setTimeout(resolve, 1));
      }
      assert.ok(heldWhileParsing > 0, 'the thread was still parsing after the client had gone');
      const deadline = Date.now() + 5000;
      while (app.computeGate.stats().admitted > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 5));
      assert.equal(app.computeGate.stats().admitted, 0, 'and freed once the thread is done with it');
    } finally {
      await app.close();
    }
  });

  it('drops a body still waiting for a thread when its signal aborts: it is never parsed, and the next one is', async () => {
    const workers = new JsonWorkers({ workers: 1, minBytes: 0 });
    try {
      const limits = defaultConfig().limits;
      const big = Buffer.from(JSON.stringify(randomCase(rng(9), { widths: [64, 64, 1], batch: 4096, activation: 'tanh' })));
      const first = workers.parse('/value-and-grad', big, limits); // the thread's one job
      const controller = new AbortController();
      const waiting = workers.parse('/value-and-grad', Buffer.from(JSON.stringify(c)), limits, controller.signal);
      controller.abort(new Error('timed out'));
      await assert.rejects(waiting, /^Error: timed out$/);
      await first;
      const value = (await workers.parse('/value-and-grad', Buffer.from(JSON.stringify(c)), limits)) as { x: unknown };
      assert.ok(value.x !== undefined, 'the next body is parsed');
      assert.equal(workers.stats().parse, 2, 'the dropped body was never parsed');
      await assert.rejects(
        workers.parse('/value-and-grad', Buffer.from(JSON.stringify(c)), limits, AbortSignal.abort(new Error('gone'))),
        /gone/,
      );
    } finally {
      await workers.close();
    }
  });

  it('fails a body no thread can be handed with a rejection, never a throw into the body stream, and parses the next', async () => {
    const workers = new JsonWorkers({ workers: 1, minBytes: 1 });
    try {
      const lost = Buffer.from(new ArrayBuffer(4096));
      structuredClone(lost.buffer, { transfer: [lost.buffer] }); // its memory is gone: it cannot be sent
      const job = workers.parse('/value-and-grad', lost, defaultConfig().limits); // a throw here fails the test
      await assert.rejects(job);
      const value = (await workers.parse('/value-and-grad', Buffer.from(JSON.stringify(c)), defaultConfig().limits)) as { x: unknown };
      assert.ok(value.x !== undefined, 'the next body is parsed');
    } finally {
      await workers.close();
    }
  });
});
