/**
 * Deterministic random numbers, bit-identical on every machine: Threefry-2x32 (20 rounds,
 * JAX's PRNG; Salmon et al. 2011) in counter mode, and transforms that use only
 * +, −, ×, ÷ and sqrt (IEEE-754 correctly rounded everywhere), never Math.log or
 * Math.cos, whose last bit may differ between platforms.
 *
 *   word(seed, stream, i) = threefry2x32(key = [0, seed], counter = [stream, i])[0]
 *
 * (key [0, seed] is what jax.random.PRNGKey(seed) holds for a 32-bit seed). Each use has
 * its own stream, so changing one tensor's shape never shifts another's numbers.
 */
const ROTATIONS = [13, 15, 26, 6, 17, 29, 16, 24];

const rotl = (x: number, r: number) => ((x << r) | (x >>> (32 - r))) >>> 0;

export function threefry2x32(key0: number, key1: number, count0: number, count1: number): [number, number] {
  const ks = [key0 >>> 0, key1 >>> 0, (key0 ^ key1 ^ 0x1bd11bda) >>> 0];
  let x0 = (count0 + ks[0]!) >>> 0;
  let x1 = (count1 + ks[1]!) >>> 0;
  for (let group = 0; group < 5; group++) {
    for (let r = 0; r < 4; r++) {
      x0 = (x0 + x1) >>> 0;
      x1 = rotl(x1, ROTATIONS[(group % 2) * 4 + r]!) ^ x0;
    }
    x0 = (x0 + ks[(group + 1) % 3]!) >>> 0;
    x1 = (x1 + ks[(group + 2) % 3]! + group + 1) >>> 0;
  }
  return [x0, x1 >>> 0];
}

/** A stream of 32-bit words for one seed and stream number. */
export function words(seed: number, stream: number): (i: number) => number {
  return (i) => threefry2x32(0, seed, stream, i)[0];
}

/** A uniform float in [0, 1) from a word's top 23 bits, as jax.random.uniform makes float32s. */
export const unitFloat = (word: number): number => (word >>> 9) * 2 ** -23;

/**
 * Natural log of x > 0 from basic arithmetic only: x = m·2^e with m in [√½, √2), then
 * ln m = 2·atanh(s), s = (m-1)/(m+1), |s| < 0.172, by its series to 1e-17.
 */
export function detLog(x: number): number {
  let m = x;
  let e = 0;
  while (m >= Math.SQRT2) {
    m /= 2;
    e++;
  }
  while (m < Math.SQRT1_2) {
    m *= 2;
    e--;
  }
  const s = (m - 1) / (m + 1);
  const s2 = s * s;
  let series = 0;
  for (let k = 23; k >= 1; k -= 2) series = 1 / k + s2 * series;
  return e * Math.LN2 + 2 * s * series;
}

/**
 * erf⁻¹ on (-1, 1): Giles (2010)'s single-precision approximation, the one XLA uses for
 * float32 (so jax.random.normal's inverse-CDF sampling), evaluated in float64.
 */
export function erfInv(x: number): number {
  let w = -detLog((1 - x) * (1 + x));
  let p: number;
  if (w < 5) {
    w -= 2.5;
    p = 2.81022636e-8;
    for (const c of [3.43273939e-7, -3.5233877e-6, -4.39150654e-6, 0.00021858087, -0.00125372503, -0.00417768164, 0.246640727, 1.50140941])
      p = c + p * w;
  } else {
    w = Math.sqrt(w) - 3;
    p = -0.000200214257;
    for (const c of [0.000100950558, 0.00134934322, -0.00367342844, 0.00573950773, -0.0076224613, 0.00943887047, 1.00167406, 2.83297682])
      p = c + p * w;
  }
  return p * x;
}

/** A standard normal truncated to [-bound, bound] by inverse CDF (jax.random.truncated_normal's method). */
export function inverseCdfNormal(word: number, erfBound: number): number {
  const u = -erfBound + unitFloat(word) * 2 * erfBound; // in [erf(-bound/√2), erf(bound/√2))
  return Math.SQRT2 * erfInv(u);
}

/** erf(2/√2) = erf(√2): truncation at two standard deviations, as jax.nn.initializers do. */
export const ERF_SQRT2 = 0.9544997361036416;
/** just below 1 in float32: jax.random.normal draws u from [nextafter(-1, 0), 1) */
export const ERF_ALMOST_ONE = 1 - 2 ** -24;
