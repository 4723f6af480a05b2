/**
 * Compile cost: the built service's time from spawn to ready (/readyz answering), then the
 * first request of the S and M shapes (which compile their kernels), the same again (which
 * must compile nothing), and M at another batch size in the same bucket (nothing either).
 * A second server gets M as its very first request, sent the moment it is ready. Prints
 * the client's time and Server-Timing's figures for each: parsing and validating the body,
 * compiling, computing, and writing the answer.
 *   npm run build && npx tsx bench/compile.ts
 */
import { xorRequest } from '../src/http/examples.js';
import { body, machine, type Server, serverTiming, startServer } from './lib.js';

const M = body([64, 128, 128, 1], 1024);

async function ready(): Promise<{ server: Server; readyMs: number }> {
  const t0 = performance.now();
  const server = await startServer();
  return { server, readyMs: performance.now() - t0 };
}

async function send(server: Server, name: string, payload: string): Promise<string> {
  const t = performance.now();
  const res = await fetch(`${server.url}/value-and-grad`, {
    method: 'POST',
    body: payload,
    headers: { 'content-type': 'application/json' },
  });
  await res.arrayBuffer();
  const ms = performance.now() - t;
  const st = serverTiming(res);
  const f = (v: number) => v.toFixed(0);
  return `| ${name} | ${res.status} | ${f(ms)} | ${f(st.parseMs)} | ${st.kernels} | ${f(st.compileMs)} | ${st.computeMs.toFixed(1)} (${st.backend}) | ${f(st.writeMs)} |`;
}

const first = await ready();
const rows = [
  await send(first.server, 'S [2,4,1]×4, first', JSON.stringify(xorRequest)),
  await send(first.server, 'S again', JSON.stringify(xorRequest)),
  await send(first.server, 'M [64,128,128,1]×1024, first', M),
  await send(first.server, 'M again', body([64, 128, 128, 1], 1024, 2)),
  await send(first.server, 'M at batch 1000 (same bucket)', body([64, 128, 128, 1], 1000, 3)),
];
await first.server.stop();
const second = await ready();
rows.push(await send(second.server, 'M as the first request, sent when ready', M));
await second.server.stop();
console.log(
  `compile cost on ${machine()}; start-up to ready: ${first.readyMs.toFixed(0)} and ${second.readyMs.toFixed(0)} ms (spawn to /readyz answering)`,
);
console.log(
  '| request | status | client ms | parse ms | kernels compiled | compile ms | compute ms (backend) | write ms |\n| --- | --- | --- | --- | --- | --- | --- | --- |',
);
console.log(rows.join('\n'));
