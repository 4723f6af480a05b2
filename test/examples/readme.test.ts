import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { ENV_VARS } from '../../src/runtime/config.js';

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8');

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
});
