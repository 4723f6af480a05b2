import type { Activation } from '../types.js';
import { activationOps } from './activations.js';

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
 */
export interface KernelSpec {
  op: string;
  /** every size and option that changes the compiled code */
  params: Record<string, string | number>;
  source: string;
  output: number[];
}

export function forwardSpec(act: Activation, inDim: number, outDim: number, batch: number): KernelSpec {
  return {
    op: 'dense.forward',
    params: { act, in: inDim, out: outDim, batch },
    source: `function(a, w, b) {
      let s = 0;
      for (let k = 0; k < ${inDim}; k++) { s += a[this.thread.y][k] * w[k][this.thread.x]; }
      let z = s + b[this.thread.x];
      ${activationOps[act].kernelForward('z')}
    }`,
    output: [outDim, batch],
  };
}

/** A = act(Z), elementwise: for the layers that keep Z because their derivative reads it. */
export function activationSpec(act: Activation, outDim: number, batch: number): KernelSpec {
  return {
    op: 'activation',
    params: { act, out: outDim, batch },
    source: `function(zIn) {
      let z = zIn[this.thread.y][this.thread.x];
      ${activationOps[act].kernelForward('z')}
    }`,
    output: [outDim, batch],
  };
}

export function weightGradSpec(inDim: number, outDim: number, batch: number): KernelSpec {
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
 * and `saved` what its derivative reads (its output A or its pre-activation Z).
 */
export function inputGradSpec(prevAct: Activation, inDim: number, outDim: number, batch: number): KernelSpec {
  return {
    op: 'dense.dZprev',
    params: { act: prevAct, in: inDim, out: outDim, batch },
    // v is read before the loop: on webasm that order compiled ~3× faster (DESIGN.md §6)
    source: `function(dz, w, saved) {
      let v = saved[this.thread.y][this.thread.x];
      let s = 0;
      for (let j = 0; j < ${outDim}; j++) { s += dz[this.thread.y][j] * w[this.thread.x][j]; }
      ${activationOps[prevAct].kernelBackward('s', 'v')}
    }`,
    output: [inDim, batch],
  };
}
