/**
 * HTTP checks that scripts/test-container.sh runs against the container it started, through
 * the port published on 127.0.0.1. Each prints what it measured and exits non-zero on failure.
 *   ready CONTAINER TIMEOUT_MS        `docker start`s it; prints ms to the first 200 from /readyz, and its URL
 *   xor URL                           the XOR lesson against the float64 reference
 *   info URL FIELD                    prints one field of GET /info (a dotted path: threads.webasm)
 *   docs URL                          the Swagger UI's page and scripts, and the OpenAPI document
 *   long URL BATCH                    one large value-and-grad: prints its ms
 *   stop-during URL CONTAINER DELAY BATCH   that request, `docker stop` DELAY ms after sending
 *                                     it: the request must still answer 200, after the stop began
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { get } from 'node:http';
import { xorCase } from '../helpers.js';
import { relError, valueAndGrad64 } from '../reference/mlp64.js';

type Answer = { loss: number; grads: { W: number[][]; b: number[] }[] };

const [command, url, ...args] = process.argv.slice(2);
if (!url) throw new Error('usage: checks.ts ready CONTAINER | xor|info|docs|long|stop-during URL ...');

async function post(path: string, body: string): Promise<{ status: number; json: Answer }> {
  const res = await fetch(`${url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  return { status: res.status, json: (await res.json()) as Answer };
}

/**
 * A request whose time is compute, [32, 256, 256, 1] at a large batch (8192: about 0.5 s on
 * webasm on two idle cores): small parameters keep the parse and the answer short, so a
 * signal sent a third of the way through lands while the engine computes.
 */
function largeRequest(batch: number): string {
  let seed = 1;
  const rand = () => {
    seed = (seed * 16807) % 2147483647;
    return Math.round(((seed / 2147483647) * 2 - 1) * 1000) / 1000; // short JSON numbers
  };
  const widths = [32, 256, 256, 1];
  const matrix = (rows: number, cols: number, scale: number) =>
    Array.from({ length: rows }, () => Array.from({ length: cols }, () => rand() * scale));
  const params = widths.slice(1).map((out, l) => ({ W: matrix(widths[l]!, out, 0.1), b: matrix(1, out, 0.1)[0]! }));
  const y = Array.from({ length: batch }, () => [rand() < 0 ? 0 : 1]);
  return JSON.stringify({ params, x: matrix(batch, widths[0]!, 1), y });
}

function assertLargeAnswer(status: number, json: Answer): void {
  assert.equal(status, 200, `large request answered ${status}: ${JSON.stringify(json).slice(0, 300)}`);
  assert.ok(Number.isFinite(json.loss), `large request's loss is ${json.loss}`);
  assert.deepEqual(
    json.grads.map((g) => [g.W.length, g.W[0]!.length, g.b.length]),
    [
      [32, 256, 256],
      [256, 256, 256],
      [256, 1, 1],
    ],
  );
}

if (command === 'ready') {
  // Starts the container itself, so the time counts from `docker start`, not from this
  // process's start-up. node:http, not fetch: undici's fetch sometimes never settles when
  // docker-proxy accepts a connection that the container is not yet listening for.
  const [container, timeoutMs] = [url, Number(args[0])];
  const t0 = Date.now();
  execFileSync('docker', ['start', container]);
  const port = execFileSync('docker', ['port', container, '8080/tcp'], { encoding: 'utf8' }).split('\n')[0]!.split(':').at(-1);
  const base = `http://127.0.0.1:${port}`;
  for (;;) {
    const last = await new Promise<string>((resolve) => {
      const req = get(`${base}/readyz`, { timeout: 1000 }, (res) => {
        res.resume();
        resolve(res.statusCode === 200 ? 'ok' : `status ${res.statusCode}`);
      });
      req.on('timeout', () => req.destroy(new Error('no answer in 1 s')));
      req.on('error', (e) => resolve(e.message));
    });
    if (last === 'ok') break;
    if (Date.now() - t0 > timeoutMs) throw new Error(`/readyz not 200 within ${timeoutMs} ms; last: ${last}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  console.log(`${Date.now() - t0} ${base}`);
} else if (command === 'xor') {
  const { status, json } = await post('/value-and-grad', JSON.stringify(xorCase));
  assert.equal(status, 200, JSON.stringify(json));
  const ref = valueAndGrad64(xorCase);
  const err = Math.max(
    relError([json.loss], [ref.loss]),
    ...json.grads.flatMap((g, l) => [relError(g.W.flat(), ref.grads[l]!.W.flat()), relError(g.b, ref.grads[l]!.b)]),
  );
  assert.ok(err <= 1e-5, `XOR answer off the float64 reference by ${err} relative`);
  console.log(`loss ${json.loss} (float64 reference ${ref.loss}), largest relative error ${err.toExponential(2)}`);
} else if (command === 'info') {
  const res = await fetch(`${url}/info`);
  assert.equal(res.status, 200, `/info answered ${res.status}`);
  let value: unknown = await res.json();
  for (const key of args[0]!.split('.')) value = (value as Record<string, unknown> | undefined)?.[key];
  assert.notEqual(value, undefined, `/info has no ${args[0]}`);
  console.log(typeof value === 'object' ? JSON.stringify(value) : value);
} else if (command === 'docs') {
  // the UI's files come from @fastify/swagger-ui's own folder, which the image must keep
  const page = await fetch(`${url}/docs/`);
  assert.equal(page.status, 200, `/docs/ answered ${page.status}`);
  const scripts = [...(await page.text()).matchAll(/src="\.\/(static\/[^"]+\.js)"/g)].map((m) => m[1]!);
  assert.ok(scripts.length > 0, '/docs/ loads no scripts');
  for (const script of scripts) {
    const res = await fetch(`${url}/docs/${script}`);
    assert.equal(res.status, 200, `/docs/${script} answered ${res.status}`);
    await res.arrayBuffer();
  }
  const doc = (await (await fetch(`${url}/openapi.json`)).json()) as { paths: Record<string, unknown> };
  assert.ok(doc.paths['/value-and-grad'], '/openapi.json has no /value-and-grad');
  console.log(`/docs/ and its ${scripts.length} scripts, /openapi.json with ${Object.keys(doc.paths).length} paths`);
} else if (command === 'long') {
  const body = largeRequest(Number(args[0]));
  const t0 = performance.now();
  const { status, json } = await post('/value-and-grad', body);
  assertLargeAnswer(status, json);
  console.log(Math.round(performance.now() - t0));
} else if (command === 'stop-during') {
  const [container, delay, batch] = [args[0]!, Number(args[1]), Number(args[2])];
  const body = largeRequest(batch);
  const t0 = performance.now();
  const answer = post('/value-and-grad', body).then((r) => ({ ...r, at: performance.now() - t0 }));
  await new Promise((r) => setTimeout(r, delay));
  const stopAt = performance.now() - t0;
  const stopped = new Promise<number>((resolve, reject) => {
    const stop = spawn('docker', ['stop', '--time', '10', container], { stdio: 'ignore' });
    stop.on('error', reject);
    stop.on('exit', (code) => (code === 0 ? resolve(performance.now() - t0) : reject(new Error(`docker stop exited ${code}`))));
  });
  const [{ status, json, at }, stoppedAt] = await Promise.all([answer, stopped]);
  assertLargeAnswer(status, json);
  assert.ok(at > stopAt, `the request answered at ${at} ms, before docker stop began at ${stopAt} ms: it was not in flight`);
  const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
  console.log(
    `docker stop at ${s(stopAt)}; request answered 200 at ${s(at)}; container stopped at ${s(stoppedAt)} (${s(stoppedAt - stopAt)} after SIGTERM)`,
  );
} else {
  throw new Error(`unknown check ${command}`);
}
