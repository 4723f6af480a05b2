/**
 * gpu.js's createPipeline against the engine's way (one kernel call at a time, each result
 * back on the host before the next call): the forward pass of M and L, plain (unblocked)
 * dense kernels, same inputs, results checked equal. On webgpu the pipeline records every
 * step into one command encoder with one readback ('fused-encoder'). webasm's fused executor
 * cannot chain the engine's blocked kernels (a step returning Array(4) cannot feed another
 * step). The whole value-and-grad as two pipelines was measured too and not kept
 * (bench/RESULTS.md, "createPipeline").
 *   npx tsx bench/pipeline.ts [backend] [M,L]
 */
import { createRequire } from 'node:module';
import { toRows } from '../src/engine/matrix.js';
import { forwardSpec } from '../src/engine/ops/dense.js';
import type { BackendName } from '../src/engine/types.js';
import { findAdapter, installNavigatorGpu } from '../src/engine/webgpu.js';
import { randomCase, rng, toEngineProblem } from '../test/helpers.js';
import { machine } from './lib.js';

type Kernel = ((...args: unknown[]) => Promise<unknown>) & { destroy(): void };
interface Pipeline {
  (...args: unknown[]): Promise<unknown[]>;
  executorKind: string;
  fallbackReason: string | null;
}
const require = createRequire(import.meta.url);
const { GPU, WebGPUContext } = require('gpu.js') as {
  GPU: new (o: {
    mode: string;
  }) => {
    createKernel(source: string, settings: object): Kernel;
    createPipeline(fn: (...args: never[]) => unknown): Pipeline;
    destroy(): Promise<void>;
  };
  WebGPUContext: { destroy(): Promise<void> };
};

const backend = (process.argv[2] ?? 'webgpu') as BackendName;
if (backend === 'webgpu') installNavigatorGpu();
const gpu = new GPU({ mode: backend });

async function medianMs(calls: number, once: () => Promise<unknown>): Promise<number> {
  for (let i = 0; i < 3; i++) await once();
  const ms: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await once();
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[ms.length >> 1]!;
}

const rows: string[] = [];
for (const [name, widths, batch, calls] of [
  ['M', [64, 128, 128, 1], 1024, 30],
  ['L', [784, 512, 512, 1], 4096, 5],
] as const) {
  if (process.argv[3] && !process.argv[3].split(',').includes(name)) continue;
  const p = toEngineProblem(randomCase(rng(1), { widths: [...widths], batch, activation: 'tanh' }));
  const kernels = p.layers.map((l, i) =>
    // the plain kernel, as the engine builds it for cpu (on webasm the engine's are blocked)
    gpu.createKernel(forwardSpec(i < p.layers.length - 1 ? 'tanh' : 'linear', l.W.rows, l.W.cols, batch, 'cpu').source, {
      output: [l.W.cols, batch],
      tactic: 'precision',
      precision: 'single',
    }),
  );
  const args: unknown[] = [toRows(p.x, batch), ...p.layers.flatMap((l) => [toRows(l.W), l.b])];
  const direct = async () => {
    const out: unknown[] = [];
    let a = args[0];
    for (let l = 0; l < kernels.length; l++) {
      a = await kernels[l]!(a, args[1 + 2 * l], args[2 + 2 * l]);
      out.push(a);
    }
    return out;
  };
  // gpu.js passes a pipeline as many arguments as its function declares (no rest parameters)
  const pipeline = gpu.createPipeline((x: unknown, W0: unknown, b0: unknown, W1: unknown, b1: unknown, W2: unknown, b2: unknown) => {
    const a1 = kernels[0]!(x, W0, b0);
    const a2 = kernels[1]!(a1, W1, b1);
    return [a1, a2, kernels[2]!(a2, W2, b2)];
  });
  const [x, y] = [await direct(), await pipeline(...args)];
  const same = x.every((r, i) => {
    const [a, b] = [r, y[i]] as Float32Array[][];
    return a!.every((row, j) => row.every((v, k) => v === b![j]![k]));
  });
  const d = await medianMs(calls, direct);
  const f = await medianMs(calls, () => pipeline(...args));
  rows.push(`| ${name} forward | ${d.toFixed(3)} | ${f.toFixed(3)} | ${(d / f).toFixed(2)} | ${pipeline.executorKind} | ${same} |`);
  for (const k of kernels) k.destroy();
}
const adapter = backend === 'webgpu' ? `, WebGPU adapter: ${(await findAdapter())?.description ?? 'none'}` : '';
console.log(`createPipeline against kernel-by-kernel calls on ${backend}, ${machine()}${adapter}`);
console.log('| pass | kernel by kernel ms | pipeline ms | speed-up | executor | same results |\n| --- | --- | --- | --- | --- | --- |');
console.log(rows.join('\n'));
await gpu.destroy();
if (backend === 'webgpu') await WebGPUContext.destroy();
process.exit(0);
