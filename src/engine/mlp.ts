import { batchBucket, fromRows, toRows } from './matrix.js';
import { activationOps } from './ops/activations.js';
import { activationSpec, biasGradSpec, forwardSpec, inputGradSpec, type KernelSpec, weightGradSpec } from './ops/dense.js';
import { type HeadInput, headBackward, headForward, predict } from './ops/head.js';
import type { ForwardProblem, HeadReport, LayerGrad, Matrix, Problem } from './types.js';

/** Runs one kernel spec with its arguments (the engine supplies caching and timing). */
export type RunKernel = (spec: KernelSpec, ...args: unknown[]) => Promise<unknown>;

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
  const bucket = batchBucket(x.rows);
  const inputs: Float32Array[][] = [toRows(x, bucket)];
  const saved: Float32Array[][] = [];
  for (let l = 0; l < layers.length - 1; l++) {
    const { W, b } = layers[l]!;
    if (activationOps[activation].derivativeOf === 'a') {
      const a = (await run(forwardSpec(activation, W.rows, W.cols, bucket), inputs[l], toRows(W), b)) as Float32Array[];
      inputs.push(a);
      saved.push(a);
    } else {
      const z = (await run(forwardSpec('linear', W.rows, W.cols, bucket), inputs[l], toRows(W), b)) as Float32Array[];
      inputs.push((await run(activationSpec(activation, W.cols, bucket), z)) as Float32Array[]);
      saved.push(z);
    }
  }
  const { W, b } = layers.at(-1)!;
  const zLast = (await run(forwardSpec('linear', W.rows, W.cols, bucket), inputs.at(-1), toRows(W), b)) as Float32Array[];
  return { bucket, inputs, saved, z: fromRows(zLast, x.rows, W.cols) };
}

/** Predictions: the network's output, batch × out_last, after the output activation. */
export async function predictions(problem: ForwardProblem, run: RunKernel): Promise<Matrix> {
  const { z } = await forwardLayers(problem, run);
  return { ...z, data: predict(z.data, problem.outputActivation) };
}

/** JAX's loss_fn: the dense layers, then the output activation and the loss in the float32 host head. */
export async function forward(problem: Problem, run: RunKernel): Promise<ForwardPass> {
  const pass = await forwardLayers(problem, run);
  const head: HeadInput = {
    z: pass.z.data,
    y: problem.y.data,
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
  let dz = toRows({ rows: x.rows, cols: problem.y.cols, data: headBackward(pass.head, pass.pred) }, bucket);
  const grads: LayerGrad[] = new Array(layers.length);
  for (let l = layers.length - 1; l >= 0; l--) {
    const { W } = layers[l]!;
    const dW = (await run(weightGradSpec(W.rows, W.cols, bucket), inputs[l], dz)) as Float32Array[];
    const db = (await run(biasGradSpec(W.cols, bucket), dz)) as Float32Array;
    grads[l] = { W: fromRows(dW, W.rows, W.cols), b: Float32Array.from(db) };
    if (l > 0) {
      dz = (await run(inputGradSpec(problem.activation, W.rows, W.cols, bucket), dz, toRows(W), saved[l - 1])) as Float32Array[];
    }
  }
  return grads;
}
