import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { type Browser, chromium, type Page } from 'playwright-core';
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
    engine = await Engine.create({ backend: 'webasm', kernelCacheCapacity: 64 });
    app = await buildApp({ config: { ...defaultConfig(), logLevel: 'silent' }, engine });
    address = await app.listen({ port: 0, host: '127.0.0.1' });
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: FLAGS });
  });
  after(async () => {
    await browser?.close();
    await app?.close();
    await engine?.close();
  });

  /** Expand an operation, "Try it out" if needed, check the pre-filled body, "Execute", and return the status and the JSON shown. */
  async function execute(
    page: Page,
    id: string,
  ): Promise<{ prefilled: Record<string, unknown>; status: string; shown: Record<string, unknown> }> {
    const op = page.locator(`#${id}`);
    await op.locator('.opblock-summary').click();
    await op.locator('button.try-out__btn').waitFor(); // present once expanded, in either mode
    const body = op.locator('textarea.body-param__text');
    if ((await body.count()) === 0) await op.locator('button.try-out__btn').click();
    const prefilled = JSON.parse(await body.inputValue());
    await op.locator('button.execute').click();
    const status = op.locator('.live-responses-table .response .response-col_status').first();
    await status.waitFor({ timeout: 30_000 });
    const shown = JSON.parse((await op.locator('.live-responses-table .microlight').first().textContent()) ?? '');
    return { prefilled, status: (await status.textContent())?.trim() ?? '', shown };
  }

  it('lists every endpoint; "Execute" on /value-and-grad and /train shows the XOR lesson\'s answers', async () => {
    const page = await browser.newPage({ viewport: { width: 1280, height: 2400 } });
    await page.goto(`${address}/docs/`);
    for (const op of ['valueAndGrad', 'loss', 'forward', 'init', 'train']) await page.waitForSelector(`#operations-compute-${op}`);
    await page.waitForSelector('#operations-operations-info');
    assert.equal(await page.title(), 'gradserve: the API');
    // in a lesson's order
    const order = await page.locator('.opblock[id^="operations-compute-"]').evaluateAll((blocks) => blocks.map((b) => b.id));
    assert.deepEqual(
      order.map((id) => id.replace('operations-compute-', '')),
      ['init', 'forward', 'loss', 'valueAndGrad', 'train'],
    );

    const vg = await execute(page, 'operations-compute-valueAndGrad');
    assert.deepEqual(vg.prefilled.x, [
      [0, 0],
      [0, 1],
      [1, 0],
      [1, 1],
    ]);
    assert.equal(vg.status, '200');
    assert.ok(Math.abs((vg.shown.loss as number) - 0.729988954) < 1e-6, `loss shown: ${vg.shown.loss}`);
    assert.equal((vg.shown.grads as unknown[]).length, 2);

    const train = await execute(page, 'operations-compute-train');
    assert.deepEqual(train.prefilled.optimizer, { name: 'adam', learningRate: 0.05 });
    assert.equal(train.status, '200');
    assert.ok((train.shown.loss as number) < 0.05, `trained loss shown: ${train.shown.loss}`);
    assert.equal((train.shown.params as unknown[]).length, 2);
    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('swagger-ui.png', ARTIFACTS).pathname, fullPage: true });
  });
});
