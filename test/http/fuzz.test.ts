import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { ACTIVATIONS, LOSSES } from '../../src/engine/types.js';
import { defaultConfig, type JsonOffload } from '../../src/runtime/config.js';
import { xorCase } from '../helpers.js';
import { relError, valueAndGrad64 } from '../reference/mlp64.js';

/**
 * Hostile input: at least 10,000 generated bodies per run, each sent as raw JSON text (so
 * duplicate keys, `__proto__` keys and broken syntax reach the parser as a client would
 * send them). Every answer must be a 2xx or a 4xx with a short message; nothing pollutes a
 * prototype; memory returns to where it was; the next real request is answered correctly.
 */
const RUNS = { structured: 6000, raw: 4000 };
const URLS = ['/value-and-grad', '/loss', '/forward', '/train', '/init'];

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

const small = fc.double({ min: -2, max: 2, noNaN: true, noDefaultInfinity: true });
const dim = fc.integer({ min: 1, max: 3 });

/** A valid /value-and-grad or /loss request: 1–2 layers of width 1–3, batch 1–4, any options. */
const computeBody = fc
  .record({ widths: fc.array(dim, { minLength: 2, maxLength: 3 }), batch: fc.integer({ min: 1, max: 4 }) })
  .chain(({ widths, batch }) =>
    fc.record(
      {
        params: fc.tuple(
          ...widths.slice(1).map((out, l) =>
            fc.record({
              W: fc.array(fc.array(small, { minLength: out, maxLength: out }), { minLength: widths[l]!, maxLength: widths[l]! }),
              b: fc.array(small, { minLength: out, maxLength: out }),
            }),
          ),
        ),
        x: fc.array(fc.array(small, { minLength: widths[0]!, maxLength: widths[0]! }), { minLength: batch, maxLength: batch }),
        y: fc.array(fc.array(fc.constantFrom(0, 1, 0.5), { minLength: widths.at(-1)!, maxLength: widths.at(-1)! }), {
          minLength: batch,
          maxLength: batch,
        }),
        activation: fc.constantFrom(...ACTIVATIONS),
        outputActivation: fc.constantFrom('sigmoid', 'tanh', 'linear'),
        loss: fc.constantFrom(...LOSSES),
        reduction: fc.constantFrom('mean', 'sum'),
      },
      { requiredKeys: ['params', 'x', 'y'] },
    ),
  );

/** A valid request for one of the POST endpoints, with the endpoint. */
const validRequest: fc.Arbitrary<{ url: string; body: Record<string, unknown> }> = fc.oneof(
  computeBody.map((body) => ({ url: '/value-and-grad', body })),
  computeBody.map((body) => ({ url: '/loss', body })),
  computeBody.map(({ y, loss, reduction, ...body }) => ({ url: '/forward', body })),
  fc
    .tuple(computeBody, fc.constantFrom('sgd', 'momentum', 'adam'), fc.integer({ min: 1, max: 3 }))
    .map(([body, name, steps]) => ({ url: '/train', body: { ...body, optimizer: { name, learningRate: 0.1 }, steps } })),
  fc
    .record({
      layers: fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 2, maxLength: 4 }),
      seed: fc.nat(),
      scheme: fc.constantFrom('normal', 'glorot_normal', 'glorot_uniform', 'he_normal', 'he_uniform'),
    })
    .map((body) => ({ url: '/init', body })),
);

/** Values of every kind, for where a number, a list or an option should be. */
const hostileValue: fc.Arbitrary<unknown> = fc.oneof(
  fc.constantFrom(
    null,
    true,
    0,
    -0,
    1,
    '1',
    '',
    'NaN',
    'Infinity',
    [],
    {},
    [[]],
    [[[]]],
    1e39,
    -1e39,
    3.4028236e38,
    3.4028235e38,
    5e-324,
    1e308,
  ),
  fc.string(),
  fc.string({ unit: 'grapheme' }),
  fc.double(), // NaN and ±Infinity become null in JSON
  fc.integer(),
  fc.array(fc.double({ noNaN: true })),
  fc.jsonValue({ maxDepth: 4 }),
  // binary tensors, well and badly formed
  fc.record(
    {
      dtype: fc.constantFrom('float32', 'float64', 'int8', ''),
      shape: fc.array(fc.oneof(fc.integer({ min: -1, max: 4 }), fc.constant(2 ** 31)), { maxLength: 3 }),
      data: fc.oneof(
        fc.base64String({ maxLength: 64 }),
        fc.string(),
        fc.uint8Array({ maxLength: 48 }).map((b) => Buffer.from(b).toString('base64')),
      ),
    },
    { requiredKeys: [] },
  ),
);

const hostileKey = fc.oneof(
  fc.constantFrom('__proto__', 'constructor', 'prototype', 'toString', 'hasOwnProperty', 'activaton', 'W', 'b', 'x', 'y', ''),
  fc.string({ unit: 'grapheme', maxLength: 12 }),
);

type Json = Record<string, unknown> | unknown[];

/** Replace, delete or add at a random place in the tree (a path of random choices). */
function mutate(body: Json, choices: number[], value: unknown, key: string, op: 'set' | 'delete' | 'add'): Json {
  const root = structuredClone(body) as Json;
  let node: Json = root;
  for (const choice of choices) {
    const keys = Object.keys(node);
    if (keys.length === 0) break;
    const k = keys[choice % keys.length]!;
    const child = (node as Record<string, unknown>)[k];
    if (child === null || typeof child !== 'object' || choice % 5 === 0) {
      if (op === 'delete') delete (node as Record<string, unknown>)[k];
      else if (op === 'set') (node as Record<string, unknown>)[k] = value;
      else Object.defineProperty(node, key, { value, enumerable: true, configurable: true, writable: true });
      return root;
    }
    node = child as Json;
  }
  Object.defineProperty(node, key, { value, enumerable: true, configurable: true, writable: true });
  return root;
}

const structuredRequest = fc
  .tuple(
    validRequest,
    fc.array(fc.nat(), { minLength: 1, maxLength: 6 }),
    hostileValue,
    hostileKey,
    fc.constantFrom('set', 'delete', 'add', 'none') as fc.Arbitrary<'set' | 'delete' | 'add' | 'none'>,
  )
  .map(([{ url, body }, choices, value, key, op]) => ({
    url,
    payload: JSON.stringify(op === 'none' ? body : mutate(body, choices, value, key, op)),
  }));

/** Text-level damage: duplicate keys, truncation, wrapping, junk, and JSON of any shape. */
const rawRequest = fc.oneof(
  fc.tuple(computeBody, hostileKey, hostileValue).map(([body, key, value]) => {
    const text = JSON.stringify(body);
    return `{${JSON.stringify(key)}:${JSON.stringify(value) ?? 'null'},${text.slice(1)}`; // a duplicate or extra key first
  }),
  fc.tuple(computeBody, fc.nat()).map(([body, cut]) => {
    const text = JSON.stringify(body);
    return text.slice(0, cut % text.length);
  }),
  fc.tuple(computeBody, fc.nat({ max: 64 })).map(([body, depth]) => '['.repeat(depth) + JSON.stringify(body) + ']'.repeat(depth)),
  fc.jsonValue().map((v) => JSON.stringify(v) ?? 'null'),
  fc.string({ unit: 'binary' }),
  fc.nat({ max: 20000 }).map((depth) => `{"x":${'['.repeat(depth)}${']'.repeat(depth)},"params":[],"y":[]}`),
);

/** The fuzzing suite against one app: `jsonOffload` says where bodies are parsed and validated. */
function fuzz(title: string, jsonOffload: JsonOffload, RUNS: { structured: number; raw: number }) {
  describe(title, () => {
    let app: FastifyInstance;
    let engine: Engine;
    const protoKeys = () => [Object.prototype, Array.prototype, Function.prototype].map((p) => Object.getOwnPropertyNames(p).sort().join());
    let protoBefore: string[];
    let heapBefore: number;
    const counts = new Map<number, number>();

    before(async () => {
      // the service's default kernel cache: the heap check below is what a long-running
      // service keeps (each cached kernel holds 100–250 KiB of compiled code and gpu.js
      // state; a 512-entry cache filled by these shapes held 44 MiB, by design)
      engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: defaultConfig().kernelCacheCapacity });
      app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent', jsonOffload }, engine });
      await app.inject({ method: 'POST', url: '/value-and-grad', payload: xorCase }); // warm up before the baseline
      protoBefore = protoKeys();
      heapBefore = heapAfterGc();
    });
    after(async () => {
      await app.close();
      await engine.close();
    });

    const send = async ({ url, payload }: { url: string; payload: string }) => {
      const res = await app.inject({ method: 'POST', url, payload, headers: { 'content-type': 'application/json' } });
      counts.set(res.statusCode, (counts.get(res.statusCode) ?? 0) + 1);
      assert.ok(res.statusCode < 500, `${res.statusCode} for ${payload.slice(0, 300)}: ${res.body.slice(0, 300)}`);
      const body = res.json() as { message?: string; statusCode?: number };
      if (res.statusCode === 200) assert.ok(body.statusCode === undefined && Object.keys(body).length > 0, 'an answer, not an error');
      else assert.ok(typeof body.message === 'string' && body.message.length < 1500, `short message: ${body.message?.slice(0, 100)}`);
    };

    it(`answers ${RUNS.structured} mutated requests to every POST endpoint with a 2xx or a 4xx`, async () => {
      await fc.assert(fc.asyncProperty(structuredRequest, send), { numRuns: RUNS.structured, seed: 20261127 });
    });

    it(`answers ${RUNS.raw} damaged or random bodies with a 4xx or a 2xx`, async () => {
      await fc.assert(
        fc.asyncProperty(fc.tuple(fc.constantFrom(...URLS), rawRequest), ([url, payload]) => send({ url, payload })),
        { numRuns: RUNS.raw, seed: 20261128 },
      );
    });

    it('left no prototype polluted, memory near its baseline, and answers correctly afterwards', async () => {
      const total = [...counts.values()].reduce((a, b) => a + b, 0);
      assert.ok(total >= RUNS.structured + RUNS.raw, `${total} bodies sent`);
      assert.ok(
        (counts.get(200) ?? 0) > total / 20 && (counts.get(400) ?? 0) > total / 2,
        `a mix of answers: ${JSON.stringify([...counts])}`,
      );
      assert.deepEqual(protoKeys(), protoBefore);
      const grownMb = (heapAfterGc() - heapBefore) / 2 ** 20;
      assert.ok(grownMb < 32, `heap grew ${grownMb.toFixed(1)} MiB`);
      const res = await app.inject({ method: 'POST', url: '/value-and-grad', payload: xorCase });
      assert.equal(res.statusCode, 200);
      const want = valueAndGrad64(xorCase);
      assert.ok(relError([res.json().loss], [want.loss]) <= 1e-6);
    });
  });
}

fuzz('hostile input (fast-check)', defaultConfig().jsonOffload, RUNS);
// every body through the JSON worker threads, as large bodies go: the same answers, no 5xx
fuzz('hostile input through the JSON worker threads (fast-check)', { workers: 1, minBytes: 0 }, { structured: 1500, raw: 1000 });
