/**
 * Polls GET /healthz every 20 ms for a number of seconds and prints the latencies as JSON:
 * run by bench/flood.ts in a process of its own, so that what it measures is the server,
 * not the event loop of the process sending the flood.
 *   tsx bench/poll-health.ts URL SECONDS
 */
import { request } from 'node:http';

const [url, seconds] = [process.argv[2]!, Number(process.argv[3])];
const agent = new (await import('node:http')).Agent({ keepAlive: true, maxSockets: 1 });
const deadline = performance.now() + seconds * 1000;
const ms: number[] = [];
let failed = 0;
while (performance.now() < deadline) {
  const t0 = performance.now();
  const ok = await new Promise<boolean>((resolve) => {
    const req = request(`${url}/healthz`, { agent, timeout: 5000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode === 200));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(false));
    req.end();
  });
  ms.push(performance.now() - t0);
  if (!ok) failed++;
  await new Promise((r) => setTimeout(r, 20));
}
agent.destroy();
console.log(JSON.stringify({ ms, failed }));
