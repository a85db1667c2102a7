/**
 * The gpu.js kernels in the modes that run without a display (`cpu`, single-threaded `webasm`),
 * against the reference kernel `jsFusedKernel`, with one test per known gpu.js trap.
 * The `headlessgl` mode is tested by gpujs.gl.test.ts, under xvfb-run.
 */
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch, RowRange } from '../../src/functional/core.js';
import { createGpujsKernel, gpujsAvailable, type GpujsKernel } from '../../src/kernels/gpujs/index.js';
import { gpujs } from '../../src/kernels/gpujs/gpu.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { ShardNeeds, ShardStats } from '../../src/kernels/types.js';
import { tensor } from '../../src/tensor.js';
import { mulberry32 } from '../support/random.js';

/** Float32 sums within a block of at most 256 values, float64 across blocks: relative tolerance. */
const REL = 1e-5;
const KEYS = ['abs', 'nonZero', 'fired', 'mse'] as const;
const COUNTS = new Set<string>(['nonZero', 'fired']);
/** Every non-empty combination of needs. */
const ALL_NEEDS: ShardNeeds[] = Array.from({ length: 15 }, (_, i) => ({
  ...(i & 1 ? { abs: true } : {}),
  ...(i & 2 ? { nonZero: true } : {}),
  ...(i & 4 ? { fired: true } : {}),
  ...(i & 8 ? { mse: true } : {}),
}));
const EVERY: ShardNeeds = { abs: true, nonZero: true, fired: true, mse: true };

/** The largest relative error of abs/mse seen by compare(), per mode, reported at the end. */
const measured = new Map<string, number>();


/** Sparse float32 values: zero with probability 1 - density, else uniform in (-2, 2). */
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

/** Asserts that a kernel's stats equal the reference's: same keys, counts exactly, sums within REL. */
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
      let worst = 0;
      for (let i = 0; i < e.length; i++) {
        const x = a[i] as number;
        const y = e[i] as number;
        const err = Math.abs(x - y);
        if (!(err <= REL * Math.abs(y))) expect(x, `${label} ${key}[${i}]`).toBe(y);
        if (y !== 0) worst = Math.max(worst, err / Math.abs(y));
      }
      const mode = label.split(' ')[0] as string;
      measured.set(mode, Math.max(measured.get(mode) ?? 0, worst));
    }
  }
}

/** A random shard case: rank 2 or 3, 1-3 components, odd feature counts, a row range inside the batch. */
const shardCase = fc
  .record({
    rank3: fc.boolean(),
    components: fc.integer({ min: 1, max: 3 }),
    features: fc.oneof(
      fc.integer({ min: 0, max: 20 }).map((k) => 2 * k + 1),
      fc.constantFrom(255, 257, 301),
    ),
    batchRows: fc.integer({ min: 1, max: 9 }),
    cut: fc.tuple(fc.nat(), fc.nat()),
    density: fc.constantFrom(0, 0.1, 0.5, 1),
    seed: fc.integer(),
    needs: fc.integer({ min: 0, max: 14 }).map((i) => ALL_NEEDS[i] as ShardNeeds),
  })
  .map((c) => {
    const start = c.cut[0] % c.batchRows;
    const end = start + 1 + (c.cut[1] % (c.batchRows - start));
    const shape = c.rank3 ? [c.batchRows, c.components, c.features] : [c.batchRows, c.features];
    return { shape, rows: { start, end }, density: c.density, seed: c.seed, needs: c.needs };
  });

/** Integer-valued data past 2^24 elements whose every statistic is exact in float32 blocks. */
interface BigCase {
  readonly batch: Batch;
  readonly rows: RowRange;
  readonly expected: ShardStats;
}
let big: BigCase | undefined;
function bigCase(): BigCase {
  if (big) return big;
  const R = 1102;
  const F = 16384;
  const learned = new Float32Array(R * F);
  const source = new Float32Array(R * F);
  for (let r = 0; r < R; r++) {
    for (let f = 0; f < F; f++) {
      const i = r * F + f;
      // Row-dependent magnitudes and signs: an element read from the wrong row changes the sums.
      learned[i] = (7 * r + f) % 64 === 0 ? 0 : ((r % 13) + 1) * ((r + f) % 3 === 0 ? -1 : 1);
      source[i] = (r % 5) - 2;
    }
  }
  learned[1 * F + 2] = 0; // one more zero in the shard: the non-zero count becomes odd
  const batch: Batch = {
    learnedActivations: tensor(learned, [R, F]),
    decodedActivations: tensor(learned, [R, F]),
    sourceActivations: tensor(source, [R, F]),
  };
  const rows = { start: 1, end: R - 1 }; // 1100 rows x 16384 = 18,022,400 elements > 2^24
  big = { batch, rows, expected: jsFusedKernel(batch, rows, EVERY) };
  return big;
}

function threadCount(): number {
  return readdirSync('/proc/self/task').length;
}

describe.each(['cpu', 'webasm'] as const)('gpu.js kernels in mode %s', (mode) => {
  let kernel: GpujsKernel;
  let blocked: GpujsKernel;
  beforeAll(() => {
    kernel = createGpujsKernel({ mode });
    blocked = createGpujsKernel({ mode, featureBlock: 4, rowBlock: 3 });
  });
  afterAll(async () => {
    await kernel.destroy();
    await blocked.destroy();
  });

  it('runs in the requested mode, with no renderer', () => {
    expect(gpujsAvailable(mode)).toEqual({ ok: true });
    expect(kernel.mode).toBe(mode);
    expect(kernel.requestedMode).toBe(mode);
    expect(blocked.mode).toBe(mode);
    expect(kernel.renderer).toBeUndefined();
  });

  it('matches jsFusedKernel on random sparse shards (rank 2 and 3, odd feature counts, rows inside a batch)', () => {
    fc.assert(
      fc.property(shardCase, (c) => {
        const batch = randomBatch(c.shape, c.density, c.seed);
        compare(`${mode} ${JSON.stringify(c)}`, kernel.fused(batch, c.rows, c.needs), jsFusedKernel(batch, c.rows, c.needs));
      }),
      { numRuns: 60 },
    );
  });

  it('matches with blocks smaller than the shard (several feature and row blocks, partial last blocks)', () => {
    fc.assert(
      fc.property(shardCase, (c) => {
        const batch = randomBatch(c.shape, c.density, c.seed);
        compare(`${mode} ${JSON.stringify(c)}`, blocked.fused(batch, c.rows, c.needs), jsFusedKernel(batch, c.rows, c.needs));
      }),
      { numRuns: 40 },
    );
  });

  it('matches for every combination of needs, and returns only what was needed', () => {
    const batch = randomBatch([11, 3, 37], 0.3, 7);
    const rows = { start: 2, end: 9 };
    for (const needs of ALL_NEEDS) {
      const label = `${mode} ${JSON.stringify(needs)}`;
      const actual = kernel.fused(batch, rows, needs);
      expect(Object.keys(actual).sort(), label).toEqual(KEYS.filter((k) => needs[k]).sort());
      compare(label, actual, jsFusedKernel(batch, rows, needs));
      compare(`${label} blocked`, blocked.fused(batch, rows, needs), jsFusedKernel(batch, rows, needs));
    }
  });

  it('computes an empty shard (no rows) as the reference does', () => {
    const batch = randomBatch([4, 2, 5], 0.5, 3);
    const rows = { start: 2, end: 2 };
    compare(`${mode} empty`, kernel.fused(batch, rows, EVERY), jsFusedKernel(batch, rows, EVERY));
  });

  it('treats NaN as non-zero and not fired, and propagates NaN and Infinity into the sums, as the reference does', () => {
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

  it('trap: a shard past 2^24 elements gives exact sums and counts (flat indexing is float32 in webasm)', async () => {
    const { batch, rows, expected } = bigCase();
    const fresh = createGpujsKernel({ mode });
    try {
      const actual = fresh.fused(batch, rows, EVERY);
      for (const key of KEYS) expect(Array.from(actual[key] as Float64Array), key).toEqual(Array.from(expected[key] as Float64Array));
    } finally {
      await fresh.destroy();
    }
  });

  it('trap: 4096 features and 1200 rows in one loop (above loopMaxIterations 1000) give right sums and counts', async () => {
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
    const oneLoop = createGpujsKernel({ mode, featureBlock: F, rowBlock: R });
    try {
      for (const k of [oneLoop, kernel]) {
        const actual = k.fused(batch, rows, EVERY);
        for (const key of KEYS) expect(Array.from(actual[key] as Float64Array), key).toEqual(Array.from(expected[key] as Float64Array));
      }
    } finally {
      await oneLoop.destroy();
    }
  });

  it('trap: several shard shapes through one kernel object (dynamicArguments strides wrongly in cpu mode)', async () => {
    const a = randomBatch([40, 3, 9], 0.4, 11);
    const b = randomBatch([30, 11], 0.4, 12);
    const c = randomBatch([15, 9], 0.4, 13); // 15 vectors of 9 features, as 5 rows of a
    const shards: [Batch, RowRange][] = [
      [a, { start: 0, end: 5 }],
      [c, { start: 0, end: 15 }],
      [a, { start: 5, end: 12 }],
      [b, { start: 2, end: 9 }],
      [a, { start: 12, end: 40 }],
      [a, { start: 3, end: 8 }],
      [b, { start: 0, end: 30 }],
      [a, { start: 0, end: 5 }],
      [b, { start: 9, end: 16 }],
    ];
    // maxShapes 2: shapes are also evicted and rebuilt along the way.
    const small = createGpujsKernel({ mode, maxShapes: 2 });
    try {
      for (const [batch, rows] of shards) {
        compare(`${mode} ${JSON.stringify(rows)}`, small.fused(batch, rows, EVERY), jsFusedKernel(batch, rows, EVERY));
        compare(`${mode} shared ${JSON.stringify(rows)}`, kernel.fused(batch, rows, EVERY), jsFusedKernel(batch, rows, EVERY));
      }
    } finally {
      await small.destroy();
    }
  });

  it('trap: counts are exact Float64 integers, even past 2^24 where float32 cannot hold them', async () => {
    const { batch, rows, expected } = bigCase();
    const count = (expected.nonZero as Float64Array)[0] as number;
    expect(count).toBeGreaterThan(2 ** 24);
    expect(Math.fround(count)).not.toBe(count); // a float32 merge would round it
    const fresh = createGpujsKernel({ mode });
    try {
      const actual = fresh.fused(batch, rows, { nonZero: true, fired: true });
      expect(actual.nonZero).toBeInstanceOf(Float64Array);
      expect(actual.fired).toBeInstanceOf(Float64Array);
      expect((actual.nonZero as Float64Array)[0]).toBe(count);
      expect(Array.from(actual.fired as Float64Array)).toEqual(Array.from(expected.fired as Float64Array));
      expect((actual.fired as Float64Array).every((v) => Number.isInteger(v))).toBe(true);
    } finally {
      await fresh.destroy();
    }
  });

  it('throws when used after destroy()', async () => {
    const k = createGpujsKernel({ mode });
    await k.destroy();
    expect(() => k.fused(randomBatch([2, 3], 1, 1), { start: 0, end: 2 }, EVERY)).toThrow(`gpu.js kernel (${mode}): used after destroy()`);
  });
});

describe('gpu.js webasm threads', () => {
  it('trap: the webasm mode starts no worker threads (a threaded gpu.js run would start a pool)', async () => {
    const batch = randomBatch([5000, 8], 0.5, 5); // outputs of 5000 cells: above gpu.js's threading threshold (4096)
    const rows = { start: 0, end: 5000 };
    const before = threadCount();
    const k = createGpujsKernel({ mode: 'webasm' });
    try {
      for (let i = 0; i < 3; i++) compare('webasm threads', k.fused(batch, rows, EVERY), jsFusedKernel(batch, rows, EVERY));
      expect(threadCount()).toBe(before);
    } finally {
      await k.destroy();
    }

    // The control: the same count sees the pool that gpu.js starts for a threaded (asyncMode) run.
    const g = gpujs();
    const gpu = new g.GPU({ mode: 'webasm' });
    const threaded = gpu.createKernel('function(x) { return x[this.thread.x] + 1; }', {
      output: [5000],
      asyncMode: true,
    } as unknown as Parameters<typeof gpu.createKernel>[1]) as unknown as (x: Float32Array) => Promise<Float32Array>;
    try {
      const out = await threaded(new Float32Array(5000));
      expect(out[4999]).toBe(1);
      expect(threadCount()).toBeGreaterThan(before);
    } finally {
      await gpu.destroy();
    }
  });
});

describe('createGpujsKernel and gpujsAvailable', () => {
  it('say why webgpu, webgl and webgl2 cannot run in Node', () => {
    const webgpu = gpujsAvailable('webgpu');
    expect(webgpu.ok).toBe(false);
    expect(webgpu.ok ? '' : webgpu.reason).toMatch(/navigator\.gpu|Promise/);
    for (const mode of ['webgl', 'webgl2'] as const) {
      const a = gpujsAvailable(mode);
      expect(a).toEqual({ ok: false, reason: `${mode} needs a browser canvas (there is none in Node: use headlessgl)` });
    }
    expect(() => createGpujsKernel({ mode: 'webgpu' })).toThrow(/^createGpujsKernel: gpu\.js mode 'webgpu' cannot run here: /);
  });

  it('gpujsAvailable never throws, even for a mode it does not know', () => {
    expect(gpujsAvailable('metal' as 'cpu')).toEqual({
      ok: false,
      reason: 'unknown gpu.js mode "metal" (one of gpu, headlessgl, webgl, webgl2, webgpu, cpu, webasm)',
    });
  });

  it('validates its options, naming each', () => {
    expect(() => createGpujsKernel({ mode: 'metal' as 'cpu' })).toThrow(
      new RangeError(`createGpujsKernel: options.mode must be one of 'gpu', 'headlessgl', 'webgl', 'webgl2', 'webgpu', 'cpu', 'webasm', got "metal"`),
    );
    expect(() => createGpujsKernel({ mode: 'cpu', featureBlock: 0 })).toThrow(
      new RangeError('createGpujsKernel: options.featureBlock must be a positive integer, got 0'),
    );
    expect(() => createGpujsKernel({ mode: 'cpu', rowBlock: 1.5 })).toThrow(
      new RangeError('createGpujsKernel: options.rowBlock must be a positive integer, got 1.5'),
    );
    expect(() => createGpujsKernel({ mode: 'cpu', maxShapes: -1 })).toThrow(
      new RangeError('createGpujsKernel: options.maxShapes must be a positive integer, got -1'),
    );
    expect(() => createGpujsKernel(null as unknown as { mode: 'cpu' })).toThrow(
      new TypeError('createGpujsKernel: options must be an object, got null'),
    );
  });

  it("a silent fallback is an error naming both modes: 'gpu' without a display runs webasm", () => {
    // In a child process without DISPLAY, so that no GL context can exist whatever runs this suite.
    const index = fileURLToPath(new URL('../../src/kernels/gpujs/index.ts', import.meta.url));
    const script = `const { createGpujsKernel } = await import(${JSON.stringify(index)});
try { const k = createGpujsKernel({ mode: 'gpu' }); console.log(JSON.stringify({ mode: k.mode })); }
catch (e) { console.log(JSON.stringify({ error: e.message })); }`;
    const env = { ...process.env };
    delete env.DISPLAY;
    const child = spawnSync(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { env, encoding: 'utf8' });
    expect(child.status, child.stderr).toBe(0);
    const answer = JSON.parse(child.stdout.trim().split('\n').pop() as string) as { error?: string };
    expect(answer.error).toMatch(/^createGpujsKernel: requested gpu\.js mode 'gpu' but gpu\.js runs 'webasm' \(.*DISPLAY is not set.*xvfb-run/);
  });
});

describe('gpu.js throughput', () => {
  it('prints GB/s per mode for one metric (abs) on a 2048 x 16384 shard', async () => {
    const R = 2048;
    const F = 16384;
    const batch: Batch = { learnedActivations: tensor(sparse(R * F, 0.1, mulberry32(99)), [R, F]) };
    const rows = { start: 0, end: R };
    const expected = jsFusedKernel(batch, rows, { abs: true });
    const bytes = R * F * 4;
    for (const mode of ['cpu', 'webasm'] as const) {
      const k = createGpujsKernel({ mode });
      try {
        const first = performance.now();
        compare(`${mode} throughput`, k.fused(batch, rows, { abs: true }), expected);
        const build = performance.now() - first;
        const times: number[] = [];
        for (let i = 0; i < 3; i++) {
          const t = performance.now();
          k.fused(batch, rows, { abs: true });
          times.push(performance.now() - t);
        }
        times.sort((x, y) => x - y);
        const median = times[1] as number;
        console.log(`gpu.js ${mode}: abs over ${R} x ${F} float32: ${(bytes / median / 1e6).toFixed(2)} GB/s (median of 3; first run with build ${build.toFixed(0)} ms)`);
      } finally {
        await k.destroy();
      }
    }
    console.log(`largest relative error of abs/mse against jsFusedKernel: ${[...measured].map(([m, e]) => `${m} ${e.toExponential(2)}`).join(', ')}`);
  });
});
