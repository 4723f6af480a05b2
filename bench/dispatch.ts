/**
 * The dispatcher's crossover: value-and-grad on the cpu and webasm backends over a sweep of
 * small problems, in process, warm. The largest work (batch × Σ in×out) at which cpu is
 * still faster is what GRADSERVE_CPU_MAX_WORK should be on this machine.
 *   npx tsx bench/dispatch.ts
 */
import { workOf } from '../src/engine/dispatch.js';
import { Engine } from '../src/engine/engine.js';
import type { Problem } from '../src/engine/types.js';
import { randomCase, rng, toEngineProblem } from '../test/helpers.js';
import { machine } from './lib.js';

async function medianMs(engine: Engine, problem: Problem): Promise<number> {
  for (let i = 0; i < 20; i++) await engine.valueAndGrad(problem); // compile and let V8 optimise
  const ms: number[] = [];
  for (let i = 0; i < 60; i++) {
    const t0 = performance.now();
    await engine.valueAndGrad(problem);
    ms.push(performance.now() - t0);
  }
  return ms.sort((a, b) => a - b)[30]!;
}

const cpu = await Engine.create({ backend: 'cpu', kernelCacheSize: 512 });
const webasm = await Engine.create({ backend: 'webasm', kernelCacheSize: 512 });
const rows: [number, number, number, string][] = [];
for (const widths of [
  [2, 4, 1],
  [4, 8, 1],
  [8, 16, 1],
  [16, 16, 1],
  [16, 32, 1],
  [32, 32, 1],
]) {
  for (const batch of [4, 16, 64]) {
    const problem = toEngineProblem(randomCase(rng(1), { widths, batch, activation: 'tanh' }));
    const work = workOf({ widths, batch });
    rows.push([work, await medianMs(cpu, problem), await medianMs(webasm, problem), `${JSON.stringify(widths)}×${batch}`]);
  }
}
cpu.close();
webasm.close();
rows.sort((a, b) => a[0] - b[0]);
console.log(`dispatch crossover, value-and-grad medians in ms, on ${machine()}`);
console.log('| problem | work | cpu ms | webasm ms | faster |\n| --- | --- | --- | --- | --- |');
for (const [work, c, w, name] of rows)
  console.log(`| ${name} | ${work} | ${c.toFixed(3)} | ${w.toFixed(3)} | ${c < w ? 'cpu' : 'webasm'} |`);
const firstWebasm = rows.find(([, c, w]) => w <= c);
console.log(`cpu is faster up to work ${rows.filter(([work]) => !firstWebasm || work < firstWebasm[0]).at(-1)?.[0] ?? 0}`);
process.exit(0);
