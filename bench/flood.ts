/**
 * Health under a flood: many clients send large value-and-grad requests as fast as they
 * are answered, while /healthz is polled every 20 ms. Reports the health checks' latency
 * (the target is p99 < 100 ms), and how the flood was answered: 200s, 503s with
 * Retry-After, and client timeouts (which there should be none of).
 *   npm run build && npx tsx bench/flood.ts [seconds=20] [clients=16]
 */
import { body, machine, percentile, postJson, startServer } from './lib.js';

const seconds = Number(process.argv[2] ?? 20);
const clients = Number(process.argv[3] ?? 16);
const large = body([128, 256, 256, 1], 2048); // 0.5 GFLOP per value-and-grad, ~4 MB of JSON

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

const health: number[] = [];
let healthFailures = 0;
const poll = (async () => {
  while (performance.now() < deadline) {
    const t0 = performance.now();
    const ok = await fetch(`${server.url}/healthz`, { signal: AbortSignal.timeout(5000) }).then(
      (r) => r.ok,
      () => false,
    );
    health.push(performance.now() - t0);
    if (!ok) healthFailures++;
    await new Promise((res) => setTimeout(res, 20));
  }
})();

await Promise.all([...flood, poll]);
const rss = server.rssMb();
const code = await server.stop();
health.sort((a, b) => a - b);
console.log(`flood: ${clients} clients × ${seconds} s of [128,256,256,1]×2048 value-and-grad on ${machine()}`);
console.log(
  `  /healthz: ${health.length} polls, p50 ${percentile(health, 50).toFixed(1)} ms, p99 ${percentile(health, 99).toFixed(1)} ms, max ${health.at(-1)!.toFixed(1)} ms, failed ${healthFailures}`,
);
console.log(
  `  flood answers: ${JSON.stringify(Object.fromEntries(statuses))} (0 = client timeout or network error); 503s with Retry-After: ${withRetryAfter}`,
);
console.log(`  server RSS at the end ${rss.toFixed(0)} MiB; exit code after SIGTERM ${code}`);
