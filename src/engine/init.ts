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
/** The standard deviation of the "normal" scheme and of normal biases when none is given. */
export const DEFAULT_SCALE = 0.01;
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

/** Values drawn between two looks at the clock: about 2 ms of drawing. */
const DRAW_CHUNK = 16384;
/** Longest stretch of drawing before the event loop gets a turn (the parameter limit's 4M take 0.25–0.5 s). */
const YIELD_AFTER_MS = 10;

/** The hot loop, a plain function: inside the async one below it ran 1.6 times as long. */
function draw(out: Float32Array, start: number, end: number, word: (i: number) => number, sample: Sampler): void {
  for (let i = start; i < end; i++) out[i] = f32(sample(word(i)));
}

/**
 * The parameters, drawn in stretches of at most YIELD_AFTER_MS with the event loop's turns
 * between them, so that health checks and other requests keep being answered; `signal`
 * abandons the draw (a timeout, a client gone) at its next turn.
 */
export async function initParams(o: InitOptions, signal?: AbortSignal): Promise<Layer[]> {
  let lastYield = performance.now();
  const fill = async (count: number, stream: number, sample: Sampler): Promise<Float32Array> => {
    const word = words(o.seed, stream);
    const out = new Float32Array(count);
    for (let start = 0; start < count; start += DRAW_CHUNK) {
      if (performance.now() - lastYield > YIELD_AFTER_MS) {
        await new Promise(setImmediate);
        signal?.throwIfAborted();
        lastYield = performance.now();
      }
      draw(out, start, Math.min(count, start + DRAW_CHUNK), word, sample);
    }
    return out;
  };
  const layers: Layer[] = [];
  for (let l = 0; l + 1 < o.layers.length; l++) {
    const inDim = o.layers[l]!;
    const out = o.layers[l + 1]!;
    const W = await fill(inDim * out, 2 * l, weightSampler(o.scheme, inDim, out, o.scale));
    const b = o.biasScheme === 'zeros' ? new Float32Array(out) : await fill(out, 2 * l + 1, normal(o.scale));
    layers.push({ W: { rows: inDim, cols: out, data: W }, b });
  }
  return layers;
}
