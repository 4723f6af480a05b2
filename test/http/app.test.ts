import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { threeClassLabelsRequest, threeClassRequest } from '../../src/http/request-examples.js';
import { toBase64Tensor } from '../../src/http/tensors.js';
import { defaultConfig } from '../../src/runtime/config.js';
import { assertGradsMatch, xorCase } from '../helpers.js';
import { type Case64, relError, valueAndGrad64 } from '../reference/mlp64.js';

const xorBody = {
  params: xorCase.params,
  x: xorCase.x,
  y: xorCase.y,
  activation: 'tanh',
  outputActivation: 'sigmoid',
  loss: 'bce',
  reduction: 'mean',
};

async function makeApp(overrides: Partial<ReturnType<typeof defaultConfig>> = {}) {
  const engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 64 });
  const app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent', ...overrides }, engine });
  return { app, engine };
}

function assertXorAnswer(body: { loss: number; grads: { W: number[][]; b: number[] }[] }): void {
  const ref = valueAndGrad64(xorCase);
  assert.ok(Math.abs(body.loss - ref.loss) <= 1e-6 * ref.loss, `loss ${body.loss} vs ${ref.loss}`);
  assertGradsMatch(body.grads, ref.grads);
}

/** The gradient tree has exactly the params' structure: same layers, same keys, same shapes. */
function shapeOf(tree: unknown): unknown {
  if (Array.isArray(tree)) return tree.map(shapeOf);
  if (tree && typeof tree === 'object') return Object.fromEntries(Object.entries(tree).map(([k, v]) => [k, shapeOf(v)]));
  return typeof tree === 'number' ? 'n' : tree;
}

describe('HTTP API (inject)', () => {
  let app: FastifyInstance;
  let engine: Engine;
  before(async () => {
    ({ app, engine } = await makeApp());
  });
  after(async () => {
    await app.close();
    await engine.close();
  });

  it('POST /value-and-grad answers the XOR lesson with a gradient tree shaped like params', async () => {
    const res = await app.inject({ method: 'POST', url: '/value-and-grad', payload: xorBody, headers: { 'x-request-id': 'lesson-3' } });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.deepEqual(shapeOf(body.grads), shapeOf(xorBody.params));
    assertXorAnswer(body);
    assert.equal(body.warnings, undefined);
    assert.equal(res.headers['x-request-id'], 'lesson-3');
    assert.match(String(res.headers['server-timing']), /compile;dur=[\d.]+.*compute;dur=[\d.]+;desc="webasm"/);
  });

  it('echoes a plain-token x-request-id, and replaces any other (or none) with a UUID', async () => {
    const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;
    const idFor = async (id?: string) =>
      String((await app.inject({ url: '/healthz', headers: id === undefined ? {} : { 'x-request-id': id } })).headers['x-request-id']);
    assert.equal(await idFor('batch-7:shard.2_A'), 'batch-7:shard.2_A');
    assert.equal(await idFor('a'.repeat(128)), 'a'.repeat(128));
    for (const bad of ['has spaces', 'a'.repeat(129), '', 'new\u2028line', '<script>'])
      assert.match(await idFor(bad), UUID, JSON.stringify(bad));
    assert.match(await idFor(), UUID);
  });

  it('warns of likely mistakes JAX computes without a word: predictions or targets outside [0, 1] with bce', async () => {
    const warningsOf = async (payload: object) => (await app.inject({ method: 'POST', url: '/loss', payload })).json().warnings;
    // negative: clipped to 1e-8, so the loss stays finite (above 1, log(1 - p) would be log(0))
    const linear = await warningsOf({ ...xorBody, outputActivation: 'linear', params: [{ W: [[-1], [-1]], b: [0.5] }] });
    assert.equal(linear.length, 1);
    assert.match(linear[0], /^3 of 4 predictions are below 0, where bce's clip holds them at 1e-8 .* use "loss": "bce_logits"/);
    const above = await warningsOf({ ...xorBody, outputActivation: 'linear', params: [{ W: [[1], [1]], b: [0.5] }] });
    assert.match(above[0], /^3 of 4 predictions are above 1: .* log\(1 - p\) = log\(0\) and the results are not finite/);
    assert.match(above.at(-1), /result values? (is|are) not finite/);
    // relu: never below 0, but 0 is under the clip, where a target of 1 gets no gradient
    const relu = await warningsOf({ ...xorBody, outputActivation: 'relu', params: [{ W: [[-1], [-1]], b: [0.5] }] });
    assert.equal(relu.length, 1);
    assert.match(
      relu[0],
      /^2 of 4 predictions are below 1e-8 for targets above 0 \(a relu output's 0, .* their gradient is 0.*"outputActivation": "sigmoid"\.$/,
    );
    // a sigmoid below -18.4: the advice is the loss on the pre-activations, not the sigmoid it already has
    const sigmoid = await warningsOf({ ...xorBody, params: [{ W: [[-30], [-30]], b: [-20] }] });
    assert.equal(sigmoid.length, 1);
    assert.match(sigmoid[0], /^2 of 4 predictions are below 1e-8 .* Use "loss": "bce_logits" with a linear output: .* never vanishes\.$/);
    const signs = await warningsOf({ ...xorBody, y: [-1, 1, 1, -1] });
    assert.deepEqual(signs.length, 1);
    assert.match(
      signs[0],
      /^2 of 4 targets lie outside \[0, 1\]: bce, bce_logits and softmax_cross_entropy take labels in \[0, 1\] \(for -1\/\+1 labels send \(y \+ 1\) \/ 2\)/,
    );
    assert.equal(await warningsOf({ ...xorBody, y: [-1, 1, 1, -1], loss: 'mse' }), undefined, 'mse takes any target');
  });

  it('computes softmax cross-entropy over classes as the float64 reference does, the mean over rows', async () => {
    const res = await app.inject({ method: 'POST', url: '/value-and-grad', payload: threeClassRequest });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.warnings, undefined);
    const ref = valueAndGrad64({ ...threeClassRequest, outputActivation: 'linear', reduction: 'mean' } as unknown as Case64);
    assert.ok(Math.abs(body.loss - ref.loss) <= 1e-6 * ref.loss, `loss ${body.loss} vs ${ref.loss}`);
    assertGradsMatch(body.grads, ref.grads, 'three classes', 2e-5);
    // class indices (the Swagger UI's example), as JSON and as a binary tensor: the same numbers as the one-hot rows
    for (const y of [threeClassLabelsRequest.y, toBase64Tensor([3], new Float32Array(threeClassLabelsRequest.y))]) {
      const byIndex = await app.inject({ method: 'POST', url: '/value-and-grad', payload: { ...threeClassLabelsRequest, y } });
      assert.equal(byIndex.statusCode, 200, byIndex.body);
      assert.deepEqual(byIndex.json(), body);
    }
    // and /train on them in minibatches (class indices picked by row) fits the three examples
    const trained = await app.inject({
      method: 'POST',
      url: '/train',
      payload: { ...threeClassLabelsRequest, optimizer: { name: 'adam', learningRate: 0.1 }, steps: 200, batchSize: 2 },
    });
    assert.equal(trained.statusCode, 200, trained.body);
    const fitted = (
      await app.inject({ method: 'POST', url: '/loss', payload: { ...threeClassRequest, params: trained.json().params } })
    ).json();
    assert.ok(fitted.loss < 0.05 * body.loss, `loss after training ${fitted.loss}, before ${body.loss}`);
    // targets that are no distribution: computed, and said
    const scores = {
      ...threeClassRequest,
      y: [
        [2, 0, 0],
        [0, 1, 0],
        [0, 0.5, 0],
      ],
    };
    const warned = (await app.inject({ method: 'POST', url: '/loss', payload: scores })).json();
    assert.match(
      warned.warnings.join(' '),
      /2 of 3 rows of targets do not sum to 1: softmax_cross_entropy takes a probability distribution per row/,
    );
    assert.match(warned.warnings.join(' '), /1 of 9 targets lie outside \[0, 1\]/);
  });

  it('POST /loss returns the same loss, and defaults match the explicit options', async () => {
    const full = (await app.inject({ method: 'POST', url: '/value-and-grad', payload: xorBody })).json();
    const { activation, outputActivation, loss, reduction, ...minimal } = xorBody;
    const res = await app.inject({ method: 'POST', url: '/loss', payload: { ...minimal, y: [0, 1, 1, 0] } });
    assert.equal(res.statusCode, 200, res.body);
    assert.deepEqual(Object.keys(res.json()), ['loss']);
    assert.equal(res.json().loss, full.loss);
  });

  it('writes non-finite results as strings with warnings (saturated sigmoid, as JAX)', async () => {
    const res = await app.inject({
      method: 'POST',
      url: '/value-and-grad',
      payload: { params: [{ W: [[20]], b: [0] }], x: [[1]], y: [0] },
    });
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.equal(body.loss, 'Infinity');
    assert.deepEqual(body.grads, [{ W: [['NaN']], b: ['NaN'] }]);
    assert.match(body.warnings.join(' '), /exactly 1\.0 in float32/);
    assert.match(body.warnings.at(-1), /^3 result values are not finite \(in JSON written as "NaN", "Infinity" or "-Infinity"\)/);
    // binary tensors carry the values themselves
    const binary = await app.inject({
      method: 'POST',
      url: '/value-and-grad',
      payload: { params: [{ W: [[20]], b: [0] }], x: [[1]], y: [0], outputEncoding: 'base64' },
    });
    assert.match(binary.json().warnings.at(-1), /^3 result values are not finite \(NaN or ±Infinity in the binary tensors\)/);
  });

  it("accepts any number that rounds to a finite float32 (numpy's 3.4028235e38 included), and no larger one", async () => {
    const forward = (v: number) => ({ params: [{ W: [[v]], b: [0] }], x: [[1]], outputActivation: 'linear' });
    const body = (v: number) => ({ ...forward(v), y: [0.5], loss: 'mse' });
    for (const v of [3.4028235e38, -3.4028235e38, 3.4028235677973e38]) {
      const res = await app.inject({ method: 'POST', url: '/forward', payload: forward(v) });
      assert.equal(res.statusCode, 200, `${v}: ${res.body}`);
      assert.deepEqual(res.json().predictions, [[Math.fround(v)]], 'rounded to float32');
    }
    for (const v of [3.4028236e38, -3.4028235677974e38, 1e39]) {
      const res = await app.inject({ method: 'POST', url: '/loss', payload: body(v) });
      assert.equal(res.statusCode, 400, `${v}: ${res.body}`);
      assert.match(res.json().message, /params\[0\]\.W\[0\]\[0\] is outside float32's range: it would round to ±Infinity/);
    }
  });

  it('serves /healthz, /readyz (with the backend), /docs and /openapi.json equal to the committed file', async () => {
    assert.deepEqual((await app.inject('/healthz')).json(), { status: 'ok' });
    assert.deepEqual((await app.inject('/readyz')).json(), { status: 'ready', backend: 'webasm', backends: ['webasm'] });
    const docs = await app.inject('/docs/');
    assert.equal(docs.statusCode, 200);
    assert.match(docs.body, /swagger-ui/i);
    const committed = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));
    const served = (await app.inject('/openapi.json')).json();
    assert.deepEqual(served, committed);
    const example = served.paths['/value-and-grad'].post.requestBody.content['application/json'].examples.xor.value;
    assert.deepEqual(example, xorBody, 'the Swagger UI pre-fills the XOR lesson');
    for (const path of ['/value-and-grad', '/loss', '/forward', '/train', '/init']) {
      const { responses } = served.paths[path].post;
      assert.ok(responses['503'].headers['Retry-After'], `${path}: 503 documents Retry-After`);
      for (const status of ['400', '408', '413', '415', '503'])
        assert.doesNotMatch(responses[status].description, /fastify's shape/, `${path} ${status} says when it comes`);
    }
  });

  it("documents each route's answer to its XOR example as the service really answers it", async () => {
    const served = (await app.inject('/openapi.json')).json();
    const numbers = (v: unknown): number[] =>
      typeof v === 'number' ? [v] : v && typeof v === 'object' ? Object.values(v).flatMap(numbers) : [];
    for (const path of ['/loss', '/value-and-grad', '/forward', '/init', '/train']) {
      const { requestBody, responses } = served.paths[path].post;
      const documented = responses['200'].content['application/json'].examples.xor.value;
      const res = await app.inject({ method: 'POST', url: path, payload: requestBody.content['application/json'].examples.xor.value });
      const answer = res.json();
      assert.deepEqual(Object.keys(documented), Object.keys(answer), path);
      // /train's documented history is cut to every 100th step: the live entries of those steps
      if (path === '/train') {
        const steps = new Set(documented.history.map((h: { step: number }) => h.step));
        answer.history = answer.history.filter((h: { step: number }) => steps.has(h.step));
      }
      // the same numbers, to float32 rounding (XOR runs on cpu by default; this app's backend
      // is webasm), which 500 training steps carry into the last few digits
      const [want, got] = [numbers(documented), numbers(answer)];
      assert.ok(got.length > 0 && got.length === want.length, path);
      assert.ok(relError(got, want) <= (path === '/train' ? 1e-5 : 1e-6), `${path}: the documented answer is the real one`);
    }
  });

  it('answers every request example of the OpenAPI document (the Swagger UI offers them) with a 200', async () => {
    const served = (await app.inject('/openapi.json')).json();
    let tried = 0;
    for (const [path, item] of Object.entries(
      served.paths as Record<string, { post?: { requestBody: { content: Record<string, { examples: object }> } } }>,
    )) {
      if (!item.post) continue;
      for (const [name, { value }] of Object.entries(
        item.post.requestBody.content['application/json']!.examples as Record<string, { value: object }>,
      )) {
        const res = await app.inject({ method: 'POST', url: path, payload: value });
        assert.equal(res.statusCode, 200, `${path} ${name}: ${res.body}`);
        tried++;
      }
    }
    assert.ok(tried >= 9, `${tried} examples`);
  });

  /** one layer, 2 inputs to 2 outputs */
  const twoOutputs = [
    {
      W: [
        [1, 0],
        [0, 1],
      ],
      b: [0, 0],
    },
  ];
  // Each bad request: a 4xx in fastify's error shape whose message names what is wrong.
  const bad: [string, unknown, number, RegExp][] = [
    [
      'wrong type for W',
      { ...xorBody, params: 'W' },
      400,
      /^params is a string; expected a list of layers, first to last: \[\{"W": …, "b": …\}, …\]$/,
    ],
    [
      'a string among the numbers',
      {
        ...xorBody,
        x: [
          [0, '1'],
          [0, 1],
          [1, 0],
          [1, 1],
        ],
      },
      400,
      /^x\[0\]\[1\] is a string; expected a number \(numbers are not quoted in JSON\)$/,
    ],
    [
      'NaN-like string',
      {
        ...xorBody,
        x: [
          [0, 'NaN'],
          [0, 1],
          [1, 0],
          [1, 1],
        ],
      },
      400,
      /^x\[0\]\[1\] is a string; expected a number \(inputs must be finite: "NaN" and "Infinity" appear only in answers\)$/,
    ],
    ['ragged W', { ...xorBody, params: [{ W: [[1, 2], [3]], b: [0, 0] }] }, 400, /params\[0\]\.W\[1\] has 1 entry; row 0 has 2/],
    [
      'layer chain mismatch',
      { ...xorBody, params: [xorCase.params[0], { W: [[1], [2], [3]], b: [0] }] },
      400,
      /params\[1\]\.W has 3 rows; layer 0 outputs 4 values/,
    ],
    [
      'bias length',
      { ...xorBody, params: [{ W: [[1], [2]], b: [0, 1] }] },
      400,
      /params\[0\]\.b has 2 entries; params\[0\]\.W has 1 column/,
    ],
    ['x width', { ...xorBody, x: [[0, 0, 0]], y: [0] }, 400, /x has 3 columns; params\[0\]\.W has 2 rows/],
    ['batch mismatch', { ...xorBody, y: [0, 1] }, 400, /y has 2 rows; x has 4/],
    [
      'y width',
      {
        ...xorBody,
        y: [
          [0, 1],
          [1, 0],
          [1, 1],
          [0, 0],
        ],
      },
      400,
      /y has 2 columns; the last layer outputs 1/,
    ],
    ['empty params', { ...xorBody, params: [] }, 400, /params is empty/],
    [
      'y written as one row',
      { ...xorBody, y: [[0, 1, 1, 0]] },
      400,
      /^y has 1 row; x has 4 \(the batch\); y looks transposed: send 4 rows of 1 \(shape \[4, 1\]\)$/,
    ],
    ['empty x', { ...xorBody, x: [], y: [] }, 400, /x is empty/],
    ['missing field', { params: xorBody.params, x: xorBody.x }, 400, /y is required \(array\)/],
    ['unknown activation', { ...xorBody, activation: 'softmax' }, 400, /^activation is "softmax"; expected one of "tanh", "relu", /],
    ['an option that is not a string', { ...xorBody, activation: 5 }, 400, /^activation is 5; expected one of "tanh", "relu", /],
    ['an option sent as a list', { ...xorBody, reduction: ['sum'] }, 400, /^reduction is a list; expected one of "mean", "sum"$/],
    ['an option sent as null', { ...xorBody, loss: null }, 400, /^loss is null; expected one of "bce", /],
    [
      'NaN as JSON.stringify writes it',
      { ...xorBody, x: [[0, null], ...xorBody.x.slice(1)] },
      400,
      /^x\[0\]\[1\] is null; expected a number \(JavaScript's JSON.stringify writes NaN and Infinity as null; inputs must be finite\)$/,
    ],
    [
      "another library's activation name",
      { ...xorBody, activation: 'LeakyReLU' },
      400,
      /^activation is "LeakyReLU"; did you mean "leaky_relu"\? \(one of "tanh", /,
    ],
    [
      'a snake_case field',
      { ...xorBody, output_activation: 'sigmoid' },
      400,
      /^body has unknown field "output_activation" \(did you mean "outputActivation"\?\)$/,
    ],
    ['misspelled option', { ...xorBody, activaton: 'relu' }, 400, /unknown field "activaton"/],
    [
      "Flax's names for a layer's fields",
      { ...xorBody, params: xorBody.params.map(({ W, b }) => ({ kernel: W, bias: b })) },
      400,
      /^params\[0\] has unknown fields "kernel" \(did you mean "W"\?\), "bias" \(did you mean "b"\?\); params\[1\] has unknown/,
    ],
    [
      "PyTorch's weight, whose layout is W's transpose",
      { ...xorBody, params: [{ weight: [[1, 2]], bias: [0] }] },
      400,
      /^params\[0\] has unknown fields "weight" \(did you mean "W"\?\), "bias" \(did you mean "b"\?\); PyTorch's weight is out × in and W is in × out: send weight's transpose \(weight\.T\)$/,
    ],
    [
      'an unknown field beside the field it would mean',
      { ...xorBody, params: [{ ...xorBody.params[0]!, weight: [[1, 2]] }, xorBody.params[1]!] },
      400,
      /^params\[0\] has unknown field "weight" \(did you mean "W"\?\)$/,
    ],
    [
      'params as an object of named layers (Flax, Haiku)',
      { ...xorBody, params: { Dense_0: xorBody.params[0], Dense_1: xorBody.params[1] } },
      400,
      /^params is an object of named layers \(as Flax and Haiku keep them\); it takes a list of layers in order/,
    ],
    [
      'one layer not in a list',
      { ...xorBody, params: xorBody.params[0] },
      400,
      /^params is one object; it takes a list of layers, first to last, even for one layer: \[\{"W": …, "b": …\}\]$/,
    ],
    [
      'softmax cross-entropy after a sigmoid',
      { ...threeClassRequest, outputActivation: 'sigmoid' },
      400,
      /^outputActivation is "sigmoid"; loss "softmax_cross_entropy" applies the softmax itself and needs "linear"/,
    ],
    [
      'softmax cross-entropy over one output',
      { ...xorBody, outputActivation: 'linear', loss: 'softmax_cross_entropy' },
      400,
      /^loss is "softmax_cross_entropy", but the last layer has 1 output: a softmax over one value is always 1/,
    ],
    [
      'class indices for softmax cross-entropy',
      { ...threeClassRequest, y: [0, 1, 2] },
      400,
      /^y is a flat list; .*softmax_cross_entropy takes one-hot rows \(a 1 in the column of the class\); for class indices send "loss": "softmax_cross_entropy_with_integer_labels"$/,
    ],
    [
      "Keras's softmax output",
      { ...threeClassRequest, outputActivation: 'softmax' },
      400,
      /^outputActivation is "softmax"; expected one of .*; for classes, leave outputActivation out and send "loss": "softmax_cross_entropy"/,
    ],
    [
      "PyTorch's loss name (it takes class indices)",
      { ...threeClassRequest, loss: 'CrossEntropyLoss' },
      400,
      /^loss is "CrossEntropyLoss"; did you mean "softmax_cross_entropy_with_integer_labels"\?/,
    ],
    [
      'a class index beyond the outputs',
      { ...threeClassRequest, loss: 'softmax_cross_entropy_with_integer_labels', y: [0, 3, 1] },
      400,
      /^y\[1\] is 3; a class index is an integer from 0 to 2 \(the last layer has 3 outputs\)$/,
    ],
    [
      'a fractional class index',
      { ...threeClassRequest, loss: 'softmax_cross_entropy_with_integer_labels', y: [0, 1.5, 1] },
      400,
      /^y\[1\] is 1\.5; a class index is an integer/,
    ],
    [
      'one-hot rows for class indices',
      { ...threeClassRequest, loss: 'softmax_cross_entropy_with_integer_labels' },
      400,
      /^y has shape \[3, 3\]; softmax_cross_entropy_with_integer_labels takes one class index per row: a flat list of 3 \(the batch\)$/,
    ],
    [
      'number beyond float32',
      {
        ...xorBody,
        x: [
          [0, 1e39],
          [0, 1],
          [1, 0],
          [1, 1],
        ],
      },
      400,
      /x\[0\]\[1\] is outside float32's range/,
    ],
    [
      'a bias beyond float32',
      { ...xorBody, params: [{ W: [[1], [2]], b: [-4e38] }] },
      400,
      /params\[0\]\.b\[0\] is outside float32's range/,
    ],
    ['flat y beyond float32', { ...xorBody, y: [0, 1, 1e39, 0] }, 400, /y\[2\] is outside float32's range/],
    [
      'flat y for 2 outputs',
      {
        ...xorBody,
        params: twoOutputs,
        y: [0, 1, 1, 0],
      },
      400,
      /y is a flat list; that form needs 1 output, the last layer has 2 \(send batch × 2 rows\)/,
    ],
    [
      'every W transposed (PyTorch layout)',
      { ...xorBody, params: xorCase.params.map((p) => ({ W: p.W[0]!.map((_, j) => p.W.map((row) => row[j]!)), b: p.b })) },
      400,
      /^params has every W as out × in \(PyTorch's nn\.Linear\.weight layout\); W is in × out here, as in JAX \(x @ W \+ b\): send each W transposed$/,
    ],
    [
      'one W transposed',
      {
        ...xorBody,
        params: [
          { W: xorCase.params[0]!.W[0]!.map((_, j) => xorCase.params[0]!.W.map((row) => row[j]!)), b: xorCase.params[0]!.b },
          xorCase.params[1],
        ],
      },
      400,
      /^params\[0\]\.W is 4×2 but must be in × out = 2×4: it looks transposed \(PyTorch's out × in layout\); send its transpose$/,
    ],
    [
      'x as one flat row',
      { ...xorBody, x: [0, 1], y: [0] },
      400,
      /^x is a flat list of numbers; x takes rows, batch × in: for one example send \[\[0, 1\]\], not \[0, 1\]$/,
    ],
    [
      'x transposed (in × batch): said of x alone, not also of y',
      {
        ...xorBody,
        x: [
          [0, 0, 1, 1],
          [0, 1, 0, 1],
        ],
      },
      400,
      /^x has 4 columns; params\[0\]\.W has 2 rows \(inputs\); x looks transposed: send 4 rows of 2 \(shape \[4, 2\]\)$/,
    ],
    [
      'x as a flat list of one-input examples',
      {
        params: [
          { W: [[1, 2]], b: [0, 0] },
          { W: [[1], [1]], b: [0] },
        ],
        x: [0, 1, 1, 0],
        y: [0, 1, 1, 0],
      },
      400,
      /^x is a flat list of numbers; x takes rows, batch × in, and the network has 1 input: send a column, \[\[a\], \[b\], …\], not \[a, b, …\]$/,
    ],
    [
      'b as a column',
      { ...xorBody, params: [{ W: [[1], [2]], b: [[0]] }] },
      400,
      /^params\[0\]\.b is a list of rows; it takes a flat list of numbers, e.g\. \[0, 0\.1\], not \[\[0\], \[0\.1\]\]$/,
    ],
    [
      'quoted targets',
      { ...xorBody, y: ['0', '1', '1', '0'] },
      400,
      /^y\[0\] is a string; expected a number \(numbers are not quoted in JSON\); y\[1\] is a string; expected a number; /,
    ],
    [
      'flat y for 2 outputs, all in one list',
      {
        ...xorBody,
        params: twoOutputs,
        y: [0, 1, 1, 0, 1, 0, 0, 1],
      },
      400,
      /^y holds 8 numbers in one dimension; the last layer has 2 outputs: send y as 4 rows of 2 \(shape \[4, 2\]\)$/,
    ],
    [
      "an answer's NaN sent back as an input",
      { ...xorBody, y: ['NaN', 1, 1, 0] },
      400,
      /^y\[0\] is a string; expected a number \(inputs must be finite: "NaN" and "Infinity" appear only in answers\)$/,
    ],
    ['y mixing rows and numbers', { ...xorBody, y: [[0], 1, 1, 0] }, 400, /^y mixes numbers and rows; send all rows or all numbers$/],
    [
      'one stray number among rows',
      { ...xorBody, x: [[0, 0], [0, 1], [1, 0], 5] },
      400,
      /^x\[3\] is a number; expected a row: a list of numbers$/,
    ],
    [
      'PyTorch weights with a square layer',
      {
        params: [
          {
            W: [
              [1, 2],
              [3, 4],
            ],
            b: [0, 0],
          },
          { W: [[1, 2]], b: [0] },
        ],
        x: [[0, 1]],
        y: [1],
      },
      400,
      /^params has every W as out × in .*: send each W transposed, the square ones too$/,
    ],
    ['a field of another route', { ...xorBody, batch_size: 2 }, 400, /^body has unknown field "batch_size"$/],
    [
      'the batch by its usual names',
      { params: xorBody.params, inputs: xorBody.x, labels: xorBody.y },
      400,
      /^body has unknown fields "inputs" \(did you mean "x"\?\), "labels" \(did you mean "y"\?\)$/,
    ],
    ['deeply nested junk', { ...xorBody, x: [[[[[[[[[[0]]]]]]]]]] }, 400, /^x\[0\]\[0\] is a list; expected a number$/],
    ['not an object', [1, 2, 3], 400, /^body is a JSON array, not an object; send one object of named fields, as \/docs shows$/],
    [
      'a layer sent as a bare W',
      { ...xorBody, params: [xorBody.params[0], [[1], [2]]] },
      400,
      /^params\[1\] is a list; expected a layer, \{"W": …, "b": …\}$/,
    ],
    [
      'an object for x that is no binary tensor',
      { ...xorBody, x: { rows: [[0, 0]] } },
      400,
      /^x is an object; expected a list of rows of numbers, or a binary tensor, \{"dtype": "float32", "shape": \[rows, cols\], "data": "<base64>"\}$/,
    ],
    [
      'null body fields',
      { params: null, x: null, y: null },
      400,
      /^params is null; expected a list of layers.*; x is null; expected a list of rows of numbers, or a binary tensor; y is null; /,
    ],
  ];
  for (const [name, payload, status, message] of bad) {
    it(`rejects ${name} with ${status} and a useful message`, async () => {
      const res = await app.inject({ method: 'POST', url: '/value-and-grad', payload: payload as object });
      assert.equal(res.statusCode, status, res.body);
      const body = res.json();
      assert.deepEqual(Object.keys(body).sort(), ['code', 'error', 'message', 'statusCode']);
      assert.equal(body.statusCode, status);
      assert.match(body.message, message);
      assert.ok(body.message.length < 600, 'messages stay short');
    });
  }

  it('rejects non-JSON, wrong content types and __proto__ keys, then still answers correctly', async () => {
    const raw = async (payload: string, contentType: string) =>
      app.inject({ method: 'POST', url: '/value-and-grad', payload, headers: { 'content-type': contentType } });
    const notJson = await raw('{"params": [', 'application/json');
    assert.equal(notJson.statusCode, 400);
    assert.match(notJson.json().message, /not valid JSON/);
    const secret = await raw('{"params": [], "x": sk-secret-token}', 'application/json');
    assert.equal(secret.json().message, "the body is not valid JSON: Unexpected token 's'", 'the body is not echoed');
    const pythonNone = await raw('{"params": [], "x": [[None]], "y": [0]}', 'application/json');
    assert.doesNotMatch(pythonNone.json().message, /NaN and Infinity/, 'None is another mistake');
    const twice = await raw(JSON.stringify(JSON.stringify(xorBody)), 'application/json');
    assert.equal(twice.json().message, 'body is a JSON string, not an object: was it encoded twice?');
    for (const [payload, kind] of [
      ['[{"params": []}]', 'array'],
      ['null', 'null'],
      ['4', 'number'],
      ['true', 'boolean'],
    ]) {
      const notObject = await raw(payload!, 'application/json');
      assert.deepEqual(
        [notObject.statusCode, notObject.json().message],
        [400, `body is ${kind === 'null' ? '' : 'a '}JSON ${kind}, not an object; send one object of named fields, as /docs shows`],
      );
    }
    // what Python's json.dumps writes for float('nan') and float('inf')
    for (const nonFinite of ['NaN', 'Infinity', '-Infinity']) {
      const python = await raw(`{"params": [], "x": [[${nonFinite}]], "y": [0]}`, 'application/json');
      assert.equal(python.statusCode, 400);
      assert.match(
        python.json().message,
        /not valid JSON: .*; NaN and Infinity are not JSON, and inputs must be finite numbers$/,
        nonFinite,
      );
    }
    const text = await raw('params', 'text/plain');
    assert.equal(text.statusCode, 415);
    assert.equal(text.json().message, 'Unsupported Media Type: text/plain; send Content-Type: application/json');
    const empty = await raw('{}', '');
    assert.equal(empty.statusCode, 415);
    assert.equal(empty.json().message, 'Unsupported Media Type: none; send Content-Type: application/json');
    // curl -X POST with no -d: no body and no Content-Type, the same answer as an empty JSON body
    for (const headers of [{}, { 'content-type': 'application/json' }]) {
      const none = await app.inject({ method: 'POST', url: '/loss', headers });
      assert.equal(none.statusCode, 400, none.body);
      assert.deepEqual([none.json().code, none.json().message], ['GRADSERVE_INVALID_JSON', 'the body is empty; send a JSON object']);
    }
    // a number beyond a double parses as Infinity: said as a number beyond float32 is
    const huge = await raw(JSON.stringify(xorBody).replace('"x":[[0,', '"x":[[1e400,'), 'application/json');
    assert.equal(huge.statusCode, 400, huge.body);
    assert.match(huge.json().message, /^x\[0\]\[0\] is outside float32's range/);
    // JSON is UTF-8: another charset is refused, not read as UTF-8
    const utf16 = await raw(JSON.stringify(xorBody), 'application/json; charset=utf-16');
    assert.equal(utf16.statusCode, 415, utf16.body);
    assert.equal(
      utf16.json().message,
      'Unsupported Media Type: application/json; charset=utf-16; send the body in UTF-8 as Content-Type: application/json',
    );
    // bytes that are not UTF-8 (Latin-1's é) are refused, not read as U+FFFD; UTF-8's é is JSON
    const latin1 = await app.inject({
      method: 'POST',
      url: '/value-and-grad',
      payload: Buffer.from('{"activation": "r\xe9lu"}', 'latin1'),
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(latin1.statusCode, 400, latin1.body);
    assert.deepEqual(
      [latin1.json().code, latin1.json().message],
      ['GRADSERVE_INVALID_JSON', 'the body is not valid UTF-8; JSON is sent in UTF-8 (RFC 8259)'],
    );
    const utf8 = await raw(JSON.stringify({ ...xorBody, activation: 'rélu' }), 'application/json');
    assert.match(utf8.json().message, /^activation is "rélu"; did you mean "relu"\? \(one of/);
    for (const charset of ['UTF-8', '"utf-8"', 'us-ascii']) {
      const ok = await raw(JSON.stringify(xorBody), `application/json; charset=${charset}`);
      assert.equal(ok.statusCode, 200, `${charset}: ${ok.body}`);
    }
    const proto = await raw(`{"__proto__": {"polluted": 1}, ${JSON.stringify(xorBody).slice(1)}`, 'application/json');
    assert.equal(proto.statusCode, 400);
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    // the same keys written with \u escapes, and constructor.prototype, are refused the same way
    for (const key of ['\\u005f_proto__', '__pro\\u0074o__', 'constructor']) {
      const value = key === 'constructor' ? '{"prototype": {"polluted": 1}}' : '{"polluted": 1}';
      const res = await raw(`{"${key}": ${value}, ${JSON.stringify(xorBody).slice(1)}`, 'application/json');
      assert.equal(res.statusCode, 400, key);
      assert.match(res.json().message, /prototype pollution/, key);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);
    // a UTF-8 byte order mark before the JSON is accepted, as fastify's own parser does
    const bom = await raw(`\ufeff${JSON.stringify(xorBody)}`, 'application/json');
    assert.equal(bom.statusCode, 200, bom.body);
    const ok = await app.inject({ method: 'POST', url: '/value-and-grad', payload: xorBody });
    assert.equal(ok.statusCode, 200);
    assertXorAnswer(ok.json());
  });

  it('caps the list of problems and never echoes the data back', async () => {
    const junk = (rows: number) => Array.from({ length: rows }, () => ['secret-value', 'secret-value']);
    const res = await app.inject({ method: 'POST', url: '/value-and-grad', payload: { ...xorBody, x: junk(10) } });
    assert.equal(res.statusCode, 400);
    assert.match(res.json().message, /and \d+ more$/);
    assert.doesNotMatch(res.body, /secret-value/);
    // beyond 64 wrong elements zod is shown only the first of each list (validation-view.ts)
    const many = await app.inject({ method: 'POST', url: '/value-and-grad', payload: { ...xorBody, x: junk(50) } });
    assert.equal(many.json().message, 'x[0][0] is a string; expected a number');
  });

  it('answers unknown routes with a 404 in the same shape', async () => {
    const res = await app.inject({ method: 'POST', url: '/value_and_grad', payload: xorBody });
    assert.equal(res.statusCode, 404);
    assert.equal(res.json().code, 'GRADSERVE_NOT_FOUND');
    // whatever the body: no parsing for a route that does not exist
    const empty = await app.inject({ method: 'POST', url: '/nope', headers: { 'content-type': 'application/json' } });
    assert.equal(empty.statusCode, 404, empty.body);
    assert.equal(empty.json().message, 'no route POST /nope; the API is at /docs (/openapi.json)');
  });

  it('answers a known path asked with the wrong method with a 405 and Allow', async () => {
    for (const method of ['GET', 'PUT', 'DELETE', 'OPTIONS', 'HEAD'] as const) {
      const res = await app.inject({ method, url: '/value-and-grad?x=1' });
      assert.equal(res.statusCode, 405, `${method}: ${res.body}`);
      assert.equal(res.headers.allow, 'POST');
      if (method !== 'HEAD') assert.equal(res.json().message, `/value-and-grad takes POST, not ${method}`);
    }
    const post = await app.inject({ method: 'POST', url: '/healthz', payload: {} });
    assert.equal(post.statusCode, 405);
    assert.equal(post.headers.allow, 'GET, HEAD');
    assert.equal(post.json().message, '/healthz takes GET or HEAD, not POST');
  });
});

describe('HTTP API (a real server on loopback)', () => {
  it('answers the XOR request over TCP, refuses a body over the limit with 413, and keeps serving', async () => {
    const { app, engine } = await makeApp({ limits: { ...defaultConfig().limits, bodyBytes: 4096 } });
    try {
      const address = await app.listen({ port: 0, host: '127.0.0.1' });
      const post = (body: string) =>
        fetch(`${address}/value-and-grad`, { method: 'POST', body, headers: { 'content-type': 'application/json' } });
      const ok = await post(JSON.stringify(xorBody));
      assert.equal(ok.status, 200);
      assertXorAnswer((await ok.json()) as never);
      const big = await post(JSON.stringify({ ...xorBody, x: Array.from({ length: 400 }, () => [0.25, 0.5]) }));
      assert.equal(big.status, 413);
      assert.match(((await big.json()) as { message: string }).message, /limit of 4096 bytes/);
      const again = await post(JSON.stringify(xorBody));
      assert.equal(again.status, 200);
    } finally {
      await app.close();
      await engine.close();
    }
  });
});
