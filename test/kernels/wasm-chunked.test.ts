/**
 * The chunked WebAssembly pass (`createChunkedWasmKernel`, src/kernels/wasm/chunked.ts), which
 * copies a shard's rows into its own memory a chunk at a time, against the pool's kernel
 * (`createWasmKernel` over a shared memory holding the same batch) and the JavaScript reference:
 *
 * - the same bits as the pool's kernel (every Float64Array byte for byte) on seeded random data
 *   with the awkward values (NaN, infinities, -0, subnormals, values whose float32 blocks
 *   overflow), rank 2 and 3 with 1 to 4 components, feature counts 1 to 1000, row ranges in the
 *   middle of a batch, chunks of 1 to 9 rows and the default, every combination of needs;
 * - counts exactly and sums within 1e-6 of the JavaScript kernel;
 * - empty row ranges, calls that follow a larger or a different call (no stale counts), a shard
 *   that grows the kernel's memory, inputs at any offset of any buffer, inputs left unchanged;
 * - bad tensors, row ranges and options rejected with a message.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { KernelBatch, RowRange, ShardNeeds, ShardStats } from '../../src/kernels/types.js';
import { createChunkedWasmKernel } from '../../src/kernels/wasm/chunked.js';
import { createWasmKernel, wasmFile, wasmModule, type WasmKernel } from '../../src/kernels/wasm/index.js';
import { mulberry32 } from '../support/random.js';

const PAGE = 65536;
const KEYS = ['abs', 'nonZero', 'fired', 'mse'] as const;
const ALL: ShardNeeds = { abs: true, nonZero: true, fired: true, mse: true };
const NEEDS: ShardNeeds[] = Array.from({ length: 16 }, (_, m) => ({
  ...(m & 1 ? { abs: true } : {}),
  ...(m & 2 ? { nonZero: true } : {}),
  ...(m & 4 ? { fired: true } : {}),
  ...(m & 8 ? { mse: true } : {}),
}));

let memory: WebAssembly.Memory;
let pooled: WasmKernel;

beforeAll(() => {
  memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  pooled = createWasmKernel(memory);
});

/** Sparse activations with the awkward values; `huge` adds values whose float32 sums overflow. */
function activations(n: number, seed: number, huge = false): Float32Array {
  const rng = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng();
    if (u < 0.4) out[i] = 0;
    else if (u < 0.43) out[i] = -0;
    else if (u < 0.44) out[i] = Number.NaN;
    else if (u < 0.45) out[i] = rng() < 0.5 ? Infinity : -Infinity;
    else if (u < 0.47) out[i] = (rng() - 0.5) * 1e-40;
    else if (huge && u < 0.5) out[i] = (rng() < 0.5 ? -3e38 : 3e38) * (0.5 + rng() / 2);
    else out[i] = (rng() - 0.3) * 10;
  }
  return out;
}

function dense(n: number, seed: number, scale = 4): Float32Array {
  const rng = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (rng() - 0.5) * scale);
}

interface Case {
  readonly learned: Float32Array;
  readonly source: Float32Array;
  readonly decoded: Float32Array;
  readonly learnedShape: number[];
  readonly inputShape: number[];
}

function makeCase(rows: number, components: number, rank: 2 | 3, features: number, inputFeatures: number, seed: number, huge = false): Case {
  const shape = (f: number): number[] => (rank === 2 ? [rows, f] : [rows, components, f]);
  const c = rank === 2 ? 1 : components;
  const source = dense(rows * c * inputFeatures, seed + 1, huge ? 2e19 : 4);
  const noise = dense(source.length, seed + 2, huge ? 1e19 : 1);
  return {
    learned: activations(rows * c * features, seed, huge),
    source,
    decoded: source.map((v, i) => (i % 4 === 0 ? v : v + (noise[i] as number))),
    learnedShape: shape(features),
    inputShape: shape(inputFeatures),
  };
}

/** The case as an ordinary batch (each array in its own ArrayBuffer). */
function ordinary(c: Case): KernelBatch {
  return {
    learnedActivations: { data: c.learned, shape: c.learnedShape },
    sourceActivations: { data: c.source, shape: c.inputShape },
    decodedActivations: { data: c.decoded, shape: c.inputShape },
  };
}

/** The case copied into the pool kernel's shared memory. */
function inShared(c: Case): KernelBatch {
  const place = (a: Float32Array): Float32Array => {
    const start = memory.grow(Math.ceil(Math.max(1, a.byteLength) / PAGE)) * PAGE;
    const view = new Float32Array(memory.buffer, start, a.length);
    view.set(a);
    return view;
  };
  return {
    learnedActivations: { data: place(c.learned), shape: c.learnedShape },
    sourceActivations: { data: place(c.source), shape: c.inputShape },
    decodedActivations: { data: place(c.decoded), shape: c.inputShape },
  };
}

function hex(a: Float64Array | Float32Array): string {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');
}

/** The same statistics, every array byte for byte. */
function expectSameBits(actual: ShardStats, expected: ShardStats, what: string): void {
  expect(Object.keys(actual).sort(), what).toEqual(Object.keys(expected).sort());
  for (const key of KEYS) {
    const e = expected[key];
    if (e === undefined) continue;
    const a = actual[key];
    expect(a, `${what}: ${key}`).toBeInstanceOf(Float64Array);
    if (hex(a as Float64Array) !== hex(e)) {
      const i = (a as Float64Array).findIndex((x, j) => !Object.is(x, e[j]));
      expect.fail(`${what}: ${key} differs at ${i}: ${(a as Float64Array)[i]} vs ${e[i]} (lengths ${(a as Float64Array).length}, ${e.length})`);
    }
  }
}

/** Counts exactly, sums within 1e-6 relative (the pass's float32 blocks), NaN and infinities exactly. */
function expectClose(actual: ShardStats, expected: ShardStats, what: string): void {
  for (const key of KEYS) {
    const e = expected[key];
    if (e === undefined) continue;
    const a = actual[key] as Float64Array;
    expect(a.length, `${what}: ${key}.length`).toBe(e.length);
    for (let i = 0; i < e.length; i++) {
      const x = a[i] as number;
      const y = e[i] as number;
      const ok = key === 'nonZero' || key === 'fired' || !Number.isFinite(y) ? Object.is(x, y) : Math.abs(x - y) <= 1e-6 * Math.abs(y);
      if (!ok) expect.fail(`${what}: ${key}[${i}] = ${x}, expected ${y}`);
    }
  }
}

describe('createChunkedWasmKernel against the pool kernel (same bits) and the JavaScript kernel', () => {
  it('runs dist/wasm/fused-local.wasm, the fused pass built for an unshared memory', () => {
    const root = fileURLToPath(new URL('../..', import.meta.url));
    expect(wasmFile('local')).toBe(join(root, 'dist', 'wasm', 'fused-local.wasm'));
    expect(existsSync(wasmFile('local'))).toBe(true);
    const unshared = { env: { memory: new WebAssembly.Memory({ initial: 1, maximum: 65536 }) } };
    expect(() => new WebAssembly.Instance(wasmModule('local'), unshared)).not.toThrow();
    expect(() => new WebAssembly.Instance(wasmModule('shared'), unshared)).toThrow(/shared/);
  });

  it('gives the pool kernel\'s bits and the JavaScript kernel\'s values on random shapes, ranges, chunk sizes and needs', () => {
    fc.assert(
      fc.property(
        fc.record({
          rank: fc.constantFrom<2 | 3>(2, 3),
          components: fc.integer({ min: 1, max: 4 }),
          features: fc.constantFrom(1, 3, 4, 5, 17, 63, 64, 65, 257, 1000),
          inputFeatures: fc.constantFrom(1, 4, 7, 64, 129),
          rows: fc.integer({ min: 1, max: 40 }),
          startShare: fc.double({ min: 0, max: 1, noNaN: true }),
          endShare: fc.double({ min: 0, max: 1, noNaN: true }),
          chunkRows: fc.constantFrom(1, 2, 3, 4, 5, 7, 8, 9, 0),
          needs: fc.integer({ min: 1, max: 15 }),
          huge: fc.boolean(),
          seed: fc.integer({ min: 1, max: 2 ** 30 }),
        }),
        (p) => {
          const c = makeCase(p.rows, p.components, p.rank, p.features, p.inputFeatures, p.seed, p.huge);
          const a = Math.floor(p.startShare * p.rows);
          const b = Math.floor(p.endShare * p.rows);
          const rows: RowRange = { start: Math.min(a, b), end: Math.max(a, b) };
          const vector = (p.rank === 2 ? 1 : p.components) * Math.max(p.features, 2 * p.inputFeatures) * 4;
          // chunkRows 0: the default chunk size (larger than every batch here)
          const fused = createChunkedWasmKernel(p.chunkRows === 0 ? {} : { chunkBytes: p.chunkRows * vector });
          const needs = NEEDS[p.needs] as ShardNeeds;
          const label = `${JSON.stringify(p)} rows [${rows.start}, ${rows.end})`;
          const got = fused(ordinary(c), rows, needs);
          expectSameBits(got, pooled.fused(inShared(c), rows, needs), label);
          if (!p.huge) expectClose(got, jsFusedKernel(ordinary(c), rows, needs), label);
        },
      ),
      { numRuns: 300, seed: 12 },
    );
  });

  it('gives the same bits whatever the chunk size, on a batch of many chunks (300 x 7 x 1000)', () => {
    const c = makeCase(300, 7, 3, 1000, 100, 99);
    const rows = { start: 3, end: 297 };
    const want = pooled.fused(inShared(c), rows, ALL);
    for (const chunkBytes of [1, 28_000, 28_001, 4 * 28_000, 1 << 20, 1 << 30]) {
      expectSameBits(createChunkedWasmKernel({ chunkBytes })(ordinary(c), rows, ALL), want, `chunkBytes ${chunkBytes}`);
    }
  });

  it('answers an empty row range with zero counts and no vectors, as the pool kernel does', () => {
    const c = makeCase(5, 2, 3, 6, 3, 5);
    const fused = createChunkedWasmKernel({ chunkBytes: 48 });
    fused(ordinary(c), { start: 0, end: 5 }, ALL); // leaves counts in its memory
    const got = fused(ordinary(c), { start: 2, end: 2 }, ALL);
    expectSameBits(got, pooled.fused(inShared(c), { start: 2, end: 2 }, ALL), 'empty range');
    expect(Array.from(got.fired as Float64Array)).toEqual(new Array(12).fill(0));
    expect(Array.from(got.nonZero as Float64Array)).toEqual([0, 0]);
    expect((got.abs as Float64Array).length).toBe(0);
  });

  it('starts every call from zero counts: a call after a larger or different one is not polluted by it', () => {
    const fused = createChunkedWasmKernel({ chunkBytes: 64 });
    const big = makeCase(33, 3, 3, 40, 9, 7);
    const small = makeCase(3, 1, 2, 40, 9, 8);
    const zeros: Case = { ...small, learned: new Float32Array(small.learned.length) };
    for (const [name, c] of [['big', big], ['small', small], ['zeros', zeros], ['big again', big]] as const) {
      const rows = { start: 0, end: c.learnedShape[0] as number };
      expectSameBits(fused(ordinary(c), rows, ALL), pooled.fused(inShared(c), rows, ALL), name);
    }
  });

  it('grows its memory for a shard larger than it has seen, and stays correct after', () => {
    const fused = createChunkedWasmKernel();
    const small = makeCase(2, 1, 2, 8, 8, 3);
    const large = makeCase(64, 1, 2, 70_000, 9000, 4); // fired counts alone: 280 KB; inputs in chunks
    for (const [name, c] of [['small', small], ['large', large], ['small again', small]] as const) {
      const rows = { start: 0, end: c.learnedShape[0] as number };
      expectSameBits(fused(ordinary(c), rows, ALL), pooled.fused(inShared(c), rows, ALL), name);
    }
  });

  it('reads inputs at any offset of any buffer (views, shared memory) and leaves them unchanged', () => {
    const c = makeCase(9, 2, 3, 13, 5, 21);
    const want = pooled.fused(inShared(c), { start: 1, end: 8 }, ALL);
    const fused = createChunkedWasmKernel({ chunkBytes: 200 });
    for (const shift of [0, 1, 2, 3, 5]) {
      const at = (a: Float32Array, shared: boolean): Float32Array => {
        const buffer = shared ? new SharedArrayBuffer((a.length + shift) * 4) : new ArrayBuffer((a.length + shift) * 4);
        const view = new Float32Array(buffer, shift * 4, a.length);
        view.set(a);
        return view;
      };
      for (const shared of [false, true]) {
        const batch: KernelBatch = {
          learnedActivations: { data: at(c.learned, shared), shape: c.learnedShape },
          sourceActivations: { data: at(c.source, shared), shape: c.inputShape },
          decodedActivations: { data: at(c.decoded, shared), shape: c.inputShape },
        };
        const inputs = (): string[] => [batch.learnedActivations, batch.sourceActivations, batch.decodedActivations].map((t) => hex(t?.data as Float32Array));
        const before = inputs();
        expectSameBits(fused(batch, { start: 1, end: 8 }, ALL), want, `shift ${shift}, shared ${shared}`);
        expect(inputs(), 'inputs unchanged').toEqual(before);
      }
    }
  });
});

describe('createChunkedWasmKernel rejects bad input with a message', () => {
  const c = makeCase(4, 1, 2, 3, 2, 1);
  const fused = createChunkedWasmKernel();

  it('a tensor that is not float32', () => {
    const batch = { learnedActivations: { data: Float64Array.from(c.learned), shape: c.learnedShape } } as unknown as KernelBatch;
    expect(() => fused(batch, { start: 0, end: 4 }, { abs: true })).toThrow(
      new TypeError('wasm kernel: learnedActivations must be a tensor whose data is a Float32Array'),
    );
  });

  it('a row range outside the batch', () => {
    expect(() => fused(ordinary(c), { start: 2, end: 5 }, { fired: true })).toThrow(
      new RangeError('wasm kernel: rows must be a range of integers within [0, 4], got [2, 5)'),
    );
  });

  it('source and decoded activations of different shapes', () => {
    const batch = { ...ordinary(c), sourceActivations: { data: c.source.subarray(0, 6), shape: [3, 2] } };
    expect(() => fused(batch, { start: 0, end: 3 }, { mse: true })).toThrow(
      new RangeError('wasm kernel: sourceActivations and decodedActivations must have the same shape'),
    );
  });

  it('a shape whose data is too short', () => {
    const batch = { learnedActivations: { data: c.learned.subarray(0, 5), shape: c.learnedShape } };
    expect(() => fused(batch, { start: 0, end: 4 }, { abs: true })).toThrow(
      new RangeError('wasm kernel: learnedActivations has shape [4, 3] but its data holds 5 elements'),
    );
  });

  it('a chunk size that is not a positive integer', () => {
    for (const chunkBytes of [0, -1, 1.5, Number.NaN]) {
      expect(() => createChunkedWasmKernel({ chunkBytes })).toThrow(
        new RangeError(`wasm kernel: options.chunkBytes must be a positive integer, got ${String(chunkBytes)}`),
      );
    }
  });
});
