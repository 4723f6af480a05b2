import { lossOps } from '../engine/ops/head.js';
import type { ForwardProblem, Problem } from '../engine/types.js';
import type { ComputeRequest, ForwardRequest } from './schemas.js';
import { asMatrix } from './tensors.js';

/** A validated request body in the engine's float32 form (validation already packed every tensor). */
export function toProblem(body: ComputeRequest): Problem {
  return {
    ...networkOf(body),
    outputActivation: body.outputActivation ?? lossOps[body.loss].defaultOutputActivation,
    y: asMatrix(body.y),
    loss: body.loss,
    reduction: body.reduction,
  };
}

/** /forward's: the last layer's activation is the one asked for, else the loss's default (sigmoid when no loss is named). */
export function toForwardProblem(body: ForwardRequest): ForwardProblem {
  return {
    ...networkOf(body),
    outputActivation: body.outputActivation ?? (body.loss ? lossOps[body.loss].defaultOutputActivation : 'sigmoid'),
  };
}

function networkOf(body: Pick<ForwardRequest, 'params' | 'x' | 'activation'>): Omit<ForwardProblem, 'outputActivation'> {
  return {
    layers: body.params.map((p) => ({ W: asMatrix(p.W), b: p.b.data })),
    x: asMatrix(body.x),
    activation: body.activation,
  };
}
