/**
 * What gpujs.test.ts (modes cpu and webasm) and gpujs.gl.test.ts (mode headlessgl) share: the
 * random shards, the comparison against the reference kernel `jsFusedKernel`, and the data of the
 * cases both run (NaN and Infinity, a shard past 2^24 elements, one loop above loopMaxIterations).
 */
import { expect } from 'vitest';
import type { Batch, RowRange } from '../../src/functional/core.js';
import type { GpujsKernel } from '../../src/kernels/gpujs/index.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { ShardNeeds, ShardStats } from '../../src/kernels/types.js';
import { tensor } from '../../src/tensor.js';
import { mulberry32 } from '../support/random.js';

/** Float32 sums within a block of at most 256 values, float64 across blocks: relative tolerance. */
export const REL = 1e-5;
export const KEYS = ['abs', 'nonZero', 'fired', 'mse'] as const;
const COUNTS = new Set<string>(['nonZero', 'fired']);
/** Every non-empty combination of needs. */
export const ALL_NEEDS: ShardNeeds[] = Array.from({ length: 15 }, (_, i) => ({
  ...(i & 1 ? { abs: true } : {}),
  ...(i & 2 ? { nonZero: true } : {}),
  ...(i & 4 ? { fired: true } : {}),
  ...(i & 8 ? { mse: true } : {}),
}));
export const EVERY: ShardNeeds = { abs: true, nonZero: true, fired: true, mse: true };

/** The largest relative error of abs/mse seen by compare(), per mode (the first word of its label). */
export const measured = new Map<string, number>();

/** Sparse float32 values: zero with probability 1 - density, else uniform in (-2, 2). */
export function sparse(length: number, density: number, random: () => number): Float32Array {
  const out = new Float32Array(length);
  for (let i = 0; i < length; i++) out[i] = random() < density ? random() * 4 - 2 : 0;
  return out;
}

export function randomBatch(shape: number[], density: number, seed: number): Batch {
  const random = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return {
    learnedActivations: tensor(sparse(n, density, random), shape),
    sourceActivations: tensor(sparse(n, 0.9, random), shape),
    decodedActivations: tensor(sparse(n, 0.9, random), shape),
  };
}

/** Asserts that a kernel's stats equal the reference's: same keys, counts exactly, sums within REL. */
export function compare(label: string, actual: ShardStats, expected: ShardStats): void {
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

/** Every statistic of `actual` equals `expected` exactly. */
export function expectExact(actual: ShardStats, expected: ShardStats): void {
  for (const key of KEYS) expect(Array.from(actual[key] as Float64Array), key).toEqual(Array.from(expected[key] as Float64Array));
}

/**
 * For every combination of needs, on one seeded shard: `kernel` returns only what was needed and
 * matches jsFusedKernel, and so does `blocked` (small blocks). Labels start with `mode`.
 */
export function expectEveryNeeds(mode: string, kernel: GpujsKernel, blocked: GpujsKernel): void {
  const batch = randomBatch([11, 3, 37], 0.3, 7);
  const rows = { start: 2, end: 9 };
  for (const needs of ALL_NEEDS) {
    const label = `${mode} ${JSON.stringify(needs)}`;
    const actual = kernel.fused(batch, rows, needs);
    expect(Object.keys(actual).sort(), label).toEqual(KEYS.filter((k) => needs[k]).sort());
    compare(label, actual, jsFusedKernel(batch, rows, needs));
    compare(`${label} blocked`, blocked.fused(batch, rows, needs), jsFusedKernel(batch, rows, needs));
  }
}

/** A 2 x 3 shard with NaN, -0 and Infinity. */
export function nanBatch(): Batch {
  const learned = tensor(new Float32Array([NaN, 0, 1, -0, Infinity, -2]), [2, 3]);
  return {
    learnedActivations: learned,
    decodedActivations: learned,
    sourceActivations: tensor(new Float32Array([0, 0, 1, 0, 0, -2]), [2, 3]),
  };
}

/** NaN is non-zero and not fired; NaN and Infinity propagate into the sums (stats of nanBatch() over both rows, every need). */
export function expectNanStats(actual: ShardStats): void {
  expect(Array.from(actual.abs as Float64Array)).toEqual([NaN, Infinity]);
  expect(Array.from(actual.nonZero as Float64Array)).toEqual([4]);
  expect(Array.from(actual.fired as Float64Array)).toEqual([0, 1, 1]);
  expect(Array.from(actual.mse as Float64Array)).toEqual([NaN, Infinity]);
}

/**
 * A 4 x 3 shard of values at both ends of float32: sums of |x| and squared errors that overflow a
 * float32 block (3e38 + 3e38, (2e19 + 2e19)^2), that are subnormal (flushed to zero by some GPUs),
 * exact zeros, and ordinary ones; the subnormal activations fire.
 */
export function extremeBatch(): Batch {
  return {
    learnedActivations: tensor(new Float32Array([3e38, 3e38, 1, 1e-40, 1e-41, 1e-45, 0, 0, 0, 1, -2, 0.5]), [4, 3]),
    sourceActivations: tensor(new Float32Array([2e19, -2e19, 0, 1e-20, 2e-20, 0, 1, 2, 3, 1, -2, 0.5]), [4, 3]),
    decodedActivations: tensor(new Float32Array([-2e19, 2e19, 0, 0, 0, 3e-20, 1, 2, 3, 1.5, -1, 0]), [4, 3]),
  };
}

/** The statistics of extremeBatch() over its four rows are jsFusedKernel's, number for number (float64 where float32 blocks cannot hold them). */
export function expectExtremeStats(actual: ShardStats): void {
  const batch = extremeBatch();
  const expected = jsFusedKernel(batch, { start: 0, end: 4 }, { abs: true, nonZero: true, fired: true, mse: true });
  for (const key of KEYS) expect(Array.from(actual[key] as Float64Array), key).toEqual(Array.from(expected[key] as Float64Array));
  // Finite, and not 0 for the subnormal rows.
  expect((actual.abs as Float64Array)[0]).toBe(6.0000000109955115e38);
  expect((actual.abs as Float64Array)[1]).toBeGreaterThan(1e-40);
  expect((actual.mse as Float64Array)[1]).toBeGreaterThan(1e-40);
  expect(Array.from(actual.fired as Float64Array)).toEqual([3, 2, 3]);
}

/** Integer-valued data past 2^24 elements whose every statistic is exact in float32 blocks. */
export interface BigCase {
  readonly batch: Batch;
  readonly rows: RowRange;
  readonly expected: ShardStats;
}
let big: BigCase | undefined;
export function bigCase(): BigCase {
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

/** 4096 features and 1200 rows: one loop over them all exceeds gpu.js's loopMaxIterations (1000). */
export interface LoopCase extends BigCase {
  readonly R: number;
  readonly F: number;
}
export function loopCase(): LoopCase {
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
  return { R, F, batch, rows, expected: jsFusedKernel(batch, rows, EVERY) };
}

/** The throughput shard: 2048 x 16384 learned activations, 10% non-zero. */
export function throughputCase(): { R: number; F: number; batch: Batch; rows: RowRange } {
  const R = 2048;
  const F = 16384;
  const batch: Batch = { learnedActivations: tensor(sparse(R * F, 0.1, mulberry32(99)), [R, F]) };
  return { R, F, batch, rows: { start: 0, end: R } };
}

/** Times `first()` once, then the median of three runs of `again()`, in milliseconds. */
export function timeRuns(first: () => void, again: () => void): { first: number; median: number } {
  const start = performance.now();
  first();
  const firstMs = performance.now() - start;
  const times: number[] = [];
  for (let i = 0; i < 3; i++) {
    const t = performance.now();
    again();
    times.push(performance.now() - t);
  }
  times.sort((x, y) => x - y);
  return { first: firstMs, median: times[1] as number };
}
