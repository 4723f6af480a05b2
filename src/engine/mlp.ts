import { batchBucket, fromRows, toRows } from './matrix.js';
import { activationOps } from './ops/activations.js';
import {
  activationSpec,
  biasGrad,
  forwardSpec,
  forwardWeights,
  inputGradArgs,
  inputGradSpec,
  type KernelSpec,
  weightGradArgs,
  weightGradSpec,
} from './ops/dense.js';
import { type HeadInput, headBackward, headForward, predict } from './ops/head.js';
import type { BackendName, ForwardProblem, HeadReport, LayerGrad, Matrix, Problem } from './types.js';

/**
 * Runs one kernel spec with its arguments on `backend` (the engine supplies caching and
 * timing): the result, or a promise of it. Specs are built for `backend`.
 */
export interface RunKernel {
  (spec: KernelSpec, ...args: unknown[]): unknown;
  readonly backend: BackendName;
}

/** Run a 2-D kernel; its result comes as rows (a blocked kernel's are unpacked as it returns, see unpackRows). Await it. */
function runRows(run: RunKernel, spec: KernelSpec, ...args: unknown[]): Float32Array[] | Promise<Float32Array[]> {
  return run(spec, ...args) as Float32Array[] | Promise<Float32Array[]>;
}

interface LayersPass {
  bucket: number;
  /** inputs[l] is layer l's input: inputs[0] is x, inputs[l+1] the activation of hidden layer l */
  inputs: Float32Array[][];
  /** saved[l]: what hidden layer l's activation derivative reads, its output or its pre-activation */
  saved: Float32Array[][];
  /** the output layer's pre-activations, batch × out_last */
  z: Matrix;
}

interface ForwardPass extends LayersPass {
  head: HeadInput;
  loss: number;
  pred: Float32Array;
  report: HeadReport;
}

/** The dense layers: hidden layers with `activation`, the last one linear (its activation is the head's). */
async function forwardLayers(problem: ForwardProblem, run: RunKernel): Promise<LayersPass> {
  const { layers, x, activation } = problem;
  const { backend } = run;
  const bucket = batchBucket(x.rows);
  const inputs: Float32Array[][] = [toRows(x, bucket)];
  const saved: Float32Array[][] = [];
  for (let l = 0; l < layers.length - 1; l++) {
    const { W, b } = layers[l]!;
    if (activationOps[activation].derivativeOf === 'a') {
      const spec = forwardSpec(activation, W.rows, W.cols, bucket, backend);
      const a = await runRows(run, spec, inputs[l], ...forwardWeights(spec, W, b));
      inputs.push(a);
      saved.push(a);
    } else {
      const spec = forwardSpec('linear', W.rows, W.cols, bucket, backend);
      const z = await runRows(run, spec, inputs[l], ...forwardWeights(spec, W, b));
      inputs.push(await runRows(run, activationSpec(activation, W.cols, bucket, backend), z));
      saved.push(z);
    }
  }
  const { W, b } = layers.at(-1)!;
  const spec = forwardSpec('linear', W.rows, W.cols, bucket, backend);
  const zLast = await runRows(run, spec, inputs.at(-1), ...forwardWeights(spec, W, b));
  return { bucket, inputs, saved, z: fromRows(zLast, x.rows, W.cols) };
}

/** Predictions: the network's output, batch × out_last, after the output activation. */
export async function predictions(problem: ForwardProblem, run: RunKernel): Promise<Matrix> {
  const { z } = await forwardLayers(problem, run);
  return { ...z, data: predict(z.data, problem.outputActivation, z.cols) };
}

/** JAX's loss_fn: the dense layers, then the output activation and the loss in the float32 host head. */
export async function forward(problem: Problem, run: RunKernel): Promise<ForwardPass> {
  const pass = await forwardLayers(problem, run);
  const head: HeadInput = {
    z: pass.z.data,
    y: problem.y.data,
    cols: pass.z.cols,
    outputActivation: problem.outputActivation,
    loss: problem.loss,
    reduction: problem.reduction,
  };
  return { ...pass, head, ...headForward(head) };
}

/** Reverse mode, layer by layer, from the head's cotangent. */
export async function backward(problem: Problem, pass: ForwardPass, run: RunKernel): Promise<LayerGrad[]> {
  const { layers, x } = problem;
  const { bucket, inputs, saved } = pass;
  const { backend } = run;
  let dz = toRows({ rows: x.rows, cols: pass.head.cols, data: headBackward(pass.head, pass.pred) }, bucket);
  const grads: LayerGrad[] = new Array(layers.length);
  for (let l = layers.length - 1; l >= 0; l--) {
    const { W } = layers[l]!;
    zeroPadding(inputs[l]!, x.rows);
    const dWSpec = weightGradSpec(W.rows, W.cols, bucket, backend);
    const dW = await runRows(run, dWSpec, ...weightGradArgs(dWSpec, inputs[l]!, dz));
    grads[l] = { W: fromRows(dW, W.rows, W.cols), b: biasGrad(dz, W.cols) };
    if (l > 0) {
      const spec = inputGradSpec(problem.activation, W.rows, W.cols, bucket, backend);
      dz = zeroPadding(await runRows(run, spec, ...inputGradArgs(spec, dz, W, saved[l - 1]!)), x.rows);
    }
  }
  return grads;
}

/**
 * Zero the padding rows (from `real` on) of a batch's activations or cotangents, in place.
 * dW and db sum over every row of the bucket: a padding row whose forward pass overflowed
 * (its input is zeros, its values may be anything the weights make of them) would otherwise
 * add 0 × Inf = NaN to gradients that do not depend on it.
 */
function zeroPadding(rows: Float32Array[], real: number): Float32Array[] {
  for (let r = real; r < rows.length; r++) rows[r]!.fill(0);
  return rows;
}
