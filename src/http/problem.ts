import type { Matrix, Problem } from '../engine/types.js';
import type { ComputeRequest } from './schemas.js';

/** A validated request body in the engine's float32 form. */
export function toProblem(body: ComputeRequest): Problem {
  const outDim = body.params[body.params.length - 1]!.W[0]!.length;
  const y = body.y;
  return {
    layers: body.params.map((p) => ({ W: toMatrix(p.W), b: Float32Array.from(p.b) })),
    x: toMatrix(body.x),
    y: typeof y[0] === 'number' ? { rows: y.length, cols: outDim, data: Float32Array.from(y as number[]) } : toMatrix(y as number[][]),
    activation: body.activation,
    outputActivation: body.outputActivation,
    loss: body.loss,
    reduction: body.reduction,
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
