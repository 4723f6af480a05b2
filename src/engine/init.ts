import { f32 } from './float32.js';
import { ERF_ALMOST_ONE, ERF_SQRT2, inverseCdfNormal, unitFloat, words } from './prng.js';
import type { Layer } from './types.js';

/**
 * Parameter initialisation with jax.nn.initializers' distributions and scales (not their
 * bits): for W (in × out), fan_in = in, fan_out = out, fan_avg = (in + out) / 2;
 *   normal          N(0, scale²)                                       (scale default 0.01)
 *   glorot_normal   σ·t/0.8796, σ² = 1/fan_avg, t a standard normal truncated to ±2
 *   glorot_uniform  U(-√(3/fan_avg), √(3/fan_avg))
 *   he_normal       σ·t/0.8796, σ² = 2/fan_in
 *   he_uniform      U(-√(6/fan_in), √(6/fan_in))
 * Biases are zeros, or N(0, scale²) with biasScheme "normal". The numbers come from
 * prng.ts (Threefry-2x32, streams 2l for W and 2l+1 for b of layer l), rounded to float32:
 * the same seed gives the same parameters on every machine.
 */
export const INIT_SCHEMES = ['normal', 'glorot_normal', 'glorot_uniform', 'he_normal', 'he_uniform'] as const;
export type InitScheme = (typeof INIT_SCHEMES)[number];
export const BIAS_SCHEMES = ['zeros', 'normal'] as const;
export type BiasScheme = (typeof BIAS_SCHEMES)[number];

export interface InitOptions {
  layers: number[]; // widths: [in, hidden..., out]
  seed: number; // uint32
  scheme: InitScheme;
  biasScheme: BiasScheme;
  scale: number; // standard deviation of the "normal" schemes
}

/** stddev of a standard normal truncated to [-2, 2] (JAX's variance_scaling correction) */
const TRUNCATED_STDDEV = 0.87962566103423978;

type Sampler = (word: number) => number;

const normal =
  (stddev: number): Sampler =>
  (w) =>
    stddev * inverseCdfNormal(w, ERF_ALMOST_ONE);

function weightSampler(scheme: InitScheme, fanIn: number, fanOut: number, scale: number): Sampler {
  const truncated = (variance: number): Sampler => {
    const stddev = Math.sqrt(variance) / TRUNCATED_STDDEV;
    return (w) => stddev * inverseCdfNormal(w, ERF_SQRT2);
  };
  const uniform = (variance: number): Sampler => {
    const limit = Math.sqrt(3 * variance);
    return (w) => (unitFloat(w) * 2 - 1) * limit;
  };
  const fanAvg = (fanIn + fanOut) / 2;
  switch (scheme) {
    case 'normal':
      return normal(scale);
    case 'glorot_normal':
      return truncated(1 / fanAvg);
    case 'glorot_uniform':
      return uniform(1 / fanAvg);
    case 'he_normal':
      return truncated(2 / fanIn);
    case 'he_uniform':
      return uniform(2 / fanIn);
  }
}

function fill(count: number, seed: number, stream: number, sample: Sampler): Float32Array {
  const word = words(seed, stream);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = f32(sample(word(i)));
  return out;
}

export function initParams(o: InitOptions): Layer[] {
  return o.layers.slice(1).map((out, l) => {
    const inDim = o.layers[l]!;
    const W = fill(inDim * out, o.seed, 2 * l, weightSampler(o.scheme, inDim, out, o.scale));
    const b = o.biasScheme === 'zeros' ? new Float32Array(out) : fill(out, o.seed, 2 * l + 1, normal(o.scale));
    return { W: { rows: inDim, cols: out, data: W }, b };
  });
}
