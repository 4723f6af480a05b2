import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ENV_VARS } from '../../src/runtime/config.js';
import { MALLOC_TUNABLES } from '../../src/runtime/malloc.js';

const read = (path: string) => readFileSync(new URL(`../../${path}`, import.meta.url), 'utf8');
const readme = read('README.md');

/** The text of one `## ` section of the README. */
function section(title: string): string {
  const start = readme.indexOf(`\n## ${title}\n`);
  assert.ok(start >= 0, `README has a "${title}" section`);
  const end = readme.indexOf('\n## ', start + 1);
  return readme.slice(start, end < 0 ? undefined : end);
}

describe('README', () => {
  it('its configuration table names every variable the service reads, and no other', () => {
    const documented = [...section('Configuration').matchAll(/^\| `([A-Z_]+)`/gm)].map((m) => m[1]);
    assert.deepEqual([...documented].sort(), [...ENV_VARS].sort());
  });

  it("documents glibc's malloc settings, which npm start and the image give the service", () => {
    const setting = `GLIBC_TUNABLES=${MALLOC_TUNABLES}`;
    assert.ok(section('Configuration').includes(setting), 'README "Configuration" gives the setting');
    const start = JSON.parse(read('package.json')).scripts.start as string;
    assert.ok(start.includes(`${setting} node dist/server.js`), `npm start sets it: ${start}`);
    const dockerfile = read('Dockerfile');
    assert.ok(
      dockerfile.split('\n').some((line) => line.trim() === `${setting} \\`),
      'the image sets it (ENV)',
    );
  });
});
