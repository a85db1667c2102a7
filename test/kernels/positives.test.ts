/**
 * The `positives` statistic (the fired entries of a shard, vector by vector) against a naive
 * reading of the tensor, and `withFallback`: a kernel asked for a statistic it does not compute
 * gets it from the fallback, in one call each, with its own statistics untouched.
 */
import { describe, expect, it } from 'vitest';
import { withFallback } from '../../src/kernels/fallback.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { FusedKernel, ShardNeeds } from '../../src/kernels/types.js';
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
