/**
 * The full set of SAE metrics (the six standard ones and the eleven evaluation metrics, among them
 * every per-feature statistic of fired entries, which the WebAssembly kernels compute themselves)
 * in one collection: after every batch, the same bits through wasm pools of 1, 2 and 4 workers,
 * in-thread with the default kernel (the chunked WebAssembly pass) and in-thread with the plain
 * JavaScript kernel (whose per-feature statistics are the JavaScript parts'), on learned
 * activations with hostile values (forty decades, ties, subnormals, the largest float32,
 * +Infinity, the histogram's bin edges, -0, negatives), with and without a component axis, and
 * with two TopActivations of different k and two histograms of different bins in the collection.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom, toArray } from 'rxjs';
import {
  accumulateMetric,
  CosineSimilarity,
  createMetricPool,
  DeadFeaturesOverWindow,
  ExplainedVariance,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureDensityMetric,
  FeatureFrequencyStats,
  FractionOfVarianceUnexplained,
  L0NormMetric,
  L1AbsoluteLoss,
  L2Ratio,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  NormalizedMse,
  RelativeReconstructionBias,
  SparseAutoencoderLoss,
  tensor,
  TopActivations,
} from '../../src/index.js';
import type { MetricOperatorOptions, MetricPool, SparseAutoencoderBatch } from '../../src/index.js';
import { histogramEdges } from '../../src/functional/parts/activation-histogram.js';
import { bits } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';

const SHARD_ROWS = 48;
const WORKERS = [1, 2, 4] as const;
const BINS = { lowLog10: -12, highLog10: 12, binsPerDecade: 3 };

interface Scenario {
  readonly name: string;
  readonly components: number | undefined;
  readonly features: number;
  readonly source: number;
  readonly sizes: readonly number[];
  readonly densities: readonly number[];
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'rank 2, 37 features', components: undefined, features: 37, source: 6, sizes: [130, 1, 49, 200], densities: [0.2, 1, 0.02, 0.6] },
  { name: 'rank 3, 2 components, 9 features', components: 2, features: 9, source: 5, sizes: [97, 48, 3], densities: [0.3, 0, 0.9] },
  // Wide shards, dense ones among them: too dense for the WebAssembly statistics' scratch, a shard
  // gives its entries to the JavaScript parts; the sparse ones take featureStats.
  { name: 'rank 3, 2 components, 10007 features', components: 2, features: 10007, source: 3, sizes: [7, 1, 12, 5], densities: [1, 0.05, 0.95, 0.02] },
];

/** Learned activations: about `density` fired, some of them hostile values; negatives, zeros and -0. */
function learned(r: () => number, n: number, density: number): Float32Array {
  const edges = Array.from(histogramEdges(BINS)).filter((e) => e > 0 && e < Infinity);
  const special = [1, 1, 2, 1e-45, 1e-40, 3.4028234663852886e38, ...Array<number>(20).fill(Infinity), ...edges, ...edges.map((e) => Math.fround(e * (1 - 2 ** -23)))];
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    if (u < density * 0.8) out[i] = 10 ** (-20 + 40 * r());
    else if (u < density) out[i] = special[Math.floor(r() * special.length)] as number;
    else out[i] = u < density + 0.1 ? -r() : u < density + 0.15 ? -0 : 0;
  }
  return out;
}

function batchesOf(s: Scenario, seed: number): SparseAutoencoderBatch[] {
  const r = mulberry32(seed);
  const c = s.components === undefined ? [] : [s.components];
  return s.sizes.map((rows, k) => {
    const lShape = [rows, ...c, s.features];
    const sShape = [rows, ...c, s.source];
    const n = sShape.reduce((a, b) => a * b, 1);
    const source = Float32Array.from({ length: n }, () => r() * 4 - 2);
    const decoded = Float32Array.from(source, (x) => x + (r() - 0.5) * 0.1);
    return {
      learnedActivations: tensor(learned(r, lShape.reduce((a, b) => a * b, 1), s.densities[k] as number), lShape),
      sourceActivations: tensor(source, sShape),
      decodedActivations: tensor(decoded, sShape),
    };
  });
}

/** The metrics made from the fired entries and fired counts: the same bits as the JavaScript kernel's. */
const FROM_FIRED = ['density', 'dead', 'freq', 'actstats', 'acthist', 'acthist2', 'top', 'top3', 'deadwindow'];

/** The full set (rank 2), or the metrics that take a component axis (rank 3). */
function fullSet(s: Scenario): MetricCollection {
  const numLearnedFeatures = s.features;
  const o = { numLearnedFeatures, ...(s.components === undefined ? {} : { numComponents: s.components }) };
  const fired = {
    density: new FeatureDensityMetric(o),
    dead: new NeuronActivityMetric(o),
    freq: new FeatureFrequencyStats(o),
    actstats: new FeatureActivationStats(o),
    acthist: new FeatureActivationHistogram({ ...o, ...BINS }),
    acthist2: new FeatureActivationHistogram(o),
    top: new TopActivations({ ...o, k: 10 }),
    top3: new TopActivations({ ...o, k: 3 }),
    deadwindow: new DeadFeaturesOverWindow({ ...o, windowVectors: 100 }),
  };
  if (s.components !== undefined) return new MetricCollection(fired);
  return new MetricCollection({
    sae: new SparseAutoencoderLoss({ l1Coefficient: 0.001 }),
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    ev: new ExplainedVariance({ numFeatures: s.source }),
    fvu: new FractionOfVarianceUnexplained({ numFeatures: s.source }),
    cos: new CosineSimilarity(),
    l2ratio: new L2Ratio(),
    shrinkage: new RelativeReconstructionBias(),
    nmse: new NormalizedMse(),
    ...fired,
  });
}

/** The results of `FROM_FIRED` metrics (a collection's keys are `metric_result`), as bits. */
function firedBits(results: readonly unknown[]): unknown {
  return results.map((r) => {
    const entries = Object.entries(r as Record<string, unknown>).filter(([k]) => FROM_FIRED.some((m) => k === m || k.startsWith(`${m}_`)));
    // Every metric of the list is there: a renamed key fails here, not by comparing nothing.
    expect(FROM_FIRED.filter((m) => entries.some(([k]) => k === m || k.startsWith(`${m}_`)))).toEqual(FROM_FIRED);
    return Object.fromEntries(entries.map(([k, v]) => [k, bits(v)]));
  });
}

async function run(s: Scenario, batches: readonly SparseAutoencoderBatch[], options: MetricOperatorOptions): Promise<unknown[]> {
  return lastValueFrom(from(batches).pipe(accumulateMetric(fullSet(s), options), toArray()));
}

describe(`the full set of metrics: wasm pools of 1, 2 and 4 workers, in-thread default and js kernels (shardRows ${SHARD_ROWS})`, () => {
  const pools: MetricPool[] = [];
  beforeAll(() => {
    for (const workers of WORKERS) pools.push(createMetricPool({ workers, shardRows: SHARD_ROWS, backend: 'wasm' }));
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  for (const s of SCENARIOS) {
    it(`${s.name}, batches of ${s.sizes.join(', ')} rows: the same bits after every batch`, async () => {
      const batches = batchesOf(s, 1313);
      const js = await run(s, batches, { shardRows: SHARD_ROWS, backend: 'js' });
      expect(js.length).toBe(batches.length);
      const inThread = await run(s, batches, { shardRows: SHARD_ROWS });
      const viaPools = await Promise.all(pools.map((pool) => run(s, batches, { pool })));
      expect(pools.map((p) => p.backend)).toEqual(WORKERS.map(() => 'wasm'));
      // Every metric: the same bits on every WebAssembly path.
      viaPools.forEach((got, i) => expect(bits(got), `${WORKERS[i]} worker(s) vs in-thread`).toEqual(bits(inThread)));
      // The metrics of fired entries and counts: the JavaScript kernel's bits (the others' float32
      // blocks of |x| and squared errors are within 1e-6 of it, tested elsewhere).
      expect(firedBits(inThread), 'in-thread default (chunked wasm) vs in-thread js').toEqual(firedBits(js));
      viaPools.forEach((got, i) => expect(firedBits(got), `${WORKERS[i]} worker(s) vs in-thread js`).toEqual(firedBits(js)));
      // The results hold what was fired, +Infinity among it.
      const top = (js[js.length - 1] as { top_values: { data: Float32Array } }).top_values.data;
      expect(top.includes(Infinity)).toBe(true);
      expect(top.filter((x) => x > 0).length).toBeGreaterThan(2 * s.features);
    }, 60_000);
  }
});
