/**
 * Soak: a mixed load for a fixed time against the built service in its own process.
 * Clients pick, per request: the XOR lesson (/loss or /value-and-grad), a mid-sized net,
 * a net of a shape never seen before (kernel cache churn), or a malformed body. Reports
 * throughput, latency per kind, errors (5xx and network errors; 4xx are expected for the
 * malformed ones), and the server's RSS at start and end.
 *   npm run build && npx tsx bench/soak.ts [seconds=300] [clients=8]
 */
import { xorRequest } from '../src/http/request-examples.js';
import { body, machine, percentile, postJson, startServer } from './lib.js';

const seconds = Number(process.argv[2] ?? 300);
const clients = Number(process.argv[3] ?? 8);

const xor = JSON.stringify(xorRequest);
const mid = body([64, 128, 128, 1], 256);
let fresh = 0;
const kinds = {
  'xor /loss': () => ({ path: '/loss', payload: xor }),
  'xor /value-and-grad': () => ({ path: '/value-and-grad', payload: xor }),
  'mid /value-and-grad': () => ({ path: '/value-and-grad', payload: mid }),
  'new shape': () => ({ path: '/value-and-grad', payload: body([2 + (fresh % 50), 2 + Math.floor(fresh++ / 50), 1], 8, fresh) }),
  malformed: () => ({ path: '/value-and-grad', payload: `${xor.slice(0, 40)}"oops"}` }),
} as const;
type Kind = keyof typeof kinds;
const mix: Kind[] = [
  'xor /loss',
  'xor /value-and-grad',
  'xor /value-and-grad',
  'xor /value-and-grad',
  'mid /value-and-grad',
  'new shape',
  'malformed',
];

const server = await startServer();
const rssStart = server.rssMb();
const latencies = new Map<Kind, number[]>(mix.map((k) => [k, []]));
const statuses = new Map<number, number>();
let i = 0;
const t0 = performance.now();
const deadline = t0 + seconds * 1000;
await Promise.all(
  Array.from({ length: clients }, async () => {
    while (performance.now() < deadline) {
      const kind = mix[i++ % mix.length]!;
      const { path, payload } = kinds[kind]();
      const r = await postJson(server.url, path, payload);
      latencies.get(kind)!.push(r.ms);
      statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    }
  }),
);
const elapsed = (performance.now() - t0) / 1000;
const rssEnd = server.rssMb();
const code = await server.stop();

const total = [...statuses.values()].reduce((a, b) => a + b, 0);
const errors = [...statuses].filter(([s]) => s === 0 || s >= 500).reduce((a, [, n]) => a + n, 0);
console.log(`soak: ${clients} clients × ${elapsed.toFixed(0)} s on ${machine()}`);
console.log(
  `  ${total} requests, ${(total / elapsed).toFixed(0)} req/s; statuses ${JSON.stringify(Object.fromEntries(statuses))}; errors (5xx or network) ${errors}`,
);
console.log('  | kind | requests | p50 ms | p99 ms |\n  | --- | --- | --- | --- |');
for (const [kind, ms] of latencies) {
  ms.sort((a, b) => a - b);
  console.log(`  | ${kind} | ${ms.length} | ${percentile(ms, 50).toFixed(1)} | ${percentile(ms, 99).toFixed(1)} |`);
}
console.log(
  `  server RSS: start ${rssStart.toFixed(0)} MiB, end ${rssEnd.toFixed(0)} MiB; new shapes seen ${fresh}; exit code after SIGTERM ${code}`,
);
