import { z } from 'zod';
import { ACTIVATIONS, LOSSES, REDUCTIONS } from '../engine/types.js';
import { xorRequest } from './examples.js';
import { shapeIssues } from './shape-checks.js';

const Vector = z.array(z.number()).describe('A vector of finite numbers (rounded to float32).');
const Matrix = z.array(Vector).describe('A matrix as a list of rows, all of the same length.');

export const LayerParams = z
  .strictObject({
    W: Matrix.describe('Weights, in × out (JAX convention: x @ W + b).'),
    b: Vector.describe('Bias, out entries.'),
  })
  .describe('One dense layer.');

export const ComputeRequest = z
  .strictObject({
    params: z.array(LayerParams).describe("The layers, input to output; layer i+1 takes layer i's outputs."),
    x: Matrix.describe('Inputs, batch × in_0.'),
    y: z
      .union([Matrix, Vector], {
        error: (iss) =>
          iss.input === undefined
            ? 'Invalid input: expected array, received undefined'
            : 'expected a matrix (a list of rows) or a flat list of numbers',
      })
      .describe('Targets, batch × out_last; or a flat list of batch numbers when out_last = 1.'),
    activation: z.enum(ACTIVATIONS).default('tanh').describe('Activation of every hidden layer.'),
    outputActivation: z.enum(ACTIVATIONS).default('sigmoid').describe('Activation of the last layer.'),
    loss: z.enum(LOSSES).default('bce').describe("bce: binary cross-entropy with JAX's clip(p, 1e-8, 1 - 1e-8)."),
    reduction: z
      .enum(REDUCTIONS)
      .default('mean')
      .describe('mean over all batch × out elements, or sum (add up the results of batch shards).'),
  })
  .superRefine((body, ctx) => {
    for (const issue of shapeIssues(body)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
  })
  .meta({ examples: [xorRequest] })
  .describe('An MLP, a batch and the loss options.');
export type ComputeRequest = z.infer<typeof ComputeRequest>;

/** JSON has no NaN or Infinity: non-finite results are written as these strings. */
const Num = z
  .union([z.number(), z.enum(['NaN', 'Infinity', '-Infinity'])])
  .describe('A float32 result; "NaN", "Infinity" or "-Infinity" where it is not finite.');

const Warnings = z.array(z.string()).optional().describe('Present when a result is not finite: what happened and how to avoid it.');

export const LossResponse = z
  .object({ loss: Num.describe('The loss, as JAX computes it in float32.'), warnings: Warnings })
  .describe('The loss only.');

export const ValueAndGradResponse = z
  .object({
    loss: Num.describe('The loss, as JAX computes it in float32.'),
    grads: z
      .array(z.object({ W: z.array(z.array(Num)), b: z.array(Num) }))
      .describe('d loss / d params, with exactly the structure and shapes of params.'),
    warnings: Warnings,
  })
  .describe('The loss and its gradient tree (jax.value_and_grad).');

export const ErrorResponse = z
  .object({
    statusCode: z.number().int(),
    code: z.string(),
    error: z.string(),
    message: z.string().describe('Which field is wrong and what was expected.'),
  })
  .describe("An error, in fastify's shape.");

export const HealthResponse = z.object({ status: z.literal('ok') });
export const ReadyResponse = z.object({
  status: z.literal('ready'),
  backend: z.string().describe('The compute backend in use.'),
});
export const NotReadyResponse = ErrorResponse;
