/**
 * Attack on the numbers of the SAE evaluation metrics: hostile values (+Infinity among a
 * feature's fired activations, quantiles whose float64 product passes an integer, a norm within
 * an ulp of L2Ratio's threshold) cut into batches and shards in seeded random ways, through the
 * class, in-thread operators (WebAssembly and JavaScript kernels) and pools, against the float64
 * references. These cases failed before their fixes, but two guards: quantile ranks at counts
 * near 2^53 (against a shortcut that lost ranks there) and the seeded hostile states of the
 * reconstruction metrics (what their state checks accept must compute, round-trip and merge).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom, toArray } from 'rxjs';
import {
  accumulateMetric,
  CosineSimilarity,
  createMetricPool,
  ExplainedVariance,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FractionOfVarianceUnexplained,
  L2Ratio,
  MetricCollection,
  NormalizedMse,
  reduceMetric,
  RelativeReconstructionBias,
  StateMergeError,
  tensor,
} from '../../src/index.js';
import type { LearnedBatch, MetricPool } from '../../src/index.js';
import { histogramQuantiles } from '../../src/functional/index.js';
import { float64, int64 } from '../../src/tensor.js';
import { decimalRank, refEdges, refFeatureActivationStats, refQuantile } from '../reference/feature-stats.js';
import { bits, difference, viewElementsDifference } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';
import { l2RatioRef } from '../reference/reconstruction.js';

/** `rows x features` values: about a third fired, some of them +Infinity; cut at random into 1 to 4 batches. */
function cutStream(seed: number, rows: number, features: number): { data: Float32Array; cuts: LearnedBatch[][] } {
  const r = mulberry32(seed);
  const data = Float32Array.from({ length: rows * features }, () => {
    const u = r();
    return u < 0.1 ? Infinity : u < 0.35 ? 10 ** (4 * r() - 2) : u < 0.45 ? -1 : 0;
  });
  const cut = (at: number[]): LearnedBatch[] => {
    const ends = [...at, rows];
    return ends.map((end, i) => {
      const start = i === 0 ? 0 : (ends[i - 1] as number);
      return { learnedActivations: tensor(data.slice(start * features, end * features), [end - start, features]) };
    });
  };
  const random = Array.from({ length: 1 + Math.floor(r() * 3) }, () => 1 + Math.floor(r() * (rows - 1)));
  const points = [...new Set(random)].sort((a, b) => a - b);
  return { data, cuts: [cut([]), cut(points), cut(Array.from({ length: rows - 1 }, (_, i) => i + 1))] };
}

describe('FeatureActivationStats: a feature that fired +Infinity', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: 3, backend: 'wasm' });
  });
  afterAll(async () => {
    await pool.close();
  });

  it('has mean and meanOverAll +Infinity, as the reference, whatever the batch cut, shard size and path', async () => {
    const features = 5;
    for (let seed = 1; seed <= 6; seed++) {
      const rows = 7 + seed;
      const { data, cuts } = cutStream(seed, rows, features);
      const ref = refFeatureActivationStats([{ data, shape: [rows, features] }], 1, features);
      const make = () => new FeatureActivationStats({ numLearnedFeatures: features });
      const results: unknown[] = [];
      for (const batches of cuts) {
        const m = make();
        for (const b of batches) m.update(b);
        results.push(m.compute());
        for (const options of [{ shardRows: 1 }, { shardRows: 2, backend: 'js' as const }, { pool }]) {
          results.push(await lastValueFrom(from(batches).pipe(reduceMetric(make(), options))));
        }
      }
      const first = results[0] as { mean: { data: Float64Array }; meanOverAll: { data: Float64Array } };
      for (let f = 0; f < features; f++) {
        const mean = ref.mean[0]?.[f] as number;
        const overAll = ref.meanOverAll[0]?.[f] as number;
        if (mean === Infinity) {
          expect(first.mean.data[f], `seed ${seed} feature ${f}: mean`).toBe(Infinity);
          expect(first.meanOverAll.data[f], `seed ${seed} feature ${f}: meanOverAll`).toBe(Infinity);
        } else {
          expect(Math.abs((first.mean.data[f] as number) - mean), `seed ${seed} feature ${f}: mean`).toBeLessThanOrEqual(1e-12 * Math.abs(mean));
          expect(Math.abs((first.meanOverAll.data[f] as number) - overAll)).toBeLessThanOrEqual(1e-12 * Math.abs(overAll));
        }
      }
      // Every feature fired +Infinity in some seeds' streams: the case is exercised.
      expect(ref.mean[0]?.some((m) => m === Infinity), `seed ${seed}`).toBe(true);
      // The infinite means (and max, std) are the same bits through every cut and path.
      const infinite = (r: unknown) => {
        const x = r as { mean: { data: Float64Array }; meanOverAll: { data: Float64Array }; max: unknown; std: { data: Float64Array } };
        const keep = (a: Float64Array) => Array.from(a, (v, f) => (ref.mean[0]?.[f] === Infinity ? v : 0));
        return bits({ max: x.max, mean: keep(x.mean.data), meanOverAll: keep(x.meanOverAll.data), std: keep(x.std.data) });
      };
      for (const r of results) expect(infinite(r), `seed ${seed}`).toEqual(infinite(first));
    }
  }, 30_000);
});

describe('FeatureActivationHistogram.quantiles: the rank of a decimal quantile', () => {
  it('is ceil(q n) for q as written (0.07 of 100 values is the 7th, not the 8th, though 0.07 * 100 is 7.000000000000001 in float64)', () => {
    expect(0.07 * 100).toBeGreaterThan(7);
    const r = mulberry32(13);
    // Quantiles whose float64 product with some n passes an integer (0.07, 0.14, 0.28, 0.57, ...) among others.
    const qs = [0, 0.01, 0.07, 0.14, 0.28, 0.29, 0.55, 0.56, 0.57, 0.58, 0.9, 0.99, 1];
    const bins = { lowLog10: 0, highLog10: 4, binsPerDecade: 200 };
    const edges = refEdges(bins.lowLog10, bins.highLog10, bins.binsPerDecade);
    let products = 0;
    for (const rows of [25, 50, 100, 200, 300, 700]) {
      // One feature of distinct values 1.5, 2.5, ..., in random order: neighbours in order are bins apart.
      const values = Array.from({ length: rows }, (_, i) => i + 1.5);
      for (let i = rows - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1));
        [values[i], values[j]] = [values[j] as number, values[i] as number];
      }
      const batch = { data: Float32Array.from(values), shape: [rows, 1] };
      const hist = new FeatureActivationHistogram({ numLearnedFeatures: 1, ...bins });
      hist.update({ learnedActivations: tensor(batch.data, batch.shape) });
      const got = hist.quantiles(qs).data;
      qs.forEach((q, i) => {
        if (Math.ceil(q * rows) !== decimalRank(q, rows)) products++;
        const exact = refQuantile([batch], 1, 1, q)[0]?.[0] as number;
        const value = got[i] as number;
        expect(exact, `q ${q} of ${rows}: the reference's ${decimalRank(q, rows)}th smallest`).toBe(decimalRank(q, rows) + 0.5);
        expect(exact).toBeLessThan(edges[edges.length - 1] as number);
        expect(Math.abs(Math.log10(value / exact)), `q ${q} of ${rows}: ${value} for ${exact}`).toBeLessThanOrEqual(1 / (2 * bins.binsPerDecade) + 1e-7);
      });
    }
    // Cases where float64's ceil(q * n) passes the rank are among them.
    expect(products).toBeGreaterThan(3);
  });

  it('is exact for counts near 2^53: q = 1 is the largest value, q = 0.5 of 2^51 + 2 the (2^50 + 1)-th', () => {
    const edges = float64(Float64Array.of(1, 10, 100), [3]);
    // Slots: underflow, [1, 10), [10, 100), overflow.
    const at = (counts: number[], q: number): number => histogramQuantiles({ edges, counts: int64(Float64Array.from(counts), [1, 4]) }, [q]).data[0] as number;
    expect(at([0, 2 ** 52 - 1, 1, 0], 1)).toBe(Math.sqrt(1000));
    expect(at([0, 2 ** 50, 2 ** 50 + 2, 0], 0.5)).toBe(Math.sqrt(1000));
    expect(at([0, 2 ** 50 + 1, 2 ** 50 + 1, 0], 0.5)).toBe(Math.sqrt(10));
    expect(at([0, 2 ** 53 - 2, 1, 0], 1)).toBe(Math.sqrt(1000));
  });

  it('refuses counts that no state holds (fractions, negatives, past 2^53 - 1 a feature) with a RangeError, and returns', () => {
    const edges = float64(Float64Array.of(1, 10, 100), [3]);
    for (const [counts, message] of [
      [[0, 1e300, 0, 0], 'histogramQuantiles: counts must be non-negative integers below 2^53, got 1e+300 at index 1'],
      [[0, 2, 0.5, 0], 'histogramQuantiles: counts must be non-negative integers below 2^53, got 0.5 at index 2'],
      [[0, 2, 1, 0, -1, 0, 0, 0], 'histogramQuantiles: counts must be non-negative integers below 2^53, got -1 at index 4'],
      [[0, 0, Infinity, 0], 'histogramQuantiles: counts must be non-negative integers below 2^53, got Infinity at index 2'],
      [[0, 2 ** 52, 2 ** 52, 0], 'histogramQuantiles: the counts of feature index 0 add up to 9007199254740992, past 2^53 - 1'],
    ] as const) {
      const result = { edges, counts: int64(Float64Array.from(counts), [counts.length / 4, 4]) };
      expect(() => histogramQuantiles(result, [0.5]), message).toThrow(new RangeError(message));
    }
  }, 10_000);
});

describe('reconstruction metrics: hostile states (real states with a few numbers replaced)', () => {
  type Recon = {
    update(b: unknown): void;
    compute(): { data: Float64Array };
    state(): { parts: Record<string, Record<string, unknown>> };
    loadState(s: unknown): void;
    encodeState(): string;
    mergeState(o: unknown): void;
  };
  const D = 3;
  const MAKERS: Record<string, [() => Recon, number]> = {
    ExplainedVariance: [() => new ExplainedVariance({ numFeatures: D }) as unknown as Recon, 1],
    FractionOfVarianceUnexplained: [() => new FractionOfVarianceUnexplained({ numFeatures: D, numComponents: 2 }) as unknown as Recon, 2],
    CosineSimilarity: [() => new CosineSimilarity() as unknown as Recon, 1],
    L2Ratio: [() => new L2Ratio({ numComponents: 2 }) as unknown as Recon, 2],
    RelativeReconstructionBias: [() => new RelativeReconstructionBias() as unknown as Recon, 1],
    NormalizedMse: [() => new NormalizedMse({ numComponents: 2 }) as unknown as Recon, 2],
  };
  const HOSTILE = [NaN, Infinity, -Infinity, -0, 0, 5e-324, 1, 2, 3, 0.5, -0.5, 1e-300, 1e300, 2 ** 53 - 1, 2 ** 53, -1, 7, -7];

  for (const [name, [make, components]] of Object.entries(MAKERS)) {
    it(`${name}: refused states leave the metric as it was; accepted ones compute, round-trip and merge into accepted states`, () => {
      const r = mulberry32(0x7ec0 + name.length);
      const real = (): Recon => {
        const m = make();
        const rows = 1 + Math.floor(r() * 4);
        const shape = components === 1 ? [rows, D] : [rows, components, D];
        const n = rows * components * D;
        // Quarter steps and zeros: zero vectors, exact reconstructions and one-vector states are common.
        const v = () => (r() < 0.3 ? 0 : Math.floor(r() * 16 - 8) / 4);
        m.update({ sourceActivations: tensor(Float32Array.from({ length: n }, v), shape), decodedActivations: tensor(Float32Array.from({ length: n }, v), shape) });
        return m;
      };
      const reloads = (m: Recon, what: string): void => {
        const text = m.encodeState();
        const back = make();
        back.loadState(text);
        expect(back.encodeState(), what).toBe(text);
        expect(() => back.compute(), what).not.toThrow();
      };
      const accepted: Recon[] = [];
      let refused = 0;
      for (let t = 0; t < 1200; t++) {
        const s = real().state();
        const fields: [Record<string, unknown>, string][] = [];
        for (const part of Object.values(s.parts)) for (const key of Object.keys(part)) fields.push([part, key]);
        for (let e = 1 + Math.floor(r() * 3); e > 0; e--) {
          const [part, key] = fields[Math.floor(r() * fields.length)] as [Record<string, unknown>, string];
          const x = r() < 0.5 ? (HOSTILE[Math.floor(r() * HOSTILE.length)] as number) : Math.floor(r() * 16) / 4;
          const value = part[key];
          if (typeof value === 'number') part[key] = x;
          else if (value instanceof Float64Array && value.length > 0) value[Math.floor(r() * value.length)] = x;
        }
        const m = real();
        const before = m.encodeState();
        try {
          m.loadState(s);
        } catch (error) {
          refused++;
          expect(error, `state ${t}`).toBeInstanceOf(StateMergeError);
          expect((error as Error).message, `state ${t}`).toMatch(new RegExp(`^${name}: `));
          expect(m.encodeState(), `state ${t}: a refused state leaves the metric as it was`).toBe(before);
          continue;
        }
        reloads(m, `accepted state ${t}`);
        accepted.push(m);
      }
      expect(refused).toBeGreaterThan(100);
      expect(accepted.length).toBeGreaterThan(100);
      for (let t = 0; t < 600; t++) {
        const a = accepted[Math.floor(r() * accepted.length)] as Recon;
        const b = r() < 0.2 ? real() : (accepted[Math.floor(r() * accepted.length)] as Recon);
        const m = make();
        m.loadState(a.encodeState());
        try {
          m.mergeState(b.encodeState());
        } catch (error) {
          // Only the 2^53 limit on counts may refuse a merge of accepted states.
          expect(String(error), `merge ${t}`).toMatch(/2\^53/);
          continue;
        }
        reloads(m, `merge ${t}: ${a.encodeState()} + ${b.encodeState()}`);
      }
    });
  }
});

describe('per-vector norms: the JavaScript kernel adds them as the WebAssembly pass does', () => {
  // ‖x‖ within an ulp of L2Ratio's 1e-4: summed feature by feature below it, by the pass's four
  // lanes at or above it (found by a search over float32 vectors near the threshold).
  const x = Float32Array.from([1.8019842173089273e-5, -3.969059980590828e-5, 3.122440102742985e-5, -2.400104312982876e-5, 8.092544885585085e-5, 3.4266007808980703e-9]);

  it('L2Ratio of a vector on the threshold is one value on either kernel, in-thread and on a pool', async () => {
    const batch = { sourceActivations: tensor(x, [1, 6]), decodedActivations: tensor(x, [1, 6]) };
    // The float64 reference, feature by feature, falls below the threshold (ratio 1e-4, not 1).
    expect(l2RatioRef([{ source: x, decoded: x, shape: [1, 6] }])[0]).toBeLessThan(1e-3);
    const pool = createMetricPool({ workers: 1, backend: 'js' });
    try {
      const values: number[] = [];
      for (const options of [{}, { backend: 'js' as const }, { pool }]) values.push((await lastValueFrom(from([batch]).pipe(reduceMetric(new L2Ratio(), options)))).item());
      expect(values[1], 'js kernel').toBe(values[0]);
      expect(values[2], 'js pool').toBe(values[0]);
    } finally {
      await pool.close();
    }
  });

  it('CosineSimilarity, L2Ratio and RelativeReconstructionBias are the same bits on the js and wasm kernels', async () => {
    const r = mulberry32(21);
    const special = [0, -0, 1e-45, -1e-40, 3.4028234663852886e38, -3e38, 1e-4, 5e-5, NaN, Infinity];
    for (const [features, components] of [[1, undefined], [3, 2], [4, undefined], [6, undefined], [17, 3], [64, undefined], [67, 2]] as const) {
      const c = components ?? 1;
      const shape = (rows: number) => (components === undefined ? [rows, features] : [rows, components, features]);
      const value = () => (r() < 0.05 ? (special[Math.floor(r() * special.length)] as number) : (r() - 0.5) * 10 ** (8 * r() - 6));
      const batches = [5, 1, 9].map((rows) => {
        const n = rows * c * features;
        const source = Float32Array.from({ length: n }, value);
        const decoded = Float32Array.from(source, (v) => (r() < 0.2 ? value() : v * (1 + (r() - 0.5) * 0.1)));
        return { sourceActivations: tensor(source, shape(rows)), decodedActivations: tensor(decoded, shape(rows)) };
      });
      const o = components === undefined ? {} : { numComponents: components };
      const make = () => new MetricCollection({ cos: new CosineSimilarity(o), l2ratio: new L2Ratio(o), shrinkage: new RelativeReconstructionBias(o) });
      const run = (options: object) => lastValueFrom(from(batches).pipe(accumulateMetric(make(), options), toArray()));
      // Element by element with Object.is: a NaN's sign bit is the platform's, not the metric's.
      const js = await run({ shardRows: 4, backend: 'js' });
      const wasm = await run({ shardRows: 4 });
      expect(difference(js, wasm, viewElementsDifference), `${features} features, ${c} components`).toBeUndefined();
    }
  });
});
