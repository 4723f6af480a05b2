import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { deflateSync, gunzipSync, gzipSync, inflateSync } from 'node:zlib';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { ResultEncoder } from '../../src/http/encode.js';
import { xorBinaryRequest, xorForwardRequest, xorRequest } from '../../src/http/request-examples.js';
import { defaultConfig } from '../../src/runtime/config.js';
import { assertGradsMatch, binary, randomCase, rng, xorCase } from '../helpers.js';
import { relError, valueAndGrad64 } from '../reference/mlp64.js';

/** A binary tensor from a response, back to numbers (checked independently of the server's encoder). */
function decode(t: { dtype: string; shape: number[]; data: string }): { shape: number[]; values: number[] } {
  assert.equal(t.dtype, 'float32');
  const bytes = Buffer.from(t.data, 'base64');
  const values = Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(4 * i));
  assert.equal(
    values.length,
    t.shape.reduce((a, b) => a * b, 1),
  );
  return { shape: t.shape, values };
}

describe('binary tensors and compression', () => {
  let app: FastifyInstance;
  let engine: Engine;
  before(async () => {
    engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 64 });
    app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine });
  });
  after(async () => {
    await app.close();
    await engine.close();
  });
  const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, payload: payload as object });

  it('answers the XOR lesson sent as binary tensors with binary gradients equal to the JSON answer', async () => {
    const json = (await post('/value-and-grad', xorRequest)).json();
    const res = await post('/value-and-grad', xorBinaryRequest);
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.loss, json.loss);
    const ref = valueAndGrad64(xorCase);
    assert.equal(body.grads.length, xorCase.params.length);
    body.grads.forEach((g: { W: never; b: never }, l: number) => {
      const W = decode(g.W);
      const b = decode(g.b);
      assert.deepEqual(W.shape, [xorCase.params[l]!.W.length, xorCase.params[l]!.W[0]!.length]);
      assert.deepEqual(b.shape, [xorCase.params[l]!.b.length]);
      assert.deepEqual(W.values, json.grads[l].W.flat(), 'the same float32 values as the JSON answer');
      assert.ok(relError(W.values, ref.grads[l]!.W.flat()) <= 1e-5);
      assert.ok(relError(b.values, ref.grads[l]!.b) <= 1e-5);
    });
  });

  it('takes JSON and binary tensors mixed in one request, on a random network', async () => {
    const c = randomCase(rng(9), { widths: [5, 7, 3], batch: 11, activation: 'relu' });
    const res = await post('/value-and-grad', {
      params: [
        { W: binary([5, 7], c.params[0]!.W.flat()), b: c.params[0]!.b },
        { W: c.params[1]!.W, b: binary([3], c.params[1]!.b) },
      ],
      x: binary([11, 5], c.x.flat()),
      y: c.y,
      activation: 'relu',
    });
    assert.equal(res.statusCode, 200, res.body);
    const ref = valueAndGrad64(c);
    assert.ok(relError([res.json().loss], [ref.loss]) <= 1e-6);
    assertGradsMatch(res.json().grads, ref.grads);
  });

  it('writes /forward predictions and /init params as binary tensors when asked', async () => {
    const forward = (await post('/forward', { ...xorForwardRequest, outputEncoding: 'base64' })).json();
    const jsonForward = (await post('/forward', xorForwardRequest)).json();
    assert.deepEqual(decode(forward.predictions).values, jsonForward.predictions.flat());
    const init = (await post('/init', { layers: [2, 4, 1], seed: 3, outputEncoding: 'base64' })).json();
    const jsonInit = (await post('/init', { layers: [2, 4, 1], seed: 3 })).json();
    assert.deepEqual(decode(init.params[0].W).values, jsonInit.params[0].W.flat());
    assert.deepEqual(decode(init.params[1].b).shape, [1]);
  });

  const bad: [string, unknown, RegExp][] = [
    [
      'a string where a matrix goes',
      { ...xorRequest, x: 'abc' },
      /^x is a string; expected a list of rows of numbers, or a binary tensor$/,
    ],
    ['a string inside a matrix', { ...xorRequest, x: [[0, 'a']] }, /^x\[0\]\[1\] is a string; expected a number$/],
    ['a ragged matrix', { ...xorRequest, x: [[0, 0], [1]] }, /^x\[1\] has 1 entry; row 0 has 2$/],
    ['not base64', { ...xorRequest, x: { dtype: 'float32', shape: [4, 2], data: '@@@@' } }, /^x\.data is not padded base64/],
    ...(
      [
        ['URL-safe base64', (d: string) => d.replace(/A/, '-').replace(/A/, '_')],
        ['a space inside the base64', (d: string) => `${d.slice(0, 8)} ${d.slice(9)}`],
        ["'=' inside the base64", (d: string) => `${d.slice(0, 8)}=${d.slice(9)}`],
        ['unpadded base64', (d: string) => d.replace(/=+$/, '')],
      ] as const
    ).map(([name, spoil]): [string, object, RegExp] => {
      const x = binary([4, 2], [0, 0, 0, 1, 1, 0, 1, 1]);
      return [name, { ...xorRequest, x: { ...x, data: spoil(x.data) } }, /^x\.data is not padded base64/];
    }),
    ['too few bytes', { ...xorRequest, x: binary([4, 2], [0, 0, 0, 1]) }, /^x\.data holds 16 bytes; shape \[4,2\] needs 32/],
    [
      'an enormous shape',
      { ...xorRequest, x: { ...binary([1, 1], [0]), shape: [2 ** 32, 2 ** 32] } },
      /^x\.data holds 4 bytes; shape \[4294967296,4294967296\] needs 7\.38e\+19 \(4 per float32\)/,
    ],
    [
      'a vector where a matrix goes',
      { ...xorRequest, x: binary([8], [0, 0, 0, 1, 1, 0, 1, 1]) },
      /^x\.shape has 1 dimension; this field takes \[rows, cols\]$/,
    ],
    [
      'NaN in the bytes',
      { ...xorRequest, x: binary([4, 2], [0, 0, 0, Number.NaN, 1, 0, 1, 1]) },
      /^x\.data has a value that is not finite at index 3/,
    ],
    ['float64', { ...xorRequest, x: { dtype: 'float64', shape: [4, 2], data: '' } }, /^x\.dtype is "float64"; expected "float32"$/],
    [
      'a shape written as a string',
      { ...xorRequest, x: { dtype: 'float32', shape: '4,2', data: '' } },
      /^x\.shape is a string; expected a list of sizes, e.g. \[4, 2\]$/,
    ],
    ['no dtype', { ...xorRequest, x: { shape: [4, 2], data: binary([4, 2], Array(8).fill(0)).data } }, /^x\.dtype is required: "float32"$/],
    ['unknown tensor fields', { ...xorRequest, x: { ...binary([4, 2], Array(8).fill(0)), order: 'C' } }, /^x has unknown field "order"$/],
    ['y of the wrong rank', { ...xorRequest, y: binary([1, 4, 1], [0, 1, 1, 0]) }, /^y\.shape has 3 items; it takes at most 2$/],
    // a field's own problem alone: the cross-field checks (x against params and y) wait for it
    [
      'a negative shape',
      { ...xorRequest, x: { ...binary([4, 2], Array(8).fill(0)), shape: [-4, -2] } },
      /^x\.shape\[0\] is -4; it must be ≥ 1; x\.shape\[1\] is -2; it must be ≥ 1$/,
    ],
    [
      'an empty shape',
      { ...xorRequest, x: { ...binary([4, 2], Array(8).fill(0)), shape: [] } },
      /^x\.shape has 0 items; it takes at least 1$/,
    ],
    ['a zero in the shape', { ...xorRequest, x: { dtype: 'float32', shape: [0, 2], data: '' } }, /^x\.shape\[0\] is 0; it must be ≥ 1$/],
    ['an unknown output encoding', { ...xorRequest, outputEncoding: 'hex' }, /^outputEncoding is "hex"; expected one of "json", "base64"$/],
  ];
  for (const [name, payload, message] of bad) {
    it(`rejects ${name} with a 400 that names the field`, async () => {
      const res = await post('/value-and-grad', payload);
      assert.equal(res.statusCode, 400, res.body);
      assert.match(res.json().message, message);
    });
  }

  it('takes gzip request bodies and gzips responses for clients that accept it', async () => {
    const c = randomCase(rng(4), { widths: [16, 32, 1], batch: 8, activation: 'tanh' }); // an answer over 1 KiB
    const res = await app.inject({
      method: 'POST',
      url: '/value-and-grad',
      payload: gzipSync(JSON.stringify(c)),
      headers: { 'content-type': 'application/json', 'content-encoding': 'gzip', 'accept-encoding': 'gzip' },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.equal(res.headers['content-encoding'], 'gzip');
    assert.equal(res.headers.vary, 'accept-encoding');
    const body = JSON.parse(gunzipSync(res.rawPayload).toString());
    const plain = await post('/value-and-grad', c);
    assert.deepEqual(body, plain.json());
    // the same URL answered uncompressed says so too, for caches
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.equal(plain.headers.vary, 'accept-encoding');
  });

  it('takes "gzip;q=0, *" as refusing gzip: the answer comes deflated, and uncompressed when * is all that is left', async () => {
    const c = randomCase(rng(4), { widths: [16, 32, 1], batch: 8, activation: 'tanh' }); // an answer over 1 KiB
    const answer = (accept: string) =>
      app.inject({ method: 'POST', url: '/value-and-grad', payload: c, headers: { 'accept-encoding': accept } });
    const plain = (await post('/value-and-grad', c)).json();
    const deflated = await answer('gzip;q=0, *');
    assert.equal(deflated.headers['content-encoding'], 'deflate');
    assert.deepEqual(JSON.parse(inflateSync(deflated.rawPayload).toString()), plain);
    const neither = await answer('gzip;q=0, deflate;q=0, *');
    assert.equal(neither.headers['content-encoding'], undefined);
    assert.deepEqual(neither.json(), plain);
    assert.equal((await answer('*')).headers['content-encoding'], 'gzip');
  });

  it('reads Content-Encoding case-insensitively, takes identity and x-gzip, and refuses codings it does not know with 415', async () => {
    const body = JSON.stringify(xorCase);
    const send = (coding: string, payload: Buffer | string) =>
      app.inject({ method: 'POST', url: '/loss', payload, headers: { 'content-type': 'application/json', 'content-encoding': coding } });
    assert.equal((await send('GZIP', gzipSync(body))).statusCode, 200);
    assert.equal((await send(' Deflate', deflateSync(body))).statusCode, 200);
    assert.equal((await send('identity', body)).statusCode, 200);
    assert.equal((await send('X-Gzip', gzipSync(body))).statusCode, 200);
    const br = await send('br', body);
    assert.equal(br.statusCode, 415);
    assert.equal(br.json().code, 'FST_CP_ERR_INVALID_CONTENT_ENCODING');
  });

  it('does not compress answers in binary tensors, which barely compress', async () => {
    const c = randomCase(rng(5), { widths: [16, 32, 1], batch: 8, activation: 'tanh' });
    const res = await app.inject({
      method: 'POST',
      url: '/value-and-grad',
      payload: { ...c, outputEncoding: 'base64' },
      headers: { 'accept-encoding': 'gzip' },
    });
    assert.equal(res.statusCode, 200, res.body);
    assert.ok(res.rawPayload.length > 1024, 'over the compression threshold');
    assert.equal(res.headers['content-encoding'], undefined);
    assert.equal(res.json().grads[0].W.dtype, 'float32');
  });

  it('applies the body limit to the decompressed bytes (a gzip bomb gets 413)', async () => {
    const small = await buildApp({
      config: { ...defaultConfig(), logLevel: 'silent', limits: { ...defaultConfig().limits, bodyBytes: 1 << 20 } },
      engine,
    });
    try {
      const bomb = gzipSync(Buffer.alloc(64 << 20, 0x20)); // 64 MiB of spaces, ~64 KiB compressed
      assert.ok(bomb.length < 1 << 20);
      const res = await small.inject({
        method: 'POST',
        url: '/value-and-grad',
        payload: bomb,
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      });
      assert.equal(res.statusCode, 413, res.body);
      const broken = await small.inject({
        method: 'POST',
        url: '/value-and-grad',
        payload: Buffer.from('not gzip at all'),
        headers: { 'content-type': 'application/json', 'content-encoding': 'gzip' },
      });
      assert.equal(broken.statusCode, 400, broken.body);
      assert.equal(broken.json().code, 'FST_CP_ERR_INVALID_CONTENT');
    } finally {
      await small.close();
    }
  });
});

describe('binary answers', () => {
  it('write every NaN as the one quiet NaN, whatever sign and payload the operation gave it, and keep ±Infinity', () => {
    const bits = new Uint32Array([0xffc00000, 0x7fc00001, 0x7f800000, 0xff800000, 0x3f800000]); // -NaN, NaN with a payload, ±Inf, 1
    const enc = new ResultEncoder('base64');
    const written = enc.vector(new Float32Array(bits.buffer)) as { data: string };
    const out = new Uint32Array(new Uint8Array(Buffer.from(written.data, 'base64')).buffer);
    assert.deepEqual([...out], [0x7fc00000, 0x7fc00000, 0x7f800000, 0xff800000, 0x3f800000]);
    assert.equal(enc.nonFinite, 4);
  });
});
