/**
 * How much do the feature statistics of issue 13 (`FeatureFrequencyStats`, `FeatureActivationStats`,
 * `FeatureActivationHistogram`) cost through the pool, beside the six standard metrics? A stream of
 * 16 large pool-allocated batches through 2 workers (wasm backend, shardRows 1024), against the
 * two-thread read ceiling of the same run, for the six alone, the six with each feature statistic,
 * and the six with all three (one pass a shard: the fired counts and the fired entries come from
 * one read of the learned activations).
 * Run: node --expose-gc --import tsx bench/feature-stats.ts
 *
 * @module
 */
import { from, lastValueFrom } from 'rxjs';
import {
  createMetricPool,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureFrequencyStats,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  FeatureDensityMetric,
  reduceMetric,
  SparseAutoencoderLoss,
  type AnyMetric,
  type Batch,
  type MetricPool,
} from '../src/index.js';
import {
  batchOf, bytesOf, Ceiling, copyInto, f2, footer, header, isMain, L1_COEFFICIENT, LARGE, measure, ordinaryArrays, rate, table,
  type Arrays, type Case, type ReadmeRow,
} from './harness.js';

const STREAM = 16;

function allocated(pool: MetricPool, from: Arrays): Batch {
  const t = (f: number): Float32Array => pool.allocate([LARGE.rows, f]).data;
  return batchOf(copyInto({ learned: t(LARGE.learned), source: t(LARGE.source), decoded: t(LARGE.source) }, from), LARGE);
}

/** The six standard metrics and `extra`, as a collection. */
function collection(extra: Record<string, AnyMetric>): MetricCollection {
  const numLearnedFeatures = LARGE.learned;
  return new MetricCollection({
    sae: new SparseAutoencoderLoss({ l1Coefficient: L1_COEFFICIENT }),
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    density: new FeatureDensityMetric({ numLearnedFeatures }),
    dead: new NeuronActivityMetric({ numLearnedFeatures }),
    ...extra,
  });
}

export async function run(): Promise<ReadmeRow[]> {
  header('feature statistics: reduceMetric(six standard metrics + feature statistics, { pool }), 2 workers', [
    `learned 2048 x 16384 (1.8% fired), source and decoded 2048 x 4096 float32, pool-allocated; a stream of ${STREAM}; GB/s of the three arrays`,
  ]);
  const arrays = [ordinaryArrays(LARGE, 1), ordinaryArrays(LARGE, 2)];
  const ceiling = new Ceiling(arrays, LARGE);
  const pool = createMetricPool({ workers: 2, backend: 'wasm' });
  const batches = arrays.map((a) => allocated(pool, a));
  const stream = Array.from({ length: STREAM }, (_, i) => batches[i % 2] as Batch);
  const o = { numLearnedFeatures: LARGE.learned };
  const sets: [string, () => Record<string, AnyMetric>][] = [
    ['the six', () => ({})],
    ['the six + freq', () => ({ freq: new FeatureFrequencyStats(o) })],
    ['the six + actstats', () => ({ actstats: new FeatureActivationStats(o) })],
    ['the six + acthist', () => ({ acthist: new FeatureActivationHistogram(o) })],
    ['the six + freq, actstats, acthist', () => ({ freq: new FeatureFrequencyStats(o), actstats: new FeatureActivationStats(o), acthist: new FeatureActivationHistogram(o) })],
  ];
  try {
    const [, two] = ceiling.cases();
    const cases: { case: Case; batches: number }[] = [
      { case: two as Case, batches: 2 },
      ...sets.map(([name, extra]) => ({
        case: { name: `${name}, a stream of ${STREAM}`, run: async () => lastValueFrom(from(stream).pipe(reduceMetric(collection(extra()), { pool }))) },
        batches: STREAM,
      })),
    ];
    const rates = (await measure(cases.map((c) => c.case))).map((t, i) => rate(t, (cases[i] as { batches: number }).batches * bytesOf(LARGE)));
    const ceil2 = (rates[0] as { median: number }).median;
    console.log(
      table(['path', 'GB/s', '(min-max)', 'x 2-thr'], cases.map((c, i) => {
        const r = rates[i] as { median: number; min: number; max: number };
        return [c.case.name, f2(r.median), `(${f2(r.min)}-${f2(r.max)})`, f2(r.median / ceil2)];
      })),
    );
    footer();
    return cases.slice(1).map((c, i) => {
      const r = rates[i + 1] as { median: number };
      return { path: `pool, 2 workers, ${c.case.name}`, figure: `${f2(r.median)} GB/s`, ratio: `${f2(r.median / ceil2)} of 2 threads` };
    });
  } finally {
    await Promise.all([ceiling.close(), pool.close()]);
  }
}

if (isMain(import.meta.url)) await run();
