/**
 * Writes openapi/openapi.json from the running app's zod schemas; with --check, fails
 * when the committed file differs from what the code generates.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { buildApp } from '../src/app.js';
import { Engine } from '../src/engine/engine.js';
import { defaultConfig } from '../src/runtime/config.js';

const target = new URL('../openapi/openapi.json', import.meta.url);
const engine = await Engine.create({ backend: 'cpu', kernelCacheSize: 4 });
const app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine });
await app.ready();
const generated = `${JSON.stringify(app.swagger(), null, 2)}\n`;
await app.close();
engine.close();

if (process.argv.includes('--check')) {
  let committed = '';
  try {
    committed = readFileSync(target, 'utf8');
  } catch {}
  if (committed !== generated) {
    console.error('openapi/openapi.json is stale: run `npm run openapi` and commit the result');
    process.exit(1);
  }
  console.log('openapi/openapi.json is up to date');
} else {
  writeFileSync(target, generated);
  console.log(`wrote ${target.pathname}`);
}
