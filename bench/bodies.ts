/**
 * The request bodies the benchmarks send, as files, for load runs with any tool against
 * gradserve and the alternatives side by side (each takes gradserve's request format):
 *   npx tsx bench/bodies.ts [dir, default bench/bodies]
 *   npx autocannon -m POST -H content-type=application/json -i bench/bodies/M.json -c 4 -d 10 http://127.0.0.1:8080/value-and-grad
 * S.json is the XOR lesson (bench/http.ts), M.json [64,128,128,1]×1024 as JSON (http.ts,
 * compile.ts), L.base64.json [784,512,512,1]×4096 with base64 tensors both ways (large.ts).
 * The alternatives: `PORT=… npx tsx bench/tfjs-server.ts` (TF.js on Fastify),
 * `PORT=… python3 bench/torch_server.py` (PyTorch, needs python3-torch; JSON only), and
 * `PORT=… ANSWER_FILE=<an answer> npx tsx bench/bare-server.ts` (the ceiling).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { xorRequest } from '../src/http/request-examples.js';
import { lBinaryBody, mBody } from './lib.js';

const dir = process.argv[2] ?? 'bench/bodies';
mkdirSync(dir, { recursive: true });
const bodies: [string, string][] = [
  ['S.json', JSON.stringify(xorRequest)],
  ['M.json', mBody()],
  ['L.base64.json', lBinaryBody()],
];
for (const [name, text] of bodies) {
  writeFileSync(join(dir, name), text);
  console.log(`${join(dir, name)}: ${(text.length / 1024).toFixed(1)} KiB`);
}
