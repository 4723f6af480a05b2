/**
 * HTTP: autocannon against the running service, and in the same run against the
 * alternatives a user would build instead (TF.js on Fastify, bench/tfjs-server.ts; PyTorch
 * behind Python's HTTP server, bench/torch_server.py, where python3-torch is installed) and
 * a bare Fastify route that parses the same body and answers a body of the same size (the
 * ceiling any JSON service on Fastify can reach). Prints req/s, p50/p99 latency, the ratio
 * to the ceiling, and each server's CPU time per request (user + system, all its threads,
 * from /proc): the load generator shares the machine, so a server that needs more CPU per
 * request also leaves less of it to autocannon, and CPU per request is the steadier figure.
 *
 * This machine's speed drifts by 20–40% within minutes, so the servers take turns: `rounds`
 * rounds of `seconds` each, in a rotating order, after a warm-up load. A ratio is the median
 * of the per-round ratios (each measured minutes apart at most); req/s and latencies are
 * medians over the rounds, with the range of req/s.
 * `connections` sets every case's client count (8 for S, 4 for M by default): at 64, the
 * service queues what it cannot compute at once, as the others do, rather than refuse it.
 *   npm run build && npx tsx bench/http.ts [seconds=5] [rounds=3] [connections]
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { xorRequest } from '../src/http/request-examples.js';
import { loadTest, machine, mBody, printTargets, type Server, startServer, type Target, torchPython } from './lib.js';

const seconds = Number(process.argv[2] ?? 5);
const rounds = Number(process.argv[3] ?? 3);
const connections = process.argv[4] ? Number(process.argv[4]) : undefined;
const CASES = [
  // issue 3's target for S: at least 0.8× the ceiling's req/s
  { name: 'S (XOR, JSON)', payload: JSON.stringify(xorRequest), connections: connections ?? 8, targetRatio: 0.8 },
  { name: 'M [64,128,128,1]×1024, JSON', payload: mBody(), connections: connections ?? 4 },
];
const targets: Target[] = [];

const python = torchPython();
if (!python) console.error('not timing PyTorch: no python3 here can import torch (apt-get install python3-torch)');
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;

type Load = Awaited<ReturnType<typeof loadTest>> & { cpuUs: number };
const rows: string[] = [];
for (const c of CASES) {
  const service = await startServer();
  const answer = await (
    await fetch(`${service.url}/value-and-grad`, { method: 'POST', body: c.payload, headers: { 'content-type': 'application/json' } })
  ).text();
  const answerFile = join(tmpdir(), `gradserve-bench-answer-${process.pid}.json`);
  writeFileSync(answerFile, answer);
  const servers: [string, Server][] = [
    ['gradserve', service],
    ['bare Fastify (ceiling)', await startServer({ ANSWER_FILE: answerFile }, ['--import', 'tsx', 'bench/bare-server.ts'])],
    ['TF.js wasm on Fastify (the alternative)', await startServer({}, ['--import', 'tsx', 'bench/tfjs-server.ts'])],
  ];
  if (python) servers.push(['PyTorch on Python http.server (the alternative)', await startServer({}, ['bench/torch_server.py'], python)]);
  const loads = new Map<string, Load[]>(servers.map(([who]) => [who, []]));
  for (const [, server] of servers) await loadTest(server.url, c.payload, c.connections, 2); // warm-up: JIT, caches
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < servers.length; i++) {
      const [who, server] = servers[(i + round) % servers.length]!;
      const cpu0 = server.cpuSeconds();
      const load = await loadTest(server.url, c.payload, c.connections, seconds);
      loads.get(who)!.push({ ...load, cpuUs: ((server.cpuSeconds() - cpu0) * 1e6) / load.requests });
    }
  }
  for (const [, server] of servers) await server.stop();
  const ceiling = loads.get('bare Fastify (ceiling)')!;
  for (const [who] of servers) {
    const runs = loads.get(who)!;
    const rps = runs.map((r) => r.rps);
    const ratio = median(runs.map((r, i) => r.rps / ceiling[i]!.rps));
    const failed = runs.reduce((s, r) => s + r.failed, 0);
    if (who === 'gradserve' && c.targetRatio !== undefined) {
      targets.push({
        target: `${c.name} over HTTP ≥ ${c.targetRatio}× the ceiling's req/s`,
        measured: `${ratio.toFixed(2)}×`,
        met: ratio >= c.targetRatio,
      });
    }
    rows.push(
      `| ${c.name}, ${c.connections} connections | ${who} | ${median(rps).toFixed(0)} (${Math.min(...rps).toFixed(0)}–${Math.max(...rps).toFixed(0)}) | ` +
        `${median(runs.map((r) => r.p50))} | ${median(runs.map((r) => r.p99))} | ${failed} | ${ratio.toFixed(2)} | ` +
        `${median(runs.map((r) => r.cpuUs)).toFixed(0)} |`,
    );
  }
}
console.log(`HTTP, autocannon, ${rounds} rounds of ${seconds} s per server, taking turns, on ${machine()}`);
console.log(
  '| request | server | req/s, median (range) | p50 ms | p99 ms | non-2xx + errors | ratio to ceiling (median of rounds) | server CPU µs per request |\n' +
    '| --- | --- | --- | --- | --- | --- | --- | --- |',
);
console.log(rows.join('\n'));
printTargets(targets);
