/**
 * `npm run build`: the service bundled into dist/server.js, and the JSON worker thread's entry
 * beside it as dist/json-worker.js (json-workers.ts finds it next to the file that starts it).
 * One file instead of ~250 modules starts 200–300 ms sooner (bench/RESULTS.md, "Start-up with the
 * service bundled into one file"). Types are checked by `npm run typecheck`, not here.
 * Stack traces point into src/ with `NODE_OPTIONS=--enable-source-maps`.
 */
import { rmSync } from 'node:fs';
import { build } from 'esbuild';
import { EXTERNALS } from './externals.js';

rmSync('dist', { recursive: true, force: true });
await build({
  entryPoints: ['src/server.ts', 'src/http/json-worker.ts'],
  entryNames: '[name]',
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20.19',
  sourcemap: 'linked',
  logLevel: 'warning',
  external: EXTERNALS,
  // bundled CommonJS dependencies call require(); an ES module has none of its own
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
});
