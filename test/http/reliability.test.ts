import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import Fastify, { type FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import type { BackendName } from '../../src/engine/types.js';
import { admitCompute, ComputeGate } from '../../src/http/admission.js';
import { type Config, defaultConfig } from '../../src/runtime/config.js';
import { backendSkips } from '../backend-skips.js';
import { binaryCase, randomCase, receivedUntilClose, rng, xorCase } from '../helpers.js';
import { relError, valueAndGrad64 } from '../reference/mlp64.js';

const { headlessgl: glSkip } = await backendSkips();

type Overrides = {
  limits?: Partial<Config['limits']>;
  admission?: Partial<Config['admission']>;
  jsonOffload?: Config['jsonOffload'];
  backend?: BackendName;
};

async function withServer(overrides: Overrides, body: (url: string, app: FastifyInstance, engine: Engine) => Promise<void>) {
  const base = defaultConfig();
  const config = {
    ...base,
    logLevel: 'silent' as const,
    limits: { ...base.limits, ...overrides.limits },
    admission: { ...base.admission, ...overrides.admission },
    jsonOffload: overrides.jsonOffload ?? base.jsonOffload,
  };
  const engine = await Engine.create({ backend: overrides.backend ?? 'webasm', kernelCacheCapacity: 64 });
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

/** A POST over a raw socket, to see what the server takes and sends: `head` is the answer's first bytes. */
function rawPost(port: number, body: unknown, path = '/value-and-grad') {
  const bytes = Buffer.from(JSON.stringify(body));
  const socket = connect(port, '127.0.0.1');
  const head = new Promise<string>((resolve, reject) => {
    socket.once('data', (d: Buffer) => resolve(d.toString('latin1', 0, 40)));
    socket.once('error', reject);
  });
  socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${bytes.length}\r\n\r\n`);
  socket.write(bytes);
  return { socket, head, bytes: bytes.length };
}

/** Wait until `done()` holds, checking every 5 ms; fail with `what` after `ms`. */
async function until(what: string, done: () => boolean, ms = 5000): Promise<void> {
  for (let waited = 0; !done(); waited += 5) {
    assert.ok(waited < ms, what);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** A request that takes the engine a second or more here (first-call compiles included): 3 layers, 11 kernels. */
const heavy = randomCase(rng(7), { widths: [256, 512, 512, 1], batch: 2048, activation: 'tanh' });
/** its value-and-grad's kernels: 3 forward, 3 weight gradients, 2 input gradients (biases' are on the host) */
const HEAVY_KERNELS = 8;

describe('work limits', () => {
  const cases: [string, Overrides['limits'], unknown, RegExp][] = [
    ['layers', { layers: 1 }, xorCase, /params has 2 layers; the limit is 1 \(GRADSERVE_MAX_LAYERS\)/],
    ['width', { width: 3 }, xorCase, /params\[0\] is 4 wide \(params\[0\]\.W's columns\); the limit is 3 \(GRADSERVE_MAX_WIDTH\)/],
    ['batch', { batch: 3 }, xorCase, /x has 4 rows; the batch limit is 3 \(GRADSERVE_MAX_BATCH\)/],
    ['work', { work: 47 }, xorCase, /work, batch × Σ in×out = 4 × 12 = 48, is over the limit of 47 \(GRADSERVE_MAX_WORK\)/],
    // XOR: 4 rows × (4 + 1) outputs
    [
      'activations',
      { activations: 19 },
      xorCase,
      /activations, batch × Σ out = 4 × 5 = 20 values \(under 1 MiB of memory\), are over the limit of 19 \(GRADSERVE_MAX_ACTIVATIONS\)/,
    ],
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

  it('says what to do about a batch over a limit in the terms of each route', async () => {
    const forwardBody = { params: xorCase.params, x: xorCase.x };
    const advice: [string, unknown, RegExp][] = [
      ['/value-and-grad', xorCase, /\(GRADSERVE_MAX_WORK\); split the batch into shards with reduction "sum"$/],
      ['/loss', xorCase, /\(GRADSERVE_MAX_WORK\); split the batch into shards with reduction "sum"$/],
      // /forward takes no reduction: its predictions are per row
      ['/forward', forwardBody, /\(GRADSERVE_MAX_WORK\); send the rows in several requests$/],
      // /train's loss is over its whole batch: shards would train apart
      [
        '/train',
        { ...xorCase, optimizer: { name: 'sgd', learningRate: 0.1 }, steps: 1 },
        /\(GRADSERVE_MAX_WORK\); train on fewer rows, or a smaller network$/,
      ],
    ];
    await withServer({ limits: { work: 47 } }, async (url) => {
      for (const [route, body, message] of advice) {
        const res = await fetch(`${url}${route}`, {
          method: 'POST',
          body: JSON.stringify(body),
          headers: { 'content-type': 'application/json' },
        });
        assert.equal(res.status, 413, route);
        assert.match(((await res.json()) as { message: string }).message, message, route);
      }
    });
  });

  it('refuses an answer larger than a body may be before computing it, and says when base64 would fit', async () => {
    // GRADSERVE_BODY_LIMIT bounds answers too, counted at 20 bytes a JSON value and 16/3 a base64 one
    const send = (url: string, route: string, body: unknown) =>
      fetch(`${url}${route}`, { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
    const refusal = async (res: Response) => {
      assert.equal(res.status, 413);
      const body = (await res.json()) as { code: string; message: string };
      assert.equal(body.code, 'GRADSERVE_LIMIT_EXCEEDED');
      return body.message;
    };
    const over = 'over the 4 KiB that a body may take either way \\(GRADSERVE_BODY_LIMIT\\)';
    const forward = (rows: number) => ({ params: [{ W: [[0.5]], b: [0] }], x: Array(rows).fill([1]), outputActivation: 'sigmoid' });
    // 1 → 400 → 1 in zeros: 1201 params in a 3 KB body, whose gradients fit in neither encoding
    const wide = {
      params: [
        { W: [Array(400).fill(0)], b: Array(400).fill(0) },
        { W: Array(400).fill([0]), b: [0] },
      ],
      x: [[1]],
      y: [[1]],
    };
    await withServer({ limits: { bodyBytes: 4096 } }, async (url) => {
      // 204 predictions × 20 = 4080 bytes fit; 300 do only as base64 (1600 bytes)
      assert.equal((await send(url, '/forward', forward(204))).status, 200);
      assert.match(
        await refusal(await send(url, '/forward', forward(300))),
        new RegExp(
          `^the answer would hold predictions, 300 rows × 1 output = 300 values, about 6 KiB as JSON, ${over}; ` +
            'ask for "outputEncoding": "base64" \\(4 bytes a value, about 2 KiB\\), or send the rows in several requests$',
        ),
      );
      const base64 = await send(url, '/forward', { ...forward(300), outputEncoding: 'base64' });
      assert.equal(base64.status, 200);
      const { predictions } = (await base64.json()) as { predictions: { shape: number[]; data: string } };
      assert.deepEqual(predictions.shape, [300, 1]);
      const values = new Float32Array(new Uint8Array(Buffer.from(predictions.data, 'base64')).buffer);
      assert.ok(values.every((v) => Math.abs(v - 1 / (1 + Math.exp(-0.5))) < 1e-7));

      assert.match(
        await refusal(await send(url, '/value-and-grad', wide)),
        new RegExp(
          `^the answer would hold grads of 2 layers, Σ \\(in \\+ 1\\)·out = 1201 values, about 23 KiB as JSON, ${over}; use a smaller network$`,
        ),
      );
      const train = { ...wide, optimizer: { name: 'sgd', learningRate: 0.1 }, steps: 1, outputEncoding: 'base64' };
      assert.match(
        await refusal(await send(url, '/train', train)),
        new RegExp(
          `^the answer would hold params of 2 layers, Σ \\(in \\+ 1\\)·out = 1201 values, about 6 KiB as base64 tensors, ${over}; use a smaller network$`,
        ),
      );
      // /init: 10 → 20 makes 220 params, 4400 bytes as JSON, 1173 as base64
      assert.match(
        await refusal(await send(url, '/init', { layers: [10, 20] })),
        /= 220 values, about 4 KiB as JSON, .*ask for "outputEncoding": "base64"/,
      );
      const init = await send(url, '/init', { layers: [10, 20], outputEncoding: 'base64' });
      assert.equal(init.status, 200);
    });
  });

  it('accepts a request exactly at the work and activation limits', async () => {
    await withServer({ limits: { work: 48, activations: 20 } }, async (url) => {
      assert.equal((await post(url, xorCase)).status, 200);
    });
  });

  it('refuses, on the defaults, a small body whose activations would take gigabytes', async () => {
    // little work (1.1e9, under GRADSERVE_MAX_WORK) in 640 KB; it took 8.5 GB before this limit
    const hidden = 8192;
    const rows = 65536;
    const wide = {
      params: [
        { W: [Array(hidden).fill(0.01)], b: Array(hidden).fill(0) },
        { W: Array(hidden).fill([0.01]), b: [0] },
      ],
      x: Array(rows).fill([1]),
      y: Array(rows).fill([1]),
    };
    await withServer({}, async (url) => {
      const res = await post(url, wide);
      assert.equal(res.status, 413);
      const { message } = (await res.json()) as { message: string };
      assert.match(message, /batch × Σ out = 65536 × 8193 = 536936448 values \(about 20\.0 GiB of memory\)/);
    });
  });

  it("refuses a batch longer than headlessgl's textures with a 413 that names the limit, and takes one that fits", {
    skip: glSkip,
  }, async () => {
    // one row of one input: a long batch in a small body (its kernels' outputs are batch × width textures)
    const rows = (n: number) => ({ params: [{ W: [[0.5]], b: [0] }], x: Array(n).fill([1]), y: Array(n).fill([1]) });
    await withServer({ backend: 'headlessgl' }, async (url) => {
      const over = await post(url, rows(16385));
      assert.equal(over.status, 413);
      const body = (await over.json()) as { code: string; message: string };
      assert.equal(body.code, 'GRADSERVE_LIMIT_EXCEEDED');
      assert.match(body.message, /x has 16385 rows; the headlessgl backend takes at most 16384 \(the longest side of its GL's textures\)/);
      const fits = await post(url, rows(16384));
      assert.equal(fits.status, 200);
      const { loss } = (await fits.json()) as { loss: number };
      assert.ok(Math.abs(loss - Math.log1p(Math.exp(-0.5))) < 1e-6, `loss ${loss}`);
    });
  });
});

describe('bodies full of wrong elements', () => {
  const postTo = (url: string, path: string, body: Buffer | string, headers: Record<string, string> = {}) =>
    fetch(`${url}${path}`, { method: 'POST', body, headers: { 'content-type': 'application/json', ...headers } });
  const refusal = async (res: Response) => {
    assert.equal(res.status, 400);
    return ((await res.json()) as { message: string }).message;
  };

  // zod made an issue for every wrong element, once per form a field may take: 2 million took
  // 2.4 GB and 20 s to refuse, more took the process down (validation-view.ts)
  it('refuses millions of them at once, naming the first, off the event loop and on it; and serves on', { timeout: 30_000 }, async () => {
    await withServer({}, async (url) => {
      // (within the batch and width limits: longer lists get a 413 before anything looks at their elements)
      const strings = JSON.stringify({ params: [{ W: [[1]], b: [0] }], x: [[1]], y: Array(65_536).fill('a') });
      const gzip = { 'content-encoding': 'gzip' };
      assert.equal(await refusal(await postTo(url, '/loss', gzipSync(strings), gzip)), 'y[0] is a string; expected a number');
      const flat = JSON.stringify({ params: [{ W: [[1]], b: [0] }], x: Array(65_536).fill(0), y: [[1]] });
      assert.match(await refusal(await postTo(url, '/loss', gzipSync(flat), gzip)), /^x is a flat list of numbers; x takes rows/);
      const rows = JSON.stringify({ params: [{ W: [[1]], b: Array(8192).fill([0]) }], x: [[1]], y: [[1]] });
      assert.match(await refusal(await postTo(url, '/loss', gzipSync(rows), gzip)), /^params\[0\]\.b is a list of rows/);
      // a small body stays on the event loop: 10,000 wrong elements, one message
      const small = JSON.stringify({ params: [{ W: [[1]], b: [0] }], x: [[1]], y: Array(10_000).fill('0') });
      assert.equal(
        await refusal(await postTo(url, '/loss', small)),
        'y[0] is a string; expected a number (numbers are not quoted in JSON)',
      );
      assert.equal((await post(url, xorCase)).status, 200);
    });
  });

  // A few KB of gzip holding millions of rows that zod would check one by one (a flat y, once
  // per form y may take): 16 million took a JSON thread to 2.9 GB and 20 s, 30 KB of gzip took
  // it down, and without JSON threads the process (limits.ts, bodyOverListLimits)
  for (const [where, jsonOffload] of [
    ['in a JSON thread', defaultConfig().jsonOffload],
    ['on the event loop (GRADSERVE_JSON_WORKERS=0)', { workers: 0, minBytes: 65_536 }],
  ] as const) {
    it(`refuses lists longer than the batch or width limits with a 413 before looking at their elements, ${where}`, async () => {
      await withServer({ jsonOffload }, async (url) => {
        const gzip = { 'content-encoding': 'gzip' };
        const over = async (body: unknown) => {
          const res = await postTo(url, '/value-and-grad', gzipSync(JSON.stringify(body)), gzip);
          assert.equal(res.status, 413);
          return ((await res.json()) as { message: string }).message;
        };
        const layer = { W: [[1]], b: [0] };
        const M = 1 << 20;
        const R = 100_000; // rows over the batch and width limits, not over the brackets a body may hold
        const cases: [unknown, string][] = [
          [{ params: [layer], x: [[1]], y: Array(M).fill(0) }, `y has ${M} entries; the batch limit is 65536 (GRADSERVE_MAX_BATCH)`],
          [{ params: [layer], x: Array(R).fill([0]), y: [0] }, `x has ${R} rows; the batch limit is 65536 (GRADSERVE_MAX_BATCH)`],
          [{ params: [layer], x: Array(R).fill([]), y: [0] }, `x has ${R} rows; the batch limit is 65536 (GRADSERVE_MAX_BATCH)`],
          [{ params: [layer], x: [Array(M).fill(0)], y: [0] }, `x[0] has ${M} entries; the width limit is 8192 (GRADSERVE_MAX_WIDTH)`],
          [
            { params: [layer, { W: Array(R).fill([0]), b: [0] }], x: [[1]], y: [0] },
            `params[1].W has ${R} rows; the width limit is 8192 (GRADSERVE_MAX_WIDTH)`,
          ],
          [
            { params: [{ W: [[1], Array(M).fill(0)], b: [0] }], x: [[1]], y: [0] },
            `params[0].W[1] has ${M} entries; the width limit is 8192 (GRADSERVE_MAX_WIDTH)`,
          ],
          [
            { params: [{ W: [[1]], b: Array(M).fill(0) }], x: [[1]], y: [0] },
            `params[0].b has ${M} entries; the width limit is 8192 (GRADSERVE_MAX_WIDTH)`,
          ],
        ];
        // more lists or objects than any body within the limits holds: counted before parsing, which
        // makes one for each (64 MiB of "[]," took seconds and a gigabyte)
        const beyond = 'more than any body within the limits (GRADSERVE_MAX_BATCH, GRADSERVE_MAX_WIDTH, GRADSERVE_MAX_LAYERS)';
        cases.push(
          [{ params: [layer], x: Array(M).fill([]), y: [0] }, `the body holds more than 393360 lists ("["), ${beyond}`],
          [{ params: [layer], x: Array(M).fill({}), y: [0] }, `the body holds more than 393360 objects ("{"), ${beyond}`],
          [
            { ...Object.fromEntries(Array.from({ length: 100_000 }, (_, i) => [`k${i}`, 0])), params: [layer], x: [[1]], y: [0] },
            `the body holds more than 320 fields (":"), ${beyond}`,
          ],
        );
        // (zod, had it been shown them, would have refused each with a 400 for its shape, after checking every element)
        for (const [body, message] of cases) assert.equal(await over(body), message);
        assert.equal((await post(url, xorCase)).status, 200);
      });
    });
  }

  it('refuses more layers than the limit with a 413 before looking at each, and settings that overflow float32', async () => {
    await withServer({}, async (url) => {
      const over = async (res: Response) => {
        assert.equal(res.status, 413);
        return ((await res.json()) as { message: string }).message;
      };
      // 300 KB, parsed in a JSON thread; 6 KB, on the event loop; 33, within the schemas' own bound
      for (const count of [1e5, 2000, 33]) {
        const layers = JSON.stringify({ params: Array(count).fill({}), x: [[1]], y: [[1]] });
        assert.equal(await over(await postTo(url, '/loss', layers)), `params has ${count} layers; the limit is 32 (GRADSERVE_MAX_LAYERS)`);
      }
      const widths = JSON.stringify({ layers: Array(1e5).fill(1.5) });
      assert.equal(
        await over(await postTo(url, '/init', widths)),
        'layers has 100000 widths, so 99999 layers; the limit is 32 (GRADSERVE_MAX_LAYERS)',
      );
      const scale = JSON.stringify({ layers: [4, 4], scheme: 'normal', scale: 1e39 });
      assert.match(await refusal(await postTo(url, '/init', scale)), /^scale is outside float32's range/);
      // within float32, but draws of a few standard deviations overflow it
      const near = JSON.stringify({ layers: [4, 4], scheme: 'normal', biasScheme: 'normal', scale: 3e38 });
      assert.match(await refusal(await postTo(url, '/init', near)), /^scale 3e\+38 makes \d+ parameters overflow float32/);
      const lr = JSON.stringify({ ...xorCase, optimizer: { name: 'adam', learningRate: 1e39 }, steps: 1 });
      assert.match(await refusal(await postTo(url, '/train', lr)), /^optimizer\.learningRate is outside float32's range/);
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

  it('queues beyond the read-ahead with bodies unread, then serves them', async () => {
    await withServer({ admission: { maxConcurrency: 1, readAhead: 0, maxQueue: 4 } }, async (url, app) => {
      const port = Number(new URL(url).port);
      // raw sockets: the first does not read its answer (megabytes) until told, so it holds
      // the only read slot; how much of the second's body the server took shows in the client
      const first = rawPost(port, heavy);
      first.socket.pause();
      await until('the first is admitted', () => app.computeGate.stats().admitted === 1);
      const second = rawPost(port, heavy);
      try {
        await until('the second request waits for a read slot', () => app.computeGate.stats().unread === 1);
        await new Promise((r) => setTimeout(r, 200));
        // loopback's socket buffers take a few MB; the rest of the body waits in the client
        const unsent = second.socket.writableLength;
        assert.ok(unsent > second.bytes / 4, `${unsent} of ${second.bytes} bytes still unsent`);
        const metrics = await (await fetch(`${url}/metrics`)).text();
        assert.match(metrics, /^gradserve_admitted_requests\{state="unread"\} 1$/m);
        first.socket.resume();
        assert.match(await first.head, /^HTTP\/1\.1 200 /);
        assert.match(await second.head, /^HTTP\/1\.1 200 /);
      } finally {
        first.socket.destroy();
        second.socket.destroy();
      }
    });
  });

  it('passes over a client that hung up while it waited with its body unread', async () => {
    await withServer({ admission: { maxConcurrency: 1, readAhead: 0, maxQueue: 4 } }, async (url, app) => {
      const port = Number(new URL(url).port);
      const first = rawPost(port, heavy);
      first.socket.pause(); // holds the only read slot until it takes its answer
      try {
        await until('the first is admitted', () => app.computeGate.stats().admitted === 1);
        const second = rawPost(port, heavy);
        await until('the second waits unread', () => app.computeGate.stats().unread === 1);
        // a socket that is not being read is not watched: the server learns of the hang-up
        // when the second's turn comes, and passes the slot on at once
        second.socket.destroy();
        const third = post(url, xorCase);
        first.socket.resume();
        assert.match(await first.head, /^HTTP\/1\.1 200 /);
        assert.equal((await third).status, 200, 'served after the second, long before the timeout');
        await until('nothing is held', () => app.computeGate.stats().admitted === 0);
      } finally {
        first.socket.destroy();
      }
    });
  });

  it('answers 408 to uploads that stall, closes them and frees their slots, so they cannot block the service', async () => {
    // as many stalled uploads as there are read slots (compute + read-ahead): before the fix
    // they held them for good and every later request timed out in the queue
    await withServer({ admission: { requestTimeoutMs: 800, maxConcurrency: 1, readAhead: 1 } }, async (url, app) => {
      const port = Number(new URL(url).port);
      const stalled = [0, 1].map((i) => {
        const socket = connect(port, '127.0.0.1');
        const answer = receivedUntilClose(socket).catch(() => '');
        socket.write(
          `POST /value-and-grad HTTP/1.1\r\nHost: x\r\nX-Request-Id: stalled-${i}\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"par`,
        );
        return { socket, answer };
      });
      try {
        await until('both are reading their bodies', () => app.computeGate.stats().admitted === 2);
        const metrics = await (await fetch(`${url}/metrics`)).text();
        assert.match(metrics, /^gradserve_admitted_requests\{state="io"\} 2$/m, 'visible to an operator');
        const t0 = performance.now();
        for (const [i, { answer }] of stalled.entries()) {
          const text = await answer;
          assert.match(text, /^HTTP\/1\.1 408 /, text.slice(0, 80));
          assert.match(text, new RegExp(`\r\nX-Request-Id: stalled-${i}\r\n`), "the request's own id");
          assert.match(text, /"code":"GRADSERVE_UPLOAD_TIMEOUT"/);
          assert.match(text, /GRADSERVE_REQUEST_TIMEOUT_MS/);
        }
        assert.ok(performance.now() - t0 < 5000, 'answered within the timeout and a check interval');
        await until('their slots are free', () => app.computeGate.stats().admitted === 0);
        const counted = await (await fetch(`${url}/metrics`)).text();
        assert.match(counted, /route="\/value-and-grad",status="408"\} 2\n/, 'counted as 408s, not as hang-ups');
        assert.equal((await post(url, xorCase)).status, 200, 'serving again');
      } finally {
        for (const { socket } of stalled) socket.destroy();
      }
    });
  });

  it('answers 408 to a body that trickles in slower than the minimum rate, long before the request timeout, and frees its slot', async () => {
    // one read slot; the request timeout is the default 30 s
    const pace = { uploadGraceMs: 300, minUploadRate: 1000 };
    await withServer({ admission: { maxConcurrency: 1, readAhead: 0, ...pace } }, async (url, app) => {
      const port = Number(new URL(url).port);
      const body = Buffer.from(JSON.stringify(xorCase).padEnd(2500, ' ')); // JSON may end in spaces
      /** `body` sent `bytes` at a time every 10 ms */
      const paced = (bytes: number) => {
        const socket = connect(port, '127.0.0.1');
        const answer = receivedUntilClose(socket).catch(() => '');
        socket.write(
          `POST /value-and-grad HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
        );
        let sent = 0;
        const timer = setInterval(() => {
          if (sent >= body.length || socket.destroyed) return clearInterval(timer);
          socket.write(body.subarray(sent, sent + bytes));
          sent += bytes;
        }, 10);
        return { socket, answer, stop: () => clearInterval(timer) };
      };
      const slow = paced(2); // 200 bytes a second: 2500 bytes would take 12.5 s
      try {
        const t0 = performance.now();
        const text = await slow.answer;
        const ms = performance.now() - t0;
        assert.match(text, /^HTTP\/1\.1 408 /, text.slice(0, 80));
        assert.match(text, /"code":"GRADSERVE_UPLOAD_TOO_SLOW"/);
        assert.match(
          text,
          /at least 1000 bytes a second after the first 300 ms are required \(GRADSERVE_MIN_UPLOAD_RATE, GRADSERVE_UPLOAD_GRACE_MS\)/,
        );
        assert.ok(ms < 3000, `answered and closed after ${ms.toFixed(0)} ms, not at the 30 s request timeout`);
        await until('its slot is free', () => app.computeGate.stats().admitted === 0);
      } finally {
        slow.stop();
        slow.socket.destroy();
      }
      // 25 bytes every 10 ms (about 2500 a second, over the minimum) for about a second, past the grace
      const steady = paced(25);
      try {
        const text = await steady.answer;
        assert.match(text, /^HTTP\/1\.1 200 /, text.slice(0, 300));
      } finally {
        steady.stop();
        steady.socket.destroy();
      }
    });
  });

  it('never writes a 408 after an answer already sent on the connection (a 503 to a request that waited unread)', async () => {
    await withServer({ admission: { requestTimeoutMs: 800, maxConcurrency: 1, readAhead: 0 } }, async (url, app) => {
      const port = Number(new URL(url).port);
      const [reading, unread] = [0, 1].map(() => {
        const socket = connect(port, '127.0.0.1');
        const answer = new Promise<string>((resolve) => {
          let got = '';
          socket.on('data', (d: Buffer) => {
            got += d.toString('latin1');
          });
          socket.on('close', () => resolve(got));
        });
        socket.write('POST /value-and-grad HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 200\r\n\r\n{"par');
        return { socket, answer };
      }) as [{ socket: Socket; answer: Promise<string> }, { socket: Socket; answer: Promise<string> }];
      try {
        await until('one reads, one waits unread', () => app.computeGate.stats().unread === 1);
        assert.match(await reading.answer, /^HTTP\/1\.1 408 /);
        const text = await unread.answer;
        assert.match(text, /^HTTP\/1\.1 503 /, text.slice(0, 80));
        assert.equal(text.match(/HTTP\/1\.1 /g)?.length, 1, `one answer only: ${text}`);
      } finally {
        reading.socket.destroy();
        unread.socket.destroy();
      }
    });
  });

  it('drops the connection of a client that does not take its answer, freeing its slots', async () => {
    // the deadline (a computation of a second or more, then the answer begins), and as long
    // again for the answer to be taken
    await withServer({ admission: { requestTimeoutMs: 5000 } }, async (url, app) => {
      const request = rawPost(Number(new URL(url).port), heavy); // its answer is more than the socket buffers hold
      request.socket.pause();
      try {
        await until('the request is admitted', () => app.computeGate.stats().admitted === 1);
        const t0 = performance.now();
        await until('the slots are free by the second deadline', () => app.computeGate.stats().admitted === 0, 15_000);
        assert.ok(performance.now() - t0 > 7500, 'not at the first deadline: the answer had as long again');
        const closed = new Promise((resolve) => request.socket.on('close', resolve));
        request.socket.resume();
        assert.match(await request.head, /^HTTP\/1\.1 200 /, 'the answer had begun');
        await closed;
      } finally {
        request.socket.destroy();
      }
    });
  });

  it('admits /init like the compute routes: an answer not taken holds its slot, so it cannot pile up answers', async () => {
    await withServer({ admission: { maxConcurrency: 1, maxQueue: 0 } }, async (url, app) => {
      // 2.25 M parameters: ~45 MB of JSON, far more than the socket buffers hold
      const request = rawPost(Number(new URL(url).port), { layers: [1500, 1500, 1], seed: 1 }, '/init');
      request.socket.pause();
      try {
        await until('the /init request is admitted', () => app.computeGate.stats().admitted === 1);
        const refused = await post(url, xorCase);
        assert.equal(refused.status, 503, 'its slot is held while its answer waits');
        assert.equal(((await refused.json()) as { code: string }).code, 'GRADSERVE_OVERLOADED');
      } finally {
        request.socket.destroy();
      }
      await until('its slot is free once the client is gone', () => app.computeGate.stats().admitted === 0);
      assert.equal((await post(url, xorCase)).status, 200);
    });
  });

  it('keeps answering while /init draws the most parameters it allows, and abandons a draw that times out', async () => {
    // [2045, 2048, 1] in "normal": 4.19M parameters, the limit, drawn in 0.25–0.5 s here
    const init = { layers: [2045, 2048, 1], seed: 1, scheme: 'normal', biasScheme: 'normal', outputEncoding: 'base64' };
    await withServer({}, async (url, app) => {
      const answer = fetch(`${url}/init`, { method: 'POST', body: JSON.stringify(init), headers: { 'content-type': 'application/json' } });
      // a draw that held the event loop to its end could never be seen running from here
      await until('the draw is running', () => app.computeGate.stats().running === 1);
      assert.equal((await fetch(`${url}/healthz`)).status, 200);
      assert.equal(app.computeGate.stats().running, 1, '/healthz was answered while the draw went on');
      const res = await answer;
      assert.equal(res.status, 200);
      const { params } = (await res.json()) as { params: { W: { shape: number[] }; b: { shape: number[] } }[] };
      assert.deepEqual([params[0]!.W.shape, params[1]!.b.shape], [[2045, 2048], [1]]);
    });
    await withServer({ admission: { requestTimeoutMs: 100 } }, async (url, app) => {
      const res = await fetch(`${url}/init`, {
        method: 'POST',
        body: JSON.stringify(init),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 503);
      const body = (await res.json()) as { code: string; message: string };
      assert.equal(body.code, 'GRADSERVE_TIMEOUT');
      assert.match(body.message, /within 100 ms \(GRADSERVE_REQUEST_TIMEOUT_MS\).*; retry later, or ask for a smaller network$/);
      await until('the draw stopped: its compute slot is free', () => app.computeGate.stats().running === 0, 1000);
    });
  });

  it('answers 503 when a request runs past the timeout, and stops its work at the next kernel', async () => {
    await withServer({ admission: { requestTimeoutMs: 300 } }, async (url, app, engine) => {
      // warm: XOR's kernels are compiled, and the JSON thread has parsed a large body once
      // (its first takes hundreds of ms under tsx)
      assert.equal((await post(url, xorCase)).status, 200);
      const wide = randomCase(rng(70), { widths: [256, 2, 1], batch: 128, activation: 'tanh' });
      // its first may itself time out: with a 503, or, on a loaded machine, a 408 and a
      // connection closed under the upload, which fetch reports as a network error
      await post(url, binaryCase(wide))
        .then((res) => res.arrayBuffer())
        .catch(() => undefined);
      await app.computeGate.idle();
      const before = engine.info().kernelCache.compiles;
      // binary tensors: parsed in tens of ms, so that the deadline falls in the compute
      let computing = false;
      const watch = setInterval(() => {
        computing ||= app.computeGate.stats().running === 1;
      }, 5);
      const t0 = performance.now();
      const res = await post(url, binaryCase(heavy));
      const waited = performance.now() - t0;
      clearInterval(watch);
      assert.ok(computing, 'the deadline came while it computed');
      assert.ok(waited < 3000, `answered at the deadline, not at the end of the work (${waited.toFixed(0)} ms)`);
      assert.equal(res.status, 503);
      assert.ok(Number(res.headers.get('retry-after')) >= 1);
      const body = (await res.json()) as { code: string; message: string };
      assert.equal(body.code, 'GRADSERVE_TIMEOUT');
      assert.match(body.message, /; retry later, or split the batch into shards with reduction "sum"$/);
      await app.computeGate.idle();
      const ran = engine.info().kernelCache.compiles - before;
      assert.ok(
        ran >= 1 && ran < HEAVY_KERNELS,
        `abandoned after ${ran} of ${HEAVY_KERNELS} kernels (answered in ${waited.toFixed(0)} ms)`,
      );
      const xor = await post(url, xorCase);
      assert.equal(xor.status, 200, 'serving again');
    });
  });

  it('tells a /train that times out to train in several requests, and stops it', async () => {
    await withServer({ admission: { requestTimeoutMs: 300 } }, async (url, app) => {
      // XOR's steps take tens of µs each: 100000 of them take seconds
      const train = { ...xorCase, optimizer: { name: 'sgd', learningRate: 0.5 }, steps: 100_000 };
      const res = await fetch(`${url}/train`, {
        method: 'POST',
        body: JSON.stringify(train),
        headers: { 'content-type': 'application/json' },
      });
      assert.equal(res.status, 503);
      const body = (await res.json()) as { code: string; message: string };
      assert.equal(body.code, 'GRADSERVE_TIMEOUT');
      assert.match(body.message, /; retry later, or train in several requests of fewer steps, each from the params the last one returned$/);
      await until('the training stopped: its compute slot is free', () => app.computeGate.stats().running === 0, 1000);
    });
  });

  it('abandons the work of a client that disconnects', async () => {
    await withServer({}, async (url, app, engine) => {
      const controller = new AbortController();
      const pending = post(url, heavy, controller.signal).catch((err: Error) => err);
      await until('it computes', () => app.computeGate.stats().running === 1);
      controller.abort();
      assert.equal(((await pending) as Error).name, 'AbortError');
      await until('nothing is held', () => app.computeGate.stats().admitted === 0);
      await app.computeGate.idle();
      assert.ok(engine.info().kernelCache.compiles < HEAVY_KERNELS, 'stopped before the backward pass');
      assert.deepEqual(app.computeGate.stats(), { admitted: 0, running: 0, waiting: 0, unread: 0 });
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /gradserve_http_requests_total\{method="POST",route="\/value-and-grad",status="499"\} 1\n/, 'counted');
      assert.match(
        metrics,
        /gradserve_http_request_duration_seconds_count\{method="POST",route="\/value-and-grad",status="499"\} 1\n/,
        'timed',
      );
    });
  });

  it('answers malformed HTTP with 400 and oversized headers with 431 in its error shape, counts them, and serves on', async () => {
    await withServer({}, async (url) => {
      const exchange = (bytes: string) => {
        const socket = connect(Number(new URL(url).port), '127.0.0.1');
        socket.write(bytes);
        return receivedUntilClose(socket);
      };
      const garbage = await exchange('NOT HTTP AT ALL\r\n\r\n');
      assert.match(garbage, /^HTTP\/1\.1 400 Bad Request\r\n/);
      assert.match(garbage, /"code":"GRADSERVE_BAD_HTTP"/);
      const huge = await exchange(`GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`);
      assert.match(huge, /^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
      assert.match(huge, /"code":"GRADSERVE_HEADERS_TOO_LARGE"/);
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /gradserve_http_requests_total\{method="other",route="unmatched",status="400"\} 1\n/);
      assert.match(metrics, /gradserve_http_requests_total\{method="other",route="unmatched",status="431"\} 1\n/);
      assert.equal((await post(url, xorCase)).status, 200);
    });
  });

  it('takes a client that closes its side in the middle of its upload as gone: counted as 499, not 400', async () => {
    await withServer({}, async (url) => {
      const socket = connect(Number(new URL(url).port), '127.0.0.1');
      const closed = receivedUntilClose(socket);
      socket.write(
        'POST /value-and-grad HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"params": [',
      );
      await new Promise((r) => setTimeout(r, 100));
      socket.end(); // FIN, 990 bytes short
      assert.equal(await closed, '', 'no answer to a client that is gone');
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /gradserve_http_requests_total\{method="POST",route="\/value-and-grad",status="499"\} 1\n/);
      assert.doesNotMatch(metrics, /route="\/value-and-grad",status="400"/);
      assert.equal((await post(url, xorCase)).status, 200);
    });
  });

  it('takes a client that shuts its sending side before its answer as gone: counted as 499, and serving on', async () => {
    await withServer({}, async (url) => {
      const body = gzipSync(JSON.stringify(xorCase));
      const socket = connect(Number(new URL(url).port), '127.0.0.1');
      const closed = receivedUntilClose(socket);
      const head = `POST /value-and-grad HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\nContent-Length: ${body.length}\r\n\r\n`;
      socket.end(Buffer.concat([Buffer.from(head), body]));
      // Node takes the half-close as a hang-up (README: half-close is a hang-up), here always
      // before the answer could be written: the gzip body decodes off the event loop
      assert.equal(await closed, '', 'no answer to a client that is gone');
      const metrics = await (await fetch(`${url}/metrics`)).text();
      assert.match(metrics, /route="\/value-and-grad",status="499"\} 1\n/);
      assert.equal((await post(url, xorCase)).status, 200);
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
    // more requests than read slots: most wait with their bodies unread
    await withServer({ admission: { maxConcurrency: 4, maxQueue: 100, readAhead: 2 } }, async (url) => {
      const answers = await Promise.all(cases.map(async (c) => (await post(url, c)).json()));
      answers.forEach((got, i) => {
        const want = valueAndGrad64(cases[i]!);
        const { loss, grads } = got as { loss: number; grads: { W: number[][]; b: number[] }[] };
        assert.ok(relError([loss], [want.loss]) <= 1e-5, `case ${i}: loss ${loss} vs ${want.loss}`);
        assert.equal(grads.length, want.grads.length, `case ${i}: one gradient per layer`);
        grads.forEach((g, l) => {
          assert.deepEqual(
            [g.W.flat().length, g.b.length],
            [want.grads[l]!.W.flat().length, want.grads[l]!.b.length],
            `case ${i}: layer ${l}'s shapes`,
          );
          assert.ok(relError(g.W.flat(), want.grads[l]!.W.flat()) <= 1e-5, `case ${i}: dW[${l}]`);
          assert.ok(relError(g.b, want.grads[l]!.b) <= 1e-5, `case ${i}: db[${l}]`);
        });
      });
    });
  });
});

/**
 * A raw HTTP/1.1 exchange: the head, then the body in `pieces` written `gapMs` apart (then a
 * half-close, with `hangUp`); resolves with the whole answer when the server ends it.
 */
function rawExchange(port: number, head: string, pieces: Buffer[], gapMs: number, hangUp = false): Promise<string> {
  const socket = connect(port, '127.0.0.1');
  const chunks: Buffer[] = [];
  const answer = new Promise<string>((resolve, reject) => {
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.once('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.once('error', reject);
  });
  void (async () => {
    socket.write(head);
    for (const piece of pieces) {
      await new Promise((r) => setTimeout(r, gapMs));
      if (!socket.destroyed) socket.write(piece);
    }
    if (hangUp) socket.end();
  })();
  return answer;
}

/** `bytes` cut into `n` pieces of about the same size. */
const cut = (bytes: Buffer, n: number) =>
  Array.from({ length: n }, (_, i) => bytes.subarray(Math.floor((i * bytes.length) / n), Math.floor(((i + 1) * bytes.length) / n)));

describe('reading bodies', () => {
  // a small body (parsed on the event loop) and a large one (over 64 KiB: a JSON thread's)
  const c = randomCase(rng(11), { widths: [12, 24, 3], batch: 40, activation: 'tanh' });
  const json = Buffer.from(JSON.stringify(c));
  const want = valueAndGrad64(c);
  const large = randomCase(rng(12), { widths: [64, 32, 1], batch: 256, activation: 'relu' });
  const lossOf = (answer: string) => {
    assert.match(answer, /^HTTP\/1\.1 200 /, answer.slice(0, 300));
    return JSON.parse(answer.slice(answer.indexOf('\r\n\r\n') + 4)).loss as number;
  };
  const head = (headers: string) =>
    `POST /value-and-grad HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\n${headers}\r\n`;

  it('puts together a body that arrives in pieces, sized by Content-Length or chunked, and computes it as the reference does', async () => {
    await withServer({}, async (url) => {
      const port = Number(new URL(url).port);
      const sized = await rawExchange(port, head(`Content-Length: ${json.length}\r\n`), cut(json, 9), 5);
      assert.ok(relError([lossOf(sized)], [want.loss]) <= 1e-5, 'Content-Length');
      const chunked = cut(json, 7).map((p) => Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]));
      const answer = await rawExchange(port, head('Transfer-Encoding: chunked\r\n'), [...chunked, Buffer.from('0\r\n\r\n')], 5);
      assert.ok(relError([lossOf(answer)], [want.loss]) <= 1e-5, 'chunked');
      const big = Buffer.from(JSON.stringify(large));
      assert.ok(big.length > 65536, 'large enough for a JSON thread');
      const bigAnswer = await rawExchange(port, head(`Content-Length: ${big.length}\r\n`), cut(big, 20), 2);
      assert.ok(relError([lossOf(bigAnswer)], [valueAndGrad64(large).loss]) <= 1e-5, 'large, Content-Length');
    });
  });

  it('refuses a chunked body that grows past the limit with 413, and does not compute a body shorter than its Content-Length; keeps serving', async () => {
    await withServer({ limits: { bodyBytes: 10_000 } }, async (url) => {
      const port = Number(new URL(url).port);
      const chunked = cut(json, 6).map((p) => Buffer.concat([Buffer.from(`${p.length.toString(16)}\r\n`), p, Buffer.from('\r\n')]));
      const over = await rawExchange(port, head('Transfer-Encoding: chunked\r\n'), [...chunked, Buffer.from('0\r\n\r\n')], 5);
      assert.match(over, /^HTTP\/1\.1 413 /);
      assert.match(over, /request body is larger than the limit of 10000 bytes \(GRADSERVE_BODY_LIMIT\)/);
      // declared 9000 bytes, sent 4000 and then half-closed: the body can never be whole
      const short = await rawExchange(port, head('Content-Length: 9000\r\n'), [json.subarray(0, 4000)], 5, true);
      assert.ok(!/^HTTP\/1\.1 2/.test(short), `a short body must not be computed: ${short.slice(0, 100)}`);
      const ok = await post(url, xorCase);
      assert.equal(ok.status, 200);
    });
  });
});

describe('HTTP that Node would refuse with an empty body', () => {
  /** Send `request` on a fresh connection; all the server sent once it closes the connection. */
  const exchange = (port: number, request: string | Buffer) => {
    const socket = connect(port, '127.0.0.1');
    const answer = receivedUntilClose(socket);
    socket.write(request);
    return answer.finally(() => socket.destroy());
  };
  const bodyOf = (text: string) => JSON.parse(text.slice(text.indexOf('\r\n\r\n') + 4)) as { code: string; message: string };

  it('answers a whole request first when bad bytes follow it on the connection, then 400, in order', async () => {
    await withServer({}, async (url) => {
      const port = Number(new URL(url).port);
      const body = JSON.stringify(xorCase);
      const text = await exchange(
        port,
        `POST /value-and-grad HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}` +
          'NOT HTTP AT ALL\r\n\r\n',
      );
      const answers = [...text.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => m[1]);
      assert.deepEqual(answers, ['200', '400'], text.slice(0, 200));
      assert.match(text, /"code":"GRADSERVE_BAD_HTTP"/);
      assert.equal((await post(url, xorCase)).status, 200);
    });
  });

  it('answers an HTTP/1.1 request without a Host header with a 400 that says so, and an unknown Expect with a 417; keeps serving', async () => {
    await withServer({}, async (url) => {
      const port = Number(new URL(url).port);
      const noHost = await exchange(port, 'GET /healthz HTTP/1.1\r\n\r\n');
      assert.match(noHost, /^HTTP\/1\.1 400 /);
      assert.match(noHost, /\r\nconnection: close\r\n/i);
      assert.deepEqual(bodyOf(noHost), {
        statusCode: 400,
        code: 'GRADSERVE_BAD_HTTP',
        error: 'Bad Request',
        message: 'an HTTP/1.1 request must carry a Host header (RFC 9112, section 3.2)',
      });
      // HTTP/1.0 has no Host header to require
      assert.match(await exchange(port, 'GET /healthz HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200 /);

      const body = JSON.stringify(xorCase);
      const expecting = await exchange(
        port,
        `POST /value-and-grad HTTP/1.1\r\nHost: x\r\nExpect: 200-ok\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`,
      );
      assert.match(expecting, /^HTTP\/1\.1 417 /);
      assert.equal(expecting.match(/HTTP\/1\.1 /g)?.length, 1, 'one answer: the unread body is not taken for a request');
      const refused = bodyOf(expecting);
      assert.equal(refused.code, 'GRADSERVE_EXPECTATION_FAILED');
      assert.match(refused.message, /expects "200-ok"; the only expectation this server meets is 100-continue/);

      // a transfer coding Node does not decode: the body would reach the parser still gzipped
      const zipped = gzipSync(body);
      const coded = await exchange(
        port,
        Buffer.concat([
          Buffer.from(
            `POST /value-and-grad HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\nContent-Type: application/json\r\n\r\n${zipped.length.toString(16)}\r\n`,
          ),
          zipped,
          Buffer.from('\r\n0\r\n\r\n'),
        ]),
      );
      assert.match(coded, /^HTTP\/1\.1 501 /);
      assert.equal(bodyOf(coded).code, 'GRADSERVE_TRANSFER_CODING');
      assert.match(
        bodyOf(coded).message,
        /^Transfer-Encoding "gzip, chunked" is not supported: only chunked is .* Content-Encoding: gzip$/,
      );
      assert.equal((await post(url, xorCase)).status, 200);
    });
  });
});

describe('Expect: 100-continue', () => {
  /** Headers only, then the body when the server says 100 Continue; `text` is all the server sent so far. */
  function expectingPost(port: number, body: unknown) {
    const bytes = Buffer.from(JSON.stringify(body));
    const socket = connect(port, '127.0.0.1');
    const seen = { text: '', continued: false };
    const closed = new Promise((resolve) => socket.on('close', resolve));
    socket.on('error', () => {});
    socket.on('data', (d: Buffer) => {
      seen.text += d.toString('latin1');
      if (!seen.continued && seen.text.startsWith('HTTP/1.1 100 Continue\r\n\r\n')) {
        seen.continued = true;
        socket.write(bytes);
      }
    });
    socket.write(
      `POST /value-and-grad HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${bytes.length}\r\nExpect: 100-continue\r\n\r\n`,
    );
    return { socket, seen, closed };
  }

  it('asks for the body only once the request may read it', async () => {
    await withServer({ admission: { maxConcurrency: 1, readAhead: 0, maxQueue: 4 } }, async (url, app) => {
      const port = Number(new URL(url).port);
      const first = rawPost(port, heavy);
      first.socket.pause(); // holds the only read slot until it takes its answer
      const second = expectingPost(port, xorCase);
      try {
        await until('the second waits for a read slot', () => app.computeGate.stats().unread === 1);
        await new Promise((r) => setTimeout(r, 200));
        assert.equal(second.seen.text, '', 'no 100 Continue while it queues');
        first.socket.resume();
        await until('the second is answered', () => /\r\n\r\nHTTP\/1\.1 200 /.test(second.seen.text), 15_000);
        assert.ok(second.seen.continued);
      } finally {
        first.socket.destroy();
        second.socket.destroy();
      }
    });
  });

  it('refuses a request it cannot queue without taking its body', async () => {
    await withServer({ admission: { maxConcurrency: 1, readAhead: 0, maxQueue: 0 } }, async (url, app) => {
      const port = Number(new URL(url).port);
      const first = rawPost(port, heavy);
      first.socket.pause();
      try {
        await until('the first is admitted', () => app.computeGate.stats().admitted === 1);
        const second = expectingPost(port, xorCase);
        await second.closed; // a final status instead of 100 Continue ends the connection
        assert.match(second.seen.text, /^HTTP\/1\.1 503 /);
        assert.equal(second.seen.continued, false);
      } finally {
        first.socket.destroy();
      }
    });
  });
});

describe('many clients on the defaults', () => {
  it('queues 64 concurrent requests and answers every one, none refused', async () => {
    // each takes a few ms, so at 2 computing at once they pile up as a load generator's would
    const body = randomCase(rng(11), { widths: [32, 64, 64, 1], batch: 256, activation: 'tanh' });
    const want = valueAndGrad64(body);
    await withServer({}, async (url) => {
      const answers = await Promise.all(Array.from({ length: 64 }, () => post(url, body)));
      assert.deepEqual(
        answers.map((r) => r.status),
        answers.map(() => 200),
      );
      const { loss } = (await answers[63]!.json()) as { loss: number };
      assert.ok(relError([loss], [want.loss]) <= 1e-5, `loss ${loss} vs ${want.loss}`);
    });
  });
});

describe('the compute gate', () => {
  it('passes a read slot on when its request was answered before the slot reached it', async () => {
    const gate = new ComputeGate({ maxConcurrency: 1, readAhead: 0, maxQueue: 4 });
    const signal = new AbortController().signal;
    const first = gate.admit();
    assert.equal(first.readable(signal), undefined, 'a free slot is taken at once');
    const second = gate.admit();
    const waiting = second.readable(signal);
    assert.ok(waiting instanceof Promise, 'the only slot is held');
    first.release(); // the slot goes to the second request...
    second.release(); // ...which is answered (say, timed out) before it sees the slot
    await waiting;
    assert.equal(gate.admit().readable(signal), undefined, 'the slot is free again');
    assert.deepEqual(gate.stats(), { admitted: 1, running: 0, waiting: 0, unread: 0 });
  });

  it('gives an answer that begins after the deadline as long again to be taken, then closes its connection and frees its slots', async () => {
    const gate = new ComputeGate({ maxConcurrency: 1, readAhead: 0, maxQueue: 4 });
    const app = Fastify();
    await app.register(async (api) => {
      admitCompute(api, gate, 300);
      // past its compute when the deadline comes (still writing its answer, say): the abort
      // cannot stop it, and its answer, more than the socket buffers hold, begins late
      api.get('/late', async (_request, reply) => {
        await new Promise((r) => setTimeout(r, 450));
        return reply.type('text/plain').send('x'.repeat(32 * 1024 * 1024));
      });
    });
    const url = await app.listen({ port: 0, host: '127.0.0.1' });
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.pause(); // never reads its answer
    socket.write('GET /late HTTP/1.1\r\nHost: x\r\n\r\n');
    try {
      await until('the request is admitted', () => gate.stats().admitted === 1);
      const t0 = performance.now();
      await until('the slots are free by the second deadline', () => gate.stats().admitted === 0, 5000);
      assert.ok(performance.now() - t0 > 400, 'not at the first deadline: the late answer had as long again');
    } finally {
      socket.destroy();
      await app.close();
    }
  });
});
