import type { Matrix } from './types.js';

/** V8 keeps typed arrays of at most this many bytes inside its heap (typed_array_max_size_in_heap) */
const ON_HEAP_BYTES = 64;

/**
 * The rows of a matrix, padded with zero rows up to `rows`, as gpu.js reads 2-D arguments:
 * views (no copy), or copies for a small matrix. V8 keeps typed arrays of up to 64 bytes
 * inside its heap, and the first view of one moves its bytes out to a buffer of their own,
 * which cost more than copying them (bench/RESULTS.md).
 */
export function toRows(m: Matrix, rows = m.rows): Float32Array[] {
  const out: Float32Array[] = [];
  const copy = m.data.byteLength <= ON_HEAP_BYTES;
  for (let r = 0; r < m.rows; r++) {
    out.push(copy ? m.data.slice(r * m.cols, (r + 1) * m.cols) : m.data.subarray(r * m.cols, (r + 1) * m.cols));
  }
  if (rows > m.rows) {
    const zero = new Float32Array(m.cols); // kernels only read their arguments
    for (let r = m.rows; r < rows; r++) out.push(zero);
  }
  return out;
}

/** The first `rows` rows of a kernel's 2-D result, as one row-major matrix. */
export function fromRows(rowArrays: Float32Array[], rows: number, cols: number): Matrix {
  const data = new Float32Array(rows * cols);
  for (let r = 0; r < rows; r++) {
    const row = rowArrays[r] as Float32Array;
    // short rows copy faster by hand than through a subarray view and set()
    if (cols < 64) for (let c = 0; c < cols; c++) data[r * cols + c] = row[c]!;
    else data.set(row.subarray(0, cols), r * cols);
  }
  return { rows, cols, data };
}

/**
 * The batch size kernels are compiled for: the next of 1, 2, 4, 8, 16, then four steps an
 * octave (16, 20, 24, 28, 32, 40, ...). Padding rows are zeros, and the backward pass zeroes
 * their activations and cotangents (mlp.ts), so they change no gradient; above 16 rows at
 * most 20% of the work is padding, and the number of distinct compiled batch sizes grows
 * with the logarithm of the largest batch.
 */
export function batchBucket(n: number): number {
  if (n <= 16) return 2 ** Math.ceil(Math.log2(Math.max(n, 1)));
  const octave = 2 ** Math.floor(Math.log2(n));
  const step = octave / 4;
  return Math.ceil(n / step) * step;
}
