/**
 * HTTP: autocannon against the running service, and in the same run against the
 * alternatives a user would build instead (TF.js on Fastify, bench/tfjs-server.ts; PyTorch
 * behind Python's HTTP server, bench/torch_server.py, where python3-torch is installed) and
 * a bare Fastify route that parses the same body and answers a body of the same size (the
 * ceiling any JSON service on Fastify can reach). Prints req/s, p50/p99 latency and the
 * ratio to the ceiling.
 *   npm run build && npx tsx bench/http.ts [seconds=10]
 */
import { writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { xorRequest } from '../src/http/examples.js';
import { body, loadTest, machine, type Server, startServer, torchPython } from './lib.js';

const seconds = Number(process.argv[2] ?? 10);
const CASES = [
  { name: 'S (XOR, JSON)', payload: JSON.stringify(xorRequest), connections: 8 },
  { name: 'M [64,128,128,1]×1024, JSON', payload: body([64, 128, 128, 1], 1024), connections: 4 },
];

const python = torchPython();
if (!python) console.error('not timing PyTorch: no python3 here can import torch (apt-get install python3-torch)');
const rows: string[] = [];
for (const c of CASES) {
  const service = await startServer({ GRADSERVE_MAX_QUEUE: '64' });
  const answer = await (
    await fetch(`${service.url}/value-and-grad`, { method: 'POST', body: c.payload, headers: { 'content-type': 'application/json' } })
  ).text();
  const ours = await loadTest(service.url, c.payload, c.connections, seconds);
  await service.stop();
  const answerFile = join(tmpdir(), `gradserve-bench-answer-${process.pid}.json`);
  writeFileSync(answerFile, answer);
  const bare: Server = await startServer({ ANSWER_FILE: answerFile }, ['--import', 'tsx', 'bench/bare-server.ts']);
  const ceiling = await loadTest(bare.url, c.payload, c.connections, seconds);
  await bare.stop();
  const tfjs: Server = await startServer({}, ['--import', 'tsx', 'bench/tfjs-server.ts']);
  const alternative = await loadTest(tfjs.url, c.payload, c.connections, seconds);
  await tfjs.stop();
  const row = (who: string, r: typeof ours) =>
    `| ${c.name} | ${who} | ${r.rps.toFixed(0)} | ${r.p50} | ${r.p99} | ${r.failed} | ${(r.rps / ceiling.rps).toFixed(2)} |`;
  rows.push(row('gradserve', ours), row('TF.js wasm on Fastify (the alternative)', alternative));
  if (python) {
    const torch: Server = await startServer({}, ['bench/torch_server.py'], python);
    rows.push(row('PyTorch on Python http.server (the alternative)', await loadTest(torch.url, c.payload, c.connections, seconds)));
    await torch.stop();
  }
  rows.push(row('bare Fastify (ceiling)', ceiling));
}
console.log(`HTTP, autocannon ${seconds} s per run, on ${machine()}`);
console.log(
  '| request | server | req/s | p50 ms | p99 ms | non-2xx + errors | ratio to ceiling |\n| --- | --- | --- | --- | --- | --- | --- |',
);
console.log(rows.join('\n'));
