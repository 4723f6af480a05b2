import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bodyOverListLimits, bodyOverStructure } from '../../src/http/body-limits.js';

/** The checks before validation never refuse a body within the limits, and refuse one list or bracket more. */
describe('body checks before validation', () => {
  const limits = { layers: 2, batch: 4, width: 3 };
  const rows = (n: number, cols: number) => Array.from({ length: n }, () => Array(cols).fill(0.5));
  // the largest body these limits take: 2 layers 3 wide, 4 rows of x and of y (as rows)
  const largest = {
    params: [
      { W: rows(3, 3), b: [0, 0, 0] },
      { W: rows(3, 3), b: [0, 0, 0] },
    ],
    x: rows(4, 3),
    y: rows(4, 3),
    optimizer: { name: 'adam', learningRate: 0.1 },
  };
  const bytes = (body: unknown) => Buffer.from(JSON.stringify(body));

  it('takes the largest body within the limits', () => {
    assert.equal(bodyOverListLimits('/train', largest, limits), undefined);
    assert.equal(bodyOverStructure(bytes(largest), limits), undefined);
    assert.equal(bodyOverListLimits('/value-and-grad', { ...largest, y: [0, 1, 1, 0] }, limits), undefined);
  });

  it('refuses a list longer than any field may hold (the larger of the batch and width limits), naming the field', () => {
    assert.equal(
      bodyOverListLimits('/value-and-grad', { ...largest, x: rows(5, 3) }, limits),
      'x has 5 rows; the batch limit is 4 (GRADSERVE_MAX_BATCH)',
    );
    assert.equal(
      bodyOverListLimits('/value-and-grad', { ...largest, y: Array(5).fill(0) }, limits),
      'y has 5 entries; the batch limit is 4 (GRADSERVE_MAX_BATCH)',
    );
    assert.equal(
      bodyOverListLimits('/value-and-grad', { ...largest, x: [...rows(3, 3), Array(5).fill(0)] }, limits),
      'x[3] has 5 entries; the width limit is 3 (GRADSERVE_MAX_WIDTH)',
    );
    const wide = { ...largest, params: [largest.params[0], { W: rows(5, 3), b: [0] }] };
    assert.equal(bodyOverListLimits('/value-and-grad', wide, limits), 'params[1].W has 5 rows; the width limit is 3 (GRADSERVE_MAX_WIDTH)');
    // over its own limit (3) but within the longest (4): left to the checks after validation, which name the network
    assert.equal(bodyOverListLimits('/value-and-grad', { ...largest, params: [{ W: rows(4, 3), b: [0, 0, 0] }] }, limits), undefined);
    assert.equal(
      bodyOverListLimits('/init', { layers: [1, 1, 1, 1] }, limits),
      'layers has 4 widths, so 3 layers; the limit is 2 (GRADSERVE_MAX_LAYERS)',
    );
  });

  it('refuses more [ or { than any body within the limits holds', () => {
    const most = 2 * 4 + 2 * (3 + 4) + 16; // x's and y's rows, every W's rows and some
    const lists = Buffer.from(`{"x": [${'[],'.repeat(most)}[]]}`);
    assert.match(bodyOverStructure(lists, limits) ?? '', new RegExp(`^the body holds more than ${most} lists \\("\\["\\)`));
    assert.equal(bodyOverStructure(Buffer.from(`{"x": [${'[],'.repeat(most - 2)}[]]}`), limits), undefined);
    const objects = Buffer.from(`{"x": [${'{},'.repeat(most)}{}]}`);
    assert.match(bodyOverStructure(objects, limits) ?? '', /objects \("\{"\)/);
    // fields: a dozen at the top, the optimizer's, and 8 per layer at most (W, b, and a binary tensor's three each)
    const fields = (n: number) => Buffer.from(JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [`k${i}`, 0]))));
    assert.equal(bodyOverStructure(fields(8 * 2 + 64), limits), undefined);
    assert.match(bodyOverStructure(fields(8 * 2 + 65), limits) ?? '', /^the body holds more than 80 fields \(":"\)/);
  });
});
