/**
 * The dispatcher's crossovers: warm value-and-grad medians on two backends over a sweep of
 * problem sizes, in process. The work (batch × Σ in×out) at which the second backend starts
 * winning is what the threshold should be on this machine:
 *   npx tsx bench/dispatch.ts       cpu against webasm, small problems: GRADSERVE_CPU_MAX_WORK
 *   npx tsx bench/dispatch.ts gpu   webasm against webgpu, large ones: GRADSERVE_GPU_MIN_WORK
 *                                   (on a host with a GPU; on llvmpipe it measures llvmpipe)
 * GRADSERVE_WEBASM_THREADS sizes webasm's worker pool, as in the service.
 */
import { workOf } from '../src/engine/dispatch.js';
import { Engine } from '../src/engine/engine.js';
import type { BackendName, Problem } from '../src/engine/types.js';
import { findAdapter } from '../src/engine/webgpu.js';
import { usableCpus } from '../src/runtime/cpus.js';
import { randomCase, rng, toEngineProblem } from '../test/helpers.js';
import { machine } from './lib.js';

/** Median of warm calls: at least 5 and at most 60, within about half a second once warm. */
async function medianMs(engine: Engine, problem: Problem): Promise<number> {
  for (let i = 0; i < 5; i++) await engine.valueAndGrad(problem); // compile and let V8 optimise
  const ms: number[] = [];
  const until = performance.now() + 500;
  while (ms.length < 5 || (ms.length < 60 && performance.now() < until)) {
    const t0 = performance.now();
    await engine.valueAndGrad(problem);
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[ms.length >> 1]!;
}

const gpu = process.argv[2] === 'gpu';
const [first, second]: [BackendName, BackendName] = gpu ? ['webasm', 'webgpu'] : ['cpu', 'webasm'];
const SWEEP: [number[], number[]][] = gpu
  ? [
      [
        [16, 32, 1],
        [64, 256],
      ],
      [
        [64, 128, 128, 1],
        [1, 4, 16, 64, 256, 1024],
      ],
      [
        [256, 256, 256, 1],
        [64, 1024],
      ],
      [
        [784, 512, 512, 1],
        [64, 256, 4096],
      ],
      [[1024, 2048, 2048, 1], [256]],
    ]
  : [
      [
        [2, 4, 1],
        [4, 16, 64],
      ],
      [
        [4, 8, 1],
        [4, 16, 64],
      ],
      [
        [8, 16, 1],
        [4, 16, 64],
      ],
      [
        [16, 16, 1],
        [4, 16, 64],
      ],
      [
        [16, 32, 1],
        [4, 16, 64],
      ],
      [
        [32, 32, 1],
        [4, 16, 64],
      ],
    ];

const webasmThreads = Number(process.env.GRADSERVE_WEBASM_THREADS) || usableCpus();
const a = await Engine.create({ backend: first, kernelCacheCapacity: 512, webasmThreads });
const b = await Engine.create({ backend: second, kernelCacheCapacity: 512, webasmThreads });
const rows: [number, number, number, string][] = [];
for (const [widths, batches] of SWEEP) {
  for (const batch of batches) {
    const problem = toEngineProblem(randomCase(rng(1), { widths, batch, activation: 'tanh' }));
    const work = workOf({ widths, batch });
    rows.push([work, await medianMs(a, problem), await medianMs(b, problem), `${JSON.stringify(widths)}×${batch}`]);
  }
}
a.close();
b.close();
rows.sort((x, y) => x[0] - y[0]);
const adapter = gpu ? ` (WebGPU adapter: ${(await findAdapter())?.description ?? 'none'})` : '';
console.log(`dispatch crossover, value-and-grad medians in ms, on ${machine()}, ${webasmThreads} webasm threads${adapter}`);
console.log(`| problem | work | ${first} ms | ${second} ms | faster |\n| --- | --- | --- | --- | --- |`);
for (const [work, x, y, name] of rows) console.log(`| ${name} | ${work} | ${x.toFixed(3)} | ${y.toFixed(3)} | ${x < y ? first : second} |`);
const firstWin = rows.find(([, x, y]) => y <= x);
console.log(`${first} is faster up to work ${rows.filter(([work]) => !firstWin || work < firstWin[0]).at(-1)?.[0] ?? 0}`);
if (gpu) {
  // what the service's default (`auto`) makes of this machine
  const auto = await Engine.create({ backend: 'auto', kernelCacheCapacity: 8 });
  const { backends, gpu: found } = auto.info();
  console.log(`auto starts ${backends.join(', ')} (GPU: ${found})`);
  await auto.close();
}
process.exit(0);
