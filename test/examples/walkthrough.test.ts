import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { FastifyInstance } from 'fastify';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { defaultConfig } from '../../src/runtime/config.js';

const run = promisify(execFile);
const root = new URL('../../', import.meta.url).pathname;
const has = (tool: string) => {
  try {
    execFileSync('sh', ['-c', `command -v ${tool}`]);
    return true;
  } catch {
    return false;
  }
};

// The examples/ walkthroughs, run against a real server on a free port, so they cannot rot.
describe('examples/: the lesson series against a running server', () => {
  let app: FastifyInstance;
  let engine: Engine;
  let address: string;
  before(async () => {
    engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 64 });
    app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine });
    address = await app.listen({ port: 0, host: '127.0.0.1' });
  });
  after(async () => {
    await app.close();
    await engine.close();
  });

  it('lesson.ts (typed from the OpenAPI document) learns XOR, given the URL in GRADSERVE_URL', async () => {
    const env = { ...process.env, GRADSERVE_URL: `${address}/` }; // a trailing slash is no second one
    const { stdout } = await run(process.execPath, ['--import', 'tsx', 'examples/lesson.ts'], { cwd: root, env });
    for (const step of ['1. init', '2. forward', '3. loss', '4. value-and-grad', '5. train', '6. forward'])
      assert.match(stdout, new RegExp(step));
    assert.match(stdout, /→ 0 1 1 0/);
  });

  it('lesson.sh (curl and jq) learns XOR', { skip: !(has('curl') && has('jq')) && 'needs curl and jq' }, async () => {
    const { stdout } = await run('bash', ['examples/lesson.sh', `${address}/`], { cwd: root });
    assert.match(stdout, /5\. train +final loss 0\.00/);
  });

  it('check_backprop.py (plain Python) finds a hand-written backprop right, and one missing the mean wrong', async () => {
    const { stdout } = await run('python3', ['examples/check_backprop.py', address], { cwd: root });
    assert.equal(stdout.match(/ agrees /g)?.length, 5, stdout);
    assert.match(stdout, /your backprop matches gradserve/);
    // the classic bug: its gradients are 4 times the service's (the batch's 4 elements), and it exits 1
    const buggy = await run('python3', ['examples/check_backprop.py', address, '--forget-mean'], { cwd: root }).then(
      () => assert.fail('check_backprop.py --forget-mean exited 0'),
      (err: { code: number; stdout: string }) => err,
    );
    assert.equal(buggy.code, 1);
    assert.match(buggy.stdout, /loss +agrees/);
    assert.match(buggy.stdout, /grads\[0\]\.W +DIFFERS/);
    assert.match(buggy.stdout, /each differing value is 4 times the service's/);
    assert.match(buggy.stdout, /4 of 5 differ/);
  });
});
