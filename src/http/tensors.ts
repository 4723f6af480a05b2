import { FLOAT32_OVERFLOW } from '../engine/float32.js';
import type { Matrix } from '../engine/types.js';
import { z } from './zod.js';

/**
 * Tensors in requests and responses. Wherever the API takes a matrix or a vector it also
 * takes a binary tensor, `{"dtype": "float32", "shape": [rows, cols], "data": "<base64>"}`
 * (little-endian, row-major), which is much smaller and faster to parse than JSON numbers.
 * Both forms are normalised into one `Tensor` during validation, so nothing downstream
 * knows which one the client sent.
 */
export interface Tensor {
  /** [n] for a vector, [rows, cols] for a matrix */
  shape: number[];
  data: Float32Array;
}

// Base64 tensors are the host's float32 bytes; every platform Node supports in production
// (x86-64, arm64) is little-endian. Refuse to start anywhere else rather than answer wrongly.
if (new Uint8Array(new Float32Array([1]).buffer)[3] !== 0x3f) throw new Error('gradserve needs a little-endian host');

export const Base64Tensor = z
  .strictObject({
    dtype: z.literal('float32').describe('Element type; float32 only.'),
    shape: z.array(z.number().int().min(1)).min(1).max(2).describe('[n] for a vector, [rows, cols] for a matrix; each at least 1.'),
    data: z.string().describe('Base64 (RFC 4648, padded) of the values as little-endian float32, row by row.'),
  })
  .meta({ examples: [{ dtype: 'float32', shape: [2, 2], data: 'AACAPwAAAEAAAEBAAACAQA==' }] })
  .describe('A binary tensor: float32 values, base64-encoded.');
type Base64TensorIn = z.infer<typeof Base64Tensor>;

type Ctx = z.core.$RefinementCtx<unknown>;
type Path = (string | number)[];
const problem = (ctx: Ctx, path: Path, message: string) => ctx.addIssue({ code: 'custom', path, message });

/** "1 column", "3 columns": for the counts in error messages */
export const plural = (n: number, noun: string, nouns = `${noun}s`) => `${n} ${n === 1 ? noun : nouns}`;

function fromBase64(t: Base64TensorIn, ranks: number[], ctx: Ctx): Tensor | undefined {
  if (!ranks.includes(t.shape.length)) {
    const wanted = ranks.map((r) => (r === 1 ? '[n]' : '[rows, cols]')).join(' or ');
    problem(ctx, ['shape'], `has ${plural(t.shape.length, 'dimension')}; this field takes ${wanted}`);
    return undefined;
  }
  const count = t.shape.reduce((a, b) => a * b, 1);
  const length = paddedBase64Length(t.data);
  // Where the sizes agree (a well-formed tensor), decoded straight into the tensor's own memory
  // through a Buffer view of it: decoding to a Buffer first, then copying (its pooled memory
  // may not be 4-byte aligned), cost one allocation and copy more, 12.8 MB for L's x.
  const data = length === count * 4 && count > 0 ? new Float32Array(count) : undefined;
  const decoded = data ? Buffer.from(data.buffer).write(t.data, 'base64') : Buffer.from(t.data, 'base64').length;
  if (decoded !== length) {
    problem(ctx, ['data'], 'is not padded base64 (RFC 4648: A–Z, a–z, 0–9, +, /, = at the end)');
    return undefined;
  }
  if (decoded !== count * 4) {
    // a shape of billions by billions needs more bytes than a double counts exactly: 7.38e+19, not 73786976294838210000
    const needs = Number.isSafeInteger(count * 4) ? String(count * 4) : (count * 4).toExponential(2);
    problem(ctx, ['data'], `holds ${decoded} bytes; shape ${JSON.stringify(t.shape)} needs ${needs} (4 per float32)`);
    return undefined;
  }
  if (!data) {
    problem(ctx, ['shape'], 'describes no values; a tensor needs at least one'); // the schema refuses a 0 before this
    return undefined;
  }
  for (let i = 0; i < count; i++) {
    if (!Number.isFinite(data[i]!)) {
      problem(ctx, ['data'], `has a value that is not finite at index ${i}; inputs must be finite numbers`);
      return undefined;
    }
  }
  return { shape: t.shape, data };
}

/**
 * How many bytes `text` holds if it is padded RFC 4648 base64, or -1 when its length or
 * alphabet says it is not. Node's decoder skips characters outside its alphabets, stops at '='
 * and also takes the URL-safe '-' and '_': a text used in full decodes to exactly 3 bytes per 4
 * characters less its padding, so a decode that gives this many bytes used all of it, and
 * only '-' and '_' are left to refuse here. (Scans, not re-encoding megabytes to compare.)
 * Non-zero bits before the padding are accepted, as RFC 4648 §3.5 allows; they carry no value.
 */
function paddedBase64Length(text: string): number {
  if (text.length % 4 !== 0 || text.includes('-') || text.includes('_')) return -1;
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  return (text.length / 4) * 3 - pad;
}

function fromJsonRows(rows: number[][], ctx: Ctx): Tensor | undefined {
  if (rows.length === 0) {
    problem(ctx, [], 'is empty; it needs at least one row');
    return undefined;
  }
  const cols = rows[0]!.length;
  if (cols === 0) {
    problem(ctx, [0], 'is empty; rows need at least one entry');
    return undefined;
  }
  const data = new Float32Array(rows.length * cols);
  for (let r = 0; r < rows.length; r++) {
    const row = rows[r]!;
    if (row.length !== cols) {
      problem(ctx, [r], `has ${plural(row.length, 'entry', 'entries')}; row 0 has ${cols}`);
      return undefined;
    }
    // one pass that checks and copies: Float32Array.set from a JS array took 3 ms of an M body
    for (let c = 0, i = r * cols; c < cols; c++, i++) {
      const v = row[c]!;
      if (Math.abs(v) >= FLOAT32_OVERFLOW) {
        problem(ctx, [r, c], FLOAT32_RANGE);
        return undefined;
      }
      data[i] = v;
    }
  }
  return { shape: [rows.length, cols], data };
}

function fromList(values: number[], ctx: Ctx): Tensor | undefined {
  const bad = outOfRange(values);
  if (bad >= 0) {
    problem(ctx, [bad], FLOAT32_RANGE);
    return undefined;
  }
  return { shape: [values.length], data: Float32Array.from(values) };
}

export const FLOAT32_RANGE = "is outside float32's range: it would round to ±Infinity (float32's largest is 3.4028235e38)";

function outOfRange(values: number[]): number {
  for (let i = 0; i < values.length; i++) if (Math.abs(values[i]!) >= FLOAT32_OVERFLOW) return i;
  return -1;
}

const JsonVector = z.array(z.number()).describe('A list of finite numbers (rounded to float32).');
const JsonMatrix = z.array(JsonVector).describe('A list of rows, all of the same length.');

/** A matrix field: rows of numbers, or a binary tensor of shape [rows, cols]. */
export const MatrixIn = z
  .union([JsonMatrix, Base64Tensor], { error: 'expected a list of rows of numbers, or a binary tensor' })
  .transform((v, ctx) => {
    const t = Array.isArray(v) ? fromJsonRows(v, ctx) : fromBase64(v, [2], ctx);
    return t ?? z.NEVER;
  });

/** A vector field: a list of numbers, or a binary tensor of shape [n]. */
export const VectorIn = z
  .union([JsonVector, Base64Tensor], { error: 'expected a list of numbers, or a binary tensor' })
  .transform((v, ctx) => {
    const t = Array.isArray(v) ? fromList(v, ctx) : fromBase64(v, [1], ctx);
    return t ?? z.NEVER;
  });

/** Targets: a matrix, or a flat list (one output); as JSON or as a binary tensor. */
export const TargetsIn = z
  .union([JsonMatrix, JsonVector, Base64Tensor], { error: 'expected a list of rows, a flat list of numbers, or a binary tensor' })
  .transform((v, ctx) => {
    if (!Array.isArray(v)) return fromBase64(v, [1, 2], ctx) ?? z.NEVER;
    if (v.length > 0 && v.some((e) => Array.isArray(e) !== Array.isArray(v[0]))) {
      problem(ctx, [], 'mixes numbers and rows; send all rows or all numbers');
      return z.NEVER;
    }
    const t = Array.isArray(v[0]) ? fromJsonRows(v as number[][], ctx) : fromList(v as number[], ctx);
    return t ?? z.NEVER;
  });

export const asMatrix = (t: Tensor): Matrix => ({ rows: t.shape[0]!, cols: t.shape[1] ?? 1, data: t.data });

/** Responses: every tensor as JSON numbers (the default) or as a binary tensor. */
export const OUTPUT_ENCODINGS = ['json', 'base64'] as const;
export type OutputEncoding = (typeof OUTPUT_ENCODINGS)[number];

export function toBase64Tensor(shape: number[], data: Float32Array): Base64TensorIn {
  return { dtype: 'float32', shape, data: Buffer.from(data.buffer, data.byteOffset, data.byteLength).toString('base64') };
}
