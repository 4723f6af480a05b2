/**
 * `npm run bench`: the engine, compile-cost, HTTP and L benchmarks one after another, each in
 * a process of its own, then every target they checked in one table, headed by what a reader
 * of bench/RESULTS.md needs to compare runs: the date, the commit, the machine, its load
 * before the run and what a page fault costs on it (the first requests of new shapes fault in
 * megabytes of fresh kernel memory: 12 µs a page on one VM here, 1.5 on another, which moved
 * them by a third). Each benchmark appends its targets to the file named by TARGETS_FILE_ENV
 * (printTargets in lib.ts). Exits 0 whether or not the targets are met: it measures.
 *   npm run bench   (builds first)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { machine, printTargets, TARGETS_FILE_ENV, type Target } from './lib.js';

const BENCHMARKS = ['bench/engine.ts', 'bench/compile.ts', 'bench/http.ts', 'bench/large.ts'];

/** µs to fault in one fresh 4 KiB page, as a kernel's first call does its memory's (median of 3) */
function pageFaultMicros(): number {
  const pages = 3200;
  const runs = Array.from({ length: 3 }, () => {
    // as fresh as a kernel's new WebAssembly memory: untouched pages of a new mapping
    const bytes = new Uint8Array(new SharedArrayBuffer(pages * 4096));
    const t0 = performance.now();
    for (let p = 0; p < pages; p++) bytes[p * 4096] = 1;
    return ((performance.now() - t0) * 1000) / pages;
  });
  return runs.sort((a, b) => a - b)[1]!;
}

const commit = (() => {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
  } catch {
    return 'unknown';
  }
})();
const header = [
  `${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC, commit ${commit}`,
  `${machine()}, load average ${loadavg()[0]!.toFixed(1)} before the run`,
  `a fresh page of memory faults in ${pageFaultMicros().toFixed(1)} µs`,
].join('; ');
console.log(`npm run bench: ${header}\n`);

const dir = mkdtempSync(join(tmpdir(), 'gradserve-bench-'));
const targetsFile = join(dir, 'targets.jsonl');
const failed: string[] = [];
for (const script of BENCHMARKS) {
  const run = spawnSync(process.execPath, ['--import', 'tsx', script], {
    stdio: 'inherit',
    env: { ...process.env, [TARGETS_FILE_ENV]: targetsFile },
  });
  if (run.status !== 0) failed.push(`${script} (exit ${run.status ?? run.signal})`);
  console.log();
}
let targets: Target[] = [];
try {
  targets = readFileSync(targetsFile, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as Target);
} catch {
  // no benchmark got as far as its targets: `failed` says which stopped
}
rmSync(dir, { recursive: true, force: true });

const met = targets.filter((t) => t.met).length;
console.log(`every target, ${header}: ${met} of ${targets.length} met`);
printTargets(targets); // this process has no targets file of its own: it only prints
if (failed.length) {
  console.error(`\nthese benchmarks failed, and their targets are missing above: ${failed.join(', ')}`);
  process.exitCode = 1;
}
