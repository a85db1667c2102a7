/**
 * The per-feature statistics of a shard's fired entries in WebAssembly (`featureStats` in
 * src/kernels/wasm/assembly/fused.ts, read by `featureStatsAt`) against the JavaScript parts that
 * make them from `positives` (`momentsOf`, `histogramOf`, the three paths of `topOfShard`, the
 * last-fired rows), bit for bit:
 *
 * - the function itself, on seeded random shards of every shape (0 rows, nothing fired, one entry
 *   a feature, 1 to 3 components), with hostile values (forty decades, ties, subnormals, the
 *   largest float32, +Infinity, the bin edges and their float32 neighbours), every k (1 to past
 *   every feature's entries) and random histogram bins;
 * - through both WebAssembly kernels (the pool's over a shared memory, the chunked in-thread one)
 *   with the parts' own requests, against the same parts through the JavaScript kernel: every
 *   part alone (top alone takes the JavaScript kernel's k <= 4 and bucketed paths), all together,
 *   and two top parts of different k and two histograms of different bins in one pass;
 * - the union of requests (`shardNeeds`).
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { computePartials, shardNeeds, type Batch, type StatePart } from '../../src/functional/core.js';
import { momentsOf } from '../../src/functional/parts/activation-moments.js';
import { activationMomentsPart } from '../../src/functional/parts/activation-moments.js';
import {
  activationHistogramPart,
  float32Bins,
  histogramEdges,
  histogramOf,
  type HistogramBins,
} from '../../src/functional/parts/activation-histogram.js';
import { firedCountPart } from '../../src/functional/parts/fired-count.js';
import { lastFiredPart } from '../../src/functional/parts/last-fired.js';
import { topActivationsPart } from '../../src/functional/parts/top-activations.js';
import { topByBuckets, topByFeature, topInArrivalOrder } from '../../src/functional/parts/top-of-shard.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { FeatureNeeds, FeatureStats, FusedKernel, PositiveEntries } from '../../src/kernels/types.js';
import { createChunkedWasmKernel } from '../../src/kernels/wasm/chunked.js';
import { createWasmKernel, featureLayout, featureStatsAt, wasmModule, type FusedExports, type WasmKernel } from '../../src/kernels/wasm/index.js';
import { difference, viewBytesDifference } from '../support/compare.js';
import { positivesOf, type FiredShard } from '../support/fired-entries.js';
import { mulberry32 } from '../support/random.js';

const f32 = Math.fround;
const PAGE = 65536;

/** The float32 numbers just below and above `x` (positive, finite). */
function neighbours(x: number): number[] {
  const a = new Float32Array([x]);
  const b = new Uint32Array(a.buffer);
  const out: number[] = [];
  for (const d of [-1, 1]) {
    const c = new Uint32Array([(b[0] as number) + d]);
    out.push(new Float32Array(c.buffer)[0] as number);
  }
  return out.filter((v) => v > 0);
}

/** A bins option: up to 30 decades (past 126 bins, more than two words of marks), up to 10 bins a decade, from 1e-30 to at most 1e38. */
const binsArb: fc.Arbitrary<HistogramBins> = fc
  .record({ lowLog10: fc.integer({ min: -30, max: 10 }), decades: fc.integer({ min: 1, max: 30 }), binsPerDecade: fc.integer({ min: 1, max: 10 }) })
  .map(({ lowLog10, decades, binsPerDecade }) => ({ lowLog10, highLog10: Math.min(38, lowLog10 + decades), binsPerDecade }));

/** Fired values: forty decades, ties, subnormals, the largest float32, Infinity, and `edges` with their neighbours. */
function valueArb(edges: readonly number[]): fc.Arbitrary<number> {
  const onEdges = edges.flatMap((e) => (e > 0 && e < Infinity ? [e, ...neighbours(e)] : []));
  return fc.oneof(
    fc.integer({ min: -20, max: 20 }).chain((e) => fc.double({ min: 1, max: 10, noNaN: true }).map((m) => f32(m * 10 ** e))),
    fc.constantFrom(1, 1, 2, 1e-45, 1e-40, 3.4028234663852886e38, Infinity).map(f32),
    onEdges.length > 0 ? fc.constantFrom(...onEdges) : fc.constant(1),
  );
}

interface Case {
  readonly shard: FiredShard;
  readonly k: number;
  readonly bins: HistogramBins;
}

const caseArb: fc.Arbitrary<Case> = fc
  .record({
    features: fc.integer({ min: 1, max: 70 }),
    components: fc.integer({ min: 1, max: 3 }),
    rows: fc.integer({ min: 0, max: 40 }),
    density: fc.oneof(fc.constant(0), fc.double({ min: 0.01, max: 1, noNaN: true })),
    pad: fc.integer({ min: 0, max: 3 }),
    k: fc.integer({ min: 1, max: 45 }),
    bins: binsArb,
  })
  .chain((s) => {
    const edges = Array.from(histogramEdges(s.bins));
    const n = s.rows * s.components * s.features;
    return fc
      .array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), valueArb(edges)), { minLength: n, maxLength: n })
      .map((draws) => ({
        shard: { features: s.features, components: s.components, rows: s.rows, pad: s.pad, cells: draws.map(([u, x]) => (u < s.density ? x : undefined)) },
        k: s.k,
        bins: s.bins,
      }));
  });

/** `featureStats` over `p` placed in a fresh part of a WebAssembly memory, as a positives pass leaves entries. */
let exports: FusedExports;
let memory: WebAssembly.Memory;
beforeAll(() => {
  memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  exports = new WebAssembly.Instance(wasmModule('local'), { env: { memory } }).exports as unknown as FusedExports;
});

function wasmStats(p: PositiveEntries, components: number, features: number, request: FeatureNeeds): FeatureStats {
  const vectors = p.offsets.length - 1;
  const total = p.values.length;
  // Odd places (16-byte aligned), after what an earlier call left (its values must not matter).
  const offsets = 48;
  const at = { offsets, features: offsets + 16 * Math.ceil((4 * vectors + 4) / 16) + 16, values: 0, vectors, total };
  at.values = at.features + 16 * Math.ceil((4 * total) / 16) + 32;
  const scratch = at.values + 16 * Math.ceil((4 * total) / 16) + 64;
  const need = scratch + featureLayout(components * features, total, request).bytes;
  if (need > memory.buffer.byteLength) memory.grow(Math.ceil((need - memory.buffer.byteLength) / PAGE));
  // Garbage where the scratch goes: nothing may be read before it is written.
  new Uint8Array(memory.buffer, scratch, need - scratch).fill(0xa5);
  new Uint32Array(memory.buffer, at.offsets, vectors).set(p.offsets.subarray(0, vectors));
  new Uint32Array(memory.buffer, at.features, total).set(p.features);
  new Float32Array(memory.buffer, at.values, total).set(p.values);
  return featureStatsAt(exports, () => memory.buffer, at, components, features, request, scratch);
}

/** Per group, the row of its last entry (-1 if none): a walk over the entries in order. */
function lastRows(p: PositiveEntries, components: number, features: number): Float64Array {
  const last = new Float64Array(components * features).fill(-1);
  for (let v = 0; v + 1 < p.offsets.length; v++) {
    for (let i = p.offsets[v] as number; i < (p.offsets[v + 1] as number); i++) {
      last[(v % components) * features + (p.features[i] as number)] = Math.floor(v / components);
    }
  }
  return last;
}

function same(got: unknown, want: unknown, what: string): void {
  const d = difference(got, want, viewBytesDifference);
  if (d !== undefined) expect.fail(`${what}: ${d}`);
}

describe('featureStats (WebAssembly) against the JavaScript parts, bit for bit', () => {
  it('on random shards of every shape with hostile values, every k and random bins', () => {
    let checked = 0;
    fc.assert(
      fc.property(caseArb, ({ shard, k, bins }) => {
        const { components: C, features: F } = shard;
        const p = positivesOf(shard);
        const edges = histogramEdges(bins);
        const key = 'bins';
        const request: FeatureNeeds = { moments: true, lastFired: true, top: k, histogram: { key, edgeBits: new Uint32Array(new Float32Array(edges).buffer) } };
        const got = wasmStats(p, C, F, request);
        same(got.moments, momentsOf({ ...p }, C, F), 'moments');
        same(got.lastFired, lastRows(p, C, F), 'last fired');
        const hist = histogramOf({ ...p }, C, F, edges.length + 1, float32Bins(edges)).shards[0];
        same(got.histogram, { key, ...hist }, 'histogram');
        for (const [name, top] of [['arrival order', topInArrivalOrder], ['buckets', topByBuckets], ['by feature', topByFeature]] as const) {
          same(got.top, { k, ...top({ ...p }, F, C, k) }, `top (${name}), k=${k}`);
        }
        // Each statistic alone: the same bits as with the others.
        same(wasmStats(p, C, F, { top: k }).top, got.top, 'top alone');
        same(wasmStats(p, C, F, { histogram: request.histogram! }).histogram, got.histogram, 'histogram alone');
        same(wasmStats(p, C, F, { moments: true }).moments, got.moments, 'moments alone');
        checked += p.values.length;
      }),
      { seed: 1313, numRuns: 300 },
    );
    expect(checked).toBeGreaterThan(10_000);
  });

  it('a feature that fires on every row with one value: ties go to the lower row, at every k', () => {
    const rows = 30;
    const shard: FiredShard = { features: 3, components: 1, rows, pad: 0, cells: Array.from({ length: rows * 3 }, (_, i) => (i % 3 === 1 ? 0.5 : i % 3 === 2 ? f32(1 + (i % 2)) : undefined)) };
    const p = positivesOf(shard);
    for (const k of [1, 2, 4, 5, 29, 30, 31, 100]) {
      const got = wasmStats(p, 1, 3, { top: k }).top!;
      same(got, { k, ...topByFeature({ ...p }, 3, 1, k) }, `k=${k}`);
      // Feature 1: value 0.5 on every row, so its best k are rows 0 .. k - 1.
      const kept = Math.min(k, rows);
      expect(Array.from(got.rows.subarray(0, kept))).toEqual(Array.from({ length: kept }, (_, i) => i));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// The top at large k: many entries a feature, in orders that make an insertion walk every slot

/** Per group, its best `k` entries by value descending then row ascending: a plain sort of each group's entries. */
function referenceTop(p: PositiveEntries, components: number, features: number, k: number): { counts: number[]; values: number[]; rows: number[] } {
  const byGroup: { value: number; row: number }[][] = Array.from({ length: components * features }, () => []);
  for (let v = 0; v + 1 < p.offsets.length; v++) {
    for (let i = p.offsets[v] as number; i < (p.offsets[v + 1] as number); i++) {
      byGroup[(v % components) * features + (p.features[i] as number)]!.push({ value: p.values[i] as number, row: Math.floor(v / components) });
    }
  }
  const out = { counts: [] as number[], values: [] as number[], rows: [] as number[] };
  for (const entries of byGroup) {
    const best = entries.sort((a, b) => b.value - a.value || a.row - b.row).slice(0, k);
    out.counts.push(best.length);
    for (const e of best) {
      out.values.push(e.value);
      out.rows.push(e.row);
    }
  }
  return out;
}

type Order = 'random' | 'rising' | 'falling' | 'few values' | 'zigzag';
const ORDERS: readonly Order[] = ['random', 'rising', 'falling', 'few values', 'zigzag'];

/** A shard whose features fire on about `density` of the vectors, each feature's values in `orders[feature % 5]` by row. */
function manyEntries(seed: number, rows: number, components: number, features: number, density: number): FiredShard {
  const r = mulberry32(seed);
  const cells: (number | undefined)[] = [];
  for (let v = 0; v < rows * components; v++) {
    const row = Math.floor(v / components);
    for (let f = 0; f < features; f++) {
      if (r() >= density) {
        cells.push(undefined);
        continue;
      }
      const order = ORDERS[f % ORDERS.length] as Order;
      const x =
        order === 'random' ? 10 ** (-8 + 16 * r())
        : order === 'rising' ? 1 + row + r() / 2
        : order === 'falling' ? rows - row + r() / 2
        : order === 'few values' ? [0.25, 0.5, 1, 3.4028234663852886e38, Infinity][Math.floor(r() * 5)]!
        : (row % 2 === 0 ? row : rows - row) + 0.25;
      cells.push(f32(x));
    }
  }
  return { features, components, rows, pad: 1, cells };
}

describe('featureStats (WebAssembly) at large k and many entries a feature: the JavaScript parts\' bits', () => {
  it('seeded shards of up to 2500 entries a feature (random, rising, falling, few values, zigzag), k from 1 to past every count', () => {
    let compared = 0;
    for (const [seed, rows, C, F, density] of [
      [1, 2500, 1, 5, 1],
      [2, 1200, 2, 7, 0.8],
      [3, 700, 3, 10, 0.6],
      [4, 3000, 1, 2, 0.97],
    ] as const) {
      const p = positivesOf(manyEntries(seed, rows, C, F, density));
      const counts = referenceTop(p, C, F, Infinity).counts;
      const most = Math.max(...counts);
      const ks = [1, 4, 5, 6, 17, 33, 100, 511, 1000, ...counts.flatMap((c) => [c - 1, c, c + 1]), most + 1, 5000].filter((k) => k >= 1);
      for (const k of [...new Set(ks)]) {
        const got = wasmStats(p, C, F, { top: k }).top!;
        const want = referenceTop(p, C, F, k);
        same({ counts: Array.from(got.counts), values: Array.from(got.values), rows: Array.from(got.rows) }, want, `seed ${seed}, k=${k}: the best k by a plain sort`);
        for (const [name, top] of [['buckets', topByBuckets], ['by feature', topByFeature]] as const) {
          same(got, { k, ...top({ ...p }, F, C, k) }, `seed ${seed}, top (${name}), k=${k}`);
        }
        compared++;
      }
      // With every other statistic in the same pass: the same top, and theirs the JavaScript parts'.
      const edges = histogramEdges({ lowLog10: -8, highLog10: 8, binsPerDecade: 3 });
      const request: FeatureNeeds = { moments: true, lastFired: true, top: most, histogram: { key: 'h', edgeBits: new Uint32Array(new Float32Array(edges).buffer) } };
      const all = wasmStats(p, C, F, request);
      same(all.top, { k: most, ...topByFeature({ ...p }, F, C, most) }, `seed ${seed}, top beside the others`);
      same(all.moments, momentsOf({ ...p }, C, F), `seed ${seed}, moments beside a large top`);
      same(all.histogram, { key: 'h', ...histogramOf({ ...p }, C, F, edges.length + 1, float32Bins(edges)).shards[0] }, `seed ${seed}, histogram beside a large top`);
      same(all.lastFired, lastRows(p, C, F), `seed ${seed}, last fired beside a large top`);
    }
    expect(compared).toBeGreaterThan(60);
  });

  it('a feature that fires on every one of 3000 rows with one value: its best k are rows 0 .. k - 1, at every k', () => {
    const rows = 3000;
    const shard: FiredShard = { features: 2, components: 1, rows, pad: 0, cells: Array.from({ length: rows * 2 }, (_, i) => (i % 2 === 0 ? 0.5 : f32(1 + (i % 3)))) };
    const p = positivesOf(shard);
    for (const k of [5, 6, 64, 1000, 2999, 3000, 3001, 10_000]) {
      const got = wasmStats(p, 1, 2, { top: k }).top!;
      const kept = Math.min(k, rows);
      expect(Array.from(got.counts)).toEqual([kept, kept]);
      expect(Array.from(got.rows.subarray(0, kept)), `k=${k}`).toEqual(Array.from({ length: kept }, (_, i) => i));
      expect(got.values.subarray(0, kept).every((x) => x === 0.5), `k=${k}`).toBe(true);
      same(got, { k, ...topByFeature({ ...p }, 2, 1, k) }, `k=${k}`);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Through the kernels, with the parts' requests

/** Learned activations `[rows, (components,) features]`: about `density` fired, hostile values, negatives, zeros and -0. */
function learned(seed: number, shape: readonly number[], density: number, edges: readonly number[]): Float32Array {
  const r = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const out = new Float32Array(n);
  const special = [1, 1, 2, 1e-45, 1e-40, 3.4028234663852886e38, Infinity, ...edges.filter((e) => e > 0 && e < Infinity).flatMap((e) => [e, ...neighbours(e)])];
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < density * 0.7) out[i] = 10 ** (-20 + 40 * r());
    else if (u < density) out[i] = special[Math.floor(r() * special.length)] as number;
    else if (u < density + 0.1) out[i] = -r();
    else out[i] = u < density + 0.15 ? -0 : 0;
  }
  return out;
}

let pooled: WasmKernel;
let shared: WebAssembly.Memory;
beforeAll(() => {
  shared = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  pooled = createWasmKernel(shared);
});

/** `data` copied into the shared memory after `pad` floats, as a pool's arena holds a batch. */
function inShared(data: Float32Array, pad: number): Float32Array {
  const bytes = 4 * (data.length + pad) + 64;
  const at = shared.grow(Math.ceil(bytes / PAGE)) * PAGE;
  const view = new Float32Array(shared.buffer, at + 4 * pad, data.length);
  view.set(data);
  return view;
}

describe('the WebAssembly kernels give the per-feature parts the same bits as the JavaScript kernel', () => {
  const BINS: HistogramBins[] = [
    { lowLog10: -10, highLog10: 10, binsPerDecade: 4 },
    { lowLog10: -3, highLog10: 2, binsPerDecade: 7 },
    // 300 bins: more than two words of marks.
    { lowLog10: -25, highLog10: 25, binsPerDecade: 6 },
  ];
  const edgesOf = (bins: HistogramBins): number[] => Array.from(histogramEdges(bins));

  function partSets(F: number, C: number | undefined): [string, StatePart<unknown>[]][] {
    const moments = activationMomentsPart(F, C);
    const hist = activationHistogramPart(F, C, BINS[0] as HistogramBins);
    const hist2 = activationHistogramPart(F, C, BINS[1] as HistogramBins);
    const hist3 = activationHistogramPart(F, C, BINS[2] as HistogramBins);
    const last = lastFiredPart(F, C);
    const top = (k: number) => topActivationsPart(F, C, k);
    return [
      ['moments alone', [moments]],
      ['histogram alone', [hist]],
      ['histogram of 300 bins alone', [hist3]],
      ['last-fired alone', [last]],
      ['top k=3 alone', [top(3)]],
      ['top k=10 alone', [top(10)]],
      ['all, top k=10', [moments, hist, last, top(10)]],
      ['all, top k=1 and k=7 and k=4, two histograms', [top(1), moments, hist, top(7), last, hist2, top(4)]],
      // With the fired counts, the pass's counts are the grouping's.
      ['fired counts, top k=3', [firedCountPart(F, C), top(3)]],
      ['fired counts and all', [moments, firedCountPart(F, C), hist, last, top(10), hist2]],
    ];
  }

  const shapes: { rows: number; components: number | undefined; features: number; density: number }[] = [
    { rows: 50, components: undefined, features: 37, density: 0.3 },
    { rows: 33, components: 3, features: 17, density: 0.5 },
    { rows: 20, components: 2, features: 64, density: 0.02 },
    { rows: 9, components: undefined, features: 1000, density: 0.05 },
    { rows: 12, components: undefined, features: 5, density: 0 },
    { rows: 40, components: 1, features: 3, density: 1 },
    // More entries than a fresh kernel's first guess (4096): listed again with room.
    { rows: 60, components: undefined, features: 200, density: 0.9 },
  ];

  for (const s of shapes) {
    it(`rows ${s.rows}, components ${s.components ?? 'none'}, features ${s.features}, density ${s.density}: every part set, several row ranges`, () => {
      const shape = s.components === undefined ? [s.rows, s.features] : [s.rows, s.components, s.features];
      const edges = BINS.flatMap(edgesOf);
      const data = learned(s.rows * 31 + s.features, shape, s.density, edges);
      const plain: Batch = { learnedActivations: { data, shape } };
      const inMemory: Batch = { learnedActivations: { data: inShared(data, 3), shape } };
      const chunked = createChunkedWasmKernel({ chunkBytes: 4 * 3 * (s.components ?? 1) * s.features });
      const kernels: [string, FusedKernel, Batch][] = [
        ['pool kernel', pooled.fused, inMemory],
        ['chunked kernel', chunked, plain],
        ['chunked kernel, default chunks', createChunkedWasmKernel(), plain],
      ];
      const ranges = [
        { start: 0, end: s.rows },
        { start: 3, end: s.rows - 2 },
        { start: 5, end: 5 },
        { start: s.rows - 1, end: s.rows },
      ];
      let compared = 0;
      for (const [setName, parts] of partSets(s.features, s.components)) {
        for (const rows of ranges) {
          const want = computePartials(parts, plain, rows, jsFusedKernel);
          for (const [name, kernel, batch] of kernels) {
            // Asked for the per-feature statistics, the kernel gives them (not only the entries).
            const needs = shardNeeds(parts);
            expect(kernel(batch, rows, needs).features, `${name} gives features`).toBeDefined();
            const got = computePartials(parts, batch, rows, kernel);
            for (const [id, w] of want) {
              same(got.get(id), w, `${name}, ${setName}, rows [${rows.start}, ${rows.end}), ${id}`);
              compared++;
            }
          }
        }
      }
      expect(compared).toBeGreaterThan(50);
    });
  }
});

describe('the WebAssembly kernels give TopActivations at large k the JavaScript kernel\'s bits', () => {
  // Up to 1500 entries a feature; k up to past every count (the statistics stay in WebAssembly).
  const shapes: { rows: number; components: number | undefined; features: number; density: number }[] = [
    { rows: 1500, components: undefined, features: 6, density: 0.9 },
    { rows: 700, components: 2, features: 5, density: 0.7 },
  ];
  for (const s of shapes) {
    it(`rows ${s.rows}, components ${s.components ?? 'none'}, features ${s.features}, density ${s.density}: top k = 5 to 4000, alone and beside the others`, () => {
      const shape = s.components === undefined ? [s.rows, s.features] : [s.rows, s.components, s.features];
      const bins: HistogramBins = { lowLog10: -10, highLog10: 10, binsPerDecade: 4 };
      const data = learned(s.rows * 13 + s.features, shape, s.density, Array.from(histogramEdges(bins)));
      const F = s.features;
      const C = s.components;
      const plain: Batch = { learnedActivations: { data, shape } };
      const inMemory: Batch = { learnedActivations: { data: inShared(data, 1), shape } };
      const kernels: [string, FusedKernel, Batch][] = [
        ['pool kernel', pooled.fused, inMemory],
        ['chunked kernel', createChunkedWasmKernel(), plain],
      ];
      const top = (k: number) => topActivationsPart(F, C, k);
      const sets: StatePart<unknown>[][] = [
        [top(5)],
        [top(600)],
        [top(s.rows)],
        [top(4000)],
        [top(7), top(1000), top(s.rows - 1)],
        [activationMomentsPart(F, C), activationHistogramPart(F, C, bins), lastFiredPart(F, C), top(1499), firedCountPart(F, C)],
      ];
      let compared = 0;
      for (const parts of sets) {
        for (const rows of [{ start: 0, end: s.rows }, { start: 100, end: s.rows - 1 }]) {
          const want = computePartials(parts, plain, rows, jsFusedKernel);
          for (const [name, kernel, batch] of kernels) {
            expect(kernel(batch, rows, shardNeeds(parts)).features, `${name} gives features`).toBeDefined();
            const got = computePartials(parts, batch, rows, kernel);
            for (const [id, w] of want) {
              same(got.get(id), w, `${name}, rows [${rows.start}, ${rows.end}), ${id}`);
              compared++;
            }
          }
        }
      }
      expect(compared).toBe(4 * 12);
    });
  }
});

describe('a dense shard keeps the scratch within eight times its bytes (README), with the same bits', () => {
  // Every value (or nearly) fired: the statistics' scratch would be up to 88 bytes an entry (22
  // times the shard), kept by each worker; such a shard gives its entries to the JavaScript parts.
  const shapes: { rows: number; components: number | undefined; features: number; density: number }[] = [
    { rows: 1, components: undefined, features: 262147, density: 1 },
    { rows: 3, components: 2, features: 40001, density: 0.9 },
    { rows: 1024, components: undefined, features: 301, density: 1 },
    { rows: 257, components: 1, features: 999, density: 0.6 },
  ];
  for (const s of shapes) {
    it(`rows ${s.rows}, components ${s.components ?? 'none'}, features ${s.features}, density ${s.density}: every per-feature part`, () => {
      const shape = s.components === undefined ? [s.rows, s.features] : [s.rows, s.components, s.features];
      const bins: HistogramBins = { lowLog10: -10, highLog10: 10, binsPerDecade: 4 };
      const data = learned(s.rows * 7 + s.features, shape, s.density, Array.from(histogramEdges(bins)));
      const F = s.features;
      const C = s.components;
      const parts = [activationMomentsPart(F, C), activationHistogramPart(F, C, bins), lastFiredPart(F, C), topActivationsPart(F, C, 10), firedCountPart(F, C)];
      const plain: Batch = { learnedActivations: { data, shape } };
      // A kernel of its own over a memory of its own: what it grows is its scratch.
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
      const at = memory.grow(Math.ceil((4 * data.length + 64) / PAGE)) * PAGE;
      new Float32Array(memory.buffer, at, data.length).set(data);
      const inMemory: Batch = { learnedActivations: { data: new Float32Array(memory.buffer, at, data.length), shape } };
      const kernel = createWasmKernel(memory);
      const before = memory.buffer.byteLength;
      const rows = { start: 0, end: s.rows };
      const want = computePartials(parts, plain, rows, jsFusedKernel);
      for (const [name, fused, batch] of [
        ['pool kernel', kernel.fused, inMemory],
        ['chunked kernel', createChunkedWasmKernel(), plain],
      ] as const) {
        // Twice: the second shard reuses the room.
        for (let pass = 0; pass < 2; pass++) {
          const got = computePartials(parts, batch, rows, fused);
          for (const [id, w] of want) same(got.get(id), w, `${name}, pass ${pass}, ${id}`);
        }
      }
      const shardBytes = 4 * data.length;
      const grown = memory.buffer.byteLength - before;
      expect(grown, `scratch ${grown} bytes for a shard of ${shardBytes}`).toBeLessThanOrEqual(8 * shardBytes + 4 * 2 ** 20);
    });
  }
});

describe('shardNeeds: the union of the parts\' per-feature requests', () => {
  it('or-s the flags, takes the largest top, and asks for the entries for a second histogram', () => {
    const a = activationHistogramPart(4, undefined, { lowLog10: -2, highLog10: 2, binsPerDecade: 3 });
    const b = activationHistogramPart(4, undefined, { lowLog10: -2, highLog10: 3, binsPerDecade: 3 });
    const needs = shardNeeds([topActivationsPart(4, undefined, 3), activationMomentsPart(4, undefined), topActivationsPart(4, undefined, 9), a, topActivationsPart(4, undefined, 2)]);
    expect(needs.positives).toBeUndefined();
    expect(needs.features?.top).toBe(9);
    expect(needs.features?.moments).toBe(true);
    expect(needs.features?.lastFired).toBeUndefined();
    expect(needs.features?.histogram).toBe(a.needs?.features?.histogram);
    const two = shardNeeds([a, lastFiredPart(4, undefined), b, a]);
    expect(two.positives).toBe(true);
    expect(two.features?.histogram).toBe(a.needs?.features?.histogram);
    expect(two.features?.lastFired).toBe(true);
    expect(shardNeeds([a, a]).positives).toBeUndefined();
  });
});
