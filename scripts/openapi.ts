/**
 * Writes openapi/openapi.json from the running app's zod schemas, and openapi/api.d.ts
 * (the client types, by openapi-typescript) from that document; with --check, fails when
 * either committed file differs from what the code generates.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import openapiTS, { astToString, COMMENT_HEADER, type OpenAPI3 } from 'openapi-typescript';
import { buildApp } from '../src/app.js';
import { Engine } from '../src/engine/engine.js';
import { defaultConfig } from '../src/runtime/config.js';

const documentFile = new URL('../openapi/openapi.json', import.meta.url);
const typesFile = new URL('../openapi/api.d.ts', import.meta.url);

const engine = await Engine.create({ backend: 'cpu', kernelCacheCapacity: 4 });
const app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine });
await app.ready();
const document = app.swagger() as OpenAPI3;
await app.close();
await engine.close();

const generated = new Map([
  [documentFile, `${JSON.stringify(document, null, 2)}\n`],
  [typesFile, COMMENT_HEADER + astToString(await openapiTS(document))],
]);

if (process.argv.includes('--check')) {
  for (const [file, text] of generated) {
    let committed = '';
    try {
      committed = readFileSync(file, 'utf8');
    } catch {}
    if (committed !== text) {
      console.error(`${file.pathname} is stale: run \`npm run openapi\` and commit the result`);
      process.exit(1);
    }
  }
  console.log('openapi/openapi.json and openapi/api.d.ts are up to date');
} else {
  for (const [file, text] of generated) {
    writeFileSync(file, text);
    console.log(`wrote ${file.pathname}`);
  }
}
