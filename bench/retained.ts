/**
 * What an idle server keeps between requests: the built service gets one request of each of
 * six large shapes ([784, h, h, 1] × 4096, binary tensors), then one large JSON body, and its
 * RSS is read 1.5 s after each answer, beside the memory its kernel cache reports (/info).
 * Kernels keep their memory for the next request of their shape, up to
 * GRADSERVE_KERNEL_CACHE_BYTES; what is above the cache and the start is malloc's and the
 * garbage collectors' slack.
 *   npm run build && npx tsx bench/retained.ts
 */
import { binaryBody, body, machine, startServer } from './lib.js';

const server = await startServer();
const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
const cacheBytes = async () => {
  const info = (await (await fetch(`${server.url}/info`)).json()) as { kernelCache: { bytes: number; maxBytes: number } };
  return info.kernelCache;
};
const requests: [string, string][] = [
  ...[480, 512, 544, 576, 608, 640].map((h): [string, string] => [`[784,${h},${h},1]×4096, base64`, binaryBody([784, h, h, 1], 4096)]),
  ['[512,256,1]×4096, JSON', body([512, 256, 1], 4096)],
];
try {
  const start = server.rssMb();
  const { maxBytes } = await cacheBytes();
  console.log(`idle memory between requests, on ${machine()}; kernel cache bound ${mib(maxBytes)} MiB`);
  console.log(
    `| request | body MB | status | idle RSS MiB | kernel cache MiB |\n| --- | --- | --- | --- | --- |\n| (start) | | | ${start.toFixed(0)} | 0 |`,
  );
  for (const [name, payload] of requests) {
    const res = await fetch(`${server.url}/value-and-grad`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: payload,
    });
    await res.arrayBuffer();
    await new Promise((resolve) => setTimeout(resolve, 1500));
    const { bytes } = await cacheBytes();
    console.log(`| ${name} | ${(payload.length / 1e6).toFixed(1)} | ${res.status} | ${server.rssMb().toFixed(0)} | ${mib(bytes)} |`);
  }
} finally {
  await server.stop();
}
