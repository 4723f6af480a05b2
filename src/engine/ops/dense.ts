import { kernelKey } from '../kernel-cache.js';
import { toRows } from '../matrix.js';
import type { Activation, BackendName, Matrix } from '../types.js';
import { kernelCode } from './activations.js';

/**
 * The dense layer, forward and backward side by side, as gpu.js kernel sources. Sizes are
 * baked into the source (loop bounds the compiler can see); the batch dimension is the
 * padded bucket size, so a new batch size inside a bucket reuses every kernel.
 *
 * Matrices are arrays of rows, m[row][col]; the outputs below are in gpu.js's [x, y] order,
 * [cols, rows] (A is batch × out as the README writes it).
 *
 * Forward:   A = act(A_prev @ W + b)                       output [out, batch]
 *            (an activation whose derivative reads z: Z = A_prev @ W + b, then A = act(Z))
 * Backward:  dW = A_prevᵀ @ dZ                              output [out, in]
 *            db = Σ_batch dZ                                out values (on the host, biasGrad)
 *            dZ_prev = (dZ @ Wᵀ) ⊙ act_prev'(A_prev or Z_prev) output [in, batch] (fused)
 *
 * On `webasm` the kernels are blocked for the SIMD code gpu.js generates, where the four
 * lanes are four neighbouring thread.x (bench/RESULTS.md, issue 3): each thread computes
 * BLOCK = 4 rows of one column (an Array(4) result, returned packed: one Float32Array, see
 * backend.ts), so one vector load of W (or dZ, for dW) feeds four accumulators, and every
 * read that varies along thread.x is `m[..][this.thread.x]`, which the patched code
 * generation turns into one v128 load. Forward and dZ_prev block along the batch, dW along
 * its input rows; wide outputs are split into column tiles (`tileWidth`). Blocking applies
 * where the blocked dimension is a multiple of 4; the other backends keep the plain kernels
 * (unrolling made webgpu 1.2–1.4× slower, measured before this code was written).
 */
export interface KernelSpec {
  /** the kernel cache's key: the backend, the op and its params */
  key: string;
  op: string;
  /** every size and option that changes the compiled code */
  params: Record<string, string | number>;
  source: string;
  output: number[];
  /**
   * A blocked kernel: it returns Array(BLOCK) per thread, packed. The output is [tile
   * width, row blocks, tiles]; component c of thread (x, y, z) is row y × BLOCK + c, column
   * z × width + x, and gpu.js packs the result planar, [z][y][c][x]: each tile is a
   * row-major matrix of all the rows (`unpackRows`).
   */
  blocked?: true;
  /**
   * webasm: the fewest cells worth splitting over the worker threads. gpu.js assumes 4096;
   * a blocked kernel's cells each do hundreds to thousands of multiply-adds, so far fewer
   * pay for the round trip (M's first dW, 2048 cells, ran on the event loop for 1.3 ms).
   */
  minThreadedCells?: number;
}

const BLOCK = 4;
/** multiply-adds that outweigh a worker round trip (about 0.1 ms at a few GMAC/s per thread) */
const THREAD_MIN_MACS = 1 << 19;
/** minThreadedCells for cells of `macs` multiply-adds each */
const threadedFrom = (macs: number) => Math.max(64, Math.ceil(THREAD_MIN_MACS / macs));
const blocked = (backend: BackendName, n: number) => backend === 'webasm' && n % BLOCK === 0;
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
 * Columns per tile of a blocked kernel whose threads stream `depth` rows of a matrix with
 * `cols` columns (W, or dZ for dW). gpu.js runs cells x first: with the whole width as x,
 * every row block streams all of that matrix through the cache (1.6 MB for L's first layer,
 * more than L2); tiles of 64 columns keep a strip cached across the row blocks of a tile.
 */
function tileWidth(cols: number, depth: number): number {
  if (cols % BLOCK !== 0 || cols * depth * 4 <= TILE_BYTES) return cols; // fits: one tile
  for (const t of [16, 8, 4]) if ((cols / BLOCK) % t === 0) return t * BLOCK;
  return cols;
}
/** the most bytes that a kernel streams untiled (L2 is 1 MiB per core on the bench machine) */
const TILE_BYTES = 256 * 1024;

/** rows split into tiles of `width` columns: views, out[t][r] = rows[r][t·width …] */
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

/** A KernelSpec as the functions below build it, before memoSpec gives it its key. */
type SpecBody = Omit<KernelSpec, 'key'>;

/**
 * Specs by backend and arguments, each built once: building a spec's source and key cost
 * microseconds, on every kernel call (the XOR network makes five per request). Bounded,
 * since clients choose the shapes; the kernel cache is what keeps compiled kernels.
 */
const specs = new Map<string, KernelSpec>();
const SPECS_KEPT = 1024;

function memoSpec(backend: BackendName, args: string, build: () => SpecBody): KernelSpec {
  const memoKey = `${backend}|${args}`;
  let spec = specs.get(memoKey);
  if (!spec) {
    const body = build();
    spec = Object.freeze({ ...body, key: kernelKey({ backend, op: body.op, ...body.params }) });
    if (specs.size >= SPECS_KEPT) specs.clear();
    specs.set(memoKey, spec);
  }
  return spec;
}

export function forwardSpec(act: Activation, inDim: number, outDim: number, batch: number, backend: BackendName): KernelSpec {
  return memoSpec(backend, `forward|${act}|${inDim}|${outDim}|${batch}`, (): SpecBody => {
    const { kernelForward } = kernelCode(act, backend);
    if (blocked(backend, batch)) {
      // thread (x, y, z) computes A[y × 4 + c][z × width + x]; w and b come tiled
      const width = tileWidth(outDim, inDim);
      return {
        op: 'dense.forward',
        params: { act, in: inDim, out: outDim, batch, block: BLOCK },
        source: `function(a, w, b) {
          ${lanes.map((c) => `let s${c} = 0;`).join(' ')}
          for (let k = 0; k < ${inDim}; k++) {
            let wk = w[this.thread.z][k][this.thread.x];
            ${lanes.map((c) => `s${c} += a[this.thread.y * ${BLOCK} + ${c}][k] * wk;`).join('\n          ')}
          }
          let bx = b[this.thread.z][0][this.thread.x];
          ${lanes.map((c) => assignFrom(kernelForward(`(s${c} + bx)`), `r${c}`, `${c}`)).join('\n        ')}
          return [${lanes.map((c) => `r${c}`).join(', ')}];
        }`,
        output: [width, batch / BLOCK, outDim / width],
        blocked: true,
        minThreadedCells: threadedFrom(inDim * BLOCK),
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
  });
}

/** forwardSpec's W and b arguments, as its kernel reads them */
export function forwardWeights(spec: KernelSpec, W: Matrix, b: Float32Array): unknown[] {
  if (spec.blocked) return [tiled(toRows(W), spec.output[0]!), tiled([b], spec.output[0]!)];
  return [toRows(W), b];
}

/** A = act(Z), elementwise: for the layers that keep Z because their derivative reads it. */
export function activationSpec(act: Activation, outDim: number, batch: number, backend: BackendName): KernelSpec {
  return memoSpec(backend, `activation|${act}|${outDim}|${batch}`, (): SpecBody => {
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
  });
}

/**
 * Rows per partial sum of dW's sum over the batch: float32 adds one row after another lose
 * about one rounding per row, so at a batch of 65536 identical rows dW was 6e-4 off (1e-5 is
 * the promise). Partial sums of 256 rows, then their sum, lose about 256 + batch/256
 * roundings instead. The batch's bucket (matrix.ts) is a multiple of 256 from 1024 rows up;
 * smaller batches take the largest chunk that divides them, or none.
 */
function batchChunk(batch: number): number {
  return [256, 128, 64].find((c) => batch > c && batch % c === 0) ?? batch;
}

/**
 * The loop over the batch of dW's kernels, in partial sums of batchChunk rows: `body(row)`
 * adds the row at index expression `row` to p*. The index is written out in each read, not
 * held in a variable: reads through a `let` index lost webasm's vector loads (M's
 * value-and-grad took 15 ms, not 10).
 */
function chunkedBatchLoop(batch: number, sums: string[], body: (row: string) => string): string {
  const chunk = batchChunk(batch);
  return `for (let m = 0; m < ${batch / chunk}; m++) {
            ${sums.map((s) => `let p${s} = 0;`).join(' ')}
            for (let i = 0; i < ${chunk}; i++) {
              ${body(`m * ${chunk} + i`)}
            }
            ${sums.map((s) => `s${s} += p${s};`).join(' ')}
          }`;
}

export function weightGradSpec(inDim: number, outDim: number, batch: number, backend: BackendName): KernelSpec {
  return memoSpec(backend, `dW|${inDim}|${outDim}|${batch}`, (): SpecBody => {
    if (blocked(backend, inDim)) {
      // thread (x, y, z) computes dW[y × 4 + c][z × width + x]; dz comes tiled (weightGradArgs)
      const width = tileWidth(outDim, batch);
      const body = (n: string) => `let d = dz[this.thread.z][${n}][this.thread.x];
              ${lanes.map((c) => `p${c} += a[${n}][this.thread.y * ${BLOCK} + ${c}] * d;`).join('\n              ')}`;
      return {
        op: 'dense.dW',
        params: { in: inDim, out: outDim, batch, block: BLOCK },
        source: `function(a, dz) {
          ${lanes.map((c) => `let s${c} = 0;`).join(' ')}
          ${chunkedBatchLoop(batch, lanes.map(String), body)}
          return [${lanes.map((c) => `s${c}`).join(', ')}];
        }`,
        output: [width, inDim / BLOCK, outDim / width],
        blocked: true,
        minThreadedCells: threadedFrom(batch * BLOCK),
      };
    }
    return {
      op: 'dense.dW',
      params: { in: inDim, out: outDim, batch },
      source: `function(a, dz) {
        let s = 0;
        ${chunkedBatchLoop(batch, [''], (n) => `p += a[${n}][this.thread.y] * dz[${n}][this.thread.x];`)}
        return s;
      }`,
      output: [outDim, inDim],
    };
  });
}

/**
 * db = Σ_batch dZ, on the host: a column sum reads each value of dZ once, so a kernel for it
 * cost more than the sum (a compile of 2–5 ms per layer on a new shape, a copy of dZ into
 * the kernel's memory and a call). Summed in float64 and rounded once, which is at least as
 * accurate as JAX's float32 reduction (the batch's cotangents often nearly cancel).
 */
export function biasGrad(dz: Float32Array[], outDim: number): Float32Array {
  const sums = new Float64Array(outDim);
  for (const row of dz) for (let c = 0; c < outDim; c++) sums[c]! += row[c]!;
  return Float32Array.from(sums);
}

/**
 * Cotangent of the previous layer's pre-activation; `prevAct` is that layer's activation
 * and `saved` what its derivative reads (its output A or its pre-activation Z). W comes
 * through `inputGradArgs`.
 */
export function inputGradSpec(prevAct: Activation, inDim: number, outDim: number, batch: number, backend: BackendName): KernelSpec {
  return memoSpec(backend, `dZprev|${prevAct}|${inDim}|${outDim}|${batch}`, (): SpecBody => {
    const { kernelBackward } = kernelCode(prevAct, backend);
    if (blocked(backend, batch)) {
      // thread (x, y, z) computes dZ_prev[y × 4 + c][z × width + x]; wt (Wᵀ) and saved come tiled
      const width = tileWidth(inDim, outDim);
      return {
        op: 'dense.dZprev',
        params: { act: prevAct, in: inDim, out: outDim, batch, block: BLOCK },
        source: `function(dz, wt, saved) {
          ${lanes.map((c) => `let v${c} = saved[this.thread.z][this.thread.y * ${BLOCK} + ${c}][this.thread.x];`).join(' ')}
          ${lanes.map((c) => `let s${c} = 0;`).join(' ')}
          for (let j = 0; j < ${outDim}; j++) {
            let wj = wt[this.thread.z][j][this.thread.x];
            ${lanes.map((c) => `s${c} += dz[this.thread.y * ${BLOCK} + ${c}][j] * wj;`).join('\n          ')}
          }
          ${lanes.map((c) => assignFrom(kernelBackward(`s${c}`, `v${c}`), `g${c}`, `${c}`)).join('\n        ')}
          return [${lanes.map((c) => `g${c}`).join(', ')}];
        }`,
        output: [width, batch / BLOCK, inDim / width],
        blocked: true,
        minThreadedCells: threadedFrom(outDim * BLOCK),
      };
    }
    return {
      op: 'dense.dZprev',
      params: { act: prevAct, in: inDim, out: outDim, batch },
      // v is read before the loop: on webasm that order compiled ~3× faster (measured before this code was written)
      source: `function(dz, w, saved) {
        let v = saved[this.thread.y][this.thread.x];
        let s = 0;
        for (let j = 0; j < ${outDim}; j++) { s += dz[this.thread.y][j] * w[this.thread.x][j]; }
        ${kernelBackward('s', 'v')}
      }`,
      output: [inDim, batch],
    };
  });
}

/** weightGradSpec's arguments, as its kernel reads them */
export function weightGradArgs(spec: KernelSpec, a: Float32Array[], dz: Float32Array[]): unknown[] {
  return spec.blocked ? [a, tiled(dz, spec.output[0]!)] : [a, dz];
}

/** inputGradSpec's arguments, as its kernel reads them */
export function inputGradArgs(spec: KernelSpec, dz: Float32Array[], W: Matrix, saved: Float32Array[]): unknown[] {
  if (!spec.blocked) return [dz, toRows(W), saved];
  const width = spec.output[0]!;
  return [dz, tiled(toRows(transpose(W)), width), tiled(saved, width)];
}

/**
 * A blocked kernel's packed result (see KernelSpec) as rows of one row-major matrix: a copy
 * when there is one tile, the tiles' rows side by side otherwise. The kernel calls this on
 * its own memory (backend.ts), so the result is copied once.
 */
export function unpackRows(spec: KernelSpec, packed: Float32Array): Float32Array[] {
  const [width, ys, tiles = 1] = spec.output as [number, number, number?];
  const rowCount = ys * BLOCK;
  const cols = width * tiles;
  let out: Float32Array;
  if (tiles === 1) {
    out = packed.slice();
  } else {
    out = new Float32Array(rowCount * cols);
    for (let t = 0; t < tiles; t++) {
      for (let r = 0; r < rowCount; r++) {
        const from = (t * rowCount + r) * width;
        out.set(packed.subarray(from, from + width), r * cols + t * width);
      }
    }
  }
  const rows: Float32Array[] = new Array(rowCount);
  for (let r = 0; r < rowCount; r++) rows[r] = out.subarray(r * cols, (r + 1) * cols);
  return rows;
}
