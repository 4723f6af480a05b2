import { spawn } from 'node:child_process';
import { headlessGlProblem, loadGl } from '../src/engine/headlessgl.js';

const START_TIMEOUT_MS = 10_000;

/**
 * Whether the headlessgl backend's tests skip, and why: `false` when they run. They need the
 * native package `gl` (built by `npm ci` where its build dependencies are installed) and an X
 * display: DISPLAY when it is set, otherwise a private Xvfb started here for this test
 * process, so that a plain `npm test` runs them. With GRADSERVE_REQUIRE_HEADLESSGL=1 (CI)
 * nothing skips: whatever is missing fails the tests with the backend's own start-up error.
 */
export async function headlessGlSkip(): Promise<string | false> {
  const required = process.env.GRADSERVE_REQUIRE_HEADLESSGL === '1';
  const gl = loadGl();
  if (typeof gl === 'string') return required ? false : gl;
  if (!process.env.DISPLAY) {
    const started = await startXvfb();
    if ('problem' in started) return required ? false : started.problem;
    process.env.DISPLAY = started.display; // read by Xlib (through gl) when a context is made
  }
  const problem = headlessGlProblem();
  return problem && !required ? problem : false;
}

/**
 * Start Xvfb on a free display (it picks one and writes its number to fd 3: -displayfd) and
 * answer ":N", or why it did not start. A shell between this process and Xvfb kills it when
 * its stdin, a pipe from this process, closes: when this process ends, however it ends.
 */
function startXvfb(): Promise<{ display: string } | { problem: string }> {
  const script = [
    'Xvfb -displayfd 3 -nolisten tcp -screen 0 64x64x24 </dev/null &',
    'xvfb=$!',
    'exec 3>&-', // only Xvfb holds fd 3: it closes (no number) if Xvfb exits
    'read -r _',
    'kill "$xvfb" 2>/dev/null',
    'wait "$xvfb"',
  ].join('\n');
  return new Promise((resolve) => {
    const child = spawn('sh', ['-c', script], { stdio: ['pipe', 'ignore', 'pipe', 'pipe'] });
    let stderr = '';
    let fd3 = '';
    const fail = (why: string) => {
      clearTimeout(timer);
      child.stdin?.end(); // the shell stops Xvfb if it is still running
      resolve({ problem: `no X display for the headlessgl tests: DISPLAY is not set and ${why}` });
    };
    const timer = setTimeout(() => fail(`Xvfb did not start within ${START_TIMEOUT_MS / 1000} s`), START_TIMEOUT_MS);
    child.stderr?.on('data', (chunk: Buffer) => {
      stderr += chunk;
    });
    const display = child.stdio[3] as NodeJS.ReadableStream;
    display.on('data', (chunk: Buffer) => {
      fd3 += chunk;
      const m = /^(\d+)\n/.exec(fd3);
      if (!m) return;
      clearTimeout(timer);
      // keep the shell (and the pipe to its stdin) without keeping this process alive
      child.unref();
      for (const stream of [child.stdin, child.stderr, child.stdio[3]]) (stream as { unref?: () => void } | null)?.unref?.();
      resolve({ display: `:${m[1]}` });
    });
    display.on('end', () => {
      if (!/^\d+\n/.test(fd3)) {
        const notFound = /not found/.test(stderr);
        fail(
          notFound
            ? 'Xvfb is not installed (Debian package xvfb)'
            : `Xvfb did not start: ${stderr.trim().split('\n').slice(-3).join(' / ')}`,
        );
      }
    });
    child.on('error', (err) => fail(`the shell to start Xvfb did not run: ${err.message}`));
  });
}
