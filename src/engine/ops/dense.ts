import { toRows } from '../matrix.js';
import type { Activation, BackendName, Matrix } from '../types.js';
import { kernelCode } from './activations.js';

/**
 * The dense layer, forward and backward side by side, as gpu.js kernel sources. Sizes are
 * baked into the source (loop bounds the compiler can see); the batch dimension is the
 * padded bucket size, so a new batch size inside a bucket reuses every kernel.
 *
 * Forward:   A = act(A_prev @ W + b)                       out × batch
 *            (an activation whose derivative reads z: Z = A_prev @ W + b, then A = act(Z))
 * Backward:  dW = A_prevᵀ @ dZ                              out × in
 *            db = Σ_batch dZ                                out
 *            dZ_prev = (dZ @ Wᵀ) ⊙ act_prev'(A_prev or Z_prev) in × batch  (fused)
 * Matrices are arrays of rows: m[row][col], output [cols, rows] in gpu.js's [x, y] order.
 *
 * On `webasm` the kernels are blocked for the SIMD code gpu.js generates, where the four
 * lanes are four neighbouring thread.x (bench/RESULTS.md, issue 3):
 * - each thread computes BLOCK = 4 outputs (an Array(4) result, returned packed: one
 *   Float32Array, see backend.ts), so one load feeds four accumulators;
 * - every read that varies along thread.x is `m[..][this.thread.x]`, which the patched
 *   code generation turns into one v128 load. Forward and dZ_prev block along their
 *   columns, so the packed result is already the row-major matrix, and take W with its
 *   columns (forward) or rows (dZ_prev) dealt into BLOCK row groups (`weights`); dW
 *   blocks along its rows (the result is de-interleaved: it is only in × out).
 * Blocking applies where the blocked dimension is a multiple of 4; the other backends keep
 * the plain kernels (unrolling cost webgpu 1.2–1.4×, DESIGN.md §6).
 */
export interface KernelSpec {
  op: string;
  /** every size and option that changes the compiled code */
  params: Record<string, string | number>;
  source: string;
  output: number[];
  /**
   * A blocked kernel: it returns Array(BLOCK) per thread, packed. 'cols': output is
   * [tile width, rows, tiles] and the packed result [tile][row][x][component] holds
   * column (tile × width + x) × BLOCK + component; 'rows': output is [tile width, row
   * blocks, tiles], the result [tile][y][x][component] holds row y × BLOCK + component,
   * column tile × width + x. `rowsOf` reads either.
   */
  block?: 'cols' | 'rows';
}

export const BLOCK = 4;
const blocked = (backend: BackendName | undefined, n: number) => backend === 'webasm' && n % BLOCK === 0;
const lanes = Array.from({ length: BLOCK }, (_, i) => i);

/**
 * An activation's kernel statements (which end in `return <value>;`) as statements that
 * declare `target` instead, with their `act…` locals renamed by `suffix`, so that several
 * can share one kernel body.
 */
function assignFrom(statements: string, target: string, suffix: string): string {
  const renamed = statements.replace(/\bact(\w+)/g, `act$1${suffix}`);
  const match = /^([\s\S]*)return ([\s\S]*);\s*$/.exec(renamed);
  if (!match) throw new Error(`activation kernel code does not end in a return: ${statements}`);
  return `${match[1]}let ${target} = ${match[2]};`;
}

/**
 * Columns dealt into BLOCK row groups: out[r × BLOCK + c][j] = m[r][j × BLOCK + c], so that
 * `out[r * BLOCK + c][this.thread.x]` is column thread.x × BLOCK + c of row r.
 */
export function dealColumns(m: Matrix): Float32Array[] {
  const groups = m.cols / BLOCK;
  const out: Float32Array[] = [];
  for (let r = 0; r < m.rows; r++) {
    for (let c = 0; c < BLOCK; c++) {
      const row = new Float32Array(groups);
      for (let j = 0, i = r * m.cols + c; j < groups; j++, i += BLOCK) row[j] = m.data[i]!;
      out.push(row);
    }
  }
  return out;
}

/**
 * Column quads per tile of a 'cols' kernel. gpu.js runs cells x first: with the whole
 * width as x, every output row streams all of W through the cache (1.6 MB for L's first
 * layer, more than L2); tiles of 16 quads (64 columns) keep a W strip cached across the
 * rows of a tile.
 */
function tileWidth(quads: number, depth: number): number {
  if (quads * BLOCK * depth * 4 <= TILE_BYTES) return quads; // W fits: one tile
  for (const t of [16, 8, 4]) if (quads % t === 0) return t;
  return quads;
}
/** the most bytes of W that a kernel reads untiled (L2 is 1 MiB per core on the bench machine) */
const TILE_BYTES = 256 * 1024;

/** dealt rows split into tiles of `width` columns: views, out[t][r] = rows[r][t·width …] */
function tiled(rows: Float32Array[], width: number): Float32Array[][] {
  const tiles = rows[0]!.length / width;
  return Array.from({ length: tiles }, (_, t) => rows.map((r) => r.subarray(t * width, (t + 1) * width)));
}

/** Wᵀ (out × in), row-major. */
function transpose(m: Matrix): Matrix {
  const data = new Float32Array(m.data.length);
  for (let r = 0; r < m.rows; r++) for (let c = 0; c < m.cols; c++) data[c * m.rows + r] = m.data[r * m.cols + c]!;
  return { rows: m.cols, cols: m.rows, data };
}

export function forwardSpec(act: Activation, inDim: number, outDim: number, batch: number, backend?: BackendName): KernelSpec {
  const { kernelForward } = kernelCode(act, backend);
  if (blocked(backend, outDim)) {
    // thread (x, y, z) computes A[y][(z × width + x) × 4 + c]; w and b come dealt and tiled
    const quads = outDim / BLOCK;
    const width = tileWidth(quads, inDim);
    return {
      op: 'dense.forward',
      params: { act, in: inDim, out: outDim, batch, block: BLOCK },
      source: `function(a, w, b) {
        ${lanes.map((c) => `let s${c} = 0;`).join(' ')}
        for (let k = 0; k < ${inDim}; k++) {
          let ak = a[this.thread.y][k];
          ${lanes.map((c) => `s${c} += ak * w[this.thread.z][k * ${BLOCK} + ${c}][this.thread.x];`).join('\n          ')}
        }
        ${lanes.map((c) => assignFrom(kernelForward(`(s${c} + b[this.thread.z][${c}][this.thread.x])`), `r${c}`, `${c}`)).join('\n        ')}
        return [${lanes.map((c) => `r${c}`).join(', ')}];
      }`,
      output: [width, batch, quads / width],
      block: 'cols',
    };
  }
  return {
    op: 'dense.forward',
    params: { act, in: inDim, out: outDim, batch },
    source: `function(a, w, b) {
      let s = 0;
      for (let k = 0; k < ${inDim}; k++) { s += a[this.thread.y][k] * w[k][this.thread.x]; }
      let z = s + b[this.thread.x];
      ${kernelForward('z')}
    }`,
    output: [outDim, batch],
  };
}

/** forwardSpec's W and b arguments, as its kernel reads them */
export function forwardWeights(spec: KernelSpec, W: Matrix, b: Float32Array): unknown[] {
  const width = spec.output[0]!;
  if (spec.block) return [tiled(dealColumns(W), width), tiled(dealColumns({ rows: 1, cols: b.length, data: b }), width)];
  return [toRows(W), b];
}

/** A = act(Z), elementwise: for the layers that keep Z because their derivative reads it. */
export function activationSpec(act: Activation, outDim: number, batch: number, backend?: BackendName): KernelSpec {
  const { kernelForward } = kernelCode(act, backend);
  return {
    op: 'activation',
    params: { act, out: outDim, batch },
    source: `function(zIn) {
      let z = zIn[this.thread.y][this.thread.x];
      ${kernelForward('z')}
    }`,
    output: [outDim, batch],
  };
}

export function weightGradSpec(inDim: number, outDim: number, batch: number, backend?: BackendName): KernelSpec {
  if (blocked(backend, inDim)) {
    // thread (x, y, z) computes dW[y × 4 + c][z × width + x]; dz comes tiled (weightGradArgs)
    const width = outDim % BLOCK === 0 ? tileWidth(outDim / BLOCK, batch) * BLOCK : outDim;
    return {
      op: 'dense.dW',
      params: { in: inDim, out: outDim, batch, block: BLOCK },
      source: `function(a, dz) {
        ${lanes.map((c) => `let s${c} = 0;`).join(' ')}
        for (let n = 0; n < ${batch}; n++) {
          let d = dz[this.thread.z][n][this.thread.x];
          ${lanes.map((c) => `s${c} += a[n][this.thread.y * ${BLOCK} + ${c}] * d;`).join('\n          ')}
        }
        return [${lanes.map((c) => `s${c}`).join(', ')}];
      }`,
      output: [width, inDim / BLOCK, outDim / width],
      block: 'rows',
    };
  }
  return {
    op: 'dense.dW',
    params: { in: inDim, out: outDim, batch },
    source: `function(a, dz) {
      let s = 0;
      for (let n = 0; n < ${batch}; n++) { s += a[n][this.thread.y] * dz[n][this.thread.x]; }
      return s;
    }`,
    output: [outDim, inDim],
  };
}

export function biasGradSpec(outDim: number, batch: number): KernelSpec {
  return {
    op: 'dense.db',
    params: { out: outDim, batch },
    // Compensated (Kahan) sum: the batch's cotangents often nearly cancel, and a plain
    // float32 running sum then loses the 1e-5 relative accuracy; this kernel is cheap.
    source: `function(dz) {
      let s = 0;
      let c = 0;
      for (let n = 0; n < ${batch}; n++) {
        let v = dz[n][this.thread.x] - c;
        let t = s + v;
        c = (t - s) - v;
        s = t;
      }
      return s;
    }`,
    output: [outDim],
  };
}

/**
 * Cotangent of the previous layer's pre-activation; `prevAct` is that layer's activation
 * and `saved` what its derivative reads (its output A or its pre-activation Z). W comes
 * through `inputGradWeights`.
 */
export function inputGradSpec(prevAct: Activation, inDim: number, outDim: number, batch: number, backend?: BackendName): KernelSpec {
  const { kernelBackward } = kernelCode(prevAct, backend);
  if (blocked(backend, inDim)) {
    // thread (x, y, z) computes dZ_prev[y][(z × width + x) × 4 + c]; w is Wᵀ dealt and tiled
    const quads = inDim / BLOCK;
    const width = tileWidth(quads, outDim);
    return {
      op: 'dense.dZprev',
      params: { act: prevAct, in: inDim, out: outDim, batch, block: BLOCK },
      source: `function(dz, w, saved) {
        ${lanes.map((c) => `let v${c} = saved[this.thread.y][(this.thread.z * ${width} + this.thread.x) * ${BLOCK} + ${c}];`).join(' ')}
        ${lanes.map((c) => `let s${c} = 0;`).join(' ')}
        for (let j = 0; j < ${outDim}; j++) {
          let dj = dz[this.thread.y][j];
          ${lanes.map((c) => `s${c} += dj * w[this.thread.z][j * ${BLOCK} + ${c}][this.thread.x];`).join('\n          ')}
        }
        ${lanes.map((c) => assignFrom(kernelBackward(`s${c}`, `v${c}`), `g${c}`, `${c}`)).join('\n        ')}
        return [${lanes.map((c) => `g${c}`).join(', ')}];
      }`,
      output: [width, batch, quads / width],
      block: 'cols',
    };
  }
  return {
    op: 'dense.dZprev',
    params: { act: prevAct, in: inDim, out: outDim, batch },
    // v is read before the loop: on webasm that order compiled ~3× faster (DESIGN.md §6)
    source: `function(dz, w, saved) {
      let v = saved[this.thread.y][this.thread.x];
      let s = 0;
      for (let j = 0; j < ${outDim}; j++) { s += dz[this.thread.y][j] * w[this.thread.x][j]; }
      ${kernelBackward('s', 'v')}
    }`,
    output: [inDim, batch],
  };
}

/** weightGradSpec's arguments, as its kernel reads them */
export function weightGradArgs(spec: KernelSpec, a: Float32Array[], dz: Float32Array[]): unknown[] {
  return spec.block ? [a, tiled(dz, spec.output[0]!)] : [a, dz];
}

/** inputGradSpec's W argument, as its kernel reads it */
export function inputGradWeights(spec: KernelSpec, W: Matrix): unknown {
  return spec.block ? tiled(dealColumns(transpose(W)), spec.output[0]!) : toRows(W);
}

/**
 * A 2-D kernel result as rows. A blocked kernel's result is one packed Float32Array:
 * 'cols', already the row-major matrix (output[1] rows of output[0] × BLOCK); 'rows',
 * [y][x][component] with row y × BLOCK + component, de-interleaved here.
 */
export function rowsOf(spec: KernelSpec, result: unknown): Float32Array[] {
  if (!spec.block) return result as Float32Array[];
  const flat = result as Float32Array;
  const [cols, ys, tiles = 1] = spec.output as [number, number, number?];
  const rows: Float32Array[] = [];
  if (spec.block === 'cols') {
    const width = cols * BLOCK;
    if (tiles === 1) {
      for (let y = 0; y < ys; y++) rows.push(flat.subarray(y * width, (y + 1) * width));
      return rows;
    }
    for (let y = 0; y < ys; y++) {
      const row = new Float32Array(width * tiles);
      for (let t = 0; t < tiles; t++) row.set(flat.subarray((t * ys + y) * width, (t * ys + y + 1) * width), t * width);
      rows.push(row);
    }
    return rows;
  }
  for (let y = 0; y < ys; y++) {
    for (let c = 0; c < BLOCK; c++) {
      const row = new Float32Array(cols * tiles);
      for (let t = 0, j = 0; t < tiles; t++) {
        for (let x = 0, i = (t * ys + y) * cols * BLOCK + c; x < cols; x++, i += BLOCK) row[j++] = flat[i]!;
      }
      rows.push(row);
    }
  }
  return rows;
}
