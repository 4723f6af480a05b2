import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { type AddressInfo, createServer } from 'node:net';
import { describe, it } from 'node:test';
import { ConfigError, defaultConfig, loadConfig, unknownSettings } from '../../src/runtime/config.js';

describe('configuration from the environment', () => {
  it('takes a variable set to nothing as unset (its default), except GRADSERVE_WARMUP, where empty means none', () => {
    const config = loadConfig({ GRADSERVE_MAX_LAYERS: '', PORT: '', GRADSERVE_WARMUP: '' });
    assert.equal(config.limits.layers, defaultConfig().limits.layers);
    assert.equal(config.port, 8080);
    assert.deepEqual(config.warmup, []);
  });

  it('refuses a value it cannot use, naming the variable', () => {
    assert.throws(
      () => loadConfig({ GRADSERVE_MAX_LAYERS: 'abc' }),
      (err: Error) => {
        assert.ok(err instanceof ConfigError);
        assert.match(err.message, /^invalid configuration: GRADSERVE_MAX_LAYERS \(given "abc"\): /);
        return true;
      },
    );
  });

  it('reads numbers written in decimal only: 4e9 and 8080, not 0x10, 0b1, Infinity or blanks', () => {
    assert.equal(loadConfig({ GRADSERVE_MAX_WORK: '4e9', PORT: ' 8081 ' }).limits.work, 4e9);
    assert.equal(loadConfig({ PORT: '8081' }).port, 8081);
    assert.throws(() => loadConfig({ GRADSERVE_MAX_WORK: '1e400' }), {
      message: 'invalid configuration: GRADSERVE_MAX_WORK (given "1e400"): too large',
    });
    for (const given of ['0x10', '0b1', '0o7', 'Infinity', ' ', '1_000']) {
      assert.throws(
        () => loadConfig({ PORT: given }),
        { message: `invalid configuration: PORT (given ${JSON.stringify(given)}): not a number` },
        given,
      );
    }
  });

  it("names GRADSERVE_* variables nothing reads, but not its tools' nor those Kubernetes sets for a Service", () => {
    const env = {
      GRADSERVE_MAX_LAYER: '8',
      GRADSERVE_URL: 'http://127.0.0.1:8080',
      GRADSERVE_IMAGE: 'gradserve:dev',
      GRADSERVE_REQUIRE_WEBGPU: '1',
      GRADSERVE_MAX_LAYERS: '8',
      GRADSERVE_SERVICE_HOST: '10.0.0.1',
      GRADSERVE_PORT: 'tcp://10.0.0.1:80',
      GRADSERVE_PORT_80_TCP_ADDR: '10.0.0.1',
      OTHER: '1',
    };
    assert.deepEqual(unknownSettings(env), ['GRADSERVE_MAX_LAYER']);
  });

  it('refuses values the service could not honour: timers past 2³¹ ms, a JSON thread pool over 64, over 1024 layers, a warm-up shape over a limit', () => {
    const refused: [Record<string, string>, RegExp][] = [
      [{ GRADSERVE_MAX_LAYERS: '1025' }, /GRADSERVE_MAX_LAYERS \(given "1025"\): at most 1024/],
      [{ GRADSERVE_REQUEST_TIMEOUT_MS: '2147483648' }, /GRADSERVE_REQUEST_TIMEOUT_MS \(given "2147483648"\): at most 2147483647/],
      [{ GRADSERVE_SHUTDOWN_GRACE_MS: '99999999999' }, /GRADSERVE_SHUTDOWN_GRACE_MS \(given "99999999999"\): at most 2147483647/],
      [{ GRADSERVE_JSON_WORKERS: '65' }, /GRADSERVE_JSON_WORKERS \(given "65"\)/],
      [
        { GRADSERVE_WARMUP: '100000,1x1' },
        /GRADSERVE_WARMUP: "100000,1x1": the input is 100000 wide \(x's columns, params\[0\]\.W's rows\); the limit is 8192 \(GRADSERVE_MAX_WIDTH\)/,
      ],
      [{ GRADSERVE_WARMUP: '2,1x100000', GRADSERVE_MAX_BATCH: '1000' }, /GRADSERVE_WARMUP: "2,1x100000": .*GRADSERVE_MAX_BATCH/],
    ];
    for (const [env, message] of refused) assert.throws(() => loadConfig(env), message, JSON.stringify(env));
    assert.equal(loadConfig({ GRADSERVE_REQUEST_TIMEOUT_MS: '2147483647' }).admission.requestTimeoutMs, 2 ** 31 - 1);
    assert.equal(loadConfig({ GRADSERVE_MAX_LAYERS: '1024' }).limits.layers, 1024);
  });

  it('says in one line when it cannot listen (the port taken), no stack trace', async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, '127.0.0.1', resolve));
    const { port } = taken.address() as AddressInfo;
    try {
      const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
        env: { ...process.env, PORT: String(port), GRADSERVE_WARMUP: 'none', LOG_LEVEL: 'silent' },
        encoding: 'utf8',
        timeout: 30_000,
      });
      assert.equal(run.status, 1, run.stderr);
      assert.match(
        run.stderr,
        new RegExp(`^gradserve: cannot listen on 127\\.0\\.0\\.1 port ${port} \\(HOST, PORT\\): listen EADDRINUSE.*\\n$`),
      );
    } finally {
      taken.close();
    }
  });

  it('stops the server at start-up with one line that says what is wrong, no stack trace', () => {
    const run = spawnSync(process.execPath, ['--import', 'tsx', 'src/server.ts'], {
      env: { ...process.env, GRADSERVE_MAX_LAYERS: 'abc', LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    assert.equal(run.status, 1, run.stderr);
    assert.match(run.stderr, /^gradserve: invalid configuration: GRADSERVE_MAX_LAYERS \(given "abc"\): .+\n$/);
  });
});
