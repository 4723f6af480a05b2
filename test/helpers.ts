import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import type { Activation, Loss, Matrix, Problem, Reduction } from '../src/engine/types.js';
import { xorRequest } from '../src/http/request-examples.js';
import { type Case64, relError } from './reference/mlp64.js';

/** mulberry32: a small seeded PRNG, so every test case is reproducible. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Values already rounded to float32, so the engine and the float64 reference see the same inputs. */
const f32 = Math.fround;

export function randomMatrix(rand: () => number, rows: number, cols: number, scale: number): number[][] {
  return Array.from({ length: rows }, () => Array.from({ length: cols }, () => f32((rand() * 2 - 1) * scale)));
}

export interface RandomCaseOptions {
  widths: number[]; // [in, hidden..., out]
  batch: number;
  activation: Activation;
  outputActivation?: Activation;
  loss?: Loss;
  reduction?: Reduction;
}

export function randomCase(rand: () => number, o: RandomCaseOptions): Case64 {
  const params = o.widths.slice(1).map((out, l) => {
    const inDim = o.widths[l]!;
    return { W: randomMatrix(rand, inDim, out, 1.5 / Math.sqrt(inDim)), b: randomMatrix(rand, 1, out, 0.2)[0]! };
  });
  const x = randomMatrix(rand, o.batch, o.widths[0]!, 1);
  const loss = o.loss ?? 'bce';
  const out = o.widths.at(-1)!;
  // classification targets are 0 or 1 (one-hot rows for softmax); regression targets anywhere in [-1, 1]
  const target = loss === 'mse' ? () => f32(rand() * 2 - 1) : () => (rand() < 0.5 ? 0 : 1);
  const oneHot = () => {
    const k = Math.floor(rand() * out);
    return Array.from({ length: out }, (_, j) => (j === k ? 1 : 0));
  };
  const y = Array.from({ length: o.batch }, () => {
    if (loss === 'softmax_cross_entropy') return oneHot();
    if (loss === 'softmax_cross_entropy_with_integer_labels') return [Math.floor(rand() * out)];
    return Array.from({ length: out }, target);
  });
  return {
    params,
    x,
    y,
    activation: o.activation,
    outputActivation: o.outputActivation ?? (loss === 'bce' ? 'sigmoid' : 'linear'),
    loss,
    reduction: o.reduction ?? 'mean',
  };
}

export function matrix(rows: number[][]): Matrix {
  return { rows: rows.length, cols: rows[0]!.length, data: Float32Array.from(rows.flat()) };
}

export function toEngineProblem(c: Case64): Problem {
  return {
    layers: c.params.map((p) => ({ W: matrix(p.W), b: Float32Array.from(p.b) })),
    x: matrix(c.x),
    y: matrix(c.y),
    activation: c.activation,
    outputActivation: c.outputActivation,
    loss: c.loss,
    reduction: c.reduction,
  };
}

/** The XOR lesson request (README's quick start), as the API documents it. */
export const xorCase: Case64 = JSON.parse(JSON.stringify(xorRequest));

/** Everything `socket` receives until it closes, as text. */
export function receivedUntilClose(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    socket.on('data', (d: Buffer) => {
      got += d.toString('latin1');
    });
    socket.on('close', () => resolve(got));
    socket.on('error', reject);
  });
}

/** A binary tensor as a client builds one: float32, little-endian, row-major, base64. */
export const binary = (shape: number[], values: readonly number[]) => ({
  dtype: 'float32' as const,
  shape,
  data: Buffer.from(Float32Array.from(values).buffer).toString('base64'),
});

/** A case with every tensor binary: what a client sends to keep parsing cheap. */
export const binaryCase = (c: Case64) => ({
  ...c,
  params: c.params.map((p) => ({ W: binary([p.W.length, p.W[0]!.length], p.W.flat()), b: binary([p.b.length], p.b) })),
  x: binary([c.x.length, c.x[0]!.length], c.x.flat()),
  y: binary([c.y.length, c.y[0]!.length], c.y.flat()),
});

type Grads = { W: number[][]; b: number[] }[];

/** A JSON answer's gradient tree against the float64 reference's: as many layers, and each W and b within `tolerance`. */
export function assertGradsMatch(grads: Grads, reference: Grads, label = '', tolerance = 1e-5): void {
  assert.equal(grads.length, reference.length, `${label} layers`);
  grads.forEach((g, l) => {
    assert.ok(relError(g.W.flat(), reference[l]!.W.flat()) <= tolerance, `${label} dW[${l}]`);
    assert.ok(relError(g.b, reference[l]!.b) <= tolerance, `${label} db[${l}]`);
  });
}
