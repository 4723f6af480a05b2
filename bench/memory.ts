/**
 * Peak memory of one value-and-grad per activation (batch × Σ out, the values the layers
 * output, held for the backward pass): what GRADSERVE_MAX_ACTIVATIONS bounds, and the 32
 * bytes per activation its 413 estimates with. Each shape runs in a fresh process, its RSS
 * sampled every 5 ms. `npx tsx bench/memory.ts [backend]` (default webasm).
 */
import { spawnSync } from 'node:child_process';
import { Engine } from '../src/engine/engine.js';
import type { BackendName, Problem } from '../src/engine/types.js';

const SHAPES: [number[], number][] = [
  [[784, 512, 512, 1], 4096],
  [[1, 8192, 1], 4096],
  [[1, 2048, 1], 16384],
  [[1, 1024, 1024, 1], 4096],
];

async function measure(widths: number[], batch: number, backend: BackendName): Promise<void> {
  const engine = await Engine.create({ backend, kernelCacheCapacity: 64 });
  const filled = (rows: number, cols: number, v: number) => ({ rows, cols, data: new Float32Array(rows * cols).fill(v) });
  const problem: Problem = {
    layers: widths.slice(1).map((out, l) => ({ W: filled(widths[l]!, out, 0.01), b: new Float32Array(out) })),
    x: filled(batch, widths[0]!, 1),
    y: filled(batch, widths.at(-1)!, 1),
    activation: 'tanh',
    outputActivation: 'sigmoid',
    loss: 'bce',
    reduction: 'mean',
  };
  const base = process.memoryUsage.rss();
  let peak = base;
  const sampler = setInterval(() => {
    peak = Math.max(peak, process.memoryUsage.rss());
  }, 5);
  const t0 = performance.now();
  await engine.valueAndGrad(problem);
  const ms = performance.now() - t0;
  clearInterval(sampler);
  peak = Math.max(peak, process.memoryUsage.rss());
  const activations = batch * widths.slice(1).reduce((a, b) => a + b, 0);
  const added = peak - base;
  const row = [
    `[${widths.join(', ')}] × ${batch}`,
    `${(activations / 1e6).toFixed(1)}M`,
    `${(added / 2 ** 20).toFixed(0)} MiB`,
    (added / activations).toFixed(1),
    `${ms.toFixed(0)} ms`,
  ];
  console.log(`| ${row.join(' | ')} |`);
  await engine.close();
}

const [mode, shape, backendArg] = process.argv.slice(2);
if (mode === 'one') {
  const [widths, batch] = JSON.parse(shape!) as [number[], number];
  await measure(widths, batch, backendArg as BackendName);
  process.exit(0);
}
const backend = (mode ?? 'webasm') as BackendName;
console.log(`value-and-grad on ${backend}, one process per shape: peak RSS over the process's base`);
console.log('| shape | activations | peak RSS added | bytes per activation | time |');
console.log('| --- | --- | --- | --- | --- |');
for (const s of SHAPES) {
  const run = spawnSync(process.execPath, [...process.execArgv, process.argv[1]!, 'one', JSON.stringify(s), backend], { stdio: 'inherit' });
  if (run.status !== 0) process.exit(run.status ?? 1);
}
