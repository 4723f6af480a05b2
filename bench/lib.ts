import { type ChildProcess, spawn, spawnSync } from 'node:child_process';
import { appendFileSync, readFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { cpus } from 'node:os';
import autocannon from 'autocannon';
import { toBase64Tensor } from '../src/http/tensors.js';
import { MALLOC_TUNABLES } from '../src/runtime/malloc.js';
import { randomCase, rng } from '../test/helpers.js';

/**
 * Benchmarks run the built service (`npm run build` first) as its own process, as users run
 * it: with `npm start`'s glibc malloc settings (src/runtime/malloc.ts). Every server a
 * benchmark starts gets them, the ones it is compared with too, so that a ratio compares code.
 */
export interface Server {
  url: string;
  child: ChildProcess;
  rssMb: () => number;
  /** CPU seconds (user + system, all threads) the server process has used so far: Linux's /proc */
  cpuSeconds: () => number;
  stop: () => Promise<number | null>;
}

const CLOCK_TICKS = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

function cpuSecondsOf(pid: number): number {
  // the fields after the command name, which may hold spaces: state is the 3rd field, utime the 14th
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ').at(-1)!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS;
}

export async function startServer(
  env: Record<string, string> = {},
  args = ['dist/server.js'],
  command = process.execPath,
): Promise<Server> {
  const port = await freePort();
  const child = spawn(command, args, {
    env: { ...process.env, GLIBC_TUNABLES: MALLOC_TUNABLES, PORT: String(port), LOG_LEVEL: 'warn', ...env },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
  for (;;) {
    const up = await fetch(`${url}/readyz`).then(
      (r) => r.ok,
      () => false,
    );
    if (up) break;
    if (child.exitCode !== null) throw new Error(`server exited with ${child.exitCode}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  return {
    url,
    child,
    rssMb: () => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'))![1]) / 1024,
    cpuSeconds: () => cpuSecondsOf(child.pid!),
    stop: () => {
      child.kill('SIGTERM');
      return exited;
    },
  };
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
  });
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

export const machine = () => `${cpus().length}× ${cpus()[0]?.model.trim()}, node ${process.version}`;

/** Request bodies by name: S is the XOR lesson's size, M a mid-sized net (sizes: bench/RESULTS.md). */
export function body(widths: number[], batch: number, seed = 1): string {
  return JSON.stringify(randomCase(rng(seed), { widths, batch, activation: 'tanh' }));
}

/**
 * The benchmarks' M and L bodies (sizes: bench/RESULTS.md), one definition for every benchmark
 * that sends them and for bench/bodies.ts, so that load runs with other tools send the same bytes.
 */
export const mBody = () => body([64, 128, 128, 1], 1024);
export const lBinaryBody = () => binaryBody([784, 512, 512, 1], 4096);

/** The same request with every tensor binary (base64 float32), asking for binary tensors back. */
export function binaryBody(widths: number[], batch: number, seed = 1): string {
  const c = randomCase(rng(seed), { widths, batch, activation: 'tanh' });
  const matrix = (rows: number[][]) => toBase64Tensor([rows.length, rows[0]!.length], new Float32Array(rows.flat()));
  return JSON.stringify({
    params: c.params.map((p) => ({ W: matrix(p.W), b: toBase64Tensor([p.b.length], new Float32Array(p.b)) })),
    x: matrix(c.x),
    y: matrix(c.y),
    outputEncoding: 'base64',
  });
}

export async function postJson(url: string, path: string, payload: string, timeoutMs = 60_000) {
  const t0 = performance.now();
  try {
    const res = await fetch(url + path, {
      method: 'POST',
      body: payload,
      headers: { 'content-type': 'application/json' },
      signal: AbortSignal.timeout(timeoutMs),
    });
    await res.arrayBuffer();
    return { status: res.status, ms: performance.now() - t0, retryAfter: res.headers.get('retry-after') };
  } catch {
    return { status: 0, ms: performance.now() - t0, retryAfter: null }; // network error or client timeout
  }
}

/**
 * autocannon on POST /value-and-grad with one body: req/s answered with 2xx (a refusal is not
 * a request served), p50/p99 ms, the requests answered and those that failed.
 */
export async function loadTest(url: string, payload: string, connections: number, seconds: number) {
  const r = await autocannon({
    url: `${url}/value-and-grad`,
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: payload,
    connections,
    duration: seconds,
  });
  return {
    rps: r['2xx'] / r.duration,
    p50: r.latency.p50,
    p99: r.latency.p99,
    requests: r.requests.total,
    failed: r.non2xx + r.errors + r.timeouts,
  };
}

/** What gradserve's Server-Timing header says: parse, compile total and kernel count, compute and its backend, write. */
export function serverTiming(res: Response) {
  const timing = res.headers.get('server-timing') ?? '';
  const dur = (name: string) => Number(new RegExp(`(?:^|, )${name};dur=([\\d.]+)`).exec(timing)?.[1] ?? 0);
  return {
    parseMs: dur('parse'),
    compileMs: dur('compile'),
    kernels: Number(/(?:^|, )compile;dur=[\d.]+;desc="(\d+) kernels"/.exec(timing)?.[1] ?? 0),
    computeMs: dur('compute'),
    backend: /(?:^|, )compute;dur=[\d.]+;desc="(\w+)"/.exec(timing)?.[1] ?? '',
    /** large JSON answers only */
    writeMs: dur('write'),
  };
}

/**
 * A Python that can import torch (Debian's python3-torch lives in /usr/bin's python, which a
 * pyenv or venv python3 on PATH does not see), or undefined: the PyTorch rows are then left out.
 */
export function torchPython(): string | undefined {
  for (const python of ['python3', '/usr/bin/python3']) {
    if (spawnSync(python, ['-c', 'import torch'], { stdio: 'ignore' }).status === 0) return python;
  }
  return undefined;
}

/** One of issue 3's targets as a benchmark checks it: what was measured, and whether that meets it. */
export interface Target {
  target: string;
  measured: string;
  met: boolean;
}

/** The file to which printTargets also appends its targets, one JSON line each (bench/all.ts sets it) */
export const TARGETS_FILE_ENV = 'BENCH_TARGETS_FILE'; // not GRADSERVE_…: the servers the benchmarks start warn of those they do not know

/**
 * The targets a benchmark checks, as a table after its figures, so a run says plainly which
 * it met; and appended to $BENCH_TARGETS_FILE when set, for `npm run bench`'s summary.
 */
export function printTargets(targets: Target[]): void {
  if (targets.length === 0) return;
  console.log('\n| target | measured | met |\n| --- | --- | --- |');
  for (const t of targets) console.log(`| ${t.target} | ${t.measured} | ${t.met ? 'yes' : '**no**'} |`);
  const file = process.env[TARGETS_FILE_ENV];
  if (file) appendFileSync(file, targets.map((t) => `${JSON.stringify(t)}\n`).join(''));
}
