import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ACTIVATIONS, LOSSES } from '../../src/engine/types.js';
import { randomCase, rng } from '../helpers.js';
import { type Case64, finiteDiff64, valueAndGrad64 } from './mlp64.js';

function assertMatchesFiniteDifferences(c: Case64, label: string): void {
  const { grads } = valueAndGrad64(c);
  const close = (fd: number, got: number) => Math.abs(fd - got) <= 1e-6 * Math.max(1, Math.abs(fd));
  for (let l = 0; l < c.params.length; l++) {
    const W = c.params[l]!.W;
    for (let i = 0; i < W.length; i++) {
      for (let j = 0; j < W[0]!.length; j++) {
        const fd = finiteDiff64(c, l, 'W', i, j);
        assert.ok(close(fd, grads[l]!.W[i]![j]!), `${label}: dW[${l}][${i}][${j}]: ${fd} vs ${grads[l]!.W[i]![j]}`);
      }
    }
    c.params[l]!.b.forEach((_, i) => {
      assert.ok(close(finiteDiff64(c, l, 'b', i), grads[l]!.b[i]!), `${label}: db[${l}][${i}]`);
    });
  }
}

// The reference must itself be right before anything is judged by it.
describe('float64 reference', () => {
  for (const activation of ACTIVATIONS) {
    for (const loss of LOSSES) {
      it(`matches central finite differences (${activation} hidden, ${loss}, mean and sum)`, () => {
        for (const reduction of ['mean', 'sum'] as const) {
          // mse also goes through the hidden activation as the output activation
          const outputActivation = loss === 'mse' ? activation : undefined;
          const c = randomCase(rng(7), { widths: [3, 5, 4, 2], batch: 6, activation, outputActivation, loss, reduction });
          assertMatchesFiniteDifferences(c, `${activation}/${loss}/${reduction}`);
        }
      });
    }
  }
});
