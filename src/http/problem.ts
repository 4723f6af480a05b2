import { lossOps } from '../engine/ops/head.js';
import type { ForwardProblem, Problem } from '../engine/types.js';
import type { ComputeRequest, ForwardRequest } from './schemas.js';
import { asMatrix } from './tensors.js';

/** A validated request body in the engine's float32 form (validation already packed every tensor). */
export function toProblem(body: ComputeRequest): Problem {
  return {
    ...toForwardProblem(body),
    y: asMatrix(body.y),
    loss: body.loss,
    reduction: body.reduction,
  };
}

/** The last layer's activation: the one asked for, else the loss's default (sigmoid when no loss is named). */
const outputActivationOf = (body: Pick<ForwardRequest, 'outputActivation' | 'loss'>) =>
  body.outputActivation ?? (body.loss ? lossOps[body.loss].defaultOutputActivation : 'sigmoid');

export function toForwardProblem(body: ForwardRequest): ForwardProblem {
  return {
    layers: body.params.map((p) => ({ W: asMatrix(p.W), b: p.b.data })),
    x: asMatrix(body.x),
    activation: body.activation,
    outputActivation: outputActivationOf(body),
  };
}
