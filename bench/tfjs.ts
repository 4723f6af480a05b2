/**
 * The alternative a JavaScript user would reach for: the same loss_fn in TF.js (wasm backend),
 * tanh hidden layers, sigmoid output, JAX's clipped bce, mean. Used in process by
 * bench/engine.ts and behind Fastify by bench/tfjs-server.ts.
 */
import * as tf from '@tensorflow/tfjs';
import '@tensorflow/tfjs-backend-wasm';

export { tf };

export async function useTfWasm(): Promise<void> {
  await tf.setBackend('wasm');
  await tf.ready();
}

interface Net {
  params: { W: number[][]; b: number[] }[];
  x: number[][];
  y: number[][];
}

/**
 * `net` as TF.js tensors, and its value-and-grad: run() computes the loss and every gradient
 * and reads them back to the host (as a service must); the tensors stay until dispose().
 */
export function tfModel(net: Net): { run: () => Promise<{ loss: number; grads: Float32Array[] }>; dispose: () => void } {
  const params = net.params.flatMap((p) => [tf.tensor2d(p.W), tf.tensor1d(p.b)]);
  const x = tf.tensor2d(net.x);
  const y = tf.tensor2d(net.y);
  const lossFn = (...ps: tf.Tensor[]) => {
    let a: tf.Tensor = x;
    for (let l = 0; l < ps.length / 2; l++) {
      const z = tf.add(tf.matMul(a as tf.Tensor2D, ps[2 * l] as tf.Tensor2D), ps[2 * l + 1]!);
      a = l === ps.length / 2 - 1 ? tf.sigmoid(z) : tf.tanh(z);
    }
    const p = tf.clipByValue(a, 1e-8, 1 - 1e-8);
    return tf.neg(tf.mean(tf.add(tf.mul(y, tf.log(p)), tf.mul(tf.sub(1, y), tf.log(tf.sub(1, p)))))) as tf.Scalar;
  };
  const vg = tf.valueAndGrads(lossFn);
  return {
    run: async () => {
      const { value, grads } = vg(params);
      const [loss, ...data] = await Promise.all([value.data(), ...grads.map((g) => g.data())]);
      tf.dispose([value, ...grads]);
      return { loss: loss![0]!, grads: data as Float32Array[] };
    },
    dispose: () => tf.dispose([...params, x, y]),
  };
}
