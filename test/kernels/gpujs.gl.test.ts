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
import type { ShardNeeds } from '../../src/kernels/types.js';
import {
  ALL_NEEDS,
  EVERY,
  bigCase,
  compare,
  expectEveryNeeds,
  expectExact,
  expectExtremeStats,
  expectNanStats,
  extremeBatch,
  loopCase,
  measured,
  nanBatch,
  randomBatch,
  throughputCase,
  timeRuns,
} from './gpujs-cases.js';
import { fallbackWithoutDisplay } from './gpujs-fallback.js';
import { from, lastValueFrom } from 'rxjs';
import { FeatureActivationStats, MetricCollection, NeuronFiredCountMetric, reduceMetric, tensor } from '../../src/index.js';
import { bits } from '../support/compare.js';

const INSTALL =
  'The GL suite needs gpu.js, the native package gl (built) and an X display: on Debian, apt-get install libxi-dev ' +
  'libx11-dev libxext-dev mesa-common-dev pkg-config libgl1-mesa-dri xvfb xauth before npm install (which builds gl), ' +
  'and run it under xvfb-run (npm run test:gl).';

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
    expectEveryNeeds('headlessgl', kernel, blocked);
  });

  it('treats NaN as non-zero and not fired, and propagates NaN and Infinity into the sums, as the reference does', () => {
    const { kernel } = built();
    expectNanStats(kernel.fused(nanBatch(), { start: 0, end: 2 }, EVERY));
  });

  it('sums that overflow a float32 block or are subnormal are float64, as jsFusedKernel gives them (GLSL may flush subnormals)', () => {
    const { kernel } = built();
    expectExtremeStats(kernel.fused(extremeBatch(), { start: 0, end: 4 }, EVERY));
  });

  it('counts subnormal activations as fired and non-zero, as jsFusedKernel and the fired entries do (GLSL may flush them to zero)', async () => {
    const { kernel } = built();
    // Each feature fires on two of three rows, with subnormal values among them; -1e-45 does not fire.
    const data = Float32Array.from([1e-45, 1e-40, 1.1754942e-38, 1, 0, -0, NaN, Infinity, 3.4028234663852886e38, 2e-42, 5, -1e-45]);
    const batch: Batch = { learnedActivations: { data, shape: [3, 4] } } as unknown as Batch;
    const rows = { start: 0, end: 3 };
    const needs = { fired: true, nonZero: true } as const;
    const got = kernel.fused(batch, rows, needs);
    expect(Array.from(got.fired ?? [])).toEqual([2, 2, 2, 2]);
    expect(Array.from(got.nonZero ?? [])).toEqual(Array.from(jsFusedKernel(batch, rows, needs).nonZero ?? []));
    // Through the metrics: the fired counts agree with the fired entries, so the state is a valid one.
    const make = () => new MetricCollection({ n: new NeuronFiredCountMetric({ numLearnedFeatures: 4 }), stats: new FeatureActivationStats({ numLearnedFeatures: 4 }) });
    const one = { learnedActivations: tensor(data, [3, 4]) };
    const gl = await lastValueFrom(from([one]).pipe(reduceMetric(make(), { backend: 'gpujs', gpujsMode: 'headlessgl' })));
    const js = await lastValueFrom(from([one]).pipe(reduceMetric(make(), { backend: 'js' })));
    expect(bits(gl)).toEqual(bits(js));
  });

  it('a shard past 2^24 elements gives exact sums and counts (flat indexing would be float32 in GLSL)', () => {
    const { kernel } = built();
    const { batch, rows, expected } = bigCase();
    const count = (expected.nonZero as Float64Array)[0] as number;
    expect(count).toBeGreaterThan(2 ** 24);
    expect(Math.fround(count)).not.toBe(count);
    expectExact(kernel.fused(batch, rows, EVERY), expected);
  });

  it('4096 features and 1200 rows in one loop (above loopMaxIterations 1000) give right sums and counts', async () => {
    const { R, F, batch, rows, expected } = loopCase();
    const oneLoop = glKernel({ featureBlock: F, rowBlock: R });
    try {
      expectExact(oneLoop.fused(batch, rows, EVERY), expected);
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
    const { R, F, batch, rows } = throughputCase();
    const { first: build, median } = timeRuns(
      () => compare('headlessgl throughput', kernel.fused(batch, rows, { abs: true }), jsFusedKernel(batch, rows, { abs: true })),
      () => kernel.fused(batch, rows, { abs: true }),
    );
    console.log(
      `gpu.js headlessgl (${kernel.renderer}): abs over ${R} x ${F} float32: ${((R * F * 4) / median / 1e6).toFixed(2)} GB/s ` +
        `(median of 3; first run with build and reference ${build.toFixed(0)} ms); ` +
        `largest relative error of abs/mse against jsFusedKernel: ${(measured.get('headlessgl') ?? 0).toExponential(2)}`,
    );
  });
});

describe('createGpujsKernel where gl is built but there is no display', () => {
  it("'gpu' fails at once, in one line telling to run under xvfb-run", () => {
    const answer = fallbackWithoutDisplay();
    expect(answer.error).toBe(
      "createGpujsKernel: gpu.js mode 'gpu' cannot run here: no GL backend: there is no X display for headlessgl (DISPLAY is not set): " +
        'run under xvfb-run -a (Debian: apt-get install xvfb xauth libgl1-mesa-dri), or in a desktop session',
    );
  });
});
