/**
 * The gpu.js kernels in mode `headlessgl`: real GLSL, on whatever GL the display offers (Mesa's
 * software renderer under Xvfb in CI). Run by `npm run test:gl` under xvfb-run; without the `gl`
 * package or a display these tests FAIL, saying what to install.
 */
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch, RowRange } from '../../src/functional/core.js';
import { createGpujsKernel, gpujsAvailable, type GpujsKernel } from '../../src/kernels/gpujs/index.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { ShardNeeds, ShardStats } from '../../src/kernels/types.js';
import { tensor } from '../../src/tensor.js';
import { mulberry32 } from '../support/random.js';

const INSTALL =
  'The headlessgl tests need the optional native package gl, built, and an X display. On Debian/Ubuntu: ' +
  'apt-get install libxi-dev libx11-dev libxext-dev mesa-common-dev pkg-config xvfb, then npm rebuild gl, ' +
  'and run the tests under xvfb-run (npm run test:gl, or xvfb-run -a npx vitest run --config vitest.gl.config.ts).';

/** Float32 sums within a block of at most 256 values, float64 across blocks: relative tolerance. */
const REL = 1e-5;
const KEYS = ['abs', 'nonZero', 'fired', 'mse'] as const;
const COUNTS = new Set<string>(['nonZero', 'fired']);
const ALL_NEEDS: ShardNeeds[] = Array.from({ length: 15 }, (_, i) => ({
  ...(i & 1 ? { abs: true } : {}),
  ...(i & 2 ? { nonZero: true } : {}),
  ...(i & 4 ? { fired: true } : {}),
  ...(i & 8 ? { mse: true } : {}),
}));
const EVERY: ShardNeeds = { abs: true, nonZero: true, fired: true, mse: true };
let worstRelative = 0;


function sparse(length: number, density: number, random: () => number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = random() < density ? random() * 4 - 2 : 0;
  return out;
}

function randomBatch(shape: number[], density: number, seed: number): Batch {
  const random = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return {
    learnedActivations: tensor(sparse(n, density, random), shape),
    sourceActivations: tensor(sparse(n, 0.9, random), shape),
    decodedActivations: tensor(sparse(n, 0.9, random), shape),
  };
}

function compare(label: string, actual: ShardStats, expected: ShardStats): void {
  expect(Object.keys(actual).sort(), label).toEqual(Object.keys(expected).sort());
  for (const key of KEYS) {
    const e = expected[key];
    if (e === undefined) continue;
    const a = actual[key] as Float64Array;
    expect(a, `${label} ${key}`).toBeInstanceOf(Float64Array);
    expect(a.length, `${label} ${key} length`).toBe(e.length);
    if (COUNTS.has(key)) {
      expect(a.every((v) => Number.isInteger(v)), `${label} ${key} integers`).toBe(true);
      expect(Array.from(a), `${label} ${key}`).toEqual(Array.from(e));
    } else {
      for (let i = 0; i < e.length; i++) {
        const x = a[i] as number;
        const y = e[i] as number;
        const err = Math.abs(x - y);
        if (!(err <= REL * Math.abs(y))) expect(x, `${label} ${key}[${i}]`).toBe(y);
        if (y !== 0) worstRelative = Math.max(worstRelative, err / Math.abs(y));
      }
    }
  }
}

/** Creates a headlessgl kernel, or fails with what to install. */
function glKernel(options: { featureBlock?: number; rowBlock?: number } = {}): GpujsKernel {
  const available = gpujsAvailable('headlessgl');
  if (!available.ok) throw new Error(`headlessgl cannot run here: ${available.reason}. ${INSTALL}`);
  return createGpujsKernel({ mode: 'headlessgl', ...options });
}

/**
 * Shard shapes for the random cases: each builds its GLSL programs once (a compile costs about a
 * tenth of a second on Mesa's software renderer), then random data and row offsets reuse them.
 */
const SHAPES = [
  { rank3: false, components: 1, features: 7, rows: 3 },
  { rank3: true, components: 2, features: 33, rows: 4 },
  { rank3: true, components: 3, features: 257, rows: 2 },
  { rank3: false, components: 1, features: 1, rows: 5 },
] as const;

const glCase = fc
  .record({
    shape: fc.constantFrom(...SHAPES),
    extra: fc.nat({ max: 3 }),
    offset: fc.nat(),
    density: fc.constantFrom(0, 0.1, 0.5, 1),
    seed: fc.integer(),
    needs: fc.integer({ min: 0, max: 14 }).map((i) => ALL_NEEDS[i] as ShardNeeds),
  })
  .map((c) => {
    const batchRows = c.shape.rows + c.extra;
    const start = c.offset % (c.extra + 1);
    const shape = c.shape.rank3 ? [batchRows, c.shape.components, c.shape.features] : [batchRows, c.shape.features];
    return { shape, rows: { start, end: start + c.shape.rows }, density: c.density, seed: c.seed, needs: c.needs };
  });

describe('gpu.js kernels in mode headlessgl', () => {
  // Built once; where headlessgl cannot run, every test fails with the reason (none is skipped).
  let kernels: { kernel: GpujsKernel; blocked: GpujsKernel } | Error;
  beforeAll(() => {
    try {
      kernels = { kernel: glKernel(), blocked: glKernel({ featureBlock: 4, rowBlock: 3 }) };
    } catch (error) {
      kernels = error as Error;
    }
  });
  afterAll(async () => {
    if (kernels instanceof Error) return;
    await kernels.kernel.destroy();
    await kernels.blocked.destroy();
  });
  const built = (): { kernel: GpujsKernel; blocked: GpujsKernel } => {
    if (kernels instanceof Error) throw kernels;
    return kernels;
  };

  it('can run here: gl loads and has a display', () => {
    const available = gpujsAvailable('headlessgl');
    expect(available, `${available.ok ? '' : available.reason}. ${INSTALL}`).toEqual({ ok: true });
  });

  it("runs in mode 'headlessgl' and names its renderer", () => {
    const { kernel } = built();
    expect(kernel.mode).toBe('headlessgl');
    expect(kernel.requestedMode).toBe('headlessgl');
    expect(typeof kernel.renderer).toBe('string');
    expect((kernel.renderer as string).length).toBeGreaterThan(0);
    console.log(`headlessgl renderer: ${kernel.renderer}`);
  });

  it("'gpu' picks a GL backend here", async () => {
    const { kernel } = built();
    const gpu = createGpujsKernel({ mode: 'gpu' });
    try {
      expect(gpu.mode).toBe('headlessgl');
      expect(gpu.requestedMode).toBe('gpu');
      expect(gpu.renderer).toBe(kernel.renderer);
    } finally {
      await gpu.destroy();
    }
  });

  it('matches jsFusedKernel on random sparse shards (rank 2 and 3, odd feature counts, rows inside a batch)', () => {
    const { kernel } = built();
    fc.assert(
      fc.property(glCase, (c) => {
        const batch = randomBatch(c.shape, c.density, c.seed);
        compare(`headlessgl ${JSON.stringify(c)}`, kernel.fused(batch, c.rows, c.needs), jsFusedKernel(batch, c.rows, c.needs));
      }),
      { numRuns: 60 },
    );
  });

  it('matches for every combination of needs, with whole and with small blocks (partial last blocks)', () => {
    const { kernel, blocked } = built();
    const batch = randomBatch([11, 3, 37], 0.3, 7);
    const rows = { start: 2, end: 9 };
    for (const needs of ALL_NEEDS) {
      const label = `headlessgl ${JSON.stringify(needs)}`;
      const actual = kernel.fused(batch, rows, needs);
      expect(Object.keys(actual).sort(), label).toEqual(KEYS.filter((k) => needs[k]).sort());
      compare(label, actual, jsFusedKernel(batch, rows, needs));
      compare(`${label} blocked`, blocked.fused(batch, rows, needs), jsFusedKernel(batch, rows, needs));
    }
  });

  it('treats NaN as non-zero and not fired, and propagates NaN and Infinity into the sums, as the reference does', () => {
    const { kernel } = built();
    const learned = tensor(new Float32Array([NaN, 0, 1, -0, Infinity, -2]), [2, 3]);
    const batch: Batch = {
      learnedActivations: learned,
      decodedActivations: learned,
      sourceActivations: tensor(new Float32Array([0, 0, 1, 0, 0, -2]), [2, 3]),
    };
    const actual = kernel.fused(batch, { start: 0, end: 2 }, EVERY);
    expect(Array.from(actual.abs as Float64Array)).toEqual([NaN, Infinity]);
    expect(Array.from(actual.nonZero as Float64Array)).toEqual([4]);
    expect(Array.from(actual.fired as Float64Array)).toEqual([0, 1, 1]);
    expect(Array.from(actual.mse as Float64Array)).toEqual([NaN, Infinity]);
  });

  it('a shard past 2^24 elements gives exact sums and counts (flat indexing would be float32 in GLSL)', () => {
    const { kernel } = built();
    const R = 1102;
    const F = 16384;
    const learned = new Float32Array(R * F);
    const source = new Float32Array(R * F);
    for (let r = 0; r < R; r++) {
      for (let f = 0; f < F; f++) {
        const i = r * F + f;
        learned[i] = (7 * r + f) % 64 === 0 ? 0 : ((r % 13) + 1) * ((r + f) % 3 === 0 ? -1 : 1);
        source[i] = (r % 5) - 2;
      }
    }
    learned[1 * F + 2] = 0; // the non-zero count becomes odd: float32 cannot hold it
    const batch: Batch = {
      learnedActivations: tensor(learned, [R, F]),
      decodedActivations: tensor(learned, [R, F]),
      sourceActivations: tensor(source, [R, F]),
    };
    const rows = { start: 1, end: R - 1 }; // 1100 x 16384 = 18,022,400 elements > 2^24
    const expected = jsFusedKernel(batch, rows, EVERY);
    const count = (expected.nonZero as Float64Array)[0] as number;
    expect(count).toBeGreaterThan(2 ** 24);
    expect(Math.fround(count)).not.toBe(count);
    const actual = kernel.fused(batch, rows, EVERY);
    for (const key of KEYS) expect(Array.from(actual[key] as Float64Array), key).toEqual(Array.from(expected[key] as Float64Array));
  });

  it('4096 features and 1200 rows in one loop (above loopMaxIterations 1000) give right sums and counts', async () => {
    const R = 1200;
    const F = 4096;
    const learned = new Float32Array(R * F);
    for (let i = 0; i < learned.length; i++) learned[i] = (i % 7 === 0 ? 0 : (i % 5) - 1) * ((Math.floor(i / F) % 3) + 1);
    const batch: Batch = {
      learnedActivations: tensor(learned, [R, F]),
      decodedActivations: tensor(learned, [R, F]),
      sourceActivations: tensor(new Float32Array(R * F).fill(1), [R, F]),
    };
    const rows = { start: 0, end: R };
    const expected = jsFusedKernel(batch, rows, EVERY);
    const oneLoop = glKernel({ featureBlock: F, rowBlock: R });
    try {
      const actual = oneLoop.fused(batch, rows, EVERY);
      for (const key of KEYS) expect(Array.from(actual[key] as Float64Array), key).toEqual(Array.from(expected[key] as Float64Array));
    } finally {
      await oneLoop.destroy();
    }
  });

  it('several shard shapes through one kernel object give right results', () => {
    const { kernel } = built();
    const a = randomBatch([40, 3, 9], 0.4, 11);
    const b = randomBatch([30, 11], 0.4, 12);
    const shards: [Batch, RowRange][] = [
      [a, { start: 0, end: 5 }],
      [b, { start: 2, end: 9 }],
      [a, { start: 12, end: 40 }],
      [a, { start: 3, end: 8 }],
      [b, { start: 9, end: 16 }],
    ];
    for (const [batch, rows] of shards) {
      compare(`headlessgl ${JSON.stringify(rows)}`, kernel.fused(batch, rows, EVERY), jsFusedKernel(batch, rows, EVERY));
    }
  });

  it('prints GB/s for one metric (abs) on a 2048 x 16384 shard', () => {
    const { kernel } = built();
    const R = 2048;
    const F = 16384;
    const batch: Batch = { learnedActivations: tensor(sparse(R * F, 0.1, mulberry32(99)), [R, F]) };
    const rows = { start: 0, end: R };
    const first = performance.now();
    compare('headlessgl throughput', kernel.fused(batch, rows, { abs: true }), jsFusedKernel(batch, rows, { abs: true }));
    const build = performance.now() - first;
    const times: number[] = [];
    for (let i = 0; i < 3; i++) {
      const t = performance.now();
      kernel.fused(batch, rows, { abs: true });
      times.push(performance.now() - t);
    }
    times.sort((x, y) => x - y);
    const median = times[1] as number;
    console.log(
      `gpu.js headlessgl (${kernel.renderer}): abs over ${R} x ${F} float32: ${((R * F * 4) / median / 1e6).toFixed(2)} GB/s ` +
        `(median of 3; first run with build and reference ${build.toFixed(0)} ms); ` +
        `largest relative error of abs/mse against jsFusedKernel: ${worstRelative.toExponential(2)}`,
    );
  });
});
