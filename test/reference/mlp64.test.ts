import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { randomCase, rng } from '../helpers.js';
import { finiteDiff64, valueAndGrad64 } from './mlp64.js';

// The reference must itself be right before anything is judged by it.
describe('float64 reference', () => {
  for (const activation of ['tanh', 'relu', 'sigmoid', 'linear'] as const) {
    for (const reduction of ['mean', 'sum'] as const) {
      it(`matches central finite differences (${activation} hidden, ${reduction})`, () => {
        const rand = rng(7);
        const c = randomCase(rand, { widths: [3, 5, 4, 2], batch: 6, activation, reduction });
        const { grads } = valueAndGrad64(c);
        for (let l = 0; l < c.params.length; l++) {
          const W = c.params[l]!.W;
          for (let i = 0; i < W.length; i++) {
            for (let j = 0; j < W[0]!.length; j++) {
              const fd = finiteDiff64(c, l, 'W', i, j);
              assert.ok(
                Math.abs(fd - grads[l]!.W[i]![j]!) <= 1e-6 * Math.max(1, Math.abs(fd)),
                `dW[${l}][${i}][${j}]: ${fd} vs ${grads[l]!.W[i]![j]}`,
              );
            }
          }
          c.params[l]!.b.forEach((_, i) => {
            const fd = finiteDiff64(c, l, 'b', i);
            assert.ok(Math.abs(fd - grads[l]!.b[i]!) <= 1e-6 * Math.max(1, Math.abs(fd)), `db[${l}][${i}]`);
          });
        }
      });
    }
  }
});
