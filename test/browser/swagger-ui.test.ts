import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium } from 'playwright-core';
import { buildApp } from '../../src/app.js';
import { Engine } from '../../src/engine/engine.js';
import { defaultConfig } from '../../src/runtime/config.js';

// Debian's chromium (installed by .ci/run), with the flags this closed network needs.
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const FLAGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const ARTIFACTS = new URL('../artifacts/', import.meta.url);

describe('Swagger UI in a real browser', () => {
  let app: FastifyInstance;
  let engine: Engine;
  let browser: Browser;
  let address: string;
  before(async () => {
    engine = await Engine.create({ backend: 'webasm', kernelCacheSize: 64 });
    app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine });
    address = await app.listen({ port: 0, host: '127.0.0.1' });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  });
  after(async () => {
    await browser?.close();
    await app?.close();
    engine?.close();
  });

  it('lists both endpoints, pre-fills the XOR lesson, and "Execute" shows the loss and gradients', async () => {
    const page = await browser.newPage();
    await page.goto(`${address}/docs/`);
    for (const op of ['valueAndGrad', 'loss']) await page.waitForSelector(`#operations-compute-${op}`);
    const op = page.locator('#operations-compute-valueAndGrad');
    await op.locator('.opblock-summary').click();
    await op.locator('button.try-out__btn').waitFor(); // present once expanded, in either mode
    const body = op.locator('textarea.body-param__text');
    if ((await body.count()) === 0) await op.locator('button.try-out__btn').click();
    const prefilled = JSON.parse(await body.inputValue());
    assert.deepEqual(prefilled.x, [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ]);
    await op.locator('button.execute').click();
    const status = op.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor();
    assert.equal((await status.textContent())?.trim(), '200');
    const shown = JSON.parse((await op.locator('.live-responses-table .microlight').first().textContent()) ?? '');
    assert.ok(Math.abs(shown.loss - 0.729988954) < 1e-6, `loss shown: ${shown.loss}`);
    assert.equal(shown.grads.length, 2);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('swagger-ui.png', ARTIFACTS).pathname });
  });
});
