import assert from 'node:assert/strict';
import type { Base64Tensor, ValueAndGradResponse } from '../../client/index.js';
import { type Case64, relError, valueAndGrad64 } from '../reference/mlp64.js';

/** Every tensor of an answer as a flat list of numbers, whatever its encoding. */
export function flatGrads(r: ValueAndGradResponse): number[][] {
  const flat = (t: unknown): number[] => {
    if (Array.isArray(t)) return (t.flat() as unknown[]).map(Number);
    const { data } = t as Base64Tensor;
    const bytes = Buffer.from(data, 'base64');
    return Array.from({ length: bytes.length / 4 }, (_, i) => bytes.readFloatLE(i * 4));
  };
  return r.grads.flatMap((g) => [flat(g.W), flat(g.b)]);
}

/** The float64 reference of a case, computed once however often it is compared (large cases take seconds). */
const references = new WeakMap<Case64, ReturnType<typeof valueAndGrad64>>();
function reference(c: Case64): ReturnType<typeof valueAndGrad64> {
  const ref = references.get(c) ?? valueAndGrad64(c);
  references.set(c, ref);
  return ref;
}

/** Sharded vs single (float32 rounding apart) and vs the float64 reference, tensor by tensor. */
export function assertSameAnswer(got: ValueAndGradResponse, single: ValueAndGradResponse, c: Case64): void {
  const ref = reference(c);
  const refTensors = ref.grads.flatMap((g) => [g.W.flat(), g.b]);
  const gotTensors = flatGrads(got);
  const singleTensors = flatGrads(single);
  assert.ok(
    Math.abs(Number(got.loss) - Number(single.loss)) <= 1e-6 * Math.abs(Number(single.loss)),
    `loss ${got.loss} vs single ${single.loss}`,
  );
  assert.ok(Math.abs(Number(got.loss) - ref.loss) <= 1e-5 * Math.abs(ref.loss), `loss ${got.loss} vs float64 ${ref.loss}`);
  assert.deepEqual(
    gotTensors.map((t) => t.length),
    refTensors.map((t) => t.length),
    'the same tensors, of the same sizes, as the reference',
  );
  assert.deepEqual(
    singleTensors.map((t) => t.length),
    refTensors.map((t) => t.length),
  );
  refTensors.forEach((r, k) => {
    assert.ok(relError(gotTensors[k]!, singleTensors[k]!) <= 1e-5, `tensor ${k} vs single: ${relError(gotTensors[k]!, singleTensors[k]!)}`);
    assert.ok(relError(gotTensors[k]!, r) <= 1e-5, `tensor ${k} vs float64: ${relError(gotTensors[k]!, r)}`);
  });
}
