/**
 * The lesson series against a running gradserve, step by step:
 *   init → forward → loss → value-and-grad → train → forward again.
 * Types come from the OpenAPI document (openapi/api.d.ts, by openapi-typescript).
 *
 *   npx tsx examples/lesson.ts [http://127.0.0.1:8080]
 */
import type { paths } from '../openapi/api.js';

type Body<P extends keyof paths> = paths[P] extends { post: { requestBody?: { content: { 'application/json': infer B } } } } ? B : never;
type Reply<P extends keyof paths> = paths[P] extends { post: { responses: { 200: { content: { 'application/json': infer R } } } } }
  ? R
  : never;
type Params = Reply<'/init'>['params'];

// without a trailing slash, so that a path prefix (http://host/gradserve) is kept
const base = (process.argv[2] ?? process.env.GRADSERVE_URL ?? 'http://127.0.0.1:8080').replace(/\/+$/, '');

async function post<P extends keyof paths>(path: P, body: Body<P>): Promise<Reply<P>> {
  const res = await fetch(base + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  // an error from something in between (a proxy's 502 page) may not be JSON: say what came back
  if (!res.ok) {
    const text = await res.text();
    const message = (() => {
      try {
        return (JSON.parse(text) as { message: string }).message;
      } catch {
        return text.slice(0, 200);
      }
    })();
    throw new Error(`${path}: ${res.status} ${message}`);
  }
  return (await res.json()) as Reply<P>;
}

/** Tensors come back as JSON rows unless a request asks for "outputEncoding": "base64". */
function rows<T>(m: T[][] | { dtype: 'float32' }): T[][] {
  if (!Array.isArray(m)) throw new Error('expected JSON rows (outputEncoding "json")');
  return m;
}

// The XOR problem: four inputs, and the exclusive-or of each.
const x = [
  [0, 0],
  [0, 1],
  [1, 0],
  [1, 1],
];
const y = [0, 1, 1, 0];
const show = (v: unknown) => JSON.stringify(v, (_k, n) => (typeof n === 'number' ? Number(n.toPrecision(4)) : n));

// 1. Build the network 2 → 4 → 1 and initialise it (glorot_normal, seed 0: the same numbers everywhere).
const { params } = await post('/init', { layers: [2, 4, 1], seed: 0, scheme: 'glorot_normal' });
console.log('1. init           W0 =', show(params[0]!.W));

// 2. The forward pass: tanh hidden layer, sigmoid output.
const before = await post('/forward', { params, x, activation: 'tanh', outputActivation: 'sigmoid' });
console.log('2. forward        predictions =', show(rows(before.predictions).flat()));

// 3. How wrong is it? Binary cross-entropy, the mean over the batch.
const { loss } = await post('/loss', { params, x, y, loss: 'bce' });
console.log('3. loss           bce =', show(loss));

// 4. Which way is downhill? The gradient tree, shaped like params.
const { grads } = await post('/value-and-grad', { params, x, y });
console.log('4. value-and-grad dL/db1 =', show(grads[1]!.b));

// 5. Walk downhill: 500 steps of adam with learning rate 0.05.
const trained = await post('/train', { params: params as Params, x, y, optimizer: { name: 'adam', learningRate: 0.05 }, steps: 500 });
const history = trained.history.filter((_h, i) => i % 25 === 0).map((h) => `${h.step}: ${show(h.loss)}`);
console.log('5. train          loss by step', history.join(', '), '→ final', show(trained.loss));

// 6. The trained network gets XOR right.
const after = await post('/forward', { params: trained.params as Params, x });
const answers = rows(after.predictions).map((row) => Math.round(Number(row[0])));
console.log('6. forward        predictions =', show(rows(after.predictions).flat()), '→', answers.join(' '));

if (typeof trained.loss !== 'number' || trained.loss >= 0.05 || answers.join('') !== y.join('')) {
  console.error('the walkthrough did not learn XOR');
  process.exit(1);
}
