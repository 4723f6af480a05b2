import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { describe, it } from 'node:test';
import { xorRequest } from '../../src/http/examples.js';

describe('the access log (a real server process)', () => {
  it('writes one JSON line per request, with the route or the path but never a query string', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { ...process.env, PORT: '0', LOG_LEVEL: 'info', GRADSERVE_WARMUP: 'none' },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
    });
    const exited = once(child, 'exit');
    try {
      while (!/Server listening at/.test(output)) await new Promise((r) => setTimeout(r, 20));
      const url = /Server listening at (http:\/\/127\.0\.0\.1:\d+)/.exec(output)![1]!;
      assert.equal((await fetch(`${url}/no/such/path?api_key=SECRET`)).status, 404);
      const computed = await fetch(`${url}/value-and-grad?token=SECRET`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'lesson-1' },
        body: JSON.stringify(xorRequest),
      });
      assert.equal(computed.status, 200);
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
  });
});
