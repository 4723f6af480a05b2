import { f32Mul, f32Sub } from '../float32.js';
import type { ElementLossOp } from './head.js';

/** Mean squared error: mean((pred - y)²) over all batch × out elements (sum with reduction "sum"). */
export const mse: ElementLossOp = {
  kind: 'element',
  defaultOutputActivation: 'linear',
  forward: (pred, y) => {
    const d = f32Sub(pred, y);
    return f32Mul(d, d);
  },
  // (d ** 2)' = 2d, as JAX's integer_pow rule
  backward: (c, pred, y) => f32Mul(c, f32Mul(2, f32Sub(pred, y))),
};
