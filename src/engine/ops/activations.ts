import { f32, f32Add, f32Div, f32Exp, f32Expm1, f32Log1p, f32Mul, f32Sub, f32Tanh } from '../float32.js';
import type { Activation, BackendName } from '../types.js';

/**
 * Each activation owns its forward and its derivative, twice: as gpu.js kernel source
 * (hidden layers, inlined into the dense kernels) and as host float32 code (the output
 * layer, inside the loss head). The derivative reads what JAX's rule reads: the output
 * `a` for tanh (1 - a²), sigmoid (a(1 - a)), relu (a > 0, so relu'(0) = 0) and elu
 * (expm1' = a + 1); the pre-activation `z` for the rest, whose derivatives JAX takes by
 * the chain rule through their formulas (gelu's tanh approximation, silu's x·sigmoid(x),
 * softplus's logaddexp(x, 0)). Layers with a `z` activation keep z for the reverse pass.
 */
export interface ActivationOp {
  derivativeOf: 'a' | 'z';
  /** kernel statements that end in `return <activation of z>;` */
  kernelForward: (z: string) => string;
  /**
   * kernelForward without calls out of WebAssembly, for the webasm backend, where gpu.js
   * calls Math.tanh/exp/... as a JavaScript import once per SIMD lane (absent: kernelForward).
   * Every activation that calls Math has one (tanh as a rational function; exp, expm1 and
   * log1p from float32 arithmetic).
   */
  kernelForwardWasm?: (z: string) => string;
  /** kernel statements that end in `return <cotangent of z>;`, from `g` upstream and `v` (a or z, per derivativeOf) */
  kernelBackward: (g: string, v: string) => string;
  /** kernelBackward without calls out of WebAssembly, for webasm (absent: kernelBackward) */
  kernelBackwardWasm?: (g: string, v: string) => string;
  hostForward: (z: number) => number;
  hostBackward: (g: number, v: number) => number;
}

const LEAKY_SLOPE = f32(0.01); // jax.nn.leaky_relu's negative_slope
const GELU_C = f32(Math.sqrt(2 / Math.PI)); // JAX rounds sqrt(2/pi) to the input's dtype
const GELU_K = f32(0.044715);
const K_GELU_U = (v: string) => `0.7978845608028654 * (${v} + 0.044715 * ${v} * ${v} * ${v})`;

/** gelu's tanh and cdf, in float32 as JAX evaluates 0.5 * (1 + tanh(c * (x + k * x**3))) */
function geluCdf(z: number): { t: number; cdf: number } {
  const t = f32Tanh(f32Mul(GELU_C, f32Add(z, f32Mul(GELU_K, f32Mul(f32Mul(z, z), z)))));
  return { t, cdf: f32Mul(0.5, f32Add(1, t)) };
}
/**
 * tanh as the rational function Eigen and XLA's CPU backend evaluate for float32 (a
 * degree-13/6 odd/even pair on the input clamped to ±7.905, the identity below 4e-4),
 * in float32 arithmetic only. Against float32 Math.tanh: at most 6 ulp, relative error
 * ≤ 3.6e-7 (measured on 2·10⁶ points in ±10). Kernel locals start with `act`.
 */
const TANH_P = [
  4.89352455891786e-3, 6.37261928875436e-4, 1.48572235717979e-5, 5.12229709037114e-8, -8.60467152213735e-11, 2.00018790482477e-13,
  -2.76076847742355e-16,
];
const TANH_Q = [4.89352518554385e-3, 2.268434632439e-3, 1.18534705686654e-4, 1.19825839466702e-6];
const horner = (x: string, c: number[]): string =>
  c.reduceRight((acc, coef) => `(${coef} + ${x} * ${acc})`, '0').replace(` + ${x} * 0)`, ')');
/** kernel statements that declare `out` = tanh(z), rational */
const tanhRational = (z: string, out: string) =>
  `let actZ = ${z};
      let actC = Math.min(Math.max(actZ, -7.90531110763549805), 7.90531110763549805);
      let actC2 = actC * actC;
      let actP = actC * ${horner('actC2', TANH_P)};
      let actQ = ${horner('actC2', TANH_Q)};
      let ${out} = Math.abs(actZ) < 0.0004 ? actZ : actP / actQ;`;
const kernelTanhRational = (z: string) => `${tanhRational(z, 'actT')}
      return actT;`;

/**
 * exp in float32 arithmetic only, as Cephes' expf: n = round(x / ln 2), r = x − n·ln 2 in
 * two parts (Cody–Waite), e^r − 1 = q by a degree-6 polynomial, then 2ⁿ built from n's
 * bits by multiplying powers of two (the kernel language has no bit casts). Declares
 * `actQ` (e^r − 1), `actN` and `actP2` (2^min(n, 127)). Against float64 Math.exp: at most
 * 1.3 ulp on [−87.3, 88.7] (measured on 65,536 points); expm1 from the same parts at most
 * 1.2 ulp for x ≤ 0, tiny x included (test/engine/activations.test.ts).
 */
const POWERS_OF_TWO = [2, 2 ** 2, 2 ** 4, 2 ** 8, 2 ** 16, 2 ** 32, 2 ** 64];
const expParts = (x: string, t: string) =>
  `let actX${t} = Math.min(Math.max(${x}, -87.33654), 88.72283);
      let actN${t} = Math.floor(actX${t} * 1.44269504088896341 + 0.5);
      let actR${t} = actX${t} - actN${t} * 0.693359375 + actN${t} * 2.12194440e-4;
      let actQ${t} = ((((((1.987569150e-4 * actR${t} + 1.3981999507e-3) * actR${t} + 8.3334519073e-3) * actR${t} + 4.1665795894e-2) * actR${t} + 1.6666665459e-1) * actR${t} + 5.0000001201e-1) * actR${t}) * actR${t} + actR${t};
      let actM${t} = Math.min(Math.abs(actN${t}), 127);
      let actP${t} = 1;
      ${POWERS_OF_TWO.map((p, i) => `let actH${i}${t} = Math.floor(actM${t} * 0.5); actP${t} = actP${t} * (actM${t} - 2 * actH${i}${t} > 0.5 ? ${p} : 1); actM${t} = actH${i}${t};`).join('\n      ')}
      let actP2${t} = actN${t} < 0 ? 1 / actP${t} : actP${t};`;
/**
 * kernel statements that declare `out` = exp(x): 0 below −87.34, where float32's exp would
 * be subnormal (below 1.2e-38); n = 128 (x near 88.7) doubles the mantissa side, as 2¹²⁸
 * itself overflows. `t` tags the locals, for two exps in one kernel.
 */
const kernelExp = (x: string, out: string, t = '') =>
  `${expParts(x, t)}\n      let ${out} = actX${t} <= -87.33654 ? 0 : (actQ${t} + 1) * (actN${t} > 127 ? 2 : 1) * actP2${t};`;
/** kernel statements that declare `out` = expm1(x) for x ≤ 0: 2ⁿ·q + (2ⁿ − 1), exact in its last term */
const kernelExpm1 = (x: string, out: string) => `${expParts(x, '')}\n      let ${out} = actP2 * actQ + (actP2 - 1);`;
/**
 * kernel statements that declare `out` = log1p(y) for y in [0, 1] (softplus's exp(−|z|)):
 * 1 + y in (1, 2], halved above √2, so f = (1 + y)/2^k − 1 lies in (−0.293, 0.414], where
 * log(1 + f) = 2 atanh(s), s = f / (2 + f), |s| ≤ 0.172: five terms of its series.
 */
const kernelLog1pUnit = (y: string, out: string) =>
  `let actY = ${y};
      let actF = actY > 0.41421356 ? (actY - 1) * 0.5 : actY;
      let actS = actF / (2 + actF);
      let actS2 = actS * actS;
      let actL = 2 * actS * (1 + actS2 * (0.33333333 + actS2 * (0.2 + actS2 * (0.14285714 + actS2 * 0.11111111))));
      let ${out} = actL + (actY > 0.41421356 ? 0.6931471805599453 : 0);`;

/** gelu's derivative from its tanh `actT`: d = cdf + x · 0.5(1 - tanh²u) · c(1 + 3k x²) */
const geluBackward = (g: string, z: string) =>
  `return ${g} * (0.5 * (1 + actT)) + ${g} * ${z} * 0.5 * (1 - actT * actT) * 0.7978845608028654 * (1 + 0.134145 * ${z} * ${z});`;

/** kernel statements that declare `actSp` = softplus(z) = max(z, 0) + log1p(exp(−|z|)) */
const softplusWasm = (z: string) =>
  `${kernelExp(`-Math.abs(${z})`, 'actE')}\n      ${kernelLog1pUnit('actE', 'actL1p')}\n      let actSp = Math.max(${z}, 0) + actL1p;`;

const hostSigmoid = (z: number) => f32Div(1, f32Add(1, f32Exp(-z)));
const hostSoftplus = (z: number) => f32Add(Math.max(z, 0), f32Log1p(f32Exp(-Math.abs(z))));

export const activationOps: Record<Activation, ActivationOp> = {
  tanh: {
    derivativeOf: 'a',
    kernelForward: (z) => `return Math.tanh(${z});`,
    kernelForwardWasm: kernelTanhRational,
    kernelBackward: (g, a) => `return ${g} * (1 - ${a} * ${a});`,
    hostForward: f32Tanh,
    hostBackward: (g, a) => f32Mul(g, f32Sub(1, f32Mul(a, a))),
  },
  relu: {
    derivativeOf: 'a',
    kernelForward: (z) => `return Math.max(${z}, 0);`,
    kernelBackward: (g, a) => `return ${a} > 0 ? ${g} : 0;`,
    hostForward: (z) => Math.max(z, 0),
    hostBackward: (g, a) => (a > 0 ? g : 0),
  },
  sigmoid: {
    // 1 / (1 + exp(-z)) in float32 reaches exactly 1.0 once exp(-z) < 2^-24 (z > ~16.6),
    // which is where JAX's bce turns into log(0).
    derivativeOf: 'a',
    kernelForward: (z) => `return 1 / (1 + Math.exp(-${z}));`,
    kernelForwardWasm: (z) => `${kernelExp(`-(${z})`, 'actE')}
      return 1 / (1 + actE);`,
    kernelBackward: (g, a) => `return ${g} * (${a} * (1 - ${a}));`,
    hostForward: hostSigmoid,
    hostBackward: (g, a) => f32Mul(g, f32Mul(a, f32Sub(1, a))),
  },
  linear: {
    derivativeOf: 'a',
    kernelForward: (z) => `return ${z};`,
    kernelBackward: (g) => `return ${g};`,
    hostForward: f32,
    hostBackward: f32,
  },
  leaky_relu: {
    // where(x >= 0, x, 0.01 x): the sign of an underflowed 0.01 x says nothing, so read z
    derivativeOf: 'z',
    kernelForward: (z) => `return ${z} >= 0 ? ${z} : 0.01 * ${z};`,
    kernelBackward: (g, z) => `return ${z} >= 0 ? ${g} : 0.01 * ${g};`,
    hostForward: (z) => (z >= 0 ? z : f32Mul(LEAKY_SLOPE, z)),
    hostBackward: (g, z) => (z >= 0 ? g : f32Mul(g, LEAKY_SLOPE)),
  },
  gelu: {
    // x · 0.5(1 + tanh(u)), u = c(x + k x³): d = cdf + x · 0.5(1 - tanh²u) · c(1 + 3k x²)
    derivativeOf: 'z',
    kernelForward: (z) => `let actU = ${K_GELU_U(z)}; return ${z} * (0.5 * (1 + Math.tanh(actU)));`,
    kernelForwardWasm: (z) => `${tanhRational(K_GELU_U(z), 'actT')}
      return ${z} * (0.5 * (1 + actT));`,
    kernelBackward: (g, z) => `let actT = Math.tanh(${K_GELU_U(z)});
      ${geluBackward(g, z)}`,
    kernelBackwardWasm: (g, z) => `${tanhRational(K_GELU_U(z), 'actT')}
      ${geluBackward(g, z)}`,
    hostForward: (z) => f32Mul(z, geluCdf(z).cdf),
    hostBackward: (g, z) => {
      const { t, cdf } = geluCdf(z);
      const dInner = f32Mul(GELU_C, f32Mul(f32Mul(f32Mul(g, z), 0.5), f32Sub(1, f32Mul(t, t))));
      const dCube = f32Mul(f32Mul(GELU_K, dInner), f32Mul(3, f32Mul(z, z)));
      return f32Add(f32Mul(g, cdf), f32Add(dInner, dCube));
    },
  },
  silu: {
    // x · sigmoid(x): d = s + x · s(1 - s)
    derivativeOf: 'z',
    kernelForward: (z) => `let actS = 1 / (1 + Math.exp(-${z})); return ${z} * actS;`,
    kernelForwardWasm: (z) => `${kernelExp(`-(${z})`, 'actE')}
      let actS = 1 / (1 + actE); return ${z} * actS;`,
    kernelBackward: (g, z) => `let actS = 1 / (1 + Math.exp(-${z})); return ${g} * (actS + ${z} * actS * (1 - actS));`,
    kernelBackwardWasm: (g, z) =>
      `${kernelExp(`-(${z})`, 'actE')}
      let actS = 1 / (1 + actE); return ${g} * (actS + ${z} * actS * (1 - actS));`,
    hostForward: (z) => f32Mul(z, hostSigmoid(z)),
    hostBackward: (g, z) => {
      const s = hostSigmoid(z);
      return f32Add(f32Mul(g, s), f32Mul(f32Mul(g, z), f32Mul(s, f32Sub(1, s))));
    },
  },
  softplus: {
    // logaddexp(x, 0) = max(x, 0) + log1p(exp(-|x|)); JAX's logaddexp rule: d = exp(x - out)
    derivativeOf: 'z',
    kernelForward: (z) => `return Math.max(${z}, 0) + Math.log1p(Math.exp(-Math.abs(${z})));`,
    kernelForwardWasm: (z) => `${softplusWasm(z)}\n      return actSp;`,
    kernelBackward: (g, z) =>
      `let actSp = Math.max(${z}, 0) + Math.log1p(Math.exp(-Math.abs(${z}))); return ${g} * Math.exp(${z} - actSp);`,
    kernelBackwardWasm: (g, z) => `${softplusWasm(z)}\n      ${kernelExp(`${z} - actSp`, 'actD', 'd')}\n      return ${g} * actD;`,
    hostForward: hostSoftplus,
    hostBackward: (g, z) => f32Mul(g, f32Exp(f32Sub(z, hostSoftplus(z)))),
  },
  elu: {
    // where(x > 0, x, expm1(x)), alpha 1; JAX differentiates expm1 as its output + 1
    derivativeOf: 'a',
    kernelForward: (z) => `return ${z} > 0 ? ${z} : Math.expm1(${z});`,
    kernelForwardWasm: (z) => `${kernelExpm1(z, 'actEm1')}
      return ${z} > 0 ? ${z} : actEm1;`,
    kernelBackward: (g, a) => `return ${a} > 0 ? ${g} : ${g} * (${a} + 1);`,
    hostForward: (z) => (z > 0 ? z : f32Expm1(z)),
    hostBackward: (g, a) => (a > 0 ? g : f32Mul(g, f32Add(a, 1))),
  },
};

/** An activation's kernel code for `backend`: webasm takes the variants that make no calls out of WebAssembly. */
export function kernelCode(act: Activation, backend: BackendName): Pick<ActivationOp, 'kernelForward' | 'kernelBackward'> {
  const op = activationOps[act];
  if (backend !== 'webasm') return op;
  return { kernelForward: op.kernelForwardWasm ?? op.kernelForward, kernelBackward: op.kernelBackwardWasm ?? op.kernelBackward };
}
