/**
 * Scale-out: what replicas and shards buy on this machine.
 *   1. Many small requests (the XOR lesson) with autocannon: one replica directly, one replica
 *      behind nginx (the balancer's own cost), three replicas behind nginx.
 *   2. One large batch: one request to one replica, against valueAndGradSharded over the
 *      three replicas through nginx.
 * Replicas are `node dist/server.js` and nginx is Debian's, as in `npm run test:cluster`.
 * All share this machine's cores, so three replicas can gain at most what idle cores allow.
 *   npm run build && npx tsx bench/cluster.ts [seconds=10] [connections=16] [largeBatch=16384]
 */
import { type ValueAndGradRequest, valueAndGradSharded } from '../client/index.js';
import { xorRequest } from '../src/http/request-examples.js';
import { type Balancer, startBalancer, startCluster } from '../test/cluster/cluster.js';
import { randomCase, rng } from '../test/helpers.js';
import { loadTest, machine } from './lib.js';

const seconds = Number(process.argv[2] ?? 10);
const connections = Number(process.argv[3] ?? 16);
const largeBatch = Number(process.argv[4] ?? 16384);
const xor = JSON.stringify(xorRequest);

const load = (url: string) => loadTest(url, xor, connections, seconds);

async function median(runs: number, f: () => Promise<unknown>): Promise<number> {
  const ms: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t0 = performance.now();
    await f();
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[Math.floor(runs / 2)]!;
}

const cluster = await startCluster(3, { LOG_LEVEL: 'error' });
let oneBehind: Balancer | undefined;
try {
  oneBehind = await startBalancer([cluster.replicas[0]!]);
  const warm = (url: string) =>
    fetch(`${url}/value-and-grad`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: xor });
  await Promise.all(cluster.replicas.map((r) => warm(r.url)));

  const rows: string[] = [];
  const row = (setup: string, r: Awaited<ReturnType<typeof load>>) =>
    rows.push(`| ${setup} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.failed} |`);
  row('1 replica, direct', await load(cluster.replicas[0]!.url));
  row('1 replica, behind nginx', await load(oneBehind.url));
  row('3 replicas, behind nginx', await load(cluster.url));
  console.log(`XOR value-and-grad, autocannon ${seconds} s, ${connections} connections, on ${machine()}`);
  console.log('| setup | req/s | p50 ms | p99 ms | non-2xx + errors |\n| --- | --- | --- | --- | --- |');
  console.log(rows.join('\n'));

  // One large batch, all binary tensors (the fastest form for the single request too).
  const c = randomCase(rng(7), { widths: [64, 256, 256, 1], batch: largeBatch, activation: 'tanh' });
  const binary = (rows: number[][]) => ({
    dtype: 'float32' as const,
    shape: [rows.length, rows[0]!.length],
    data: Buffer.from(Float32Array.from(rows.flat()).buffer).toString('base64'),
  });
  const request: ValueAndGradRequest = {
    ...c,
    params: c.params.map((p) => ({ W: binary(p.W), b: { ...binary([p.b]), shape: [p.b.length] } })),
    x: binary(c.x),
    y: binary(c.y),
  };
  const body = JSON.stringify(request);
  const single = () =>
    fetch(`${cluster.replicas[0]!.url}/value-and-grad`, { method: 'POST', headers: { 'content-type': 'application/json' }, body }).then(
      (r) => r.arrayBuffer(),
    );
  await single(); // compile
  const large: string[] = [`| 1 request, 1 replica | ${(await median(5, single)).toFixed(0)} |`];
  for (const shards of [3, 6, 12]) {
    const sharded = () => valueAndGradSharded(cluster.url, request, { shards });
    await sharded();
    large.push(`| ${shards} shards, 3 replicas behind nginx | ${(await median(5, sharded)).toFixed(0)} |`);
  }
  console.log(`\nOne value-and-grad of [64, 256, 256, 1] × ${largeBatch} (binary tensors), median of 5, on ${machine()}`);
  console.log('| setup | ms |\n| --- | --- |');
  console.log(large.join('\n'));
} finally {
  await oneBehind?.stop();
  await cluster.stop();
}
process.exit(0);
