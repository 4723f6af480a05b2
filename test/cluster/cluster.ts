/**
 * A gradserve cluster on loopback: replicas (`node dist/server.js`, so `npm run build` first)
 * behind Debian's nginx, each a child process of this one, nothing installed as a service.
 * Used by test/cluster/cluster.test.ts and bench/cluster.ts. Every process started here is
 * killed by stop(), and on exit if stop() was never reached.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MALLOC_TUNABLES } from '../../src/runtime/malloc.js';

const repo = new URL('../../', import.meta.url).pathname;

export interface Replica {
  url: string;
  child: ChildProcess;
}

export interface Cluster {
  replicas: Replica[];
  /** the balancer's URL */
  url: string;
  /** nginx's error log, for failure messages */
  balancerLog: () => string;
  stop: () => Promise<void>;
}

const children = new Set<ChildProcess>();
process.once('exit', () => {
  for (const c of children) c.kill('SIGKILL');
});

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer().listen(0, '127.0.0.1', () => {
      const { port } = probe.address() as AddressInfo;
      probe.close(() => resolve(port));
    });
    probe.on('error', reject);
  });
}

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

async function waitFor(url: string, child: ChildProcess, what: string, timeoutMs = 30_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const ok = await fetch(url, { signal: AbortSignal.timeout(2000) }).then(
      (r) => r.ok,
      () => false,
    );
    if (ok) return;
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before answering`);
    if (Date.now() > until) throw new Error(`${what} did not answer ${url} within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

export async function startReplica(env: Record<string, string> = {}): Promise<Replica> {
  const port = await freePort();
  const child = track(
    spawn(process.execPath, [join(repo, 'dist/server.js')], {
      // with npm start's malloc settings, as a replica would run
      env: { ...process.env, GLIBC_TUNABLES: MALLOC_TUNABLES, HOST: '127.0.0.1', PORT: String(port), LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'inherit', 'inherit'],
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`${url}/readyz`, child, `replica on port ${port}`);
  return { url, child };
}

/** Debian's nginx, or a clear error saying how to get it. */
export function nginxPath(): string {
  for (const candidate of ['nginx', '/usr/sbin/nginx']) {
    try {
      execFileSync(candidate, ['-v'], { stdio: 'ignore' });
      return candidate;
    } catch {}
  }
  throw new Error('nginx is not installed: `apt-get install nginx` (Debian), or run `bash .ci/run`, which installs it');
}

/**
 * nginx in the foreground, round-robin over the replicas. A replica that refuses connections,
 * resets one or answers 502/503 is skipped for this request and, after max_fails of them, for
 * fail_timeout. POSTs are passed on to the next replica too (`non_idempotent`): every gradserve
 * request is a pure computation, safe to repeat.
 */
export interface Balancer {
  url: string;
  child: ChildProcess;
  /** its config, temp files and error.log */
  dir: string;
  stop: () => Promise<void>;
}

export async function startBalancer(replicas: Replica[]): Promise<Balancer> {
  const dir = mkdtempSync(join(tmpdir(), 'gradserve-nginx-'));
  chmodSync(dir, 0o755); // when started as root, nginx's workers run as nobody and write their temp files here
  const port = await freePort();
  const servers = replicas.map((r) => `    server ${new URL(r.url).host} max_fails=2 fail_timeout=5s;`).join('\n');
  writeFileSync(
    join(dir, 'nginx.conf'),
    `worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/client_body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream gradserve {
${servers}
    keepalive 32;
  }
  server {
    listen 127.0.0.1:${port};
    client_max_body_size 64m;
    client_body_buffer_size 4m; # smaller bodies stay in memory, not in temp files
    location / {
      proxy_pass http://gradserve;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_next_upstream error timeout http_502 http_503 non_idempotent;
      proxy_next_upstream_tries 3;
      proxy_read_timeout 60s;
    }
  }
}
`,
  );
  const child = track(
    spawn(nginxPath(), ['-p', dir, '-c', join(dir, 'nginx.conf'), '-e', join(dir, 'error.log'), '-g', 'daemon off;'], {
      stdio: ['ignore', 'inherit', 'inherit'],
    }),
  );
  const url = `http://127.0.0.1:${port}`;
  const stop = async () => {
    await stopChild(child);
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await waitFor(`${url}/healthz`, child, 'nginx');
  } catch (err) {
    const log = readLog(dir);
    await stop();
    throw new Error(`${(err as Error).message}\n${log}`);
  }
  return { url, child, dir, stop };
}

function readLog(dir: string): string {
  try {
    return readFileSync(join(dir, 'error.log'), 'utf8');
  } catch {
    return '';
  }
}

function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 5000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const hard = setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      clearTimeout(hard);
      resolve();
    });
    child.kill(signal);
  });
}

export async function startCluster(size: number, env: Record<string, string> = {}): Promise<Cluster> {
  const replicas: Replica[] = [];
  let balancer: Balancer | undefined;
  const stop = async () => {
    await Promise.all([...(balancer ? [balancer.stop()] : []), ...replicas.map((r) => stopChild(r.child))]);
  };
  try {
    replicas.push(...(await Promise.all(Array.from({ length: size }, () => startReplica(env)))));
    balancer = await startBalancer(replicas);
  } catch (err) {
    await stop();
    for (const c of children) c.kill('SIGKILL'); // a replica still starting when another failed
    throw err;
  }
  const dir = balancer.dir;
  return { replicas, url: balancer.url, balancerLog: () => readLog(dir), stop };
}
