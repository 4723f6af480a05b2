import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { threeClassRequest, xorForwardRequest, xorInitRequest, xorTrainRequest } from '../../src/http/request-examples.js';
import { defaultConfig } from '../../src/runtime/config.js';
import { assertGradsMatch, randomCase, rng, xorCase } from '../helpers.js';
import { type Case64, predict64, relError, valueAndGrad64 } from '../reference/mlp64.js';
import { train64 } from '../reference/train64.js';

const json = <T>(o: T): T => JSON.parse(JSON.stringify(o));

async function makeApp(backend: 'webasm' | 'cpu' = 'webasm', overrides: Partial<ReturnType<typeof defaultConfig>> = {}) {
  const engine = await Engine.create({ backend, kernelCacheCapacity: 64 });
  const app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent', ...overrides }, engine });
  return { app, engine };
}

describe('the lesson series over HTTP: /init, /forward, /train', () => {
  let app: FastifyInstance;
  let engine: Engine;
  before(async () => {
    ({ app, engine } = await makeApp('webasm', {
      limits: { ...defaultConfig().limits, trainSteps: 5000, trainWork: 1e6, initParams: 1000 },
    }));
  });
  after(async () => {
    await app.close();
    await engine.close();
  });
  const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, payload: payload as object });

  it('POST /forward returns the predictions of the float64 reference, batch × out', async () => {
    const res = await post('/forward', xorForwardRequest);
    assert.equal(res.statusCode, 200, res.body);
    const { predictions } = res.json();
    assert.deepEqual([predictions.length, predictions[0].length], [4, 1]);
    assert.ok(relError(predictions.flat(), predict64(xorCase).flat()) <= 1e-5);
    // a network trained with mse or bce_logits: naming the loss picks its linear output, as /train did
    for (const loss of ['mse', 'bce_logits'] as const) {
      const linear = await post('/forward', { ...xorForwardRequest, outputActivation: undefined, loss });
      assert.equal(linear.statusCode, 200, linear.body);
      const want = predict64({ ...xorCase, outputActivation: 'linear' }).flat();
      assert.ok(relError(linear.json().predictions.flat(), want) <= 1e-5, loss);
    }
    // and the probabilities of a network trained on logits: the loss named, the sigmoid asked for
    const probabilities = await post('/forward', { ...xorForwardRequest, outputActivation: 'sigmoid', loss: 'bce_logits' });
    assert.equal(probabilities.statusCode, 200, probabilities.body);
    assert.ok(relError(probabilities.json().predictions.flat(), predict64({ ...xorCase, outputActivation: 'sigmoid' }).flat()) <= 1e-5);
    const bad = await post('/forward', { ...xorForwardRequest, y: xorCase.y });
    assert.equal(bad.statusCode, 400);
    assert.match(bad.json().message, /unknown field "y"/);
  });

  it('POST /forward with "outputActivation": "softmax" returns the class probabilities of each row, as jax.nn.softmax of the float64 logits', async () => {
    const { y: _labels, loss, ...network } = threeClassRequest;
    const res = await post('/forward', { ...network, loss, outputActivation: 'softmax' });
    assert.equal(res.statusCode, 200, res.body);
    const { predictions } = res.json() as { predictions: number[][] };
    const logits = predict64(JSON.parse(JSON.stringify({ ...network, outputActivation: 'linear' })) as Case64);
    const want = logits.map((row) => {
      const max = Math.max(...row);
      const e = row.map((z) => Math.exp(z - max));
      const sum = e.reduce((a, b) => a + b, 0);
      return e.map((v) => v / sum);
    });
    assert.deepEqual([predictions.length, predictions[0]!.length], [want.length, 3]);
    assert.ok(relError(predictions.flat(), want.flat()) <= 1e-6, `${predictions} vs ${want}`);
    for (const row of predictions) assert.ok(Math.abs(row.reduce((a, b) => a + b, 0) - 1) <= 1e-6, 'each row sums to 1');
    // one output: always 1
    const one = await post('/forward', { ...xorForwardRequest, outputActivation: 'softmax' });
    assert.equal(one.statusCode, 400);
    assert.match(one.json().message, /^outputActivation is "softmax", but the last layer has 1 output: .*Use "sigmoid" for one output$/);
    // nor a softmax loss named for one, as the other routes refuse it
    const named = await post('/forward', { ...xorForwardRequest, loss: 'softmax_cross_entropy_with_integer_labels' });
    assert.equal(named.statusCode, 400);
    assert.match(named.json().message, /^loss is "softmax_cross_entropy_with_integer_labels", but the last layer has 1 output/);
  });

  it('POST /init gives params in the request format, from jax.nn.initializers-shaped distributions, the same for the same seed', async () => {
    const res = await post('/init', xorInitRequest);
    assert.equal(res.statusCode, 200, res.body);
    assert.match(
      String(res.headers['server-timing']),
      /^parse;dur=[\d.]+;desc="body parsed and validated", compute;dur=[\d.]+;desc="draw"$/,
    );
    const { params } = res.json();
    assert.deepEqual(
      params.map((p: { W: number[][]; b: number[] }) => [p.W.length, p.W[0]!.length, p.b.length]),
      [
        [2, 4, 4],
        [4, 1, 1],
      ],
    );
    assert.deepEqual(params[0].b, [0, 0, 0, 0]);
    // glorot_normal, truncated at 2σ: |w| ≤ 2·sqrt(1/fan_avg)/0.8796
    const bound = (2 * Math.sqrt(1 / 3)) / 0.87962566103423978;
    assert.ok(params[0].W.flat().every((w: number) => Math.abs(w) <= bound && Math.fround(w) === w));
    assert.deepEqual((await post('/init', xorInitRequest)).json(), res.json());
    assert.notDeepEqual((await post('/init', { ...xorInitRequest, seed: 1 })).json(), res.json());
    // the initialised network goes straight into the next step of the lesson
    const loss = await post('/loss', { params, x: xorCase.x, y: xorCase.y });
    assert.equal(loss.statusCode, 200, loss.body);
  });

  it('POST /train trains the XOR lesson to a loss below 0.05 with the documented recipe', async () => {
    const res = await post('/train', xorTrainRequest);
    assert.equal(res.statusCode, 200, res.body);
    const body = res.json();
    assert.ok(body.loss < 0.05, `final loss ${body.loss}`);
    assert.equal(body.history[0].step, 0);
    assert.ok(Math.abs(body.history[0].loss - 0.729988954) < 1e-6, 'step 0 is the lesson loss');
    // the returned params are what the final loss says they are
    const ref = valueAndGrad64({ ...xorCase, params: body.params });
    assert.ok(Math.abs(ref.loss - body.loss) <= 1e-5 * ref.loss);
  });

  it("POST /train without an optimizer's optional settings takes optax's defaults, as the float64 reference does", async () => {
    const c = randomCase(rng(31), { widths: [3, 5, 2], batch: 6, activation: 'tanh', loss: 'mse' });
    const defaults = [
      { sent: { name: 'momentum', learningRate: 0.1 }, ref: { name: 'momentum', learningRate: 0.1, momentum: 0.9 } },
      { sent: { name: 'adam', learningRate: 0.05 }, ref: { name: 'adam', learningRate: 0.05, b1: 0.9, b2: 0.999, eps: 1e-8 } },
    ] as const;
    for (const { sent, ref } of defaults) {
      const steps = 12;
      const res = await post('/train', { ...json(c), optimizer: sent, steps });
      assert.equal(res.statusCode, 200, res.body);
      const expected = train64(c, ref, steps);
      const got = res.json().params as { W: number[][]; b: number[] }[];
      got.forEach((p, l) => {
        assert.ok(relError(p.W.flat(), expected.params[l]!.W.flat()) <= 5e-5, `${sent.name}: W[${l}]`);
        assert.ok(relError(p.b, expected.params[l]!.b) <= 5e-5, `${sent.name}: b[${l}]`);
      });
    }
  });

  it('POST /train stopped by a non-finite loss after some steps says at which, and returns the params before it', async () => {
    const c = randomCase(rng(8), { widths: [2, 3, 1], batch: 4, activation: 'linear', loss: 'mse' });
    const res = await post('/train', { ...json(c), optimizer: { name: 'sgd', learningRate: 1e30 }, steps: 50 });
    assert.equal(res.statusCode, 200, res.body);
    const { warnings, history, params } = res.json();
    const stoppedAt = history.at(-1).step;
    assert.ok(stoppedAt > 0 && stoppedAt < 50, `stopped at ${stoppedAt}`);
    assert.ok(!Number.isFinite(history.at(-1).loss));
    assert.match(
      warnings.join(' '),
      new RegExp(
        `training stopped at step ${stoppedAt}: its loss is not finite; the params returned are those that gave it \\(before step ${stoppedAt}'s update\\)`,
      ),
    );
    const before = await post('/train', { ...json(c), optimizer: { name: 'sgd', learningRate: 1e30 }, steps: stoppedAt });
    assert.deepEqual(params, before.json().params);
  });

  it('POST /train of params whose loss is already not finite stops at step 0 and says why, not to lower the learning rate', async () => {
    // z = 20: the output sigmoid is exactly 1.0 in float32 and y = 0 makes the bce loss infinite
    const res = await post('/train', { ...xorTrainRequest, params: [{ W: [[20]], b: [0] }], x: [[1]], y: [0] });
    assert.equal(res.statusCode, 200, res.body);
    const { warnings, history } = res.json();
    assert.deepEqual(history, [{ step: 0, loss: 'Infinity' }]);
    assert.match(warnings.join(' '), /stopped at step 0: the loss of the given params is not finite, so no step was taken/);
    assert.doesNotMatch(warnings.join(' '), /learningRate/);
  });

  it('POST /train says when a seed changed nothing (no minibatches to shuffle), and not when it did', async () => {
    const recipe = { ...xorTrainRequest, steps: 20 };
    const train = async (extra: object) => {
      const res = await post('/train', { ...recipe, ...extra });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { params: unknown; warnings?: string[] };
    };
    const seedWarning = /seed 7 changed nothing: it seeds the shuffle that draws minibatches.*POST \/init/;
    const unseeded = await train({});
    assert.equal(unseeded.warnings, undefined);
    const seeded = await train({ seed: 7 });
    assert.match(seeded.warnings?.join(' ') ?? '', seedWarning);
    assert.match(seeded.warnings?.join(' ') ?? '', /without batchSize every step uses every row/);
    assert.deepEqual(seeded.params, unseeded.params);
    const wholeBatch = await train({ seed: 7, batchSize: 4 });
    assert.match(wholeBatch.warnings?.join(' ') ?? '', /with batchSize 4, the whole batch, every step uses every row/);
    // with minibatches the seed orders them: no warning, and other params than seed 0's
    const minibatched = await train({ seed: 7, batchSize: 2 });
    assert.equal(minibatched.warnings, undefined);
    assert.notDeepEqual(minibatched.params, (await train({ batchSize: 2 })).params);
  });
  it('takes bce_logits with a linear output by default, and mse, as the float64 reference computes them', async () => {
    const { outputActivation, ...rest } = xorCase;
    for (const [loss, activation] of [
      ['bce_logits', 'gelu'],
      ['mse', 'elu'],
    ] as const) {
      const res = await post('/value-and-grad', { ...rest, loss, activation });
      assert.equal(res.statusCode, 200, res.body);
      const ref = valueAndGrad64({ ...xorCase, loss, activation, outputActivation: 'linear' });
      assert.ok(Math.abs(res.json().loss - ref.loss) <= 1e-5 * ref.loss, `${loss} loss`);
      assertGradsMatch(res.json().grads, ref.grads, loss);
    }
  });

  // Each bad request: a 400 whose message names the field or the setting.
  const bad: [string, string, unknown, RegExp][] = [
    [
      'bce_logits with a sigmoid output',
      '/loss',
      { ...json(xorCase), loss: 'bce_logits' },
      /outputActivation is "sigmoid"; loss "bce_logits"/,
    ],
    [
      'an unknown optimizer',
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'rmsprop', learningRate: 0.1 } },
      /^optimizer\.name is "rmsprop"; expected one of "sgd", "momentum", "adam"$/,
    ],
    [
      'an optimizer named as optax capitalises it elsewhere',
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'Adam', learningRate: 0.1 } },
      /^optimizer\.name is "Adam"; did you mean "adam"\?/,
    ],
    [
      "optax's spelling of the learning rate",
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'adam', learning_rate: 0.1 } },
      /optimizer has unknown field "learning_rate" \(did you mean "learningRate"\?\)/,
    ],
    [
      'a learning rate beside the optimizer, not in it',
      '/train',
      { ...xorTrainRequest, learning_rate: 0.1 },
      /^body has unknown field "learning_rate" \(did you mean "optimizer": \{"name": …, "learningRate": …\}\?\)$/,
    ],
    [
      "PyTorch's Adam settings and a step count's usual name",
      '/train',
      { ...xorTrainRequest, num_steps: 5, optimizer: { name: 'adam', learningRate: 0.1, beta1: 0.9, epsilon: 1e-7 } },
      /^optimizer has unknown fields "beta1" \(did you mean "b1"\?\), "epsilon" \(did you mean "eps"\?\); body has unknown field "num_steps" \(did you mean "steps"\?\)$/,
    ],
    [
      "PyTorch's lr",
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'sgd', lr: 0.1 } },
      /^optimizer has unknown field "lr" \(did you mean "learningRate"\?\)$/,
    ],
    [
      "xavier_uniform, another library's name for glorot_uniform",
      '/init',
      { layers: [2, 4, 1], scheme: 'xavier_uniform' },
      /^scheme is "xavier_uniform"; did you mean "glorot_uniform"\?/,
    ],
    ['no learning rate', '/train', { ...xorTrainRequest, optimizer: { name: 'adam' } }, /optimizer\.learningRate is required/],
    [
      'an unknown optimizer option',
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'sgd', learningRate: 1, momentum: 0.9 } },
      /^optimizer has unknown field "momentum"; momentum is an optimizer of its own here: \{"name": "momentum", "learningRate": …, "momentum": 0\.9\}$/,
    ],
    [
      'steps over the limit',
      '/train',
      { ...xorTrainRequest, steps: 5001 },
      /steps is 5001; the limit is 5000 \(GRADSERVE_MAX_TRAIN_STEPS\)/,
    ],
    [
      'work over the limit',
      '/train',
      { ...xorTrainRequest, steps: 5000, x: Array(20).fill([0, 1]), y: Array(20).fill(1) },
      /GRADSERVE_MAX_TRAIN_WORK/,
    ],
    ['a batchSize larger than the batch', '/train', { ...xorTrainRequest, batchSize: 5 }, /batchSize is 5; x has 4 rows/],
    ['zero steps', '/train', { ...xorTrainRequest, steps: 0 }, /^steps is 0; it must be ≥ 1$/],
    [
      'widths as one string',
      '/init',
      { layers: '2,4,1' },
      /^layers is a string; expected a list of widths, inputs to outputs, e.g. \[2, 4, 1\]$/,
    ],
    [
      'an optimizer by its name alone',
      '/train',
      { ...xorTrainRequest, optimizer: 'adam' },
      /^optimizer is a string; expected an object, e\.g\. \{"name": "adam", "learningRate": 0\.01\}$/,
    ],
    ['one width', '/init', { layers: [3] }, /^layers has 1 width; it needs at least 2 \(inputs and outputs\)$/],
    [
      'widths named as Flax names them',
      '/init',
      { features: [2, 4, 1] },
      /^body has unknown field "features" \(did you mean "layers"\?\)$/,
    ],
    [
      "Keras's initializer and JAX's key",
      '/init',
      { layers: [2, 1], kernel_initializer: 'he_normal', key: 0 },
      /^body has unknown fields "kernel_initializer" \(did you mean "scheme"\?\), "key" \(did you mean "seed"\?\)$/,
    ],
    ['a scale the scheme ignores', '/init', { layers: [2, 1], scheme: 'he_uniform', scale: 0.1 }, /scale applies to scheme "normal"/],
    ['a seed beyond 32 bits', '/init', { layers: [2, 1], seed: 2 ** 32 }, /^seed is 4294967296; it must be ≤ 4294967295$/],
    // one bound, not also a safe integer's
    ['a seed beyond 2^53', '/init', { layers: [2, 1], seed: 2 ** 53 }, /^seed is 9007199254740992; it must be ≤ 4294967295$/],
    [
      'a scale that float32 rounds to 0',
      '/init',
      { layers: [2, 1], scheme: 'normal', scale: 1e-46 },
      /^scale is too small for float32: it would round to 0/,
    ],
    // one reason, not also "too small for float32"
    [
      'a negative learning rate',
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'sgd', learningRate: -0.1 } },
      /^optimizer\.learningRate is -0\.1; it must be > 0$/,
    ],
    [
      "an adam decay that float32 rounds to 1 (its bias correction's 1 − b^t would be 0)",
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'adam', learningRate: 0.05, b2: 0.99999999 } },
      /^optimizer\.b2 rounds to 1 in float32, where adam's bias correction 1 − b\^t is then 0: use at most 0\.99999994$/,
    ],
    [
      'an adam decay of 1',
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'adam', learningRate: 0.05, b1: 1 } },
      /^optimizer\.b1 is 1; it must be < 1$/,
    ],
    // typos, within an edit or two; none where two names are as close
    ['a misspelt activation', '/value-and-grad', { ...xorCase, activation: 'tahn' }, /^activation is "tahn"; did you mean "tanh"\?/],
    [
      'a misspelt field',
      '/value-and-grad',
      { x: xorCase.x, y: xorCase.y, parms: xorCase.params },
      /^body has unknown field "parms" \(did you mean "params"\?\)$/,
    ],
    ['a misspelt optimizer', '/train', { ...xorTrainRequest, optimizer: { name: 'adma', learningRate: 0.05 } }, /did you mean "adam"\?/],
    ['an unknown field as close to x as to y', '/value-and-grad', { ...xorCase, z: 1 }, /^body has unknown field "z"$/],
    // a real name, only not taken there, and other libraries' names for what this API lacks: no typo of ours
    [
      "adam's b1 sent to sgd",
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'sgd', learningRate: 0.1, b1: 0.9 } },
      /^optimizer has unknown field "b1"$/,
    ],
    [
      'adamw, not a typo of adam',
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'adamw', learningRate: 0.1 } },
      /^optimizer\.name is "adamw"; expected one of/,
    ],
    ['prelu, not a typo of relu', '/value-and-grad', { ...xorCase, activation: 'prelu' }, /^activation is "prelu"; expected one of/],
    ['mae, not a typo of mse', '/value-and-grad', { ...xorCase, loss: 'mae' }, /^loss is "mae"; expected one of/],
    [
      'sgd with momentum as Keras users say it',
      '/train',
      { ...xorTrainRequest, optimizer: { name: 'sgdm', learningRate: 0.1 } },
      /did you mean "momentum"\?/,
    ],
    [
      "adam's b1 beside the optimizer",
      '/train',
      { ...xorTrainRequest, b1: 0.9 },
      /^body has unknown field "b1" \(did you mean "optimizer": \{"name": …, "b1": …\}\?\)$/,
    ],
    ['a scale of 0', '/init', { layers: [2, 1], scheme: 'normal', scale: 0 }, /^scale is 0; it must be > 0$/],
    ['a fractional seed', '/init', { layers: [2, 1], seed: 1.5 }, /^seed is 1\.5; it must be a whole number$/],
    ['too many parameters', '/init', { layers: [100, 100] }, /10100 parameters; the limit is 1000 \(GRADSERVE_MAX_INIT_PARAMS\)/],
    // params that /value-and-grad would refuse are refused here too
    [
      'more layers than the limit',
      '/init',
      { layers: Array(34).fill(1) },
      /layers has 34 widths, so 33 layers; the limit is 32 \(GRADSERVE_MAX_LAYERS\)/,
    ],
    ['a layer wider than the limit', '/init', { layers: [9000, 1] }, /layers\[0\] is 9000 wide; the limit is 8192 \(GRADSERVE_MAX_WIDTH\)/],
  ];
  for (const [name, url, payload, message] of bad) {
    it(`rejects ${name} on ${url} with a 4xx that says so`, async () => {
      const res = await post(url, payload);
      const overLimit = /GRADSERVE_MAX_/.test(String(message));
      assert.equal(res.statusCode, overLimit ? 413 : 400, res.body);
      assert.match(res.json().message, message);
    });
  }
});

describe('training that saturates the output', () => {
  it('POST /train of the XOR recipe run until its sigmoid saturates says to use bce_logits, which then trains on', async () => {
    // the recipe's fit drives bce towards 0 until a prediction is exactly 1.0 in float32
    // (at step 14134 of 15000): a smaller learning rate would only delay it
    const steps = 15000;
    const { app, engine } = await makeApp('cpu');
    after(async () => {
      await app.close();
      await engine.close();
    });
    const post = (url: string, payload: unknown) => app.inject({ method: 'POST', url, payload: payload as object });
    const res = await post('/train', { ...xorTrainRequest, steps });
    assert.equal(res.statusCode, 200, res.body);
    const { warnings, history } = res.json();
    const stoppedAt = history.at(-1).step;
    assert.ok(stoppedAt > 1000 && stoppedAt < steps, `stopped at ${stoppedAt}`);
    const said = warnings.join(' ');
    assert.match(said, new RegExp(`training stopped at step ${stoppedAt}: .*drove predictions to exactly 1\\.0 .*"loss": "bce_logits"`));
    assert.doesNotMatch(said, /Try a smaller learningRate/);
    assert.match(
      said,
      /predictions are exactly 1\.0 in float32.*"bce_logits" with a linear output \("outputActivation": "linear", or left out\)/,
    );
    // the advice, taken: the same network and recipe on bce_logits runs all its steps
    const { outputActivation, ...recipe } = xorTrainRequest;
    const logits = await post('/train', { ...recipe, loss: 'bce_logits', steps });
    assert.equal(logits.statusCode, 200, logits.body);
    assert.equal(logits.json().history.at(-1).step, steps - 1);
    assert.ok(logits.json().loss < 1e-6 && logits.json().warnings === undefined, logits.body.slice(0, 300));
  });
});

describe('training with a learning rate too large', () => {
  it('POST /train says the learning rate is too large where the loss never fell, or ended above where it began', async () => {
    const { app, engine } = await makeApp('cpu');
    after(async () => {
      await app.close();
      await engine.close();
    });
    const train = async (learningRate: number, steps: number) => {
      const res = await app.inject({
        method: 'POST',
        url: '/train',
        payload: { ...xorTrainRequest, optimizer: { name: 'sgd', learningRate }, steps },
      });
      assert.equal(res.statusCode, 200, res.body);
      return res.json() as { loss: number | string; warnings?: string[] };
    };
    // diverges at once: NaN at step 1, through a saturated sigmoid, which is not the fit's saturation
    const blown = await train(1e6, 50);
    assert.equal(blown.loss, 'NaN');
    const said = blown.warnings!.join(' ');
    assert.match(
      said,
      /training stopped at step 1: .*The loss never fell below step 0's \(0\.7300\): the learningRate is most likely too large/,
    );
    assert.doesNotMatch(said, /would only delay that/);
    // finite, but stuck far above where it began (predictions clipped at 0 and 1)
    const worse = await train(50, 500);
    assert.ok(Number(worse.loss) > 9, `loss ${worse.loss}`);
    assert.match(worse.warnings![0]!, /^the loss rose from 0\.7300 at step 0 to 9\.210: the learningRate is most likely too large/);
    // one step that ends in NaN: no history after step 0 to stop at
    const once = await train(1e6, 1);
    assert.match(once.warnings![0]!, /^the loss rose from 0\.7300 at step 0 to NaN: the learningRate is most likely too large/);
    // nor training on from fitted params with a fresh adam state, whose first steps move each
    // param by about the learning rate: here from a near fit (W 2.001 for 2) to many times its loss
    const exact = { params: [{ W: [[2.001]], b: [0] }], x: [[1], [2], [3]], y: [2, 4, 6], loss: 'mse' };
    const on = await app.inject({
      method: 'POST',
      url: '/train',
      payload: { ...exact, optimizer: { name: 'adam', learningRate: 0.01 }, steps: 20 },
    });
    assert.equal(on.statusCode, 200, on.body);
    assert.ok(on.json().loss > 10 * on.json().history[0].loss, `the loss rose from ${on.json().history[0].loss} to ${on.json().loss}`);
    assert.equal(on.json().warnings, undefined, JSON.stringify(on.json().warnings));
    // and a learning rate that trains says nothing of it
    assert.equal((await train(0.5, 2000)).warnings, undefined);
  });
});

describe('training does not hold up other requests', () => {
  it('answers /healthz while a long /train runs on the cpu backend', async () => {
    const { app, engine } = await makeApp('cpu');
    try {
      const c = randomCase(rng(3), { widths: [2, 16, 16, 1], batch: 64, activation: 'tanh' });
      let trained = false;
      const training = app
        .inject({ method: 'POST', url: '/train', payload: { ...c, optimizer: { name: 'sgd', learningRate: 0.01 }, steps: 400 } })
        .then((res) => {
          trained = true;
          return res;
        });
      // once training runs (not a fixed sleep: on a fast machine 400 steps may end within it)
      while (app.computeGate.stats().running === 0 && !trained) await new Promise((resolve) => setTimeout(resolve, 1));
      assert.equal(trained, false, 'the event loop turned while training ran');
      const health = await app.inject('/healthz');
      assert.equal(health.statusCode, 200);
      assert.equal(trained, false, 'the health check was answered while training ran');
      assert.equal((await training).statusCode, 200);
    } finally {
      await app.close();
      await engine.close();
    }
  });
});
