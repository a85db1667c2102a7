/**
 * The fused WebAssembly SIMD pass (src/kernels/wasm/) against the JavaScript reference kernel
 * `jsFusedKernel`:
 *
 * - random data (sparse, negatives, NaN, -0, infinities, subnormals) of rank 2 and rank 3 with 1-4
 *   components, feature counts 1, 3, 4, 5, 63, 64, 65 and 1000, row ranges in the middle of a
 *   batch, views at every float offset mod 16 bytes, and every combination of needs: absolute sums
 *   and squared errors within 1e-6 relative (the kernel sums blocks of 16 or 8 values per lane in
 *   float32 and carries them into float64), counts exactly;
 * - the float32 blocks: within 1e-6 of a float64 sum on long vectors, no overflow where float64
 *   has none, no precision lost to float32 underflow of squares;
 * - a batch past 2^24 elements and tensors at addresses past 2^31 and ending at 4 GiB, with
 *   answers known by hand or exact (integer data);
 * - tensors that are not views on the kernel's memory are rejected with a message;
 * - two kernels on one memory, in one thread and in three threads at once, take disjoint scratch
 *   space and give correct results;
 * - `readSum` against a float64 sum.
 *
 * Also measures (prints, does not assert) the GB/s of the fused pass and of `readSum` over a
 * 2048 x 16384 batch on one thread. `npm test` builds dist/wasm/fused.wasm first; on its own, run
 * `node scripts/build-wasm.mjs`.
 */
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import type { Batch, RowRange } from '../../src/functional/core.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { ShardNeeds, ShardStats } from '../../src/kernels/types.js';
import { createWasmKernel, wasmFile, wasmModule, wasmScratchBytes, type WasmKernel } from '../../src/kernels/wasm/index.js';
import { mulberry32 } from '../support/random.js';

const PAGE = 65536;
const KEYS = ['abs', 'nonZero', 'fired', 'mse'] as const;
type Key = (typeof KEYS)[number];
/**
 * Relative tolerance of sums: the kernel adds blocks of 16 (|x|) or 8 (squares) non-negative
 * terms per float32 lane, at most 15u = 8.9e-7 relative with u = 2^-24, carried into float64.
 */
const REL = 1e-6;


/** Sparse activations with the awkward values: -0, NaN, infinities, subnormals. */
function fillActivations(data: Float32Array, seed: number): void {
  const rng = mulberry32(seed);
  for (let i = 0; i < data.length; i++) {
    const u = rng();
    if (u < 0.4) data[i] = 0;
    else if (u < 0.45) data[i] = -0;
    else if (u < 0.47) data[i] = Number.NaN;
    else if (u < 0.48) data[i] = rng() < 0.5 ? Infinity : -Infinity;
    else if (u < 0.5) data[i] = (rng() - 0.5) * 1e-40;
    else if (u < 0.75) data[i] = rng() * 10;
    else data[i] = -rng() * 10;
  }
}

/** Dense finite values, for decoded and source activations. */
function fillDense(data: Float32Array, seed: number): void {
  const rng = mulberry32(seed);
  for (let i = 0; i < data.length; i++) data[i] = (rng() - 0.5) * 4;
}

let memory: WebAssembly.Memory;
let kernel: WasmKernel;

/** A region of `memory` of its own (grown for it), `shift` floats past a page boundary. */
function alloc(floats: number, shift = 0): Float32Array {
  const bytes = Math.max(1, (floats + shift) * 4);
  const start = memory.grow(Math.ceil(bytes / PAGE)) * PAGE;
  return new Float32Array(memory.buffer, start + shift * 4, floats);
}

function field(stats: ShardStats, key: Key): Float64Array {
  const value = stats[key];
  if (value === undefined) throw new Error(`stats.${key} is missing`);
  return value;
}

/** Each asked statistic equal to the reference's: sums within REL relative, counts exactly. */
function expectMatches(actual: ShardStats, expected: ShardStats, what: string): void {
  expect(Object.keys(actual).sort(), what).toEqual(Object.keys(expected).sort());
  for (const key of KEYS) {
    if (expected[key] === undefined) continue;
    const a = field(actual, key);
    const e = field(expected, key);
    expect(a, `${what}: ${key}`).toBeInstanceOf(Float64Array);
    expect(a.length, `${what}: ${key}.length`).toBe(e.length);
    if (key === 'nonZero' || key === 'fired') {
      expect(Array.from(a), `${what}: ${key}`).toEqual(Array.from(e));
      continue;
    }
    for (let i = 0; i < e.length; i++) {
      const x = a[i] as number;
      const y = e[i] as number;
      if (Number.isNaN(y) || !Number.isFinite(y)) expect(Object.is(x, y), `${what}: ${key}[${i}] = ${x}, expected ${y}`).toBe(true);
      else expect(Math.abs(x - y), `${what}: ${key}[${i}] = ${x}, expected ${y}`).toBeLessThanOrEqual(REL * Math.abs(y));
    }
  }
}

const ALL: ShardNeeds = { abs: true, nonZero: true, fired: true, mse: true };

function shapeOf(rank: 2 | 3, rows: number, components: number, features: number): number[] {
  return rank === 2 ? [rows, features] : [rows, components, features];
}

beforeAll(() => {
  if (!existsSync(wasmFile())) throw new Error(`${wasmFile()} is missing: run \`node scripts/build-wasm.mjs\` (npm test builds it)`);
  memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  kernel = createWasmKernel(memory);
});

describe('wasmFile and createWasmKernel', () => {
  it('finds the compiled module at dist/wasm/fused.wasm of the repository', () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    expect(wasmFile()).toBe(join(root, 'dist', 'wasm', 'fused.wasm'));
    expect(existsSync(wasmFile())).toBe(true);
  });

  it('runs the doc example of createWasmKernel', () => {
    const own = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const k = createWasmKernel(own);
    const data = new Float32Array(own.buffer, 0, 6);
    data.set([1, -2, 0, 0, 3, 0]);
    const stats = k.fused({ learnedActivations: { data, shape: [2, 3] } }, { start: 0, end: 2 }, { abs: true, fired: true });
    expect(Array.from(field(stats, 'abs'))).toEqual([3, 3]);
    expect(Array.from(field(stats, 'fired'))).toEqual([1, 1, 0]);
    expect(k.readSum(data)).toBe(2);
    expect(k.memory).toBe(own);
  });

  it('accepts a module compiled elsewhere (as a worker would receive it)', () => {
    const k = createWasmKernel(memory, wasmModule());
    const x = alloc(8);
    x.set([1, -1, 0, 2, 0, 0, -3, 4]);
    expect(Array.from(field(k.fused({ learnedActivations: { data: x, shape: [2, 4] } }, { start: 0, end: 2 }, { abs: true }), 'abs'))).toEqual([4, 7]);
  });

  it('rejects a memory that is not a shared WebAssembly.Memory', () => {
    const message = 'wasm kernel: memory must be a shared WebAssembly.Memory (created with shared: true)';
    expect(() => createWasmKernel(new WebAssembly.Memory({ initial: 1, maximum: 10 }))).toThrow(TypeError);
    expect(() => createWasmKernel(new WebAssembly.Memory({ initial: 1, maximum: 10 }))).toThrow(message);
    expect(() => createWasmKernel({} as WebAssembly.Memory)).toThrow(message);
  });
});

describe('the fused pass against jsFusedKernel', () => {
  const FEATURES = [1, 3, 4, 5, 63, 64, 65, 1000];

  it.each(FEATURES)('%i features: rank 2 and rank 3 with 1-4 components, rows [3, 14) of 17', (features) => {
    const rows = 17;
    const range: RowRange = { start: 3, end: 14 };
    for (const [rank, components] of [[2, 1], [3, 1], [3, 2], [3, 3], [3, 4]] as const) {
      const size = rows * components * features;
      const shape = shapeOf(rank, rows, components, features);
      const learned = alloc(size, 1);
      const decoded = alloc(size, 2);
      const source = alloc(size, 3);
      fillActivations(learned, features * 10 + components);
      fillDense(decoded, features * 10 + components + 1000);
      fillDense(source, features * 10 + components + 2000);
      const batch: Batch = {
        learnedActivations: { data: learned, shape },
        decodedActivations: { data: decoded, shape },
        sourceActivations: { data: source, shape },
      };
      expectMatches(kernel.fused(batch, range, ALL), jsFusedKernel(batch, range, ALL), `shape [${shape.join(', ')}]`);
    }
  });

  it('computes exactly the statistics asked for, for every combination of needs', () => {
    const shape = [13, 3, 65];
    const size = 13 * 3 * 65;
    const learned = alloc(size);
    const decoded = alloc(size, 1);
    const source = alloc(size, 2);
    fillActivations(learned, 1);
    fillDense(decoded, 2);
    fillDense(source, 3);
    const batch: Batch = {
      learnedActivations: { data: learned, shape },
      decodedActivations: { data: decoded, shape },
      sourceActivations: { data: source, shape },
    };
    for (let mask = 0; mask < 16; mask++) {
      const needs: ShardNeeds = { abs: (mask & 1) !== 0, nonZero: (mask & 2) !== 0, fired: (mask & 4) !== 0, mse: (mask & 8) !== 0 };
      const stats = kernel.fused(batch, { start: 2, end: 11 }, needs);
      expect(Object.keys(stats).sort(), `needs ${JSON.stringify(needs)}`).toEqual(KEYS.filter((k) => needs[k]).sort());
      expectMatches(stats, jsFusedKernel(batch, { start: 2, end: 11 }, needs), `needs ${JSON.stringify(needs)}`);
    }
  });

  it('matches on random shapes, row ranges, alignments and needs (property)', () => {
    const MAX = 12 * 4 * 1000;
    const learnedRegion = alloc(MAX + 3);
    const decodedRegion = alloc(MAX + 3);
    const sourceRegion = alloc(MAX + 3);
    const view = (region: Float32Array, shift: number, length: number): Float32Array =>
      new Float32Array(memory.buffer, region.byteOffset + shift * 4, length);
    const arbitrary = fc
      .record({
        rank: fc.constantFrom(2 as const, 3 as const),
        components: fc.integer({ min: 1, max: 4 }),
        features: fc.constantFrom(...FEATURES),
        featuresIn: fc.constantFrom(...FEATURES),
        rows: fc.integer({ min: 1, max: 12 }),
        a: fc.nat(),
        b: fc.nat(),
        shifts: fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3 })),
        needs: fc.record({ abs: fc.boolean(), nonZero: fc.boolean(), fired: fc.boolean(), mse: fc.boolean() }),
        seed: fc.integer(),
      })
      .map((c) => ({ ...c, components: c.rank === 2 ? 1 : c.components }));
    fc.assert(
      fc.property(arbitrary, (c) => {
        const start = c.a % (c.rows + 1);
        const end = start + (c.b % (c.rows - start + 1));
        const learned = view(learnedRegion, c.shifts[0], c.rows * c.components * c.features);
        const decoded = view(decodedRegion, c.shifts[1], c.rows * c.components * c.featuresIn);
        const source = view(sourceRegion, c.shifts[2], c.rows * c.components * c.featuresIn);
        fillActivations(learned, c.seed);
        fillDense(decoded, c.seed + 1);
        fillActivations(source, c.seed + 2);
        const inShape = shapeOf(c.rank, c.rows, c.components, c.featuresIn);
        const batch: Batch = {
          learnedActivations: { data: learned, shape: shapeOf(c.rank, c.rows, c.components, c.features) },
          decodedActivations: { data: decoded, shape: inShape },
          sourceActivations: { data: source, shape: inShape },
        };
        expectMatches(kernel.fused(batch, { start, end }, c.needs), jsFusedKernel(batch, { start, end }, c.needs), JSON.stringify(c));
      }),
      { numRuns: 100 },
    );
  });

  it('counts NaN as non-zero and -0 as zero, never as fired (hand-computed)', () => {
    const x = alloc(10);
    x.set([Number.NaN, -0, 0, 2, -3, 0, -0, 1e-45, -Infinity, 0.5]);
    const stats = kernel.fused({ learnedActivations: { data: x, shape: [2, 5] } }, { start: 0, end: 2 }, { abs: true, nonZero: true, fired: true });
    expect(Number.isNaN(field(stats, 'abs')[0])).toBe(true);
    expect(field(stats, 'abs')[1]).toBe(Infinity);
    // Non-zero: NaN, 2, -3 in row 0; 1e-45 (a subnormal), -Infinity, 0.5 in row 1.
    expect(Array.from(field(stats, 'nonZero'))).toEqual([6]);
    expect(Array.from(field(stats, 'fired'))).toEqual([0, 0, 1, 1, 1]);
  });

  it('returns plain Float64Arrays that later passes do not change', () => {
    const x = alloc(8);
    x.set([1, 2, 3, 4, 5, 6, 7, 8]);
    const batch: Batch = { learnedActivations: { data: x, shape: [2, 4] }, decodedActivations: { data: x, shape: [2, 4] }, sourceActivations: { data: x, shape: [2, 4] } };
    const first = kernel.fused(batch, { start: 0, end: 2 }, ALL);
    for (const key of KEYS) {
      expect(field(first, key).buffer).toBeInstanceOf(ArrayBuffer);
      expect(field(first, key).buffer).not.toBeInstanceOf(SharedArrayBuffer);
    }
    x.set([-9, -9, -9, -9, 9, 9, 9, 9]);
    kernel.fused(batch, { start: 0, end: 2 }, ALL);
    expect(Array.from(field(first, 'abs'))).toEqual([10, 26]);
    expect(Array.from(field(first, 'nonZero'))).toEqual([8]);
    expect(Array.from(field(first, 'fired'))).toEqual([2, 2, 2, 2]);
    expect(Array.from(field(first, 'mse'))).toEqual([0, 0]);
  });

  it('grows its scratch space when a shard needs more, and stays correct after', () => {
    const k = createWasmKernel(memory);
    const shapes = [[2, 1, 4], [300, 4, 1000], [3, 2, 5], [50, 1, 7000]] as const;
    for (const [rows, components, features] of shapes) {
      const shape = [rows, components, features];
      const x = alloc(rows * components * features);
      fillActivations(x, rows);
      const batch: Batch = { learnedActivations: { data: x, shape }, decodedActivations: { data: x, shape }, sourceActivations: { data: x, shape } };
      expectMatches(k.fused(batch, { start: 0, end: rows }, ALL), jsFusedKernel(batch, { start: 0, end: rows }, ALL), `shape [${shape.join(', ')}]`);
    }
  });

  it('uses scratch space lent to it (useScratch) without growing the memory, exactly as much as wasmScratchBytes says', () => {
    const k = createWasmKernel(memory);
    const [rows, components, features] = [40, 3, 50];
    const shape = [rows, components, features];
    const x = alloc(rows * components * features);
    fillActivations(x, rows);
    const batch: Batch = { learnedActivations: { data: x, shape }, decodedActivations: { data: x, shape }, sourceActivations: { data: x, shape } };
    const bytes = wasmScratchBytes(rows, shape, shape);
    // abs and mse f64 per vector (960 each), nonZero u32 per component (12, padded to 16), fired
    // u32 per component and feature (600, padded to 608).
    expect(bytes).toBe(960 + 960 + 16 + 608);
    const lent = alloc(bytes / 4 + 16);
    const guard = new Float32Array(memory.buffer, lent.byteOffset + bytes, 16).fill(7);
    k.useScratch({ byteOffset: lent.byteOffset, byteLength: bytes });
    const size = memory.buffer.byteLength;
    expectMatches(k.fused(batch, { start: 0, end: rows }, ALL), jsFusedKernel(batch, { start: 0, end: rows }, ALL), 'lent scratch');
    expect(memory.buffer.byteLength).toBe(size); // not grown
    expect(Array.from(guard)).toEqual(new Array(16).fill(7)); // nothing written past the region
    // Too small a region is an error, not a write past it.
    k.useScratch({ byteOffset: lent.byteOffset, byteLength: bytes - 16 });
    expect(() => k.fused(batch, { start: 0, end: rows }, ALL)).toThrow(
      new RangeError(`wasm kernel: the shard needs ${bytes} bytes of scratch space, but was lent ${bytes - 16}`),
    );
    // Without a region it takes its own again.
    k.useScratch(undefined);
    expectMatches(k.fused(batch, { start: 0, end: rows }, ALL), jsFusedKernel(batch, { start: 0, end: rows }, ALL), 'own scratch');
  });

  it('handles an empty row range', () => {
    const x = alloc(12);
    x.fill(1);
    const stats = kernel.fused({ learnedActivations: { data: x, shape: [3, 2, 2] } }, { start: 1, end: 1 }, { abs: true, nonZero: true, fired: true });
    expect(field(stats, 'abs').length).toBe(0);
    expect(Array.from(field(stats, 'nonZero'))).toEqual([0, 0]);
    expect(Array.from(field(stats, 'fired'))).toEqual([0, 0, 0, 0]);
  });
});

describe('float32 blocks with a float64 carry', () => {
  it('stays within 1e-6 relative of a float64 sum over long vectors (4 x 262,147 values)', () => {
    const [rows, F] = [4, 2 ** 18 + 3];
    const learned = alloc(rows * F);
    const decoded = alloc(rows * F);
    const source = alloc(rows * F);
    const rng = mulberry32(11);
    for (let i = 0; i < rows * F; i++) {
      learned[i] = rng() * (rng() < 0.5 ? -1 : 1) * 10 ** (rng() * 6 - 3);
      source[i] = rng() * 4 - 2;
      decoded[i] = source[i]! + (rng() - 0.5) * 10 ** (rng() * 4 - 4);
    }
    const shape = [rows, F];
    const stats = kernel.fused(
      { learnedActivations: { data: learned, shape }, decodedActivations: { data: decoded, shape }, sourceActivations: { data: source, shape } },
      { start: 0, end: rows },
      { abs: true, mse: true },
    );
    for (let r = 0; r < rows; r++) {
      let abs = 0;
      let sq = 0;
      for (let f = r * F; f < (r + 1) * F; f++) {
        abs += Math.abs(learned[f]!);
        sq += (decoded[f]! - source[f]!) ** 2;
      }
      expect(Math.abs(field(stats, 'abs')[r]! - abs), `abs of row ${r}`).toBeLessThanOrEqual(REL * abs);
      expect(Math.abs(field(stats, 'mse')[r]! - sq / F), `mse of row ${r}`).toBeLessThanOrEqual((REL * sq) / F);
    }
  });

  it('gives the float64 result where a float32 block would overflow (|x| near the float32 maximum)', () => {
    const F = 70;
    const x = alloc(2 * F);
    const zeros = alloc(2 * F);
    x.fill(3e38, 0, F); // row 0: 70 values near the float32 maximum
    x.fill(-2e19, F); // row 1: squares past the float32 maximum
    const shape = [2, F];
    const stats = kernel.fused(
      { learnedActivations: { data: x, shape }, decodedActivations: { data: x, shape }, sourceActivations: { data: zeros, shape } },
      { start: 0, end: 2 },
      { abs: true, mse: true },
    );
    const big = Math.fround(3e38);
    const neg = Math.fround(-2e19);
    expect(field(stats, 'abs')[0]).toBeCloseTo(F * big, -32);
    expect(Number.isFinite(field(stats, 'abs')[0])).toBe(true);
    expect(Math.abs(field(stats, 'mse')[0]! - big * big) / (big * big)).toBeLessThanOrEqual(1e-12);
    expect(Math.abs(field(stats, 'mse')[1]! - neg * neg) / (neg * neg)).toBeLessThanOrEqual(1e-12);
    // Infinities and NaN in the input still give infinity and NaN.
    x[3] = Infinity;
    x[F + 5] = Number.NaN;
    const again = kernel.fused({ learnedActivations: { data: x, shape } }, { start: 0, end: 2 }, { abs: true });
    expect(field(again, 'abs')[0]).toBe(Infinity);
    expect(field(again, 'abs')[1]).toBeNaN();
  });

  it('keeps tiny squared errors (float32 squares would underflow) within 1e-6', () => {
    const F = 100;
    const decoded = alloc(2 * F);
    const source = alloc(2 * F);
    const rng = mulberry32(5);
    for (let i = 0; i < 2 * F; i++) {
      source[i] = rng();
      // Row 0: differences about 1e-30 (squares 1e-60, below float32's smallest subnormal);
      // row 1: differences of subnormals about 1e-40.
      decoded[i] = i < F ? source[i]! : (rng() - 0.5) * 1e-40;
      if (i >= F) source[i] = (rng() - 0.5) * 1e-40;
    }
    const tiny = alloc(2 * F);
    for (let i = 0; i < F; i++) {
      tiny[i] = (rng() + 0.5) * 1e-30;
      decoded[i] = tiny[i]!;
      source[i] = 0;
    }
    const shape = [2, F];
    const stats = kernel.fused(
      { learnedActivations: { data: tiny, shape }, decodedActivations: { data: decoded, shape }, sourceActivations: { data: source, shape } },
      { start: 0, end: 2 },
      { mse: true },
    );
    for (let r = 0; r < 2; r++) {
      let sq = 0;
      for (let f = r * F; f < (r + 1) * F; f++) sq += (decoded[f]! - source[f]!) ** 2;
      expect(sq, `row ${r} is not zero in float64`).toBeGreaterThan(0);
      expect(Math.abs(field(stats, 'mse')[r]! - sq / F), `mse of row ${r}`).toBeLessThanOrEqual((REL * sq) / F);
    }
  });
});

describe('large batches and addresses', () => {
  it('is exact past 2^24 elements (1100 x 16384, known answers)', () => {
    const rows = 1100;
    const F = 16384;
    const ones = alloc(rows * F);
    ones.fill(1);
    ones[1050 * F + 777] = -5; // element 17,204,977 > 2^24
    const zeros = alloc(rows * F);
    const batch: Batch = {
      learnedActivations: { data: ones, shape: [rows, F] },
      decodedActivations: { data: ones, shape: [rows, F] },
      sourceActivations: { data: zeros, shape: [rows, F] },
    };
    const stats = kernel.fused(batch, { start: 100, end: rows }, ALL);
    const abs = field(stats, 'abs');
    const mse = field(stats, 'mse');
    expect(abs.length).toBe(1000);
    for (let r = 100; r < rows; r++) {
      expect(abs[r - 100], `abs of row ${r}`).toBe(r === 1050 ? 16383 + 5 : 16384);
      expect(mse[r - 100], `mse of row ${r}`).toBe(r === 1050 ? (16383 + 25) / 16384 : 1);
    }
    expect(Array.from(field(stats, 'nonZero'))).toEqual([1000 * F]);
    const fired = field(stats, 'fired');
    for (let f = 0; f < F; f++) if (fired[f] !== (f === 777 ? 999 : 1000)) expect(fired[f], `fired[${f}]`).toBe(f === 777 ? 999 : 1000);
    expect(kernel.readSum(ones)).toBe(rows * F - 6);
  });

  it('reads tensors past 2^31 bytes and scratch space there (exact, integer data)', () => {
    const own = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const k = createWasmKernel(own);
    own.grow(36000); // 2.36 GB of address space, only the pages written are touched
    const [R, C, F] = [1000, 4, 1000];
    const size = R * C * F;
    const learned = new Float32Array(own.buffer, 2 ** 31 - 8e6 + 4, size); // straddles 2^31
    const source = new Float32Array(own.buffer, 2 ** 31 + 2 ** 27, size);
    for (let i = 0; i < size; i++) learned[i] = ((i * 7919) % 13) - 6;
    for (let i = 0; i < size; i++) source[i] = (i % 5) - 2;
    const shape = [R, C, F];
    const batch: Batch = { learnedActivations: { data: learned, shape }, decodedActivations: { data: learned, shape }, sourceActivations: { data: source, shape } };
    expectMatches(k.fused(batch, { start: 100, end: R }, ALL), jsFusedKernel(batch, { start: 100, end: R }, ALL), 'past 2^31');
    let sum = 0;
    for (let i = 0; i < size; i++) sum += source[i] as number;
    expect(k.readSum(source)).toBe(sum);
  });

  it('reads a tensor that ends at the last byte of a 4 GiB memory', () => {
    const own = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const k = createWasmKernel(own);
    // A first small shard takes a page of scratch space (enough for the shard below) before the
    // memory is grown to its maximum.
    const small = new Float32Array(own.buffer, 0, 8);
    expect(Array.from(field(k.fused({ learnedActivations: { data: small, shape: [2, 4] } }, { start: 0, end: 2 }, { abs: true }), 'abs'))).toEqual([0, 0]);
    own.grow(65536 - own.buffer.byteLength / PAGE);
    expect(own.buffer.byteLength).toBe(2 ** 32);
    const [R, C, F] = [1001, 3, 333];
    const size = R * C * F;
    const learned = new Float32Array(own.buffer, 2 ** 32 - size * 4, size);
    const source = new Float32Array(own.buffer, 2 ** 32 - 2 * size * 4, size);
    for (let i = 0; i < size; i++) learned[i] = ((i * 7919) % 13) - 5;
    const shape = [R, C, F];
    const batch: Batch = { learnedActivations: { data: learned, shape }, decodedActivations: { data: learned, shape }, sourceActivations: { data: source, shape } };
    expectMatches(k.fused(batch, { start: 1, end: R }, ALL), jsFusedKernel(batch, { start: 1, end: R }, ALL), 'at 4 GiB');
    let sum = 0;
    for (let i = 0; i < size; i++) sum += learned[i] as number;
    expect(k.readSum(learned)).toBe(sum);
  });
});

describe('bad input', () => {
  const VIEW = "wasm kernel: learnedActivations must be a Float32Array view on the kernel's WebAssembly memory, got";

  function attempt(data: Float32Array, shape: readonly number[] = [1, data.length]): () => ShardStats {
    return () => kernel.fused({ learnedActivations: { data, shape } }, { start: 0, end: shape[0] as number }, { abs: true });
  }

  it('rejects a view on an ArrayBuffer', () => {
    expect(attempt(new Float32Array(4))).toThrow(TypeError);
    expect(attempt(new Float32Array(4))).toThrow(`${VIEW} a view on an ArrayBuffer`);
  });

  it('rejects a view on a SharedArrayBuffer that is not whole pages', () => {
    const data = new Float32Array(new SharedArrayBuffer(1000), 0, 4);
    expect(attempt(data)).toThrow(`${VIEW} a view on a SharedArrayBuffer of 1000 bytes (not whole 64 KiB pages)`);
  });

  it('rejects a view that ends beyond the memory', () => {
    const size = memory.buffer.byteLength + PAGE;
    const data = new Float32Array(new SharedArrayBuffer(size), size - 16, 4);
    expect(attempt(data)).toThrow(TypeError);
    expect(attempt(data)).toThrow(`${VIEW} a view of bytes [${size - 16}, ${size}) beyond the memory's`);
  });

  it('rejects a view on another SharedArrayBuffer whose contents differ from the memory', () => {
    const mine = alloc(4);
    mine.fill(1);
    const other = new Float32Array(new SharedArrayBuffer(PAGE * Math.ceil((mine.byteOffset + 16) / PAGE)), mine.byteOffset, 4);
    other.fill(2);
    expect(attempt(other)).toThrow(`${VIEW} a view on a SharedArrayBuffer that is not this memory`);
    expect(Array.from(field(attempt(mine)(), 'abs'))).toEqual([4]);
  });

  it('rejects a missing field or one that is not a tensor, naming it', () => {
    const x = alloc(4);
    expect(() => kernel.fused({}, { start: 0, end: 1 }, { nonZero: true })).toThrow(
      "wasm kernel: learnedActivations must be a tensor whose data is a Float32Array view on the kernel's WebAssembly memory",
    );
    const partial: Batch = { learnedActivations: { data: x, shape: [1, 4] }, sourceActivations: { data: x, shape: [1, 4] } };
    expect(() => kernel.fused(partial, { start: 0, end: 1 }, { mse: true })).toThrow(TypeError);
    expect(() => kernel.fused(partial, { start: 0, end: 1 }, { mse: true })).toThrow('wasm kernel: decodedActivations must be a tensor');
    const plain: Batch = { decodedActivations: { data: x, shape: [1, 4] }, sourceActivations: { data: new Float32Array(4), shape: [1, 4] } };
    expect(() => kernel.fused(plain, { start: 0, end: 1 }, { mse: true })).toThrow(
      "wasm kernel: sourceActivations must be a Float32Array view on the kernel's WebAssembly memory, got a view on an ArrayBuffer",
    );
  });

  it('rejects rows outside the batch, a shape its data cannot hold, and differing mse shapes', () => {
    const x = alloc(12);
    const batch: Batch = { learnedActivations: { data: x, shape: [3, 4] } };
    expect(() => kernel.fused(batch, { start: 0, end: 4 }, { abs: true })).toThrow(RangeError);
    expect(() => kernel.fused(batch, { start: 0, end: 4 }, { abs: true })).toThrow('wasm kernel: rows must be a range of integers within [0, 3], got [0, 4)');
    expect(() => kernel.fused(batch, { start: 2, end: 1 }, { abs: true })).toThrow('got [2, 1)');
    expect(() => kernel.fused({ learnedActivations: { data: x, shape: [4, 4] } }, { start: 0, end: 1 }, { abs: true })).toThrow(
      'wasm kernel: learnedActivations has shape [4, 4] but its data holds 12 elements',
    );
    expect(() => kernel.fused({ learnedActivations: { data: x, shape: [12] } }, { start: 0, end: 1 }, { abs: true })).toThrow(
      'wasm kernel: learnedActivations must have rank 2 or 3, got shape [12]',
    );
    const mse: Batch = { decodedActivations: { data: x, shape: [3, 4] }, sourceActivations: { data: x, shape: [4, 3] } };
    expect(() => kernel.fused(mse, { start: 0, end: 1 }, { mse: true })).toThrow(
      'wasm kernel: sourceActivations and decodedActivations must have the same shape',
    );
  });

  it('reports a memory that cannot grow for scratch space', () => {
    const full = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    const k = createWasmKernel(full);
    const data = new Float32Array(full.buffer, 0, 4);
    expect(() => k.fused({ learnedActivations: { data, shape: [1, 4] } }, { start: 0, end: 1 }, { abs: true })).toThrow(RangeError);
    expect(() => k.fused({ learnedActivations: { data, shape: [1, 4] } }, { start: 0, end: 1 }, { abs: true })).toThrow(
      'wasm kernel: cannot grow the WebAssembly memory by 65536 bytes for scratch space (it is 65536 bytes; 4 GiB at most)',
    );
  });

  it('rejects a readSum input that is not on the memory', () => {
    expect(() => kernel.readSum(new Float32Array(3))).toThrow(
      "wasm kernel: readSum input must be a Float32Array view on the kernel's WebAssembly memory, got a view on an ArrayBuffer",
    );
  });
});

describe('two kernels on one memory', () => {
  it('take disjoint scratch space (from memory.grow) and leave inputs and each other intact', () => {
    const own = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const grown: [number, number][] = [];
    const grow = own.grow.bind(own);
    own.grow = (pages: number): number => {
      const previous = grow(pages);
      grown.push([previous * PAGE, (previous + pages) * PAGE]);
      return previous;
    };
    const k1 = createWasmKernel(own);
    const k2 = createWasmKernel(own);
    const shape = [40, 2, 300];
    const size = 40 * 2 * 300;
    const start = own.grow(Math.ceil((size * 4) / PAGE)) * PAGE;
    const x = new Float32Array(own.buffer, start, size);
    fillActivations(x, 7);
    const before = Uint32Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length));
    const batch: Batch = { learnedActivations: { data: x, shape }, decodedActivations: { data: x, shape }, sourceActivations: { data: x, shape } };
    const a = k1.fused(batch, { start: 0, end: 20 }, ALL);
    const b = k2.fused(batch, { start: 20, end: 40 }, ALL);
    expect(grown.length).toBe(3); // the input, then one scratch region per kernel
    const [r0, r1, r2] = grown as [[number, number], [number, number], [number, number]];
    for (const [p, q] of [[r0, r1], [r0, r2], [r1, r2]] as const) expect(p[1] <= q[0] || q[1] <= p[0], `${p} and ${q} overlap`).toBe(true);
    // Each kernel's results are correct after the other ran, and both ran over the same input.
    expectMatches(a, jsFusedKernel(batch, { start: 0, end: 20 }, ALL), 'kernel 1');
    expectMatches(b, jsFusedKernel(batch, { start: 20, end: 40 }, ALL), 'kernel 2');
    expectMatches(k1.fused(batch, { start: 20, end: 40 }, ALL), b, 'kernel 1 on kernel 2 rows');
    expect(Array.from(new Uint32Array(x.buffer, x.byteOffset, x.length))).toEqual(Array.from(before));
  });

  it('gives correct results in three threads at once over one shared memory', async () => {
    const own = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const [R, C, F] = [96, 2, 515];
    const size = R * C * F;
    const start = own.grow(Math.ceil((size * 4) / PAGE)) * PAGE;
    const x = new Float32Array(own.buffer, start, size);
    // Integer data: every sum is exact, so every thread's result equals the reference exactly.
    for (let i = 0; i < size; i++) x[i] = (((i * 7919) % 11) - 5) * (i % 3 === 0 ? 0 : 1);
    const shape = [R, C, F];
    const batch: Batch = { learnedActivations: { data: x, shape }, decodedActivations: { data: x, shape }, sourceActivations: { data: x, shape } };
    // Growing shards: each thread grows its scratch several times while the others run.
    const shards = (offset: number): RowRange[] => [1, 3, 8, 20, 40, 60].map((n) => ({ start: offset, end: Math.min(R, offset + n) }));
    const plans = [shards(0), shards(17), shards(33)];
    const expected = plans.map((plan) => plan.map((rows) => jsFusedKernel(batch, rows, ALL)));
    const code = `
      const { parentPort, workerData } = require('node:worker_threads');
      (async () => {
        const { tsImport } = await import(workerData.tsx);
        const { createWasmKernel } = await tsImport(workerData.source, workerData.source);
        const { memory, module, byteOffset, length, shape, plan, expected, rounds } = workerData;
        const k = module === undefined ? createWasmKernel(memory) : createWasmKernel(memory, module);
        const data = new Float32Array(memory.buffer, byteOffset, length);
        const t = { data, shape };
        const batch = { learnedActivations: t, decodedActivations: t, sourceActivations: t };
        const needs = { abs: true, nonZero: true, fired: true, mse: true };
        let mismatches = 0;
        let checked = 0;
        for (let round = 0; round < rounds; round++) {
          plan.forEach((rows, i) => {
            const got = k.fused(batch, rows, needs);
            for (const key of Object.keys(needs)) {
              const a = got[key], e = expected[i][key];
              checked++;
              if (a.length !== e.length || a.some((v, j) => !Object.is(v, e[j]))) mismatches++;
            }
          });
        }
        parentPort.postMessage({ mismatches, checked });
      })().catch((error) => parentPort.postMessage({ error: String(error && error.stack || error) }));
    `;
    // tsx's ESM API (its CommonJS build cannot register the loader from an eval worker).
    const tsxRoot = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
    const tsxExports = JSON.parse(readFileSync(join(tsxRoot, 'package.json'), 'utf8')) as { exports: Record<string, { import: { default: string } }> };
    const tsx = pathToFileURL(join(tsxRoot, (tsxExports.exports['./esm/api'] as { import: { default: string } }).import.default)).href;
    const source = new URL('../../src/kernels/wasm/index.ts', import.meta.url).href;
    const ROUNDS = 30;
    const run = (i: number): Promise<{ mismatches?: number; checked?: number; error?: string }> =>
      new Promise((resolve, reject) => {
        const worker = new Worker(code, {
          eval: true,
          workerData: {
            tsx,
            source,
            memory: own,
            module: i === 0 ? wasmModule() : undefined,
            byteOffset: x.byteOffset,
            length: x.length,
            shape,
            plan: plans[i],
            expected: expected[i],
            rounds: ROUNDS,
          },
        });
        worker.once('message', (m: { mismatches?: number; checked?: number; error?: string }) => {
          void worker.terminate();
          resolve(m);
        });
        worker.once('error', reject);
      });
    const results = await Promise.all([run(0), run(1), run(2)]);
    for (const [i, r] of results.entries()) {
      expect(r.error, `worker ${i}`).toBeUndefined();
      expect(r.checked, `worker ${i}`).toBe(ROUNDS * 6 * 4);
      expect(r.mismatches, `worker ${i}`).toBe(0);
    }
    // The memory grew for the input and at least one scratch region per worker.
    expect(own.buffer.byteLength).toBeGreaterThanOrEqual(start + size * 4 + 3 * PAGE);
  }, 60_000);
});

describe('readSum', () => {
  it('equals a float64 sum within 1e-6 relative (1,000,077 values in [0, 1))', () => {
    const x = alloc(1_000_077, 1);
    fillDense(x, 11);
    let expected = 0;
    for (let i = 0; i < x.length; i++) {
      x[i] = Math.abs(x[i] as number);
      expected += x[i] as number;
    }
    const got = kernel.readSum(x);
    expect(Math.abs(got - expected)).toBeLessThanOrEqual(1e-6 * expected);
    expect(kernel.readSum({ data: x, shape: [x.length] })).toBe(got);
  });

  it.each([0, 1, 3, 255, 256, 257, 1000, 4099])('sums %i small integers exactly (blocks and tail)', (n) => {
    const x = alloc(n, 3);
    let expected = 0;
    for (let i = 0; i < n; i++) {
      x[i] = (i % 7) - 3 + (i === n - 1 ? 100 : 0);
      expected += x[i] as number;
    }
    expect(kernel.readSum(x)).toBe(expected);
  });
});

describe('throughput (printed, not asserted)', () => {
  it('measures the fused pass and readSum over 2048 x 16384 on one thread, median of 5', () => {
    const [R, F] = [2048, 16384];
    const x = alloc(R * F);
    let total = 0;
    let absTotal = 0;
    let nonZero = 0;
    for (let i = 0; i < x.length; i++) {
      const h = Math.imul(i, 2654435761) >>> 0;
      const v = h % 8 === 0 ? (h % 7) - 3 : 0; // ~12% non-zero, small integers: sums are exact
      x[i] = v;
      total += v;
      absTotal += Math.abs(v);
      nonZero += v !== 0 ? 1 : 0;
    }
    const batch: Batch = { learnedActivations: { data: x, shape: [R, F] } };
    const needs: ShardNeeds = { abs: true, nonZero: true, fired: true };
    const time = (f: () => unknown): number => {
      f();
      const times: number[] = [];
      for (let i = 0; i < 5; i++) {
        const t0 = performance.now();
        f();
        times.push(performance.now() - t0);
      }
      times.sort((a, b) => a - b);
      return (x.byteLength / ((times[2] as number) / 1000)) / 1e9;
    };
    let stats: ShardStats = {};
    let sum = 0;
    const fusedRate = time(() => (stats = kernel.fused(batch, { start: 0, end: R }, needs)));
    const readRate = time(() => (sum = kernel.readSum(x)));
    console.log(
      `wasm fused pass (abs + nonZero + fired), 2048 x 16384, one thread: ${fusedRate.toFixed(1)} GB/s; readSum: ${readRate.toFixed(1)} GB/s`,
    );
    expect(sum).toBe(total);
    expect(field(stats, 'abs').reduce((a, b) => a + b, 0)).toBe(absTotal);
    expect(Array.from(field(stats, 'nonZero'))).toEqual([nonZero]);
    expect(fusedRate).toBeGreaterThan(0);
  }, 60_000);
});
