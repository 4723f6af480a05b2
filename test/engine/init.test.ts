import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { describe, it } from 'node:test';
import { INIT_SCHEMES, type InitOptions, initParams } from '../../src/engine/init.js';
import { detLog, erfInv, threefry2x32 } from '../../src/engine/prng.js';

const fingerprint = async (o: InitOptions) =>
  createHash('sha256')
    .update(JSON.stringify((await initParams(o)).map((l) => [Array.from(l.W.data), Array.from(l.b)])))
    .digest('hex');

const base: InitOptions = { layers: [3, 5, 2], seed: 0, scheme: 'glorot_normal', biasScheme: 'zeros', scale: 0.01 };

function moments(v: Float32Array): { mean: number; std: number; maxAbs: number } {
  const mean = v.reduce((s, x) => s + x, 0) / v.length;
  const std = Math.sqrt(v.reduce((s, x) => s + (x - mean) ** 2, 0) / v.length);
  return { mean, std, maxAbs: v.reduce((m, x) => Math.max(m, Math.abs(x)), 0) };
}

describe('PRNG', () => {
  it("threefry2x32 gives Random123's known answers", () => {
    const hex = (pair: number[]) => pair.map((w) => w.toString(16).padStart(8, '0')).join(' ');
    assert.equal(hex(threefry2x32(0, 0, 0, 0)), '6b200159 99ba4efe');
    assert.equal(hex(threefry2x32(0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff)), '1cb996fc bb002be7');
    assert.equal(hex(threefry2x32(0x13198a2e, 0x03707344, 0x243f6a88, 0x85a308d3)), 'c4923a9c 483df7a0');
  });

  it('computes log and erf⁻¹ from basic arithmetic, accurately', () => {
    for (const x of [1e-300, 1e-7, 0.3, Math.SQRT1_2, 1, Math.SQRT2, 2, 1e5, 3.4e38]) {
      assert.ok(Math.abs(detLog(x) - Math.log(x)) <= 1e-15 * Math.max(1, Math.abs(Math.log(x))), `log ${x}`);
    }
    // erf⁻¹ at known points (to 1e-16), within Giles's single-precision bound
    for (const [x, want] of [
      [0.5, 0.4769362762044699],
      [0.9, 1.1630871536766743],
      [-0.999, -2.326753765513525],
    ] as const) {
      assert.ok(Math.abs(erfInv(x) - want) <= 5e-7 * Math.abs(want), `erfinv(${x}) = ${erfInv(x)}`);
    }
  });
});

describe('init', () => {
  it("draws each scheme from jax.nn.initializers' distribution and scale", async () => {
    const fanIn = 200;
    const fanOut = 300;
    const fanAvg = (fanIn + fanOut) / 2;
    const want: Record<string, { std: number; bound: number }> = {
      normal: { std: 0.01, bound: Infinity },
      glorot_normal: { std: Math.sqrt(1 / fanAvg), bound: (2 * Math.sqrt(1 / fanAvg)) / 0.87962566103423978 },
      glorot_uniform: { std: Math.sqrt(1 / fanAvg), bound: Math.sqrt(3 / fanAvg) },
      he_normal: { std: Math.sqrt(2 / fanIn), bound: (2 * Math.sqrt(2 / fanIn)) / 0.87962566103423978 },
      he_uniform: { std: Math.sqrt(2 / fanIn), bound: Math.sqrt(6 / fanIn) },
    };
    for (const scheme of INIT_SCHEMES) {
      const [layer] = await initParams({ ...base, layers: [fanIn, fanOut], scheme });
      const { mean, std, maxAbs } = moments(layer!.W.data);
      assert.ok(Math.abs(std - want[scheme]!.std) <= 0.02 * want[scheme]!.std, `${scheme}: std ${std} vs ${want[scheme]!.std}`);
      assert.ok(Math.abs(mean) <= 0.01 * want[scheme]!.std * 3, `${scheme}: mean ${mean}`);
      assert.ok(maxAbs <= want[scheme]!.bound, `${scheme}: max |w| ${maxAbs} over ${want[scheme]!.bound}`);
      assert.ok(
        layer!.b.every((b) => b === 0),
        `${scheme}: zero biases`,
      );
    }
    const [withBias] = await initParams({ ...base, layers: [10, 20000], biasScheme: 'normal', scale: 0.5 });
    assert.ok(Math.abs(moments(withBias!.b).std - 0.5) < 0.02);
  });

  it("gives a tensor the same numbers whatever the other layers' shapes", async () => {
    const a = await initParams({ ...base, layers: [3, 5, 2] });
    const b = await initParams({ ...base, layers: [3, 5, 7, 4] });
    assert.deepEqual(a[0], b[0]);
    assert.notDeepEqual((await initParams({ ...base, seed: 1 }))[0], a[0]);
  });

  it('is bit-identical in separate processes and across releases (a pinned fingerprint)', async () => {
    const options = INIT_SCHEMES.map((scheme, k) => ({ ...base, scheme, seed: 1000 + k, biasScheme: 'normal' as const }));
    const here = await Promise.all(options.map(fingerprint));
    const script = `
      import { createHash } from 'node:crypto';
      import { initParams } from './src/engine/init.ts';
      const options = JSON.parse(process.argv[1]);
      const params = await Promise.all(options.map((o) => initParams(o)));
      console.log(JSON.stringify(params.map((p) => createHash('sha256')
        .update(JSON.stringify(p.map((l) => [Array.from(l.W.data), Array.from(l.b)]))).digest('hex'))));`;
    const cwd = new URL('../../', import.meta.url).pathname;
    for (let run = 0; run < 2; run++) {
      const out = execFileSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(options)], {
        cwd,
      });
      assert.deepEqual(JSON.parse(out.toString()), here, `process ${run}`);
    }
    // The lesson's network from seed 0: changing these numbers breaks every client's reproducibility.
    const lesson = await initParams({ ...base, layers: [2, 4, 1] });
    assert.deepEqual(Array.from(lesson[0]!.W.data.slice(0, 3)), PINNED_SEED0_W0);
  });
});

const PINNED_SEED0_W0 = [-0.12887753546237946, -0.48667111992836, 1.0439988374710083];
