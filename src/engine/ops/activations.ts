import { f32, f32Add, f32Div, f32Exp, f32Mul, f32Sub, f32Tanh } from '../float32.js';
import type { Activation } from '../types.js';

/**
 * Each activation owns its forward and its derivative, twice: as gpu.js kernel source
 * (hidden layers, inlined into the dense kernels) and as host float32 code (the output
 * layer, inside the loss head). Derivatives are taken from the activation's output `a`,
 * as JAX's rules are (tanh' = 1 - a², sigmoid' = a(1 - a)); relu uses a select, like
 * jax.nn.relu's custom JVP, so relu'(0) = 0 and a NaN cotangent is dropped where x <= 0.
 */
export interface ActivationOp {
  /** kernel expression of the pre-activation `z` */
  kernelForward: (z: string) => string;
  /** kernel expression of the cotangent through the activation: `g` upstream, `a` output */
  kernelBackward: (g: string, a: string) => string;
  hostForward: (z: number) => number;
  hostBackward: (g: number, a: number) => number;
}

export const activationOps: Record<Activation, ActivationOp> = {
  tanh: {
    kernelForward: (z) => `Math.tanh(${z})`,
    kernelBackward: (g, a) => `${g} * (1 - ${a} * ${a})`,
    hostForward: f32Tanh,
    hostBackward: (g, a) => f32Mul(g, f32Sub(1, f32Mul(a, a))),
  },
  relu: {
    kernelForward: (z) => `Math.max(${z}, 0)`,
    kernelBackward: (g, a) => `(${a} > 0 ? ${g} : 0)`,
    hostForward: (z) => Math.max(z, 0),
    hostBackward: (g, a) => (a > 0 ? g : 0),
  },
  sigmoid: {
    // 1 / (1 + exp(-z)) in float32 reaches exactly 1.0 once exp(-z) < 2^-24 (z > ~16.6),
    // which is where JAX's bce turns into log(0).
    kernelForward: (z) => `1 / (1 + Math.exp(-${z}))`,
    kernelBackward: (g, a) => `${g} * (${a} * (1 - ${a}))`,
    hostForward: (z) => f32Div(1, f32Add(1, f32Exp(-z))),
    hostBackward: (g, a) => f32Mul(g, f32Mul(a, f32Sub(1, a))),
  },
  linear: {
    kernelForward: (z) => z,
    kernelBackward: (g) => g,
    hostForward: f32,
    hostBackward: f32,
  },
};
