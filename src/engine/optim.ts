import { f32, f32Add, f32Div, f32Mul, f32Sub } from './float32.js';

/**
 * optax's optimizers, element by element in float32 (optax with JAX's x64 off):
 *   sgd       u = -lr·g
 *   momentum  optax.sgd(lr, momentum): v = g + m·v (trace, not Nesterov), u = -lr·v
 *   adam      optax.adam: m = (1-b1)·g + b1·m, v = (1-b2)·g² + b2·v, t += 1,
 *             u = -lr · (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)   (eps_root 0)
 * and p = p + u (optax.apply_updates).
 */
export type OptimizerOptions =
  | { name: 'sgd'; learningRate: number }
  | { name: 'momentum'; learningRate: number; momentum: number }
  | { name: 'adam'; learningRate: number; b1: number; b2: number; eps: number };

/** One step: update each tensor in place from its gradient. */
export type Optimizer = (params: Float32Array[], grads: Float32Array[]) => void;

export function createOptimizer(options: OptimizerOptions, sizes: number[]): Optimizer {
  const minusLr = -f32(options.learningRate);
  const zeros = () => sizes.map((n) => new Float32Array(n));
  switch (options.name) {
    case 'sgd':
      return (params, grads) =>
        eachElement(params, grads, (p, g) => {
          return f32Add(p, f32Mul(minusLr, g));
        });
    case 'momentum': {
      const m = f32(options.momentum);
      const trace = zeros();
      return (params, grads) =>
        eachElement(params, grads, (p, g, t, i) => {
          const v = f32Add(g, f32Mul(m, trace[t]![i]!));
          trace[t]![i] = v;
          return f32Add(p, f32Mul(minusLr, v));
        });
    }
    case 'adam': {
      const b1 = f32(options.b1);
      const b2 = f32(options.b2);
      const c1 = f32(1 - options.b1);
      const c2 = f32(1 - options.b2);
      const eps = f32(options.eps);
      const mu = zeros();
      const nu = zeros();
      let count = 0;
      return (params, grads) => {
        count++;
        const correction1 = f32Sub(1, f32(b1 ** count));
        const correction2 = f32Sub(1, f32(b2 ** count));
        eachElement(params, grads, (p, g, t, i) => {
          const m = f32Add(f32Mul(c1, g), f32Mul(b1, mu[t]![i]!));
          const v = f32Add(f32Mul(c2, f32Mul(g, g)), f32Mul(b2, nu[t]![i]!));
          mu[t]![i] = m;
          nu[t]![i] = v;
          const step = f32Div(f32Div(m, correction1), f32Add(f32(Math.sqrt(f32Div(v, correction2))), eps));
          return f32Add(p, f32Mul(minusLr, step));
        });
      };
    }
  }
}

function eachElement(
  params: Float32Array[],
  grads: Float32Array[],
  update: (p: number, g: number, tensor: number, index: number) => number,
): void {
  params.forEach((p, t) => {
    const g = grads[t]!;
    for (let i = 0; i < p.length; i++) p[i] = update(p[i]!, g[i]!, t, i);
  });
}
