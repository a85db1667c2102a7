/**
 * The `positives` statistic (the fired entries of a shard, vector by vector) against a naive
 * reading of the tensor; the WebAssembly pass's (pooled over shared memory, and chunked) bit for
 * bit with the JS kernel's, with the values that test a comparison (-0, NaN, infinities,
 * subnormals), shards denser than the kernel's guess (run again with room), and every other
 * statistic unchanged by it; and `withFallback`: a kernel asked for a statistic it does not compute
 * gets it from the fallback, in one call each, with its own statistics untouched.
 */
import { describe, expect, it } from 'vitest';
import { withFallback } from '../../src/kernels/fallback.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { FusedKernel, PositiveEntries, ShardNeeds, ShardStats } from '../../src/kernels/types.js';
import { createWasmKernel, WASM_NEEDS } from '../../src/kernels/wasm/index.js';
import { createChunkedWasmKernel } from '../../src/kernels/wasm/chunked.js';
import { tensor } from '../../src/tensor.js';
import { mulberry32 } from '../support/random.js';

function naive(data: Float32Array, shape: number[], start: number, end: number): { v: number; f: number; x: number }[] {
  const features = shape[shape.length - 1] as number;
  const components = shape.length === 3 ? (shape[1] as number) : 1;
  const out: { v: number; f: number; x: number }[] = [];
  for (let r = start; r < end; r++) {
    for (let c = 0; c < components; c++) {
      for (let f = 0; f < features; f++) {
        const x = data[(r * components + c) * features + f] as number;
        if (x > 0) out.push({ v: (r - start) * components + c, f, x });
      }
    }
  }
  return out;
}

describe('positives', () => {
  const random = mulberry32(7);
  const shapes = [[1, 1], [5, 3], [9, 2, 17], [4, 3, 1], [16, 33]];
  for (const shape of shapes) {
    it(`lists every x > 0 in row-major order for shape [${shape.join(', ')}], by the JS and the wasm kernels`, () => {
      const n = shape.reduce((a, b) => a * b, 1);
      const data = new Float32Array(n);
      for (let i = 0; i < n; i++) {
        const u = random();
        data[i] = u < 0.4 ? 0 : u < 0.5 ? -u : u < 0.55 ? Number.NaN : u < 0.6 ? -0 : u * 3;
      }
      const batch = { learnedActivations: tensor(data, shape) };
      const rows = shape[0] as number;
      const start = rows > 2 ? 1 : 0;
      const end = rows;
      const expected = naive(data, shape, start, end);
      for (const kernel of [jsFusedKernel, createChunkedWasmKernel()]) {
        const p = kernel(batch, { start, end }, { positives: true, fired: true }).positives;
        if (p === undefined) throw new Error('no positives');
        const vectors = (end - start) * (shape.length === 3 ? (shape[1] as number) : 1);
        expect(p.offsets.length).toBe(vectors + 1);
        const got: { v: number; f: number; x: number }[] = [];
        for (let v = 0; v < vectors; v++) {
          for (let i = p.offsets[v] as number; i < (p.offsets[v + 1] as number); i++) got.push({ v, f: p.features[i] as number, x: p.values[i] as number });
        }
        expect(got).toEqual(expected);
        expect(p.values.length).toBe(expected.length);
      }
    });
  }
});

describe('withFallback', () => {
  it('asks the kernel for what it supports and the fallback for the rest, once each', () => {
    const calls: [string, ShardNeeds][] = [];
    const own: FusedKernel = (_b, _r, needs) => {
      calls.push(['own', needs]);
      return { abs: new Float64Array([1]) };
    };
    const rest: FusedKernel = (_b, _r, needs) => {
      calls.push(['rest', needs]);
      return { mse: new Float64Array([2]) };
    };
    const kernel = withFallback(own, new Set(['abs']), rest);
    const stats = kernel({}, { start: 0, end: 1 }, { abs: true, mse: true });
    expect(calls).toEqual([['own', { abs: true }], ['rest', { mse: true }]]);
    expect(Array.from(stats.abs ?? [])).toEqual([1]);
    expect(Array.from(stats.mse ?? [])).toEqual([2]);
    calls.length = 0;
    kernel({}, { start: 0, end: 1 }, { abs: true });
    expect(calls).toEqual([['own', { abs: true }]]);
    calls.length = 0;
    kernel({}, { start: 0, end: 1 }, { mse: true, abs: false });
    expect(calls).toEqual([['rest', { mse: true }]]);
  });
});

describe('positives from the WebAssembly pass, bit for bit with the JS kernel', () => {
  /** Sparse data of `density` with the values that test a comparison: -0, NaN, +-Infinity, subnormals, negatives. */
  function data(seed: number, n: number, density: number): Float32Array {
    const random = mulberry32(seed);
    const out = new Float32Array(n);
    const special = [-0, Number.NaN, Infinity, -Infinity, 1.4e-45, -1.4e-45, 1.1754942e-38, 3.4e38];
    for (let i = 0; i < n; i++) {
      const u = random();
      out[i] = u >= density ? 0 : u < density * 0.05 ? (special[Math.floor(random() * special.length)] as number) : u < density * 0.2 ? -random() : random() * 4;
    }
    return out;
  }
  const cases: { shape: number[]; density: number; rows: [number, number] }[] = [
    { shape: [1, 1], density: 1, rows: [0, 1] },
    { shape: [7, 3], density: 0.5, rows: [2, 7] },
    { shape: [33, 2, 17], density: 0.02, rows: [0, 33] },
    { shape: [64, 129], density: 0.9, rows: [5, 61] },
    { shape: [300, 3, 5], density: 1, rows: [0, 300] },
    { shape: [9, 4096], density: 0.001, rows: [1, 9] },
    // Denser than the last shard's guess, past the room the pooled kernel has grown so far: run again with room.
    { shape: [600, 100], density: 1, rows: [0, 600] },
    // Rows in several blocks of the pooled kernel (544 rows a block) and many chunks.
    { shape: [2000, 3, 40], density: 0.1, rows: [3, 1999] },
    { shape: [40, 64], density: 0, rows: [0, 40] },
    { shape: [12, 8], density: 0.3, rows: [4, 4] },
    // Rows of several blocks of 64 values, read 16 values a step, then 4 at the end of a row, then a scalar tail.
    { shape: [50, 2, 303], density: 0.3, rows: [1, 50] },
    { shape: [20, 1021], density: 0.05, rows: [0, 20] },
  ];
  // Every combination of the learned statistics beside the positives (one pass gives them all).
  const needsSets: ShardNeeds[] = [
    { positives: true },
    { positives: true, fired: true },
    { positives: true, abs: true },
    { positives: true, nonZero: true },
    { positives: true, abs: true, nonZero: true },
    { positives: true, fired: true, abs: true },
    { positives: true, fired: true, nonZero: true },
    { positives: true, fired: true, abs: true, nonZero: true },
  ];

  function expectSame(got: ShardStats, want: ShardStats, label: string): void {
    expect(Object.keys(got).sort(), label).toEqual(Object.keys(want).sort());
    for (const key of Object.keys(want) as (keyof ShardStats)[]) {
      if (key === 'positives') {
        const g = got.positives as PositiveEntries;
        const w = want.positives as PositiveEntries;
        expect(Buffer.from(g.offsets.buffer).equals(Buffer.from(w.offsets.buffer)), `${label}: offsets`).toBe(true);
        expect(Array.from(g.features), `${label}: features`).toEqual(Array.from(w.features));
        expect(Buffer.from(g.values.buffer, g.values.byteOffset, g.values.byteLength).equals(Buffer.from(w.values.buffer, w.values.byteOffset, w.values.byteLength)), `${label}: values`).toBe(true);
      } else {
        const g = got[key] as Float64Array;
        const w = want[key] as Float64Array;
        expect(Buffer.from(g.buffer, g.byteOffset, g.byteLength).equals(Buffer.from(w.buffer, w.byteOffset, w.byteLength)), `${label}: ${key}`).toBe(true);
      }
    }
  }

  it('pooled kernel over shared memory and chunked kernel (small chunks): positives and fired as the JS kernel, abs and nonZero as the WebAssembly pass without positives', () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const pooled = createWasmKernel(memory);
    const chunked = createChunkedWasmKernel({ chunkBytes: 1024 });
    const plainChunked = createChunkedWasmKernel();
    let seed = 100;
    // Twice through, so that the second round's guesses come from a shard of another density (dense after sparse: the guess is too small).
    for (const round of [0, 1]) {
      for (const { shape, density, rows } of round === 0 ? cases : [...cases].reverse()) {
        const n = shape.reduce((a, b) => a * b, 1);
        const values = data(seed++, n, density);
        // The tensor at a page of the shared memory of its own (the kernel grows the memory past it).
        const at = memory.grow(Math.ceil((4 * n) / 65536) + 1) * 65536;
        const view = new Float32Array(memory.buffer, at, n);
        view.set(values);
        const shared = { learnedActivations: { data: view, shape } };
        const plain = { learnedActivations: tensor(values, shape) };
        const range = { start: rows[0], end: rows[1] };
        for (const needs of needsSets) {
          const label = `round ${round}, shape [${shape.join(', ')}], density ${density}, rows [${rows.join(', ')}), needs ${Object.keys(needs).join(',')}`;
          const js = jsFusedKernel(plain, range, needs);
          // abs is float32 blocks carried into float64 in the WebAssembly pass: compared with that pass without positives.
          const { positives: _p, ...rest } = needs;
          const wasmOnly = Object.keys(rest).length > 0 ? pooled.fused(shared, range, rest) : {};
          const want: ShardStats = { ...js, ...(wasmOnly.abs === undefined ? {} : { abs: wasmOnly.abs }) };
          expectSame(pooled.fused(shared, range, needs), want, `pooled: ${label}`);
          expectSame(chunked(plain, range, needs), want, `chunked (1 KiB chunks): ${label}`);
          expectSame(plainChunked(plain, range, needs), want, `chunked: ${label}`);
        }
      }
    }
  });

  it('positives is in WASM_NEEDS: the WebAssembly kernels compute it without the JS fallback', () => {
    expect(WASM_NEEDS.has('positives')).toBe(true);
  });
});
