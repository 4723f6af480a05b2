/**
 * Compile cost: the built service's time from spawn to ready (/readyz answering), then the
 * first request of the S and M shapes (which compile their kernels), the same again (which
 * must compile nothing), M at another batch size in the same bucket (nothing either), and
 * a new M shape (wider hidden layers: its kernels compile, with gpu.js's code generation
 * already warm). A second server gets M as its very first request, sent the moment it is
 * ready. Prints the client's time and Server-Timing's figures for each: parsing and
 * validating the body, compiling, computing, and writing the answer; then, as the machine's
 * timing varies from run to run, the median and range of each over `runs` fresh runs.
 *   npm run build && npx tsx bench/compile.ts [runs, default 3]
 */
import { xorRequest } from '../src/http/request-examples.js';
import { body, machine, mBody, printTargets, type Server, serverTiming, startServer } from './lib.js';

const M = mBody();

async function ready(): Promise<{ server: Server; readyMs: number }> {
  const t0 = performance.now();
  const server = await startServer();
  return { server, readyMs: performance.now() - t0 };
}

interface Row {
  name: string;
  clientMs: number;
  kernels: number;
  line: string;
}

async function send(server: Server, name: string, payload: string): Promise<Row> {
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
  const line = `| ${name} | ${res.status} | ${f(ms)} | ${f(st.parseMs)} | ${st.kernels} | ${f(st.compileMs)} | ${st.computeMs.toFixed(1)} (${st.backend}) | ${f(st.writeMs)} |`;
  return { name, clientMs: ms, kernels: st.kernels, line };
}

async function run(): Promise<{ rows: Row[]; readyMs: number[] }> {
  const first = await ready();
  const rows = [
    await send(first.server, 'S [2,4,1]×4, first', JSON.stringify(xorRequest)),
    await send(first.server, 'S again', JSON.stringify(xorRequest)),
    await send(first.server, 'M [64,128,128,1]×1024, first', M),
    await send(first.server, 'M again', body([64, 128, 128, 1], 1024, 2)),
    await send(first.server, 'M at batch 1000 (same bucket)', body([64, 128, 128, 1], 1000, 3)),
    await send(first.server, 'a new M shape, [64,132,132,1]×1024', body([64, 132, 132, 1], 1024, 4)),
  ];
  await first.server.stop();
  const second = await ready();
  rows.push(await send(second.server, 'M as the first request, sent when ready', M));
  await second.server.stop();
  return { rows, readyMs: [first.readyMs, second.readyMs] };
}

const runs = Number(process.argv[2] ?? 3);
const results: { rows: Row[]; readyMs: number[] }[] = [];
for (let i = 0; i < runs; i++) {
  const result = await run();
  results.push(result);
  console.log(
    `run ${i + 1} of ${runs}; start-up to ready: ${result.readyMs.map((ms) => ms.toFixed(0)).join(' and ')} ms (spawn to /readyz answering)`,
  );
  console.log(
    '| request | status | client ms | parse ms | kernels compiled | compile ms | compute ms (backend) | write ms |\n| --- | --- | --- | --- | --- | --- | --- | --- |',
  );
  console.log(result.rows.map((r) => r.line).join('\n'));
}

const median = (v: number[]) => {
  const s = v.toSorted((a, b) => a - b);
  return s.length % 2 ? s[s.length >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};
const summary = (v: number[]) => `${median(v).toFixed(0)} (${Math.min(...v).toFixed(0)}–${Math.max(...v).toFixed(0)})`;
console.log(`\ncompile cost on ${machine()}, ${runs} runs: median (range) of the client's ms`);
console.log('| request | client ms |\n| --- | --- |');
console.log(`| start-up to ready | ${summary(results.flatMap((r) => r.readyMs))} |`);
for (const [i, { name }] of results[0]!.rows.entries()) console.log(`| ${name} | ${summary(results.map((r) => r.rows[i]!.clientMs))} |`);

// issue 3's targets, on the medians: a request of a shape seen before compiles nothing; the
// first of a new S or M shape takes at most 150 ms; the service is ready within 1 s
const rowsNamed = (prefix: string) => results.flatMap((r) => r.rows.filter((row) => row.name.startsWith(prefix)));
const warm = ['S again', 'M again', 'M at batch 1000'].flatMap(rowsNamed);
const compiledWarm = warm.reduce((s, r) => s + r.kernels, 0);
const readyMs = median(results.flatMap((r) => r.readyMs));
printTargets([
  {
    target: 'warm requests never compile',
    measured: `${compiledWarm} kernels compiled in ${warm.length} warm requests`,
    met: compiledWarm === 0,
  },
  ...['S [2,4,1]×4, first', 'M [64,128,128,1]×1024, first', 'a new M shape', 'M as the first request'].map((prefix) => {
    const ms = median(rowsNamed(prefix).map((r) => r.clientMs));
    return { target: `${prefix.replace(/, first$/, '')}: first request ≤ 150 ms`, measured: `${ms.toFixed(0)} ms`, met: ms <= 150 };
  }),
  { target: 'start-up to ready ≤ 1 s', measured: `${readyMs.toFixed(0)} ms`, met: readyMs <= 1000 },
]);
