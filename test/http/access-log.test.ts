import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { connect } from 'node:net';
import { describe, it } from 'node:test';
import { xorRequest } from '../../src/http/request-examples.js';
import { receivedUntilClose } from '../helpers.js';

describe('the access log (a real server process)', () => {
  it('writes one JSON line per request, with the route or the path but never a query string', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', GRADSERVE_WARMUP: 'none' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    let badHttp = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = once(child, 'exit');
    try {
      const started = performance.now();
      while (!/Server listening at/.test(output)) {
        assert.equal(child.exitCode, null, `the server exited before listening:\n${output}`);
        assert.ok(performance.now() - started < 30_000, 'the server did not listen within 30 s');
        await new Promise((r) => setTimeout(r, 20));
      }
      const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!;
      assert.equal((await fetch(`${url}/no/such/path?api_key=SECRET`)).status, 404);
      const computed = await fetch(`${url}/value-and-grad?token=SECRET`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'lesson-1' },
        body: JSON.stringify(xorRequest),
      });
      assert.equal(computed.status, 200);
      // Node refuses malformed HTTP before fastify has a request: its answer and log line share an id all the same
      const socket = connect(Number(new URL(url).port), '127.0.0.1');
      socket.write('NOT HTTP AT ALL\r\n\r\n');
      badHttp = await receivedUntilClose(socket);
    } finally {
      child.kill('SIGTERM');
      await exited;
    }
    const lines = output
      .trim()
      .split('\n')
      .map((line) => JSON.parse(line) as Record<string, unknown>);
    const requests = lines.filter((l) => l.msg === 'request');
    assert.deepEqual(
      requests.map((l) => [l.method, l.url, l.status]),
      [
        ['GET', '/no/such/path', 404],
        ['POST', '/value-and-grad', 200],
      ],
    );
    assert.equal(requests[1]!.reqId, 'lesson-1');
    assert.equal(requests[1]!.backend, 'cpu');
    assert.ok(typeof requests[1]!.durationMs === 'number');
    assert.doesNotMatch(output, /SECRET/, 'no query string in the log');
    const refused = lines.find((l) => l.code === 'GRADSERVE_BAD_HTTP');
    assert.ok(refused, 'the malformed request is logged');
    assert.match(String(refused.reqId), /^[0-9a-f-]{36}$/);
    assert.match(badHttp, new RegExp(`^HTTP/1\\.1 400 Bad Request\r\n[^]*X-Request-Id: ${refused.reqId}\r\n`));
  });
});
