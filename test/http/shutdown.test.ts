import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { Agent, get, request } from 'node:http';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { xorTrainRequest } from '../../src/http/request-examples.js';

/** Start src/server.ts as its own process on a free port; resolve with its URL once it listens. */
async function startServer(env: Record<string, string>): Promise<{ child: ChildProcess; url: string; log: string[] }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
    env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const log: string[] = [];
  const url = await new Promise<string>((resolve, reject) => {
    let buffered = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString();
      const lines = buffered.split('\n');
      buffered = lines.pop()!;
      for (const line of lines) {
        log.push(line);
        const listening = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(line);
        if (listening) resolve(listening[1]!);
      }
    });
    child.once('exit', (code) => reject(new Error(`server exited with ${code} before listening`)));
  });
  return { child, url, log };
}

/**
 * A request whose compute lasts about `steps` × 0.1 ms on this machine: the XOR lesson
 * trained on `cpu`. Its length is set by the step count, not by kernel speed, so the test's
 * timing holds however fast the engine gets.
 */
async function train(url: string, steps: number): Promise<{ status: number; code?: string; retryAfter: string | null; at: number }> {
  const res = await fetch(`${url}/train`, {
    method: 'POST',
    body: JSON.stringify({ ...xorTrainRequest, steps }),
    headers: { 'content-type': 'application/json' },
  });
  const body = (await res.json()) as { code?: string };
  return { status: res.status, code: body.code, retryAfter: res.headers.get('retry-after'), at: performance.now() };
}

describe('graceful shutdown (a real server process)', () => {
  it('on SIGTERM finishes every in-flight request, refuses new ones, and exits 0', async () => {
    // one read slot: the second and third requests wait with their bodies unread
    const { child, url, log } = await startServer({ GRADSERVE_MAX_CONCURRENCY: '1', GRADSERVE_MAX_QUEUE: '4', GRADSERVE_READ_AHEAD: '0' });
    const inFlight = [train(url, 8000), train(url, 8000), train(url, 8000)];
    await new Promise((r) => setTimeout(r, 300));
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await new Promise((r) => setTimeout(r, 100));
    // while the three are still under way: a new request is refused, or answered 503
    const late = await fetch(`${url}/healthz`).catch((err: Error) => err);
    const probedAt = performance.now();
    assert.ok(late instanceof Error || late.status === 503, `no new requests once closing: ${late instanceof Error ? '' : late.status}`);
    const answers = await Promise.all(inFlight);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200],
    );
    assert.ok(
      answers.some((a) => a.at > probedAt),
      'the probe came while requests were still in flight',
    );
    const [code] = await exited;
    assert.equal(code, 0, log.join('\n'));
    assert.ok(log.some((line) => line.includes('"msg":"stopped"')));
  });

  it('abandons compute that outlasts the grace period with a 503, and still exits 0', async () => {
    const { child, url, log } = await startServer({ GRADSERVE_SHUTDOWN_GRACE_MS: '100' });
    const pending = train(url, 100_000);
    await new Promise((r) => setTimeout(r, 100));
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const answer = await pending;
    assert.equal(answer.status, 503);
    assert.equal(answer.code, 'GRADSERVE_SHUTTING_DOWN');
    assert.equal(answer.retryAfter, '1', 'tells its client when to retry');
    const [code] = await exited;
    assert.equal(code, 0, log.join('\n'));
  });

  it('closes a connection whose client does not take its answer a second after the grace period, and exits 0', async () => {
    const { child, url, log } = await startServer({ GRADSERVE_SHUTDOWN_GRACE_MS: '300' });
    const body = JSON.stringify({ layers: [1500, 1500, 1], seed: 1 }); // ~45 MB of JSON: more than the socket buffers hold
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.write(`POST /init HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${body.length}\r\n\r\n${body}`);
    socket.pause(); // never reads its answer
    socket.on('error', () => {});
    await new Promise((r) => setTimeout(r, 1500)); // drawn, and stuck in the socket
    const exited = once(child, 'exit');
    const t0 = performance.now();
    child.kill('SIGTERM');
    const [code] = await exited;
    const took = performance.now() - t0;
    socket.destroy();
    assert.equal(code, 0, log.join('\n'));
    // (exit code 0, above, rules out the forced exit 3 s after the grace; the upper bound is loose for a loaded machine)
    assert.ok(took > 1300 && took < 6000, `stopped ${took.toFixed(0)} ms after SIGTERM: the grace, then a second for answers`);
    assert.ok(log.some((line) => line.includes('answers not taken within the grace period')));
  });

  it('ends idle keep-alive connections at once instead of waiting out the grace period', async () => {
    const { child, url } = await startServer({ GRADSERVE_SHUTDOWN_GRACE_MS: '20000' });
    const agent = new Agent({ keepAlive: true });
    const status = await new Promise<number>((resolve, reject) => {
      get(`${url}/healthz`, { agent }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode!));
      }).on('error', reject);
    });
    assert.equal(status, 200);
    const exited = once(child, 'exit');
    const t0 = performance.now();
    child.kill('SIGTERM'); // the connection is open and idle in the agent's pool
    const [code] = await exited;
    assert.equal(code, 0);
    assert.ok(performance.now() - t0 < 5000, 'did not wait for the grace period');
    agent.destroy();
  });

  it("closes an idle keep-alive connection whose client leaves it half open (Python's pooled sessions) without waiting out the grace period", async () => {
    const { child, url, log } = await startServer({ GRADSERVE_SHUTDOWN_GRACE_MS: '20000' });
    // allowHalfOpen: the server's FIN does not make this client close its side
    const socket = connect({ port: Number(new URL(url).port), host: '127.0.0.1', allowHalfOpen: true });
    socket.on('error', () => {});
    let received = '';
    socket.on('data', (d: Buffer) => {
      received += d.toString('latin1');
    });
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    while (!received.includes('\r\n\r\n')) await once(socket, 'data');
    const ended = once(socket, 'end');
    const exited = once(child, 'exit');
    const t0 = performance.now();
    child.kill('SIGTERM');
    const [code] = await exited;
    const took = performance.now() - t0;
    await ended; // the server's FIN came
    socket.destroy();
    assert.equal(code, 0, log.join('\n'));
    assert.ok(took < 5000, `stopped ${took.toFixed(0)} ms after SIGTERM, not after the grace period`);
    assert.ok(!log.some((line) => line.includes('answers not taken')), 'no answer was waiting');
  });

  it('answers a request that arrives on a busy connection after SIGTERM with a 503 in the service shape, after the answer in flight', async () => {
    const { child, url, log } = await startServer({});
    const socket = connect(Number(new URL(url).port), '127.0.0.1');
    socket.setEncoding('utf8');
    let received = '';
    socket.on('data', (chunk: string) => {
      received += chunk;
    });
    const ended = once(socket, 'end');
    const training = JSON.stringify({ ...xorTrainRequest, steps: 100_000 }); // seconds of compute: still running when the second is sent
    socket.write(
      `POST /train HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${training.length}\r\n\r\n${training}`,
    );
    await new Promise((r) => setTimeout(r, 150));
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    while (!log.some((line) => line.includes('shutting down'))) await new Promise((r) => setTimeout(r, 10));
    // closing: the connection is open only for the request in flight, and a second arrives on it
    socket.write('GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n');
    await ended; // the server ends the connection once both are answered
    const [code] = await exited;
    assert.equal(code, 0, log.join('\n'));
    const answers = received.split(/(?=HTTP\/1\.1 )/);
    assert.equal(answers.length, 2, received.slice(0, 2000));
    assert.match(answers[0]!, /^HTTP\/1\.1 200 /, 'the request in flight is answered first, in full');
    assert.match(answers[0]!, /"history"/);
    const [head, body] = answers[1]!.split('\r\n\r\n');
    assert.match(head!, /^HTTP\/1\.1 503 /);
    assert.match(head!, /\r\nretry-after: 1\r\n/i);
    assert.match(head!, /\r\nconnection: close\r\n/i);
    assert.equal((JSON.parse(body!) as { code: string }).code, 'GRADSERVE_SHUTTING_DOWN');
    assert.ok(
      log.some((line) => line.includes('GRADSERVE_SHUTTING_DOWN')),
      'logged',
    );
  });

  it('lets a large answer already on its way arrive whole', async () => {
    const { child, url } = await startServer({});
    const exited = once(child, 'exit');
    const body = JSON.stringify({ layers: [1500, 1500, 1], seed: 1 }); // 2.25 M parameters, ~45 MB of JSON
    const text = await new Promise<string>((resolve, reject) => {
      const req = request(`${url}/init`, { method: 'POST', headers: { 'content-type': 'application/json' } }, (res) => {
        child.kill('SIGTERM'); // the headers are here, most of the body is not
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString()));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    const params = JSON.parse(text).params as { W: number[][] }[];
    assert.equal(params[0]!.W.length, 1500, 'the whole answer, parsed');
    const [code] = await exited;
    assert.equal(code, 0);
  });
});
