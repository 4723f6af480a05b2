/**
 * Health under a flood: many clients send large value-and-grad requests as fast as they
 * are answered, while /healthz is polled every 20 ms. Reports the health checks' latency
 * (the target is p99 < 100 ms), and how the flood was answered: 200s, 503s with
 * Retry-After, and client timeouts (which there should be none of). The health checks are
 * sent from a separate process, so the flood's own client work does not count against them.
 *   npm run build && npx tsx bench/flood.ts [seconds=20] [clients=16] [json|base64]
 */
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { binaryBody, body, machine, percentile, postJson, startServer } from './lib.js';

const execFileAsync = promisify(execFile);

const seconds = Number(process.argv[2] ?? 20);
const clients = Number(process.argv[3] ?? 16);
const encoding = process.argv[4] === 'base64' ? 'base64' : 'json';
// 0.5 GFLOP per value-and-grad: ~4 MB as JSON numbers, ~1.7 MB as binary tensors (both ways)
const large = encoding === 'base64' ? binaryBody([128, 256, 256, 1], 2048) : body([128, 256, 256, 1], 2048);

const server = await startServer();
const deadline = performance.now() + seconds * 1000;
const statuses = new Map<number, number>();
let withRetryAfter = 0;

const flood = Array.from({ length: clients }, async () => {
  while (performance.now() < deadline) {
    const r = await postJson(server.url, '/value-and-grad', large, 30_000);
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    if (r.status === 503) {
      if (r.retryAfter) withRetryAfter++;
      await new Promise((res) => setTimeout(res, 50)); // a polite client would wait Retry-After; a flood does not
    }
  }
});

// the health checks come from a process of their own (see poll-health.ts)
const poller = execFileAsync(process.execPath, ['--import', 'tsx', 'bench/poll-health.ts', server.url, String(seconds)]);
const [{ stdout }] = await Promise.all([poller, ...flood]);
const { ms: health, failed: healthFailures } = JSON.parse(stdout) as { ms: number[]; failed: number };
const rss = server.rssMb();
const code = await server.stop();
health.sort((a, b) => a - b);
console.log(`flood: ${clients} clients × ${seconds} s of [128,256,256,1]×2048 value-and-grad (${encoding}) on ${machine()}`);
console.log(
  `  /healthz: ${health.length} polls, p50 ${percentile(health, 50).toFixed(1)} ms, p99 ${percentile(health, 99).toFixed(1)} ms, max ${health.at(-1)!.toFixed(1)} ms, failed ${healthFailures}`,
);
console.log(
  `  flood answers: ${JSON.stringify(Object.fromEntries(statuses))} (0 = client timeout or network error); 503s with Retry-After: ${withRetryAfter}`,
);
console.log(`  server RSS at the end ${rss.toFixed(0)} MiB; exit code after SIGTERM ${code}`);
