/**
 * The source/decoded statistics of the fused pass (`norms`, `sourceMoments`, `residualMoments`,
 * beside `mse`): the WebAssembly `pairPass` (pool kernel over a shared memory, and the chunked
 * in-thread kernel) against the JavaScript reference kernel.
 *
 * - the chunked kernel gives the pool kernel's bits on every array, whatever the chunk size (NaN
 *   included: the kernels write one canonical NaN, where WebAssembly would leave the bits of a NaN
 *   made from two NaNs to the compiler, which differed between runs);
 * - the moments are the JavaScript kernel's bits (the same float64 operations in the same order);
 *   the norms `‖x‖²`, `‖x̂‖²`, `⟨x, x̂⟩` within 1e-12 of float64 sums (scaled by `Σ|x||x̂|` for the
 *   product), `‖x − x̂‖²` within 1e-6 (msePass's float32 blocks);
 * - the mean squared errors are the same bits whether or not norms and moments are computed with
 *   them (so the existing metrics' results do not change), and `error / features` is `mse`;
 * - awkward data (NaN, infinities, values whose float32 squares overflow), rank 2 and 3, 1 to 4
 *   components, feature counts 1 to 1000, row ranges in the middle of a batch, empty ranges.
 */
import { beforeAll, describe, expect, it } from 'vitest';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { KernelBatch, Moments, RowRange, ShardNeeds, ShardStats, VectorNorms } from '../../src/kernels/types.js';
import { createChunkedWasmKernel } from '../../src/kernels/wasm/chunked.js';
import { createWasmKernel, WASM_NEEDS, type WasmKernel } from '../../src/kernels/wasm/index.js';
import { mulberry32 } from '../support/random.js';

const PAGE = 65536;
const NEEDS: ShardNeeds[] = Array.from({ length: 15 }, (_, i) => {
  const m = i + 1;
  return {
    ...(m & 1 ? { mse: true } : {}),
    ...(m & 2 ? { norms: true } : {}),
    ...(m & 4 ? { sourceMoments: true } : {}),
    ...(m & 8 ? { residualMoments: true } : {}),
  };
});

let memory: WebAssembly.Memory;
let pooled: WasmKernel;

beforeAll(() => {
  memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  pooled = createWasmKernel(memory);
});

/** Source values around `mean`; decoded close to them; `awkward` adds NaN, infinities and huge values. */
function pair(n: number, seed: number, mean: number, awkward: boolean): { source: Float32Array; decoded: Float32Array } {
  const rng = mulberry32(seed);
  const source = new Float32Array(n);
  const decoded = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng();
    source[i] = mean + (rng() - 0.5) * 4;
    decoded[i] = i % 5 === 0 ? (source[i] as number) : (source[i] as number) * 0.9 + (rng() - 0.5);
    if (awkward && u < 0.01) source[i] = Number.NaN;
    else if (awkward && u < 0.02) decoded[i] = rng() < 0.5 ? Infinity : -Infinity;
    else if (awkward && u < 0.05) source[i] = (rng() < 0.5 ? -3e38 : 3e38) * (0.5 + rng() / 2);
    else if (awkward && u < 0.08) source[i] = decoded[i] = 0;
  }
  return { source, decoded };
}

function batchOf(source: Float32Array, decoded: Float32Array, shape: number[]): KernelBatch {
  return { sourceActivations: { data: source, shape }, decodedActivations: { data: decoded, shape } };
}

function place(a: Float32Array): Float32Array {
  const start = memory.grow(Math.ceil(Math.max(1, a.byteLength) / PAGE)) * PAGE;
  const view = new Float32Array(memory.buffer, start, a.length);
  view.set(a);
  return view;
}

/** Every Float64Array of the stats, by a path name. */
function arrays(stats: ShardStats): Map<string, Float64Array> {
  const out = new Map<string, Float64Array>();
  if (stats.mse) out.set('mse', stats.mse);
  for (const [k, v] of Object.entries(stats.norms ?? {})) out.set(`norms.${k}`, v as Float64Array);
  for (const key of ['sourceMoments', 'residualMoments'] as const) {
    const m = stats[key] as Moments | undefined;
    if (m) {
      out.set(`${key}.mean`, m.mean);
      out.set(`${key}.m2`, m.m2);
    }
  }
  return out;
}

const hex = (a: Float64Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

/**
 * Every array byte for byte; with `anyNaN`, a NaN matches any NaN (the JavaScript kernel's NaN
 * bits are V8's; the WebAssembly kernels write one canonical NaN).
 */
function expectSameBits(actual: ShardStats, expected: ShardStats, what: string, only?: (key: string) => boolean, anyNaN = false): void {
  const a = arrays(actual);
  const e = arrays(expected);
  expect([...a.keys()].sort(), what).toEqual([...e.keys()].sort());
  for (const [k, ev] of e) {
    if (only && !only(k)) continue;
    const av = a.get(k) as Float64Array;
    const same = anyNaN ? av.length === ev.length && av.every((x, j) => Object.is(x, ev[j])) : av.length === ev.length && hex(av) === hex(ev);
    if (!same) {
      const i = av.findIndex((x, j) => !Object.is(x, ev[j]));
      expect.fail(`${what}: ${k} differs at ${i}: ${av[i]} vs ${ev[i]} (lengths ${av.length}, ${ev.length})`);
    }
  }
}

function close(x: number, y: number, tol: number): boolean {
  return Number.isFinite(y) ? Math.abs(x - y) <= tol : Object.is(x, y);
}

/** The wasm norms and errors near the JavaScript kernel's (see the module comment). */
function expectNear(actual: ShardStats, expected: ShardStats, what: string): void {
  if (expected.mse) {
    const a = actual.mse as Float64Array;
    expected.mse.forEach((y, i) => expect(close(a[i] as number, y, 1e-6 * Math.abs(y)), `${what}: mse[${i}] ${a[i]} vs ${y}`).toBe(true));
  }
  if (expected.norms) {
    const a = actual.norms as VectorNorms;
    const e = expected.norms;
    for (let i = 0; i < e.source.length; i++) {
      const scale = Math.sqrt((e.source[i] as number) * (e.decoded[i] as number));
      const checks: [string, number, number, number][] = [
        ['source', a.source[i] as number, e.source[i] as number, 1e-12 * (e.source[i] as number)],
        ['decoded', a.decoded[i] as number, e.decoded[i] as number, 1e-12 * (e.decoded[i] as number)],
        ['dot', a.dot[i] as number, e.dot[i] as number, 1e-12 * scale],
        ['error', a.error[i] as number, e.error[i] as number, 1e-6 * (e.error[i] as number)],
      ];
      for (const [k, x, y, tol] of checks) {
        if (!close(x, y, tol) && !(Number.isNaN(x) && Number.isNaN(y))) expect.fail(`${what}: norms.${k}[${i}] = ${x}, expected ${y}`);
      }
    }
  }
}

interface Case {
  readonly shape: number[];
  readonly source: Float32Array;
  readonly decoded: Float32Array;
  readonly rows: RowRange;
}

function cases(): Case[] {
  const rng = mulberry32(1313);
  const out: Case[] = [];
  const features = [1, 2, 3, 4, 5, 7, 63, 64, 65, 130, 1000];
  for (let k = 0; k < 44; k++) {
    const f = features[k % features.length] as number;
    const rank = k % 2 === 0 ? 2 : 3;
    const components = rank === 2 ? 1 : 1 + Math.floor(rng() * 4);
    const rowsTotal = 1 + Math.floor(rng() * 13);
    const start = Math.floor(rng() * rowsTotal);
    const end = start + 1 + Math.floor(rng() * (rowsTotal - start));
    const n = rowsTotal * components * f;
    const { source, decoded } = pair(n, 500 + k, k % 3 === 0 ? 1e4 : 0, k % 4 === 1);
    out.push({ shape: rank === 2 ? [rowsTotal, f] : [rowsTotal, components, f], source, decoded, rows: { start, end } });
  }
  return out;
}

describe('the WebAssembly pass computes the source/decoded statistics itself', () => {
  it('lists norms and both moments in WASM_NEEDS (no JavaScript fallback for them)', () => {
    for (const need of ['mse', 'norms', 'sourceMoments', 'residualMoments'] as const) expect(WASM_NEEDS.has(need), need).toBe(true);
  });

  it('pool kernel = chunked kernel (bits, any chunk size); moments = JavaScript kernel (bits); norms near it', () => {
    const chunkedKernels = [1, 7, 64, 4096].map((rowsBytes) => createChunkedWasmKernel({ chunkBytes: rowsBytes * 4 }));
    chunkedKernels.push(createChunkedWasmKernel());
    let checked = 0;
    for (const c of cases()) {
      const shared = batchOf(place(c.source), place(c.decoded), c.shape);
      const plain = batchOf(c.source, c.decoded, c.shape);
      for (const needs of NEEDS) {
        const what = `shape [${c.shape.join(', ')}] rows [${c.rows.start}, ${c.rows.end}) needs ${Object.keys(needs).join('+')}`;
        const p = pooled.fused(shared, c.rows, needs);
        for (const [i, chunked] of chunkedKernels.entries()) expectSameBits(chunked(plain, c.rows, needs), p, `${what} chunked #${i}`);
        const js = jsFusedKernel(plain, c.rows, needs);
        expectSameBits(p, js, `${what} against JavaScript`, (k) => k.includes('Moments'), true);
        expectNear(p, js, what);
        checked++;
      }
    }
    expect(checked).toBe(44 * 15);
  });

  it('writes every NaN as the one canonical NaN (0x7ff8000000000000), whatever made it', () => {
    let nans = 0;
    for (const c of cases()) {
      const shared = batchOf(place(c.source), place(c.decoded), c.shape);
      const plain = batchOf(c.source, c.decoded, c.shape);
      const needs = { mse: true, norms: true, sourceMoments: true, residualMoments: true };
      for (const stats of [pooled.fused(shared, c.rows, needs), createChunkedWasmKernel()(plain, c.rows, needs)]) {
        for (const [k, a] of arrays(stats)) {
          const bits = new BigUint64Array(a.buffer, a.byteOffset, a.length);
          a.forEach((x, i) => {
            if (x !== x) {
              nans++;
              if (bits[i] !== 0x7ff8000000000000n) expect.fail(`${k}[${i}] is NaN with bits ${(bits[i] as bigint).toString(16)}`);
            }
          });
        }
      }
    }
    expect(nans).toBeGreaterThan(100);
  });

  it('gives the same mse bits with or without norms and moments, and error / features = mse', () => {
    for (const c of cases()) {
      const shared = batchOf(place(c.source), place(c.decoded), c.shape);
      const alone = pooled.fused(shared, c.rows, { mse: true }).mse as Float64Array;
      const all = pooled.fused(shared, c.rows, { mse: true, norms: true, sourceMoments: true, residualMoments: true });
      expect(hex(all.mse as Float64Array)).toBe(hex(alone));
      const features = c.shape[c.shape.length - 1] as number;
      const error = (all.norms as VectorNorms).error;
      error.forEach((e, i) => expect(Object.is(e / features, alone[i])).toBe(true));
    }
  });

  it('answers an empty row range with no vectors and zero moments', () => {
    const { source, decoded } = pair(12, 9, 3, false);
    const shared = batchOf(place(source), place(decoded), [3, 4]);
    const needs = { norms: true, sourceMoments: true, residualMoments: true };
    for (const stats of [pooled.fused(shared, { start: 2, end: 2 }, needs), createChunkedWasmKernel()(batchOf(source, decoded, [3, 4]), { start: 2, end: 2 }, needs)]) {
      expect((stats.norms as VectorNorms).source.length).toBe(0);
      expect(Array.from((stats.sourceMoments as Moments).mean)).toEqual([0, 0, 0, 0]);
      expect(Array.from((stats.residualMoments as Moments).m2)).toEqual([0, 0, 0, 0]);
    }
  });

  it('starts each call from its own first row: a call after another is not polluted by it', () => {
    const { source, decoded } = pair(40, 77, 100, false);
    const plain = batchOf(source, decoded, [10, 4]);
    const chunked = createChunkedWasmKernel({ chunkBytes: 32 });
    const needs = { sourceMoments: true, residualMoments: true };
    const fresh = createChunkedWasmKernel({ chunkBytes: 32 })(plain, { start: 5, end: 9 }, needs);
    chunked(plain, { start: 0, end: 10 }, needs);
    expectSameBits(chunked(plain, { start: 5, end: 9 }, needs), fresh, 'after a larger call');
    expectSameBits(fresh, jsFusedKernel(plain, { start: 5, end: 9 }, needs), 'against JavaScript', undefined, true);
  });
});
