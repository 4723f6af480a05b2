import type { HeadReport, LayerGrad, Matrix } from '../engine/types.js';
import { type OutputEncoding, toBase64Tensor } from './tensors.js';

/** JSON has no NaN or Infinity: write them as strings, and tell the caller that it happened. */
export type JsonNumber = number | 'NaN' | 'Infinity' | '-Infinity';
type Base64Tensor = ReturnType<typeof toBase64Tensor>;

/** A finite value as it is, a non-finite one as its JSON string. */
const jsonNumber = (v: number): JsonNumber => (Number.isFinite(v) ? v : Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity');

/** A JSON tensor as its float32 values until sendAnswer writes it out (unpackTensors). */
interface PackedTensor {
  packedFloat32: Float32Array;
  /** [rows, cols] for a matrix, absent for a vector */
  shape?: [number, number];
}
const isPacked = (v: object): v is PackedTensor => (v as PackedTensor).packedFloat32 instanceof Float32Array;

/**
 * Writes a result's numbers and tensors in the encoding the client asked for, counting
 * the values that are not finite so that warnings() can say what happened. A JSON tensor
 * stays its float32 values (typed as the arrays of numbers it becomes) until sendAnswer
 * writes it out with unpackTensors, once: on the event loop for a small answer, in a JSON
 * thread for a large one, which receives a Float32Array as one copy of its bytes where
 * arrays of numbers are cloned value by value (3–5 ms per M answer; building the arrays of
 * an L answer on the event loop alone took 3–18 ms; bench/RESULTS.md).
 */
export class ResultEncoder {
  nonFinite = 0;
  /** how many values were written: large answers are written off the event loop (json-body.ts) */
  values = 0;
  /** when encoding began: Server-Timing's write covers the encoding too (sendAnswer) */
  readonly startedAt = performance.now();

  constructor(readonly encoding: OutputEncoding = 'json') {}

  number(v: number): JsonNumber {
    this.values++;
    if (!Number.isFinite(v)) this.nonFinite++;
    return jsonNumber(v);
  }

  vector(v: Float32Array): JsonNumber[] | Base64Tensor {
    if (this.encoding === 'base64') return this.binary([v.length], v);
    return this.packed(v) as unknown as JsonNumber[];
  }

  matrix(m: Matrix): JsonNumber[][] | Base64Tensor {
    if (this.encoding === 'base64') return this.binary([m.rows, m.cols], m.data);
    return this.packed(m.data, [m.rows, m.cols]) as unknown as JsonNumber[][];
  }

  /** A parameter or gradient tree: [{W, b}, ...]. */
  layers(layers: LayerGrad[]): { W: JsonNumber[][] | Base64Tensor; b: JsonNumber[] | Base64Tensor }[] {
    return layers.map((g) => ({ W: this.matrix(g.W), b: this.vector(g.b) }));
  }

  private packed(data: Float32Array, shape?: [number, number]): PackedTensor {
    this.count(data);
    // a view is cloned with its whole buffer on the way to a thread: keep only its own values
    const own = data.byteLength === data.buffer.byteLength ? data : data.slice();
    return shape ? { packedFloat32: own, shape } : { packedFloat32: own };
  }

  /**
   * Binary tensors carry NaN and ±Infinity as float32 bits; they are still counted for the
   * warnings. Every NaN is written as the one quiet NaN (0x7fc00000): its sign and payload
   * depend on which operation made it (x86's own NaN is negative), so that the same answer
   * comes in the same bytes. Rewritten in place: `data` is the result's own, written once.
   */
  private binary(shape: number[], data: Float32Array): Base64Tensor {
    if (this.count(data) > 0) for (let i = 0; i < data.length; i++) if (Number.isNaN(data[i]!)) data[i] = Number.NaN;
    return toBase64Tensor(shape, data);
  }

  /** Counts `v`'s values, and those not finite; returns how many of its own are not. */
  private count(v: Float32Array): number {
    this.values += v.length;
    let nonFinite = 0;
    for (let i = 0; i < v.length; i++) if (!Number.isFinite(v[i]!)) nonFinite++;
    this.nonFinite += nonFinite;
    return nonFinite;
  }

  /** What to tell the client of a likely mistake in its input or of results that are not finite; undefined when there is nothing to say. */
  warnings(head?: HeadReport, extra: string[] = []): string[] | undefined {
    const warnings: string[] = [...extra];
    // likely mistakes that JAX would compute without a word: said, not refused
    const useLogits = 'With a linear or relu output use "loss": "bce_logits", or "outputActivation": "sigmoid".';
    if (head && head.predictionsBelowZero > 0) {
      warnings.push(
        `${head.predictionsBelowZero} of ${head.count} predictions are below 0, where bce's clip holds them at 1e-8 (and ` +
          `their gradient is 0): bce takes probabilities. ${useLogits}`,
      );
    }
    if (head && head.stuckAtLowClip > 0) {
      // a sigmoid output already is one: what helps is the loss on its pre-activations
      const advice =
        head.outputActivation === 'sigmoid'
          ? 'Use "loss": "bce_logits" with a linear output: the same loss from the pre-activations, whose gradient, sigmoid(z) − y, never vanishes.'
          : useLogits;
      warnings.push(
        `${head.stuckAtLowClip} of ${head.count} predictions are below 1e-8 for targets above 0 (a relu output's 0, or a ` +
          "sigmoid below about -18.4): bce's clip holds them at 1e-8, where their gradient is 0, so they cannot move " +
          `towards their targets; JAX computes the same. ${advice}`,
      );
    }
    if (head && head.predictionsAboveOne > 0) {
      warnings.push(
        `${head.predictionsAboveOne} of ${head.count} predictions are above 1: bce takes probabilities, and its clip cannot ` +
          `hold them below 1.0 in float32, so log(1 - p) = log(0) and the results are not finite. ${useLogits}`,
      );
    }
    if (head && head.targetsOutsideUnit > 0) {
      warnings.push(
        `${head.targetsOutsideUnit} of ${head.count} targets lie outside [0, 1]: bce, bce_logits and softmax_cross_entropy take ` +
          'labels in [0, 1] (for -1/+1 labels send (y + 1) / 2). The loss is computed as JAX computes it, but it is no longer a cross-entropy.',
      );
    }
    if (head && head.targetRowsNotSummingToOne > 0) {
      warnings.push(
        `${head.targetRowsNotSummingToOne} of ${head.rows} rows of targets do not sum to 1: softmax_cross_entropy takes a probability ` +
          'distribution per row (one-hot for class labels). The loss is computed as JAX computes it, but it is no longer a cross-entropy.',
      );
    }
    if (this.nonFinite === 0) return warnings.length > 0 ? warnings : undefined;
    if (head && head.saturatedHigh > 0) {
      warnings.push(
        `${head.saturatedHigh} of ${head.count} predictions are exactly 1.0 in float32 (a sigmoid saturates for ` +
          "pre-activations above about 16.6), and bce's clip(p, 1e-8, 1 - 1e-8) cannot help because 1 - 1e-8 " +
          'rounds to 1.0 in float32: log(1 - p) = log(0). JAX returns the same NaN/Infinity. Use "loss": "bce_logits" ' +
          'with a linear output ("outputActivation": "linear", or left out): the same loss computed from the ' +
          "pre-activations, which never overflows. Or scale down the last layer's " +
          'weights or inputs to keep its pre-activations below about 16.',
      );
    }
    const written =
      this.encoding === 'base64' ? 'NaN or ±Infinity in the binary tensors' : 'in JSON written as "NaN", "Infinity" or "-Infinity"';
    warnings.push(
      `${this.nonFinite} result value${this.nonFinite > 1 ? 's are' : ' is'} not finite (${written}); float32 overflowed or took log(0), as it would in JAX.`,
    );
    return warnings;
  }
}

function jsonNumbers(v: Float32Array): JsonNumber[] {
  const out: JsonNumber[] = new Array(v.length);
  for (let i = 0; i < v.length; i++) out[i] = jsonNumber(v[i]!);
  return out;
}

/** An answer built by a ResultEncoder, its JSON tensors written out as arrays of JSON numbers. */
export function unpackTensors(value: unknown): unknown {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value)) return value.map(unpackTensors);
  if (isPacked(value)) {
    const { packedFloat32: data, shape } = value;
    if (!shape) return jsonNumbers(data);
    const [rows, cols] = shape;
    const out: JsonNumber[][] = new Array(rows);
    for (let r = 0; r < rows; r++) out[r] = jsonNumbers(data.subarray(r * cols, (r + 1) * cols));
    return out;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) out[k] = unpackTensors(v);
  return out;
}
