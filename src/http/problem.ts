import { lossOps } from '../engine/ops/head.js';
import type { ForwardProblem, Matrix, Problem } from '../engine/types.js';
import type { ComputeRequest, ForwardRequest } from './schemas.js';

/** A validated request body in the engine's float32 form. */
export function toProblem(body: ComputeRequest): Problem {
  const outDim = body.params[body.params.length - 1]!.W[0]!.length;
  const y = body.y;
  return {
    ...toForwardProblem({ ...body, outputActivation: body.outputActivation ?? lossOps[body.loss].defaultOutputActivation }),
    y: typeof y[0] === 'number' ? { rows: y.length, cols: outDim, data: Float32Array.from(y as number[]) } : toMatrix(y as number[][]),
    loss: body.loss,
    reduction: body.reduction,
  };
}

export function toForwardProblem(body: ForwardRequest): ForwardProblem {
  return {
    layers: body.params.map((p) => ({ W: toMatrix(p.W), b: Float32Array.from(p.b) })),
    x: toMatrix(body.x),
    activation: body.activation,
    outputActivation: body.outputActivation,
  };
}

function toMatrix(rows: number[][]): Matrix {
  const cols = rows[0]!.length;
  const data = new Float32Array(rows.length * cols);
  rows.forEach((row, r) => {
    data.set(row, r * cols);
  });
  return { rows: rows.length, cols, data };
}
