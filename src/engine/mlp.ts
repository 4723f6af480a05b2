import { batchBucket, fromRows, toRows } from './matrix.js';
import { type BceHeadInput, bceBackward, bceForward } from './ops/bce.js';
import { biasGradSpec, forwardSpec, inputGradSpec, type KernelSpec, weightGradSpec } from './ops/dense.js';
import type { HeadReport, LayerGrad, Problem } from './types.js';

/** Runs one kernel spec with its arguments (the engine supplies caching and timing). */
export type RunKernel = (spec: KernelSpec, ...args: unknown[]) => Promise<unknown>;

interface ForwardPass {
  bucket: number;
  /** acts[0] is x, acts[l+1] the output of layer l (the last one before its activation) */
  acts: Float32Array[][];
  head: BceHeadInput;
  loss: number;
  pred: Float32Array;
  report: HeadReport;
}

/**
 * The MLP as JAX's loss_fn: hidden layers with `activation`, the last layer's output
 * activation and the loss in the float32 host head, reverse mode layer by layer.
 */
export async function forward(problem: Problem, run: RunKernel): Promise<ForwardPass> {
  const { layers, x, y } = problem;
  const bucket = batchBucket(x.rows);
  const acts: Float32Array[][] = [toRows(x, bucket)];
  for (let l = 0; l < layers.length; l++) {
    const { W, b } = layers[l]!;
    const act = l === layers.length - 1 ? 'linear' : problem.activation;
    const out = (await run(forwardSpec(act, W.rows, W.cols, bucket), acts[l], toRows(W), b)) as Float32Array[];
    acts.push(out);
  }
  const outDim = y.cols;
  const z = fromRows(acts[layers.length]!, x.rows, outDim).data;
  const head: BceHeadInput = { z, y: y.data, outputActivation: problem.outputActivation, reduction: problem.reduction };
  const { loss, pred, report } = bceForward(head);
  return { bucket, acts, head, loss, pred, report };
}

export async function backward(problem: Problem, pass: ForwardPass, run: RunKernel): Promise<LayerGrad[]> {
  const { layers, x } = problem;
  const { bucket, acts } = pass;
  const dzLast = bceBackward(pass.head, pass.pred);
  let dz = toRows({ rows: x.rows, cols: problem.y.cols, data: dzLast }, bucket);
  const grads: LayerGrad[] = new Array(layers.length);
  for (let l = layers.length - 1; l >= 0; l--) {
    const { W } = layers[l]!;
    const dW = (await run(weightGradSpec(W.rows, W.cols, bucket), acts[l], dz)) as Float32Array[];
    const db = (await run(biasGradSpec(W.cols, bucket), dz)) as Float32Array;
    grads[l] = { W: fromRows(dW, W.rows, W.cols), b: Float32Array.from(db) };
    if (l > 0) {
      dz = (await run(inputGradSpec(problem.activation, W.rows, W.cols, bucket), dz, toRows(W), acts[l])) as Float32Array[];
    }
  }
  return grads;
}
