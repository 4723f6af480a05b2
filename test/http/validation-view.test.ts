import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { validateShown, validationView } from '../../src/http/validation-view.js';
import { xorCase } from '../helpers.js';

const layer = { W: [[1]], b: [0] };

describe('what zod is shown of a body (validation-view.ts)', () => {
  it('shows a valid body, and one with a few wrong elements, whole', () => {
    assert.equal(validationView(xorCase), xorCase);
    const few = { params: [layer], x: [[1]], y: Array(64).fill('a') };
    assert.equal(validationView(few), few);
  });

  it('shows a body with many wrong elements cut after the first wrong element of each list, its clean lists untouched', () => {
    const x = [[1], [2]];
    const body = {
      params: [layer, { W: [[1], [2], ['w']], b: [[0], [0]] }, layer],
      x,
      y: [0, 1, ...Array(1000).fill('a')],
      layers: [2, 'two', 3],
    };
    const shown = validationView(body) as typeof body;
    assert.deepEqual(shown, {
      params: [layer, { W: [[1], [2], ['w']], b: [[0]] }],
      x,
      y: [0, 1, 'a'],
      layers: [2, 'two'],
    });
    assert.equal(shown.x, x, 'a list with nothing wrong is the same list');
    assert.equal(body.y.length, 1002, 'the body itself is not changed');
  });

  it('counts as wrong: numbers where rows go, rows where numbers go, rows and numbers mixed, objects among numbers, rows nested deeper', () => {
    const many = (element: unknown) => Array(100).fill(element);
    const cases: [unknown, unknown][] = [
      [{ x: [[0], ...many(1)] }, { x: [[0], 1] }],
      [{ params: [{ W: [[1]], b: [0, ...many([0])] }] }, { params: [{ W: [[1]], b: [0, [0]] }] }],
      [{ y: [[0], ...many(1)] }, { y: [[0], 1] }],
      [{ y: [0, ...many([1])] }, { y: [0, [1]] }],
      [{ x: [[0, ...many({})]] }, { x: [[0, {}]] }],
      [{ x: [[0, ...many([1])]] }, { x: [[0, [1]]] }],
      [{ params: [layer, ...many([])] }, { params: [layer, []] }],
      [{ x: { dtype: 'float32', shape: [1, ...many(null)], data: '' } }, { x: { dtype: 'float32', shape: [1, null], data: '' } }],
    ];
    for (const [body, cut] of cases) assert.deepEqual(validationView(body), cut, JSON.stringify(cut));
  });

  it('never lets a cut body pass: a validation that passes one is an internal error', () => {
    const wrong = { y: Array(100).fill('a') };
    const passes = (): { value?: unknown; error?: unknown } => ({ value: 'passed' });
    assert.throws(() => validateShown(passes, wrong), /cut short for validation passed/);
    assert.deepEqual(validateShown(passes, xorCase), { value: 'passed' });
  });
});
