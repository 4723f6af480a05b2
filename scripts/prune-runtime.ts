/**
 * `tsx scripts/prune-runtime.ts DIR`: deletes from DIR/node_modules (a production install, as
 * the image's build stage makes it) every package the bundle does not load at run time,
 * keeping the externals (scripts/externals.ts) and what they depend on, from npm's record of
 * the install (node_modules/.package-lock.json). Packages already deleted (gl, in the image)
 * are skipped, their dependencies with them. Prints what it removed.
 */
import { existsSync, lstatSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { EXTERNALS } from './externals.js';

interface Installed {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
}

const dir = process.argv[2];
if (!dir) throw new Error('usage: tsx scripts/prune-runtime.ts DIR (the folder holding node_modules)');
const record = join(dir, 'node_modules', '.package-lock.json');
const installed: Record<string, Installed> = JSON.parse(readFileSync(record, 'utf8')).packages;
const present = (path: string) => path in installed && existsSync(join(dir, path));

/** Where Node finds `name` when `from` requires it: the nearest node_modules up the tree. */
function resolve(from: string, name: string): string | undefined {
  for (let base = from; ; ) {
    const path = `${base ? `${base}/` : ''}node_modules/${name}`;
    if (present(path)) return path;
    if (!base) return undefined;
    const parent = base.lastIndexOf('/node_modules/');
    base = parent < 0 ? '' : base.slice(0, parent);
  }
}

const keep = new Set<string>();
const visit = (path: string | undefined) => {
  if (path === undefined || keep.has(path)) return;
  keep.add(path);
  const { dependencies, optionalDependencies, peerDependencies } = installed[path]!;
  for (const name of Object.keys({ ...dependencies, ...optionalDependencies, ...peerDependencies })) visit(resolve(path, name));
};
for (const name of EXTERNALS) visit(resolve('', name));

const size = (path: string): number =>
  lstatSync(path).isDirectory() ? readdirSync(path).reduce((sum, f) => sum + size(join(path, f)), 0) : lstatSync(path).size;
let removed = 0;
let bytes = 0;
// deepest first, so a nested package is measured before its parent goes
for (const path of Object.keys(installed).sort((a, b) => b.length - a.length)) {
  if (!path || keep.has(path) || !existsSync(join(dir, path)) || [...keep].some((k) => k.startsWith(`${path}/`))) continue;
  bytes += size(join(dir, path));
  rmSync(join(dir, path), { recursive: true });
  removed++;
}
// scope folders left empty, links in .bin to removed packages, and the now stale record
const modules = join(dir, 'node_modules');
for (const entry of readdirSync(modules)) {
  if (entry.startsWith('@') && readdirSync(join(modules, entry)).length === 0) rmSync(join(modules, entry), { recursive: true });
}
const bin = join(modules, '.bin');
if (existsSync(bin)) for (const link of readdirSync(bin)) if (!existsSync(join(bin, link))) rmSync(join(bin, link));
rmSync(record);
console.log(
  `pruned ${removed} packages (${(bytes / 1e6).toFixed(1)} MB); kept ${keep.size}: ${EXTERNALS.join(', ')} and their dependencies`,
);
