import type { HeadReport, LayerGrad, Matrix } from '../engine/types.js';
import { type OutputEncoding, toBase64Tensor } from './tensors.js';

/** JSON has no NaN or Infinity: write them as strings, and tell the caller that it happened. */
export type JsonNumber = number | 'NaN' | 'Infinity' | '-Infinity';
type Base64Tensor = ReturnType<typeof toBase64Tensor>;

/**
 * Writes a result's numbers and tensors in the encoding the client asked for, counting
 * the values that are not finite so that warnings() can say what happened.
 */
export class ResultEncoder {
  nonFinite = 0;
  /** how many values were written: large answers are written off the event loop (json-body.ts) */
  values = 0;

  constructor(readonly encoding: OutputEncoding = 'json') {}

  number(v: number): JsonNumber {
    this.values++;
    if (Number.isFinite(v)) return v;
    this.nonFinite++;
    if (Number.isNaN(v)) return 'NaN';
    return v > 0 ? 'Infinity' : '-Infinity';
  }

  vector(v: Float32Array): JsonNumber[] | Base64Tensor {
    if (this.encoding === 'base64') return this.binary([v.length], v);
    return this.numbers(v);
  }

  matrix(m: Matrix): JsonNumber[][] | Base64Tensor {
    if (this.encoding === 'base64') return this.binary([m.rows, m.cols], m.data);
    const out: JsonNumber[][] = new Array(m.rows);
    for (let r = 0; r < m.rows; r++) out[r] = this.numbers(m.data.subarray(r * m.cols, (r + 1) * m.cols));
    return out;
  }

  /** A parameter or gradient tree: [{W, b}, ...]. */
  layers(layers: LayerGrad[]): { W: JsonNumber[][] | Base64Tensor; b: JsonNumber[] | Base64Tensor }[] {
    return layers.map((g) => ({ W: this.matrix(g.W), b: this.vector(g.b) }));
  }

  private numbers(v: Float32Array): JsonNumber[] {
    const out: JsonNumber[] = new Array(v.length);
    for (let i = 0; i < v.length; i++) out[i] = this.number(v[i]!);
    return out;
  }

  /** Binary tensors carry NaN and ±Infinity as float32 bits; they are still counted for the warnings. */
  private binary(shape: number[], data: Float32Array): Base64Tensor {
    this.values += data.length;
    for (let i = 0; i < data.length; i++) if (!Number.isFinite(data[i]!)) this.nonFinite++;
    return toBase64Tensor(shape, data);
  }

  /** What to tell the client when something came out non-finite; undefined when all is finite. */
  warnings(head?: HeadReport, extra: string[] = []): string[] | undefined {
    if (this.nonFinite === 0) return undefined;
    const warnings: string[] = [...extra];
    if (head && head.saturatedHigh > 0) {
      warnings.push(
        `${head.saturatedHigh} of ${head.count} predictions are exactly 1.0 in float32 (a sigmoid saturates for ` +
          "pre-activations above about 16.6), and bce's clip(p, 1e-8, 1 - 1e-8) cannot help because 1 - 1e-8 " +
          'rounds to 1.0 in float32: log(1 - p) = log(0). JAX returns the same NaN/Infinity. Use "loss": "bce_logits" ' +
          "(the same loss computed from the pre-activations, which never overflows), or scale down the last layer's " +
          'weights or inputs to keep its pre-activations below about 16.',
      );
    }
    warnings.push(
      `${this.nonFinite} result value${this.nonFinite > 1 ? 's are' : ' is'} not finite (in JSON written as "NaN", ` +
        '"Infinity" or "-Infinity"); float32 overflowed or took log(0), as it would in JAX.',
    );
    return warnings;
  }
}
