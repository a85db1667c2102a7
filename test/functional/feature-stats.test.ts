/**
 * The feature statistics of issue 13 (`FeatureFrequencyStats`, `FeatureActivationStats`,
 * `FeatureActivationHistogram`):
 *
 * - against the float64 references of test/reference/feature-stats.ts on seeded data of many
 *   shapes (rank 2 and 3, 1 to 3 components, odd sizes; ReLU-like values over twelve decades with
 *   values exactly on bin edges, zeros, -0, negatives and NaN), batch by batch and accumulated,
 *   through the functional definitions and the classes: counts exactly, other values within
 *   1e-12 relative (1e-10 for the standard deviation, whose two-pass and Chan forms round apart);
 * - bin edges: float32 values, decade edges exact, a value exactly on an edge in the bin above;
 *   quantiles within half a bin (log10) of the exact order statistic;
 * - batch-cut invariance: the same data cut into different batches gives the same counts (exactly)
 *   and moments (1e-12), where the per-batch averages other tools log change;
 * - the monoid laws (fast-check), row ranges, purity;
 * - options, batches and hostile states refused with messages naming metric, field and values,
 *   leaving the state as it was; encodeState/loadState round trips exact;
 * - in a collection the three share the fired-count part and ask the kernel once a shard.
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import {
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureFrequencyStats,
  InvalidBatchError,
  MetricCollection,
  NeuronActivityMetric,
  StateMergeError,
  Tensor,
  decodeState,
  encodeState,
  tensor,
} from '../../src/index.js';
import type { Batch, LearnedBatch, MetricDefinition, MetricState } from '../../src/functional/index.js';
import {
  featureActivationHistogram,
  featureActivationStats,
  featureFrequencyStats,
  histogramEdges,
  histogramQuantiles,
} from '../../src/functional/index.js';
import { float32Binner, slotOf } from '../../src/functional/parts/activation-histogram.js';
import { computePartials } from '../../src/functional/core.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { FusedKernel, ShardNeeds } from '../../src/kernels/types.js';
import {
  refEdges,
  refFeatureActivationStats,
  refFeatureFrequency,
  refHistogram,
  refQuantile,
  type RefBatch,
} from '../reference/feature-stats.js';
import { mulberry32 } from '../support/random.js';
import { bits, thrown } from '../support/compare.js';

// ---------------------------------------------------------------------------------------------
// Data

const DEFAULT_EDGES = refEdges(-4, 4, 10);

/** ReLU-like activations: mostly 0 (some -0), some negative or NaN, positives log-uniform over 1e-6 .. 1e6, some exactly on an edge. */
function activations(seed: number, n: number, density = 0.3): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u >= density) out[i] = r() < 0.05 ? -0 : 0;
    else if (u < density * 0.1) out[i] = -r() * 3;
    else if (u < density * 0.12) out[i] = NaN;
    else if (u < density * 0.3) out[i] = DEFAULT_EDGES[Math.floor(r() * DEFAULT_EDGES.length)] as number;
    else out[i] = 10 ** (-6 + 12 * r());
  }
  return out;
}

function shapeOf(rows: number, components: number | undefined, features: number): number[] {
  return components === undefined ? [rows, features] : [rows, components, features];
}

function stream(seed: number, sizes: readonly number[], components: number | undefined, features: number, density?: number): LearnedBatch[] {
  return sizes.map((rows, k) => {
    const shape = shapeOf(rows, components, features);
    return { learnedActivations: tensor(activations(seed * 100 + k, shape.reduce((a, b) => a * b, 1), density), shape) };
  });
}

const refOf = (batches: readonly Batch[]): RefBatch[] => batches.map((b) => b.learnedActivations as Tensor<'float32'>);

/** Tensor data as numbers per component (a 0-d or [C] tensor) or per component and feature. */
function perComponent(t: Tensor, components: number): number[] {
  expect(t.data.length).toBe(components);
  return Array.from(t.data as Float64Array);
}

function expectClose(actual: number, expected: number, rel: number, what: string): void {
  if (Number.isNaN(expected)) {
    expect(actual, what).toBeNaN();
    return;
  }
  const ok = actual === expected || Math.abs(actual - expected) <= rel * Math.abs(expected);
  expect(ok, `${what}: ${actual} vs ${expected}`).toBe(true);
}

function expectAllClose(actual: ArrayLike<number>, expected: readonly number[], rel: number, what: string): void {
  expect(actual.length, `${what} length`).toBe(expected.length);
  for (let i = 0; i < expected.length; i++) expectClose(actual[i] as number, expected[i] as number, rel, `${what}[${i}]`);
}

// ---------------------------------------------------------------------------------------------
// Against the references

interface Case {
  readonly seed: number;
  readonly components: number | undefined;
  readonly features: number;
  readonly sizes: readonly number[];
  readonly density?: number;
}

const CASES: readonly Case[] = [
  { seed: 1, components: undefined, features: 1, sizes: [1, 5, 3] },
  { seed: 2, components: undefined, features: 7, sizes: [13, 1, 40] },
  { seed: 3, components: 1, features: 5, sizes: [9, 9] },
  { seed: 4, components: 2, features: 3, sizes: [4, 17, 2] },
  { seed: 5, components: 3, features: 33, sizes: [65, 7] },
  { seed: 6, components: undefined, features: 64, sizes: [300, 1, 129], density: 0.02 },
  { seed: 7, components: 2, features: 16, sizes: [2000], density: 0.6 },
];

function refFrequencyRows(batches: readonly Batch[], c: Case) {
  return refFeatureFrequency(refOf(batches), c.components ?? 1, c.features);
}

function checkFrequency(r: ReturnType<ReturnType<typeof featureFrequencyStats>['compute']>, batches: readonly Batch[], c: Case, what: string) {
  const n = c.components ?? 1;
  const ref = refFrequencyRows(batches, c);
  const keys = Object.keys(ref[0] as object) as (keyof (typeof ref)[0])[];
  expect(Object.keys(r)).toEqual(keys);
  for (const key of keys) {
    const t = r[key] as Tensor;
    expect(t.shape, `${what} ${key} shape`).toEqual(c.components === undefined || n === 1 ? [] : [n]);
    const expected = ref.map((row) => row[key]);
    if (t.dtype === 'int64') expect(perComponent(t, n), `${what} ${key}`).toEqual(expected);
    else expectAllClose(perComponent(t, n), expected, 1e-12, `${what} ${key}`);
  }
}

function checkActivationStats(r: ReturnType<ReturnType<typeof featureActivationStats>['compute']>, batches: readonly Batch[], c: Case, what: string) {
  const ref = refFeatureActivationStats(refOf(batches), c.components ?? 1, c.features);
  const shape = c.components === undefined ? [c.features] : [c.components, c.features];
  for (const key of ['max', 'mean', 'std', 'meanOverAll'] as const) {
    expect(r[key].shape, `${what} ${key} shape`).toEqual(shape);
    expect(r[key].dtype).toBe('float64');
    const expected = ref[key].flat();
    if (key === 'max') expect(Array.from(r.max.data), `${what} max`).toEqual(expected);
    else expectAllClose(r[key].data, expected, key === 'std' ? 1e-10 : 1e-12, `${what} ${key}`);
  }
}

function checkHistogram(r: ReturnType<ReturnType<typeof featureActivationHistogram>['compute']>, batches: readonly Batch[], c: Case, edges: number[], what: string) {
  expect(Array.from(r.edges.data), `${what} edges`).toEqual(edges);
  const ref = refHistogram(refOf(batches), c.components ?? 1, c.features, edges);
  const shape = c.components === undefined ? [c.features, edges.length + 1] : [c.components, c.features, edges.length + 1];
  expect(r.counts.shape).toEqual(shape);
  expect(r.counts.dtype).toBe('int64');
  expect(Array.from(r.counts.data), `${what} counts`).toEqual(ref.flat(2));
}

describe('against the float64 references, batch by batch and accumulated', () => {
  for (const c of CASES) {
    const label = `${c.components === undefined ? 'rank 2' : `${c.components} component(s)`}, ${c.features} features, batches of ${c.sizes.join(', ')} rows`;
    const opts = { numLearnedFeatures: c.features, ...(c.components === undefined ? {} : { numComponents: c.components }) };
    const batches = stream(c.seed, c.sizes, c.components, c.features, c.density);

    it(`FeatureFrequencyStats: ${label}`, () => {
      const def = featureFrequencyStats(opts);
      const metric = new FeatureFrequencyStats(opts);
      let s = def.init();
      batches.forEach((b, k) => {
        checkFrequency(def.compute(def.update(def.init(), b)), [b], c, `batch ${k} (functional)`);
        checkFrequency(metric.forward(b), [b], c, `batch ${k} (class forward)`);
        s = def.update(s, b);
        checkFrequency(def.compute(s), batches.slice(0, k + 1), c, `first ${k + 1} batches (functional)`);
        checkFrequency(metric.compute(), batches.slice(0, k + 1), c, `first ${k + 1} batches (class)`);
      });
    });

    it(`FeatureActivationStats: ${label}`, () => {
      const def = featureActivationStats(opts);
      const metric = new FeatureActivationStats(opts);
      let s = def.init();
      batches.forEach((b, k) => {
        checkActivationStats(def.compute(def.update(def.init(), b)), [b], c, `batch ${k} (functional)`);
        checkActivationStats(metric.forward(b), [b], c, `batch ${k} (class forward)`);
        s = def.update(s, b);
        checkActivationStats(def.compute(s), batches.slice(0, k + 1), c, `first ${k + 1} batches (functional)`);
        checkActivationStats(metric.compute(), batches.slice(0, k + 1), c, `first ${k + 1} batches (class)`);
      });
    });

    for (const bins of [{}, { lowLog10: -2, highLog10: 3, binsPerDecade: 3 }, { lowLog10: -7, highLog10: 7, binsPerDecade: 1 }] as const) {
      const b = { lowLog10: -4, highLog10: 4, binsPerDecade: 10, ...bins };
      it(`FeatureActivationHistogram ${JSON.stringify(bins)}: ${label}`, () => {
        const edges = refEdges(b.lowLog10, b.highLog10, b.binsPerDecade);
        const def = featureActivationHistogram({ ...opts, ...bins });
        const metric = new FeatureActivationHistogram({ ...opts, ...bins });
        let s = def.init();
        batches.forEach((batch, k) => {
          checkHistogram(def.compute(def.update(def.init(), batch)), [batch], c, edges, `batch ${k} (functional)`);
          checkHistogram(metric.forward(batch), [batch], c, edges, `batch ${k} (class forward)`);
          s = def.update(s, batch);
          checkHistogram(def.compute(s), batches.slice(0, k + 1), c, edges, `first ${k + 1} batches (functional)`);
          checkHistogram(metric.compute(), batches.slice(0, k + 1), c, edges, `first ${k + 1} batches (class)`);
        });
        // Quantiles: within half a bin (log10) of the exact order statistic, a bound outside the range.
        const result = def.compute(s);
        const qs = [0, 0.1, 0.5, 0.9, 1];
        const got = histogramQuantiles(result, qs);
        expect(got.shape).toEqual([...result.counts.shape.slice(0, -1), qs.length]);
        qs.forEach((q, i) => {
          const exact = refQuantile(refOf(batches), c.components ?? 1, c.features, q).flat();
          exact.forEach((x, k) => {
            const value = got.data[k * qs.length + i] as number;
            const where = `q ${q} of feature ${k}: ${value} for ${x}`;
            if (Number.isNaN(x)) expect(value, where).toBeNaN();
            else if (x < (edges[0] as number)) expect(value, where).toBe(edges[0]);
            else if (x >= (edges[edges.length - 1] as number)) expect(value, where).toBe(edges[edges.length - 1]);
            else expect(Math.abs(Math.log10(value / x)), where).toBeLessThanOrEqual(1 / (2 * b.binsPerDecade) + 1e-7);
          });
        });
        expect(Array.from(metric.quantiles(qs).data)).toEqual(Array.from(got.data));
      });
    }
  }
});

describe('densities exactly on the thresholds (written out by hand)', () => {
  it('compares as SAELens and SAEBench do: < 1e-5, < 1e-6, > 0.01, > 0.1', () => {
    // 100,000 vectors; features fire 0, 1 (density 1e-5), 1,000 (0.01), 10,000 (0.1) and 10,001 times.
    const N = 100_000;
    const fires = [0, 1, 1000, 10_000, 10_001];
    const data = new Float32Array(N * fires.length);
    fires.forEach((k, f) => {
      for (let r = 0; r < k; r++) data[r * fires.length + f] = 1;
    });
    const r = new FeatureFrequencyStats({ numLearnedFeatures: 5 }).forward({ learnedActivations: tensor(data, [N, 5]) });
    expect(r.aliveFraction.item()).toBe(0.8);
    expect(r.deadCount.item()).toBe(1);
    expect(r.freqOver1Percent.item()).toBe(0.4);
    expect(r.freqOver10Percent.item()).toBe(0.2);
    expect(r.normalizedFreqOver1Percent.item()).toBe(20_001 / 21_002);
    expect(r.normalizedFreqOver10Percent.item()).toBe(10_001 / 21_002);
    expect(r.below1e5.item()).toBe(1);
    expect(r.below1e6.item()).toBe(1);
    const logs = [-10, Math.log10(1e-5 + 1e-10), Math.log10(0.01 + 1e-10), Math.log10(0.1 + 1e-10), Math.log10(0.10001 + 1e-10)];
    expect(r.meanLog10Density.item()).toBeCloseTo(logs.reduce((a, b) => a + b, 0) / 5, 12);
  });

  it('before any vector: densities are NaN, so are the fractions of firings', () => {
    const def = featureFrequencyStats({ numLearnedFeatures: 2 });
    const r = def.compute(def.init());
    expect(r.deadCount.item()).toBe(2);
    expect(r.normalizedFreqOver1Percent.item()).toBeNaN();
    expect(r.meanLog10Density.item()).toBeNaN();
  });
});

// ---------------------------------------------------------------------------------------------
// Bin edges and values on them

describe('bin edges', () => {
  const configs = [
    { lowLog10: -4, highLog10: 4, binsPerDecade: 10 },
    { lowLog10: -37, highLog10: 38, binsPerDecade: 7 },
    { lowLog10: 0, highLog10: 1, binsPerDecade: 1000 },
  ];
  for (const config of configs) {
    it(`are float32 values within float32 rounding of 10^x, increasing, decades exact: ${JSON.stringify(config)}`, () => {
      const edges = histogramEdges(config);
      const n = config.binsPerDecade;
      expect(edges.length).toBe((config.highLog10 - config.lowLog10) * n + 1);
      edges.forEach((e, j) => {
        expect(Math.fround(e), `edge ${j} is a float32 value`).toBe(e);
        const x = config.lowLog10 + j / n;
        expect(Math.abs(e / 10 ** x - 1), `edge ${j}`).toBeLessThanOrEqual(2 ** -24 + 1e-15);
        if (j > 0) expect(e).toBeGreaterThan(edges[j - 1] as number);
        if (j % n === 0) expect(e, `decade edge ${j}`).toBe(Math.fround(Number(`1e${x}`)));
      });
    });
  }

  it('puts a value exactly on an edge in the bin above, and the float32 just below it in the bin below', () => {
    const config = { lowLog10: -4, highLog10: 4, binsPerDecade: 10 };
    const edges = histogramEdges(config);
    const B = edges.length - 1;
    // One feature per edge: row 0 holds the edge, row 1 the float32 just below it.
    const features = edges.length;
    const data = new Float32Array(2 * features);
    edges.forEach((e, j) => {
      data[j] = e;
      const below = new Float32Array([e]);
      const word = new Uint32Array(below.buffer);
      word[0] = (word[0] as number) - 1;
      data[features + j] = below[0] as number;
      expect(data[features + j]).toBeLessThan(e);
    });
    const hist = new FeatureActivationHistogram({ numLearnedFeatures: features, ...config });
    const counts = hist.forward({ learnedActivations: tensor(data, [2, features]) }).counts.data;
    const slots = B + 2;
    edges.forEach((_, j) => {
      const expected = new Array<number>(slots).fill(0);
      expected[j + 1] = (expected[j + 1] as number) + 1; // on edge j: slot j + 1 ([edges[j], edges[j + 1]), or overflow for the last)
      expected[j] = (expected[j] as number) + 1; // just below edge j: slot j (underflow for the first)
      expect(Array.from(counts.subarray(j * slots, (j + 1) * slots)), `edge ${j}`).toEqual(expected);
    });
  });

  it('the float32 binner (a table by the top 16 bits) gives the slots of a binary search over the edges, for every 4099th positive float32 and each edge and its neighbours', () => {
    for (const config of [...configs, { lowLog10: -1, highLog10: 1, binsPerDecade: 1 }]) {
      const edges = histogramEdges(config);
      const fast = float32Binner(edges);
      const f = new Float32Array(1);
      const u = new Uint32Array(f.buffer);
      const wrong: string[] = [];
      const check = (bits: number) => {
        u[0] = bits;
        const want = slotOf(edges, f[0] as number);
        if (fast(bits) !== want && wrong.length < 3) wrong.push(`bits ${bits.toString(16)}: ${fast(bits)} vs ${want}`);
      };
      for (let bits = 1; bits <= 0x7f800000; bits += 4099) check(bits);
      check(0x7f800000);
      for (const e of edges) {
        f[0] = e;
        const bits = u[0] as number;
        for (const d of [-2, -1, 0, 1, 2]) check(bits + d);
      }
      expect(wrong, JSON.stringify(config)).toEqual([]);
    }
  });

  it('counts +Infinity in the overflow bin and the smallest subnormal in the underflow bin', () => {
    const hist = new FeatureActivationHistogram({ numLearnedFeatures: 2 });
    const r = hist.forward({ learnedActivations: tensor(new Float32Array([Infinity, 1.4e-45]), [1, 2]) });
    const slots = 80 + 2;
    expect(r.counts.data[slots - 1]).toBe(1);
    expect(r.counts.data[slots]).toBe(1);
    expect(r.counts.data.reduce((a, b) => a + b, 0)).toBe(2);
  });
});

// ---------------------------------------------------------------------------------------------
// Batch-cut invariance, next to the per-batch forms

describe('the same data cut into different batches', () => {
  const features = 24;
  const rows = 1200;
  const all = activations(77, rows * features, 0.05);
  const cut = (sizes: number[]): LearnedBatch[] => {
    const out: LearnedBatch[] = [];
    let r = 0;
    for (const k of sizes) {
      out.push({ learnedActivations: tensor(all.slice(r * features, (r + k) * features), [k, features]) });
      r += k;
    }
    expect(r).toBe(rows);
    return out;
  };
  const cuts = [[1200], [600, 600], [7, 300, 893], [100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100, 100], [1, 1, 1198]];
  const streams = cuts.map(cut);
  const opts = { numLearnedFeatures: features };

  function fold<S extends MetricState<object>, R>(def: MetricDefinition<S, R>, batches: Batch[]): R {
    return def.compute(batches.reduce((s, b) => def.update(s, b), def.init()));
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const spread = (xs: number[]) => Math.max(...xs) - Math.min(...xs);

  it('FeatureFrequencyStats: the same bits; the mean of per-batch aliveFraction and freqOver1Percent changes', () => {
    const def = featureFrequencyStats(opts);
    const results = streams.map((s) => bits(fold(def, s)));
    for (const r of results) expect(r).toEqual(results[0]);
    const perBatch = streams.map((s) => mean(s.map((b) => (def.compute(def.update(def.init(), b)).aliveFraction.item() as number))));
    expect(spread(perBatch)).toBeGreaterThan(0.1);
    const over = streams.map((s) => mean(s.map((b) => (def.compute(def.update(def.init(), b)).freqOver1Percent.item() as number))));
    expect(spread(over)).toBeGreaterThan(0.1);
  });

  it('FeatureActivationStats: max exactly, mean and std within 1e-12; the mean of per-batch means changes', () => {
    const def = featureActivationStats(opts);
    const results = streams.map((s) => fold(def, s));
    const first = results[0] as (typeof results)[0];
    for (const r of results) {
      expect(Array.from(r.max.data)).toEqual(Array.from(first.max.data));
      expectAllClose(r.mean.data, Array.from(first.mean.data), 1e-12, 'mean');
      expectAllClose(r.std.data, Array.from(first.std.data), 1e-12, 'std');
      expectAllClose(r.meanOverAll.data, Array.from(first.meanOverAll.data), 1e-12, 'meanOverAll');
    }
    // The per-batch form: each batch's mean over its fired activations, averaged over batches (feature 0).
    const perBatch = streams.map((s) =>
      mean(s.map((b) => def.compute(def.update(def.init(), b)).mean.data[0] as number).filter((x) => !Number.isNaN(x))),
    );
    expect(spread(perBatch) / Math.abs(first.mean.data[0] as number)).toBeGreaterThan(1e-3);
  });

  it('FeatureActivationHistogram: the same counts; the mean of per-batch medians changes', () => {
    const def = featureActivationHistogram(opts);
    const results = streams.map((s) => fold(def, s));
    for (const r of results) expect(bits(r)).toEqual(bits(results[0]));
    const medians = streams.map((s) =>
      mean(s.map((b) => histogramQuantiles(def.compute(def.update(def.init(), b)), [0.5]).data[0] as number).filter((x) => !Number.isNaN(x))),
    );
    expect(spread(medians) / (medians[0] as number)).toBeGreaterThan(1e-3);
  });
});

// ---------------------------------------------------------------------------------------------
// Monoid laws

const FEATURES = 3;
const COMPONENTS = 2;
const defs = {
  freq: featureFrequencyStats({ numLearnedFeatures: FEATURES, numComponents: COMPONENTS }),
  stats: featureActivationStats({ numLearnedFeatures: FEATURES, numComponents: COMPONENTS }),
  hist: featureActivationHistogram({ numLearnedFeatures: FEATURES, numComponents: COMPONENTS, lowLog10: -2, highLog10: 2, binsPerDecade: 2 }),
};
type AnyDef = MetricDefinition<MetricState<object>, unknown>;

const value = fc.oneof(
  fc.constant(0),
  fc.constant(0),
  fc.integer({ min: -8, max: -1 }).map((k) => k / 4),
  fc.double({ min: 1e-3, max: 1e3, noNaN: true }).map(Math.fround),
  fc.constantFrom(0.01, 0.1, 1, 10, 100).map(Math.fround),
);
const batchArb = fc.integer({ min: 1, max: 5 }).chain((rows) =>
  fc
    .array(value, { minLength: rows * COMPONENTS * FEATURES, maxLength: rows * COMPONENTS * FEATURES })
    .map((xs): Batch => ({ learnedActivations: tensor(new Float32Array(xs), [rows, COMPONENTS, FEATURES]) })),
);

/** States equal: every count and maximum exactly, means and M2 within 1e-12 relative. */
function expectStatesEqual(a: MetricState<object>, b: MetricState<object>, what: string): void {
  const pa = a.parts as Record<string, Record<string, Float64Array | number>>;
  const pb = b.parts as Record<string, Record<string, Float64Array | number>>;
  expect(Object.keys(pa)).toEqual(Object.keys(pb));
  for (const part of Object.keys(pa)) {
    for (const field of Object.keys(pa[part] as object)) {
      const x = (pa[part] as Record<string, Float64Array | number>)[field];
      const y = (pb[part] as Record<string, Float64Array | number>)[field];
      const where = `${what}: ${part}.${field}`;
      if (field === 'mean' || field === 'm2') expectAllClose(x as Float64Array, Array.from(y as Float64Array), 1e-12, where);
      else if (typeof x === 'number') expect(x, where).toBe(y);
      else expect(Array.from(x as Float64Array), where).toEqual(Array.from(y as Float64Array));
    }
  }
}

describe('monoid laws (fast-check)', () => {
  for (const [name, d] of Object.entries(defs)) {
    const def = d as unknown as AnyDef;
    const stateArb = fc.array(batchArb, { maxLength: 3 }).map((bs) => bs.reduce((s, b) => def.update(s, b), def.init()));
    it(`${name}: identity, associativity, commutativity, homomorphism, row ranges, purity`, () => {
      fc.assert(
        fc.property(stateArb, stateArb, stateArb, batchArb, batchArb, (a, b, c, x, y) => {
          expectStatesEqual(def.merge(def.init(), a), a, 'left identity');
          expectStatesEqual(def.merge(a, def.init()), a, 'right identity');
          expectStatesEqual(def.merge(def.merge(a, b), c), def.merge(a, def.merge(b, c)), 'associativity');
          expectStatesEqual(def.merge(a, b), def.merge(b, a), 'commutativity');
          const tx = x.learnedActivations as Tensor<'float32'>;
          const ty = y.learnedActivations as Tensor<'float32'>;
          const xy = { learnedActivations: tensor(new Float32Array([...tx.data, ...ty.data]), [(tx.shape[0] as number) + (ty.shape[0] as number), COMPONENTS, FEATURES]) };
          expectStatesEqual(def.update(a, xy), def.merge(def.update(a, x), def.update(def.init(), y)), 'homomorphism');
          const n = tx.shape[0] as number;
          const k = Math.max(1, n >> 1);
          if (k < n) {
            expectStatesEqual(def.merge(def.update(def.init(), x, { start: 0, end: k }), def.update(def.init(), x, { start: k, end: n })), def.update(def.init(), x), 'row ranges');
          }
          // Purity: nothing an argument holds changes.
          const before = encodeState(a);
          const input = Buffer.from(tx.data.buffer).toString('hex');
          def.compute(def.update(a, x));
          def.merge(a, b);
          expect(encodeState(a)).toBe(before);
          expect(Buffer.from(tx.data.buffer).toString('hex')).toBe(input);
        }),
        { numRuns: 60, seed: 13 },
      );
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Options and batches

describe('options', () => {
  const cases: [string, () => unknown, string, ErrorConstructor][] = [
    ['FeatureFrequencyStats without options', () => new FeatureFrequencyStats(undefined as never), 'FeatureFrequencyStats: options.numLearnedFeatures must be a positive integer, got undefined', TypeError],
    ['FeatureActivationStats numLearnedFeatures 0', () => new FeatureActivationStats({ numLearnedFeatures: 0 }), 'FeatureActivationStats: options.numLearnedFeatures must be a positive integer, got 0', RangeError],
    ['FeatureActivationStats numComponents "2"', () => new FeatureActivationStats({ numLearnedFeatures: 2, numComponents: '2' as never }), 'FeatureActivationStats: options.numComponents must be a positive integer, got "2"', TypeError],
    ['FeatureFrequencyStats unknown option', () => new FeatureFrequencyStats({ numLearnedFeatures: 2, binsPerDecade: 3 } as never), 'FeatureFrequencyStats: unknown option binsPerDecade (known options: numLearnedFeatures, numComponents)', TypeError],
    ['FeatureActivationHistogram lowLog10 0.5', () => new FeatureActivationHistogram({ numLearnedFeatures: 2, lowLog10: 0.5 }), 'FeatureActivationHistogram: options.lowLog10 must be an integer in [-37, 38], got 0.5', RangeError],
    ['FeatureActivationHistogram highLog10 39', () => new FeatureActivationHistogram({ numLearnedFeatures: 2, highLog10: 39 }), 'FeatureActivationHistogram: options.highLog10 must be an integer in [-37, 38], got 39', RangeError],
    ['FeatureActivationHistogram binsPerDecade "10"', () => new FeatureActivationHistogram({ numLearnedFeatures: 2, binsPerDecade: '10' as never }), 'FeatureActivationHistogram: options.binsPerDecade must be an integer in [1, 1000], got "10"', TypeError],
    ['FeatureActivationHistogram binsPerDecade 0', () => new FeatureActivationHistogram({ numLearnedFeatures: 2, binsPerDecade: 0 }), 'FeatureActivationHistogram: options.binsPerDecade must be an integer in [1, 1000], got 0', RangeError],
    ['FeatureActivationHistogram high <= low', () => new FeatureActivationHistogram({ numLearnedFeatures: 2, lowLog10: 3, highLog10: 3 }), 'FeatureActivationHistogram: options.highLog10 must be above options.lowLog10 (3), got 3', RangeError],
    [
      'FeatureActivationHistogram too many counts',
      () => new FeatureActivationHistogram({ numLearnedFeatures: 2 ** 20, binsPerDecade: 100 }),
      'FeatureActivationHistogram: 1 component(s) x 1048576 features x 802 slots is 840957952 counts, more than the limit of 268435456; use fewer bins (binsPerDecade, lowLog10, highLog10)',
      RangeError,
    ],
  ];
  for (const [name, make, message, type] of cases) {
    it(name, () => {
      const error = thrown(make);
      expect(error).toBeInstanceOf(type);
      expect(error.message).toBe(message);
    });
  }

  it('histogramQuantiles refuses a quantile outside [0, 1]', () => {
    const hist = new FeatureActivationHistogram({ numLearnedFeatures: 1 });
    hist.update({ learnedActivations: tensor([[1]]) });
    expect(() => hist.quantiles([1.5])).toThrow('histogramQuantiles: each quantile must be a number in [0, 1], got 1.5');
    expect(() => hist.quantiles([])).toThrow('histogramQuantiles: qs must be a non-empty array of numbers in [0, 1]');
  });
});

describe('batches', () => {
  const metrics = () => [
    new FeatureFrequencyStats({ numLearnedFeatures: 3 }),
    new FeatureActivationStats({ numLearnedFeatures: 3 }),
    new FeatureActivationHistogram({ numLearnedFeatures: 3 }),
  ];
  it('a batch of the wrong feature count or component axis is refused, naming the metric, and the state is as it was', () => {
    for (const m of metrics()) {
      m.update({ learnedActivations: tensor([[1, 2, 0]]) });
      const before = m.encodeState();
      const name = m.definition.metric;
      let error = thrown(() => m.update({ learnedActivations: tensor([[1, 2, 0, 4]]) }));
      expect(error).toBeInstanceOf(InvalidBatchError);
      expect(error.message).toBe(`${name}: learnedActivations must have 3 features on its last axis (numLearnedFeatures), got shape [1, 4]`);
      error = thrown(() => m.update({ learnedActivations: tensor([[[1, 2, 0]]]) }));
      expect(error.message).toBe(
        `${name}: learnedActivations has a component axis but numComponents is not set; pass numComponents: 1 or a [batch, feature] tensor, got shape [1, 1, 3]`,
      );
      error = thrown(() => m.update({ sourceActivations: tensor([[1, 2, 0]]) } as never));
      expect(error.message).toMatch(new RegExp(`^${name}: the batch must have a learnedActivations field`));
      expect(m.encodeState()).toBe(before);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// States from elsewhere

describe('hostile states', () => {
  const batch = { learnedActivations: tensor([[1, 0, 2], [3, 0, 0.5], [0, 0, 4]]) };
  type Parts = Record<string, Record<string, Float64Array | number>>;
  function tampered(metric: { state(): MetricState<object> }, change: (parts: Parts) => void): MetricState<object> {
    const s = decodeState(encodeState(metric.state()));
    change(s.parts as Parts);
    return s;
  }
  const f64 = (parts: Parts, part: string, field: string) => (parts[part] as Record<string, Float64Array>)[field] as Float64Array;

  const cases: [string, () => FeatureFrequencyStats | FeatureActivationStats | FeatureActivationHistogram, (p: Parts) => void, string][] = [
    ['fired count above the vectors', () => new FeatureFrequencyStats({ numLearnedFeatures: 3 }), (p) => (f64(p, 'firedCount', 'fired')[0] = 4), 'state.parts.firedCount.fired cannot exceed vectors (3), got 4 at index 0'],
    ['moments count differing from the fired count', () => new FeatureActivationStats({ numLearnedFeatures: 3 }), (p) => {
      f64(p, 'moments', 'count')[2] = 2;
    }, 'state.parts moments.count must equal firedCount.fired (both count the fired activations), got 2 and 3 at index 2'],
    ['moments count above the vectors (both parts agreeing)', () => new FeatureActivationStats({ numLearnedFeatures: 3 }), (p) => {
      f64(p, 'moments', 'count')[0] = 9;
      f64(p, 'firedCount', 'fired')[0] = 9;
    }, 'state.parts.firedCount.fired cannot exceed vectors (3), got 9 at index 0'],
    ['a mean above the maximum', () => new FeatureActivationStats({ numLearnedFeatures: 3 }), (p) => (f64(p, 'moments', 'mean')[0] = 5), 'state.parts.moments.mean must lie in (0, max] (a mean of values in (0, max]), got mean 5 with max 3 at index 0'],
    ['a negative M2', () => new FeatureActivationStats({ numLearnedFeatures: 3 }), (p) => (f64(p, 'moments', 'm2')[0] = -1), 'state.parts.moments.m2 must lie in [0, count * mean * (max - mean)] (the spread of 2 values in (0, 3] with mean 2), got -1 at index 0'],
    ['an M2 no values in (0, max] can have', () => new FeatureActivationStats({ numLearnedFeatures: 3 }), (p) => (f64(p, 'moments', 'm2')[0] = 4.6), 'state.parts.moments.m2 must lie in [0, count * mean * (max - mean)] (the spread of 2 values in (0, 3] with mean 2), got 4.6 at index 0'],
    ['a finite mean or M2 with an infinite maximum', () => new FeatureActivationStats({ numLearnedFeatures: 3 }), (p) => {
      f64(p, 'moments', 'max')[0] = Infinity;
      f64(p, 'moments', 'mean')[0] = -Infinity;
    }, 'state.parts.moments.mean must be Infinity and m2 NaN where max is Infinity (a fired +Infinity makes both), got mean -Infinity, m2 2 at index 0'],
    ['a non-positive maximum where something fired', () => new FeatureActivationStats({ numLearnedFeatures: 3 }), (p) => (f64(p, 'moments', 'max')[2] = 0), 'state.parts.moments.max must be positive where count is positive (fired activations are > 0), got 0 at index 2'],
    ['moments where nothing fired', () => new FeatureActivationStats({ numLearnedFeatures: 3 }), (p) => (f64(p, 'moments', 'mean')[1] = 1), 'state.parts.moments.count is 0 at index 1 (nothing fired), so mean, m2 and max must be 0 there, got mean 1, m2 0, max 0'],
    ['a spread for one value', () => new FeatureActivationStats({ numLearnedFeatures: 1 }), (p) => (f64(p, 'moments', 'm2')[0] = 1e-30), 'state.parts.moments.count is 1 at index 0, so m2 must be 0 and mean equal max, got m2 1e-30, mean 3, max 3'],
    ['a fractional moments count', () => new FeatureActivationStats({ numLearnedFeatures: 3 }), (p) => (f64(p, 'moments', 'count')[0] = 1.5), 'state.parts.moments.count must hold exact non-negative integer counts (below 2^53), got 1.5 at index 0'],
    ['histogram totals disagreeing with the fired counts', () => new FeatureActivationHistogram({ numLearnedFeatures: 3 }), (p) => (f64(p, 'histogram', 'counts')[5] = 1), 'state.parts histogram.counts of feature index 0 must add up to its fired count firedCount.fired[0] (2), got 3'],
    ['a negative histogram count', () => new FeatureActivationHistogram({ numLearnedFeatures: 3 }), (p) => (f64(p, 'histogram', 'counts')[0] = -1), 'state.parts.histogram.counts must hold exact non-negative integer counts (below 2^53), got -1 at index 0'],
    ['histogram counts of the wrong length', () => new FeatureActivationHistogram({ numLearnedFeatures: 3 }), (p) => ((p.histogram as Record<string, unknown>).counts = new Float64Array(5)), 'state.parts.histogram.counts must have 246 elements, got 5'],
  ];
  for (const [name, make, change, message] of cases) {
    it(`refuses ${name} (loadState and mergeState), leaving the state as it was`, () => {
      const m = make();
      m.update(name === 'a spread for one value' ? { learnedActivations: tensor([[3]]) } : batch);
      const bad = tampered(m, change);
      const before = m.encodeState();
      for (const apply of [() => m.loadState(bad as never), () => m.mergeState(bad as never), () => m.loadState(encodeState(bad))]) {
        const error = thrown(apply);
        expect(error).toBeInstanceOf(StateMergeError);
        // mergeState names the state it refuses 'the incoming state'.
        expect(error.message.replace(': the incoming state', ': state')).toBe(`${m.definition.metric}: ${message}`);
        expect(m.encodeState()).toBe(before);
      }
    });
  }

  it('accepts the state of an infinite activation (max and mean Infinity, std NaN) and of float32 values near the top of the range', () => {
    const m = new FeatureActivationStats({ numLearnedFeatures: 2 });
    m.update({ learnedActivations: tensor(new Float32Array([Infinity, 1, 2, 3e38, 3e38, 3e38]), [3, 2]) });
    const r = m.compute();
    expect(Array.from(r.max.data)).toEqual([Infinity, Math.fround(3e38)]);
    expect(r.mean.data[0]).toBe(Infinity);
    expect(r.std.data[0]).toBeNaN();
    expectClose(r.std.data[1] as number, Math.sqrt(2) * 1e38 * (Math.fround(3e38) / 3e38), 1e-12, 'std of 1, 3e38, 3e38');
    const copy = new FeatureActivationStats({ numLearnedFeatures: 2 });
    copy.loadState(m.encodeState());
    expect(bits(copy.compute())).toEqual(bits(r));
  });

  it('encodeState / loadState round trips are exact', () => {
    for (const make of [
      () => new FeatureFrequencyStats({ numLearnedFeatures: 5, numComponents: 2 }),
      () => new FeatureActivationStats({ numLearnedFeatures: 5, numComponents: 2 }),
      () => new FeatureActivationHistogram({ numLearnedFeatures: 5, numComponents: 2, binsPerDecade: 3 }),
    ]) {
      const a = make();
      for (const b of stream(9, [4, 11], 2, 5)) a.update(b);
      const b = make();
      b.loadState(a.encodeState());
      expect(b.encodeState()).toBe(a.encodeState());
      expect(bits(b.compute())).toEqual(bits(a.compute()));
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Shared pass

describe('in a collection', () => {
  it('the three and NeuronActivityMetric share the fired counts and ask the kernel once a shard, for fired and the per-feature statistics', () => {
    const calls: ShardNeeds[] = [];
    const spy: FusedKernel = (b, rows, needs) => {
      calls.push(needs);
      return jsFusedKernel(b, rows, needs);
    };
    const opts = { numLearnedFeatures: 4 };
    const collection = new MetricCollection({
      freq: new FeatureFrequencyStats(opts),
      stats: new FeatureActivationStats(opts),
      hist: new FeatureActivationHistogram(opts),
      dead: new NeuronActivityMetric(opts),
    });
    const hist = collection.metrics.hist;
    const parts = Object.values(collection.metrics).flatMap((m) => Object.values(m.definition.parts));
    expect(new Set(parts.map((p) => p.id)).size).toBe(3);
    const batch = stream(3, [6], undefined, 4)[0] as LearnedBatch;
    computePartials(parts, batch, { start: 0, end: 6 }, spy);
    const histogram = (hist.definition.parts as Record<string, { needs?: ShardNeeds }>)['histogram']?.needs?.features?.histogram;
    expect(histogram?.key).toMatch(/binsPerDecade/);
    expect(calls).toEqual([{ fired: true, features: { moments: true, histogram } }]);
  });
});
