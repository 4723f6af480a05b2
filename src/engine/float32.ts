/**
 * Float32 arithmetic on the host. JAX computes in float32 (x64 off); the loss head runs
 * here rather than in a kernel so that every backend rounds exactly as JAX does, step by
 * step, including the cases where rounding decides the answer (a sigmoid that reaches
 * exactly 1.0, a clip bound hit exactly).
 */
export const f32 = Math.fround;

export const f32Add = (a: number, b: number): number => f32(a + b);
export const f32Sub = (a: number, b: number): number => f32(a - b);
export const f32Mul = (a: number, b: number): number => f32(a * b);
export const f32Div = (a: number, b: number): number => f32(a / b);
export const f32Log = (a: number): number => f32(Math.log(a));
export const f32Exp = (a: number): number => f32(Math.exp(a));
export const f32Tanh = (a: number): number => f32(Math.tanh(a));
export const f32Log1p = (a: number): number => f32(Math.log1p(a));
export const f32Expm1 = (a: number): number => f32(Math.expm1(a));

/**
 * The smallest magnitude that rounds to ±Infinity in float32 (halfway from the largest finite
 * float32, 3.4028234663852886e38, to 2^128; the tie rounds to even, up). Anything below it
 * rounds to a finite float32: numpy prints that largest one as 3.4028235e38, which is above
 * it and rounds to it.
 */
export const FLOAT32_OVERFLOW = 2 ** 128 - 2 ** 103;
