import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { activationOps } from '../../src/engine/ops/activations.js';
import type { Activation } from '../../src/engine/types.js';

const require = createRequire(import.meta.url);
const { GPU } = require('gpu.js') as typeof import('gpu.js');

/**
 * The webasm kernels' own tanh, exp and expm1 (float32 arithmetic, no calls out of
 * WebAssembly) against float64 Math, element by element: the network tests compare whole
 * gradients at 1e-5, which a slightly wrong polynomial can pass. The error is taken
 * relative to the size of the terms each formula adds, `scale`: where float32 cancels
 * (gelu's 1 + tanh(u) for z ≪ 0, silu's 1 − s for z ≫ 0, softplus's z − out) JAX's
 * float32 result has only that accuracy too.
 */
const C = Math.sqrt(2 / Math.PI);
const K = 0.044715;
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const geluT = (z: number) => Math.tanh(C * (z + K * z ** 3));
interface Check {
  act: Activation;
  derivative?: boolean;
  ref: (z: number) => number;
  scale: (z: number) => number;
}
const CHECKS: Check[] = [
  { act: 'tanh', ref: Math.tanh, scale: () => 0 },
  { act: 'sigmoid', ref: sigmoid, scale: () => 0 },
  { act: 'silu', ref: (z) => z * sigmoid(z), scale: () => 0 },
  { act: 'elu', ref: (z) => (z > 0 ? z : Math.expm1(z)), scale: () => 0 },
  { act: 'softplus', ref: (z) => Math.max(z, 0) + Math.log1p(Math.exp(-Math.abs(z))), scale: () => 0 },
  // JAX's rule exp(z − out): float32's z − out is off by up to half an ulp of z
  { act: 'softplus', derivative: true, ref: sigmoid, scale: (z) => Math.abs(z) * sigmoid(z) },
  { act: 'gelu', ref: (z) => z * 0.5 * (1 + geluT(z)), scale: Math.abs },
  {
    act: 'gelu',
    derivative: true,
    ref: (z) => 0.5 * (1 + geluT(z)) + z * 0.5 * (1 - geluT(z) ** 2) * C * (1 + 3 * K * z * z),
    scale: (z) => 1 + Math.abs(z) * (1 + 3 * K * z * z),
  },
  { act: 'silu', derivative: true, ref: (z) => sigmoid(z) * (1 + z * (1 - sigmoid(z))), scale: (z) => 1 + Math.abs(z) },
];
const ULP = 2 ** -24;

// ±87 (where float32 exp stays finite and normal), a fine grid near 0, and tiny values
const N = 40_000;
const zs = Float32Array.from({ length: N }, (_, i) => {
  if (i < 30_000) return -87 + (174 * i) / 30_000;
  if (i < 39_000) return -2 + (4 * (i - 30_000)) / 9_000;
  return (i % 2 ? 1 : -1) * 10 ** (-(i % 30) - 1);
});

function worstError(got: Float32Array, { ref, scale }: Check): { error: number; at: number } {
  let worst = { error: 0, at: 0 };
  for (let i = 0; i < N; i++) {
    const z = zs[i]!;
    const want = ref(z);
    const error = Math.abs(got[i]! - want) / Math.max(Math.abs(want), scale(z), 1e-30);
    if (error > worst.error) worst = { error, at: z };
  }
  return worst;
}

describe('webasm activations in float32 arithmetic', () => {
  const gpu = new GPU({ mode: 'webasm' });
  const run = async (body: string) =>
    (await gpu.createKernel(`function(zs) { let z = zs[this.thread.x]; ${body} }`, {
      output: [N],
      tactic: 'precision',
      precision: 'single',
    })(zs)) as Float32Array;

  for (const check of CHECKS) {
    const { act, derivative } = check;
    it(`${act}${derivative ? "'s derivative" : ''} is within 8 float32 ulp of float64 Math`, async () => {
      const op = activationOps[act];
      const body = derivative ? op.kernelBackwardWasm!('1', 'z') : op.kernelForwardWasm!('z');
      const { error, at } = worstError(await run(body), check);
      assert.ok(error <= 8 * ULP, `${act}${derivative ? "'" : ''}: error ${error} (${(error / ULP).toFixed(1)} ulp) at ${at}`);
    });
  }
});
