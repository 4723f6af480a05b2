/**
 * Compile cost: the built service's time from spawn to ready (/readyz answering), then the
 * first request of the S and M shapes (which compile their kernels), the same again (which
 * must compile nothing), and M at another batch size in the same bucket (nothing either).
 * Prints the client's time and Server-Timing's compile figures for each.
 *   npm run build && npx tsx bench/compile.ts
 */
import { xorRequest } from '../src/http/examples.js';
import { body, machine, serverTiming, startServer } from './lib.js';

const t0 = performance.now();
const server = await startServer();
const readyMs = performance.now() - t0;
const REQUESTS: [string, string][] = [
  ['S [2,4,1]×4, first', JSON.stringify(xorRequest)],
  ['S again', JSON.stringify(xorRequest)],
  ['M [64,128,128,1]×1024, first', body([64, 128, 128, 1], 1024)],
  ['M again', body([64, 128, 128, 1], 1024, 2)],
  ['M at batch 1000 (same bucket)', body([64, 128, 128, 1], 1000, 3)],
];
const rows: string[] = [];
for (const [name, payload] of REQUESTS) {
  const t = performance.now();
  const res = await fetch(`${server.url}/value-and-grad`, {
    method: 'POST',
    body: payload,
    headers: { 'content-type': 'application/json' },
  });
  await res.arrayBuffer();
  const ms = performance.now() - t;
  const timing = serverTiming(res);
  rows.push(
    `| ${name} | ${res.status} | ${ms.toFixed(0)} | ${timing.kernels} | ${timing.compileMs.toFixed(0)} | ${timing.computeMs.toFixed(1)} (${timing.backend}) |`,
  );
}
await server.stop();
console.log(`compile cost on ${machine()}; start-up to ready: ${readyMs.toFixed(0)} ms (spawn to /readyz answering)`);
console.log(
  '| request | status | client ms | kernels compiled | compile ms | compute ms (backend) |\n| --- | --- | --- | --- | --- | --- |',
);
console.log(rows.join('\n'));
