import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Engine } from '../../src/engine/engine.js';
import { ACTIVATIONS, BACKENDS, LOSSES, REDUCTIONS } from '../../src/engine/types.js';
import { backendSkips } from '../backend-skips.js';
import { randomCase, rng, toEngineProblem, xorCase } from '../helpers.js';
import { type Case64, predict64, relError, valueAndGrad64 } from '../reference/mlp64.js';

const TOLERANCE = 1e-5; // the release bar: ‖got − ref‖ / ‖ref‖ per tensor
/**
 * softmax cross-entropy's cotangents sum to zero over each row, so the gradients behind it
 * are differences of nearly equal float32 sums: 1.08e-5 on a linear [5,7,6,2] network (db[0]
 * on webasm, webgpu and headlessgl) even with the head computed exactly in float64, so the
 * error is the layers' float32 accumulation, as JAX's own would be; 2.02e-5 on db[2] of a
 * sigmoid [5,7,6,2] network with sum (nine rows' cotangents of about ±0.5, each rounded to
 * float32, cancel to ±0.0038), the same for one-hot rows and class indices.
 */
const SOFTMAX_TOLERANCE = 3e-5;

async function assertMatchesReference(engine: Engine, c: Case64, label: string): Promise<void> {
  const got = await engine.valueAndGrad(toEngineProblem(c));
  const ref = valueAndGrad64(c);
  assert.ok(Math.abs(got.loss - ref.loss) <= TOLERANCE * Math.abs(ref.loss), `${label}: loss ${got.loss} vs ${ref.loss}`);
  const tolerance = c.loss.startsWith('softmax_cross_entropy') ? SOFTMAX_TOLERANCE : TOLERANCE;
  assert.equal(got.grads.length, c.params.length);
  got.grads.forEach((g, l) => {
    const refW = ref.grads[l]!.W.flat();
    assert.equal(g.W.rows, c.params[l]!.W.length, `${label}: dW[${l}] rows`);
    assert.equal(g.W.cols, c.params[l]!.W[0]!.length, `${label}: dW[${l}] cols`);
    const eW = relError(Array.from(g.W.data), refW);
    assert.ok(eW <= tolerance, `${label}: dW[${l}] relative error ${eW}`);
    const eb = relError(Array.from(g.b), ref.grads[l]!.b);
    assert.ok(eb <= tolerance, `${label}: db[${l}] relative error ${eb}`);
  });
  const loss = await engine.loss(toEngineProblem(c));
  assert.equal(loss.loss, got.loss, `${label}: /loss and /value-and-grad agree`);
}

const skips = await backendSkips();

for (const backend of BACKENDS) {
  describe(`engine on ${backend}`, { skip: skips[backend] }, () => {
    let engine: Engine;
    before(async () => {
      engine = await Engine.create({ backend, kernelCacheCapacity: 256 });
    });
    after(() => engine?.close());

    it('computes the XOR lesson as the float64 reference does', async () => {
      if (backend === 'webgpu') assert.match(engine.info().gpu, /^webgpu runs on a (software|hardware) adapter \(.+\)$/);
      await assertMatchesReference(engine, xorCase, 'xor');
      const { loss } = await engine.loss(toEngineProblem(xorCase));
      assert.ok(Math.abs(loss - 0.729988954) < 1e-6, `xor loss ${loss}`);
    });

    for (const activation of ACTIVATIONS) {
      it(`${activation} hidden layers: every loss and reduction match the reference`, async () => {
        const rand = rng(activation.length * 101);
        for (const loss of LOSSES) {
          // mse also runs the activation as the output activation, on the host
          const outputActivation = loss === 'mse' ? activation : undefined;
          for (const reduction of REDUCTIONS) {
            const c = randomCase(rand, { widths: [5, 7, 6, 2], batch: 9, activation, outputActivation, loss, reduction });
            await assertMatchesReference(engine, c, `${activation}/${loss}/${reduction}`);
          }
        }
        await assertMatchesReference(engine, randomCase(rand, { widths: [3, 4, 3], batch: 5, activation }), `${activation} 1 hidden`);
        // random values never hit z = 0 exactly; XOR's [0, 0] row does, where two biases are 0
        // (relu'(0) = 0 and leaky_relu'(0) = 1, as JAX differentiates them)
        await assertMatchesReference(engine, { ...xorCase, activation }, `${activation} xor, z = 0`);
      });
    }

    it('widths that are multiples of 4 (whole SIMD quads in the blocked kernels on webasm): every activation matches the reference', async () => {
      const rand = rng(404);
      for (const activation of ACTIVATIONS) {
        const c = randomCase(rand, { widths: [8, 12, 8, 1], batch: 9, activation });
        await assertMatchesReference(engine, c, `${activation} [8,12,8,1]`);
      }
    });

    it('wide layers (split into column tiles on webasm: forward, dZ_prev and dW) match the reference', async () => {
      // 512×160 weights are over the 256 KB that a webasm kernel streams untiled, and so is
      // dZ (420 × 160) for dW: forward runs in 5 tiles, dZ_prev in 8, dW in 5
      const c = randomCase(rng(808), { widths: [8, 512, 160, 1], batch: 420, activation: 'silu' });
      await assertMatchesReference(engine, c, 'silu [8,512,160,1]×420');
      // widths that are not multiples of 4, in kernels large enough for webasm's worker
      // threads: the threads' scalar code stores the packed results
      const odd = randomCase(rng(809), { widths: [7, 510, 150, 3], batch: 420, activation: 'tanh' });
      await assertMatchesReference(engine, odd, 'tanh [7,510,150,3]×420');
    });

    it('sums dW over a large batch without losing accuracy: 65536 identical rows, where each rounding adds up', async () => {
      // one layer of 8 inputs, W = 0.1, x = 1, y = 1: every row gives the same terms, so
      // float32 adds one after another (65536 of them) were 6e-4 off; partial sums are not
      // headlessgl holds a matrix in a texture, at most 16384 rows here
      const batch = backend === 'headlessgl' ? 16384 : 65536;
      const c: Case64 = {
        params: [{ W: Array.from({ length: 8 }, () => [0.1]), b: [0] }],
        x: Array.from({ length: batch }, () => Array(8).fill(1)),
        y: Array.from({ length: batch }, () => [1]),
        activation: 'tanh',
        outputActivation: 'sigmoid',
        loss: 'bce',
        reduction: 'mean',
      };
      await assertMatchesReference(engine, c, 'identical rows ×65536');
    });

    it('changes no gradient with a padding row whose forward pass overflows (3 rows, kernels for 4)', async () => {
      // a real row's first pre-activation is 1 × -1e20 + 1e20 = 0; the padding row's (its input
      // is 0) is 1e20, which the next layer takes to Inf. Its cotangent is 0, but 0 × Inf in
      // the batch sums of dW and db was NaN, in every gradient: the answer hung on the bucket
      const c: Case64 = {
        params: [
          { W: [[-1e20]], b: [1e20] },
          { W: [[1e20]], b: [0] },
          { W: [[1]], b: [0] },
        ],
        x: [[1], [1], [1]],
        y: [[0.5], [0.5], [0.5]],
        activation: 'gelu',
        outputActivation: 'linear',
        loss: 'mse',
        reduction: 'mean',
      };
      await assertMatchesReference(engine, c, 'padding row overflows');
    });

    it('softmax cross-entropy over 5 classes matches the reference, one-hot and class indices, mean and sum', async () => {
      for (const loss of ['softmax_cross_entropy', 'softmax_cross_entropy_with_integer_labels'] as const) {
        for (const reduction of REDUCTIONS) {
          const c = randomCase(rng(55), { widths: [6, 8, 5], batch: 12, activation: 'relu', loss, reduction });
          await assertMatchesReference(engine, c, `5 classes, ${loss}, ${reduction}`);
        }
      }
    });

    it('forward returns the predictions of the float64 reference, batch × out', async () => {
      const c = randomCase(rng(11), { widths: [4, 6, 3], batch: 7, activation: 'gelu', outputActivation: 'softplus' });
      const { predictions } = await engine.forward(toEngineProblem(c));
      assert.deepEqual([predictions.rows, predictions.cols], [7, 3]);
      const e = relError(Array.from(predictions.data), predict64(c).flat());
      assert.ok(e <= TOLERANCE, `predictions relative error ${e}`);
    });

    it('matches the reference on random networks (1–4 layers, widths ≤ 48, batches ≤ 257)', async () => {
      const rand = rng(2026);
      for (let k = 0; k < 6; k++) {
        const depth = 1 + Math.floor(rand() * 4);
        const widths = Array.from({ length: depth + 1 }, (_, i) =>
          i === depth ? 1 + Math.floor(rand() * 3) : 1 + Math.floor(rand() * 48),
        );
        const batch = 1 + Math.floor(rand() * 257);
        const activation = rand() < 0.5 ? 'tanh' : 'relu';
        await assertMatchesReference(
          engine,
          randomCase(rand, { widths, batch, activation }),
          `net ${widths.join('-')}×${batch} ${activation}`,
        );
      }
    });

    it('reduction "sum" equals "mean" times the element count', async () => {
      const c = randomCase(rng(5), { widths: [4, 6, 2], batch: 10, activation: 'tanh' });
      const mean = await engine.valueAndGrad(toEngineProblem(c));
      const sum = await engine.valueAndGrad(toEngineProblem({ ...c, reduction: 'sum' }));
      const count = 10 * 2;
      assert.ok(Math.abs(sum.loss - mean.loss * count) <= 1e-5 * Math.abs(sum.loss));
      sum.grads.forEach((g, l) => {
        const scaled = Array.from(mean.grads[l]!.W.data, (v) => v * count);
        assert.ok(relError(Array.from(g.W.data), scaled) <= 1e-5, `dW[${l}]`);
        assert.ok(
          relError(
            Array.from(g.b),
            Array.from(mean.grads[l]!.b, (v) => v * count),
          ) <= 1e-5,
          `db[${l}]`,
        );
      });
      await assertMatchesReference(engine, { ...c, reduction: 'sum' }, 'sum');
    });

    it("gives JAX's NaN/Infinity when the output sigmoid saturates to 1.0 in float32", async () => {
      // z = 20 > 16.6: sigmoid(z) is exactly 1.0 in float32, so log(1 - p) = log(0)
      const saturated: Case64 = { ...xorCase, params: [{ W: [[20]], b: [0] }], x: [[1], [0]], y: [[0], [1]] };
      const r = await engine.valueAndGrad(toEngineProblem(saturated));
      assert.equal(r.loss, Infinity); // y = 0: -(log(1 - 1)) = +inf
      assert.equal(r.head.saturatedHigh, 1);
      // ct_pred = +inf through the clip's tie (×0.5), then sigmoid' = 1·(1 − 1) = 0: inf · 0 = NaN
      assert.ok(Number.isNaN(r.grads[0]!.W.data[0]!));
      assert.ok(Number.isNaN(r.grads[0]!.b[0]!));
      const yOne = await engine.loss(toEngineProblem({ ...saturated, y: [[1], [1]] }));
      assert.ok(Number.isNaN(yOne.loss)); // y = 1: 0 · log(0) = NaN
      // just below the saturation threshold everything is finite
      const fine = await engine.valueAndGrad(toEngineProblem({ ...saturated, params: [{ W: [[16]], b: [0] }] }));
      assert.ok(Number.isFinite(fine.loss) && fine.grads.every((g) => g.W.data.every(Number.isFinite)));
    });

    it('compiles the kernels of a shape once, and reuses them for other batch sizes in the same bucket', async () => {
      const fresh = await Engine.create({ backend, kernelCacheCapacity: 64 });
      try {
        const c = randomCase(rng(9), { widths: [3, 5, 1], batch: 20, activation: 'tanh' });
        const first = await fresh.valueAndGrad(toEngineProblem(c));
        assert.equal(first.stats.compiled.length, 5); // 2 forward, 2 dW, 1 dZ (db is summed on the host)
        const second = await fresh.valueAndGrad(toEngineProblem(c));
        assert.equal(second.stats.compiled.length, 0);
        const c2 = randomCase(rng(10), { widths: [3, 5, 1], batch: 19, activation: 'tanh' }); // bucket 20 too
        const third = await fresh.valueAndGrad(toEngineProblem(c2));
        assert.equal(third.stats.compiled.length, 0);
        const stats = fresh.info().kernelCache;
        assert.equal(stats.compiles, 5);
        assert.equal(stats.hits, 10);
      } finally {
        await fresh.close();
      }
    });
  });
}
