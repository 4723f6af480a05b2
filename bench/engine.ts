/**
 * Engine in process: one value-and-grad (forward, bce, backward) of S, M and L (sizes in
 * bench/RESULTS.md) on each gpu.js backend, and the same function in TF.js (wasm backend) in the same
 * run, as the baseline. Prints ms per call (median of the timed calls, after a warm-up
 * call that compiles), GFLOP/s (6 × batch × Σ in×out per call) and the ratio to TF.js.
 * headlessgl is timed too where it can run (gl built, an X display): under `xvfb-run -a`.
 * PyTorch on the CPU (bench/torch_reference.py, in its own process) is timed too where a
 * python3 can import torch: the alternative a Python user would compute with.
 * A second argument names the backends to time instead, e.g. `webgpu,webasm` on a GPU host
 * (webgpu is not timed by default: on the software Vulkan of machines without a GPU it only
 * measures llvmpipe).
 *   npm run build && npx tsx bench/engine.ts [S,M,L] [backend,...]
 */

import { execFileSync } from 'node:child_process';
import { Engine } from '../src/engine/engine.js';
import { headlessGlProblem } from '../src/engine/headlessgl.js';
import type { BackendName } from '../src/engine/types.js';
import { findAdapter } from '../src/engine/webgpu.js';
import { randomCase, rng, toEngineProblem } from '../test/helpers.js';
import { machine, printTargets, type Target, torchPython } from './lib.js';
import { tf, tfModel, useTfWasm } from './tfjs.js';

interface Size {
  name: string;
  widths: number[];
  batch: number;
  /** timed calls per backend (the big ones take seconds each) */
  calls: number;
  /** backends too slow to be worth timing at this size */
  skip?: string[];
}
const SIZES: Size[] = [
  { name: 'S', widths: [2, 4, 1], batch: 4, calls: 300 },
  { name: 'M', widths: [64, 128, 128, 1], batch: 1024, calls: 20 },
  { name: 'L', widths: [784, 512, 512, 1], batch: 4096, calls: 3, skip: ['cpu'] },
];

const flops = (s: Size) => 6 * s.batch * s.widths.slice(1).reduce((sum, out, l) => sum + s.widths[l]! * out, 0);

async function timeCalls(calls: number, once: () => Promise<unknown>): Promise<number> {
  await once(); // compile / warm up
  const ms: number[] = [];
  for (let i = 0; i < calls; i++) {
    const t0 = performance.now();
    await once();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return ms[Math.floor(ms.length / 2)]!;
}

const only = process.argv[2]?.split(',');
const asked = process.argv[3]?.split(',') as BackendName[] | undefined;
const glProblem = asked ? undefined : headlessGlProblem();
if (glProblem) console.error(`not timing headlessgl: ${glProblem}`);
const backends: BackendName[] = asked ?? (glProblem ? ['cpu', 'webasm'] : ['cpu', 'webasm', 'headlessgl']);
const python = asked ? undefined : torchPython();
if (!asked && !python) console.error('not timing PyTorch: no python3 here can import torch (apt-get install python3-torch)');
const torch = python
  ? (JSON.parse(
      execFileSync(
        python,
        [
          'bench/torch_reference.py',
          SIZES.filter((s) => !only || only.includes(s.name))
            .map((s) => s.name)
            .join(','),
        ],
        { encoding: 'utf8' },
      ),
    ) as {
      torch: string;
      threads: number;
      blas: string;
      ms: Record<string, number>;
    })
  : undefined;
const rows: string[] = [];
/** issue 3: the best CPU backend (cpu, webasm) reaches these GFLOP/s, each at least 3× TF.js wasm */
const GFLOPS_TARGET: Record<string, number> = { M: 8, L: 12 };
const CPU_BACKENDS: BackendName[] = ['cpu', 'webasm'];
const targets: Target[] = [];
await useTfWasm();
for (const size of SIZES.filter((s) => !only || only.includes(s.name))) {
  const c = randomCase(rng(1), { widths: size.widths, batch: size.batch, activation: 'tanh' });
  const model = tfModel(c);
  const baseline = await timeCalls(size.calls, model.run);
  model.dispose();
  const gflops = (ms: number) => (flops(size) / ms / 1e6).toFixed(2);
  rows.push(`| ${size.name} | TF.js wasm (baseline) | ${baseline.toFixed(3)} | ${gflops(baseline)} | 1.00 |`);
  const torchMs = torch?.ms[size.name];
  if (torchMs)
    rows.push(`| ${size.name} | PyTorch CPU | ${torchMs.toFixed(3)} | ${gflops(torchMs)} | ${(baseline / torchMs).toFixed(2)} |`);
  let bestCpuMs = Number.POSITIVE_INFINITY;
  for (const backend of backends) {
    if (size.skip?.includes(backend)) continue;
    const engine = await Engine.create({ backend, kernelCacheCapacity: 64 });
    const problem = toEngineProblem(c);
    const ms = await timeCalls(size.calls, () => engine.valueAndGrad(problem));
    engine.close();
    rows.push(`| ${size.name} | gradserve ${backend} | ${ms.toFixed(3)} | ${gflops(ms)} | ${(baseline / ms).toFixed(2)} |`);
    if (CPU_BACKENDS.includes(backend)) bestCpuMs = Math.min(bestCpuMs, ms);
  }
  const goal = GFLOPS_TARGET[size.name];
  if (goal !== undefined && Number.isFinite(bestCpuMs)) {
    const speedUp = baseline / bestCpuMs;
    targets.push(
      {
        target: `${size.name}, best CPU backend ≥ ${goal} GFLOP/s`,
        measured: `${gflops(bestCpuMs)} GFLOP/s`,
        met: Number(gflops(bestCpuMs)) >= goal,
      },
      { target: `${size.name}, best CPU backend ≥ 3× TF.js wasm`, measured: `${speedUp.toFixed(2)}×`, met: speedUp >= 3 },
    );
  }
}
const adapter = backends.includes('webgpu') ? `, WebGPU adapter: ${(await findAdapter())?.description ?? 'none'}` : '';
const torchInfo = torch ? `, PyTorch ${torch.torch} (${torch.threads} threads, BLAS ${torch.blas})` : '';
console.log(`engine, value-and-grad in process, on ${machine()}${adapter}, TF.js ${tf.version.tfjs} wasm (${tf.getBackend()})${torchInfo}`);
console.log('| size | implementation | ms (median) | GFLOP/s | speed-up vs TF.js |\n| --- | --- | --- | --- | --- |');
console.log(rows.join('\n'));
printTargets(targets);
process.exit(0); // gpu.js worker pools of the last engine are closed; TF.js keeps none, but exit explicitly
