/**
 * How much do the SAE evaluation metrics of issue 13 cost through the pool, beside the six standard
 * metrics? A stream of 16 large pool-allocated batches through 2 workers (wasm backend, shardRows
 * 1024), against the two-thread read ceiling of the same run: the six alone, the six with each
 * group of new metrics, and the full set (one read of each array a shard: the kernel's pass over
 * source and decoded gives the norms and moments, its pass over the learned activations the fired
 * counts and the fired entries every per-feature statistic is made from). Target (issue 13): the
 * full set >= 0.8 x the two-thread ceiling.
 * Run: node --expose-gc --import tsx bench/sae-eval.ts
 *
 * @module
 */
import { from, lastValueFrom } from 'rxjs';
import {
  CosineSimilarity,
  createMetricPool,
  DeadFeaturesOverWindow,
  ExplainedVariance,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureFrequencyStats,
  FractionOfVarianceUnexplained,
  L2Ratio,
  NormalizedMse,
  reduceMetric,
  RelativeReconstructionBias,
  TopActivations,
  type AnyMetric,
  type Batch,
} from '../src/index.js';
import {
  allocatedBatch, bytesOf, Ceiling, f2, footer, header, isMain, LARGE, measure, ordinaryArrays, rate, saeMetrics, table,
  type Case, type ReadmeRow,
} from './harness.js';

const STREAM = 16;

/** The eleven SAE evaluation metrics at the bench size, in three groups. */
const o = { numLearnedFeatures: LARGE.learned };
export const reconstruction = (): Record<string, AnyMetric> => ({
  ev: new ExplainedVariance({ numFeatures: LARGE.source }),
  fvu: new FractionOfVarianceUnexplained({ numFeatures: LARGE.source }),
  cos: new CosineSimilarity(),
  l2ratio: new L2Ratio(),
  shrinkage: new RelativeReconstructionBias(),
  nmse: new NormalizedMse(),
});
export const features = (): Record<string, AnyMetric> => ({
  freq: new FeatureFrequencyStats(o),
  actstats: new FeatureActivationStats(o),
  acthist: new FeatureActivationHistogram(o),
});
export const indexed = (): Record<string, AnyMetric> => ({
  top: new TopActivations({ ...o, k: 10 }),
  deadwindow: new DeadFeaturesOverWindow({ ...o, windowVectors: 10_000_000 }),
});

/** All eleven. */
export const evaluationMetrics = (): Record<string, AnyMetric> => ({ ...reconstruction(), ...features(), ...indexed() });

export async function run(): Promise<ReadmeRow[]> {
  header('SAE evaluation metrics: reduceMetric(six standard metrics + issue 13\'s, { pool }), 2 workers', [
    `learned 2048 x 16384 (1.8% fired), source and decoded 2048 x 4096 float32, pool-allocated; a stream of ${STREAM}; GB/s of the three arrays`,
  ]);
  const arrays = [ordinaryArrays(LARGE, 1), ordinaryArrays(LARGE, 2)];
  const ceiling = new Ceiling(arrays, LARGE);
  const pool = createMetricPool({ workers: 2, backend: 'wasm' });
  const batches = arrays.map((a) => allocatedBatch(pool, a));
  const stream = Array.from({ length: STREAM }, (_, i) => batches[i % 2] as Batch);
  const sets: [string, () => Record<string, AnyMetric>][] = [
    ['the six', () => ({})],
    ['the six + ev, fvu, cos, l2ratio, shrinkage, nmse', reconstruction],
    ['the six + freq', () => ({ freq: new FeatureFrequencyStats(o) })],
    ['the six + actstats', () => ({ actstats: new FeatureActivationStats(o) })],
    ['the six + acthist', () => ({ acthist: new FeatureActivationHistogram(o) })],
    ['the six + top (k = 10)', () => ({ top: new TopActivations({ ...o, k: 10 }) })],
    ['the six + deadwindow', () => ({ deadwindow: new DeadFeaturesOverWindow({ ...o, windowVectors: 10_000_000 }) })],
    ['the full set (the six + all eleven)', evaluationMetrics],
  ];
  const results = new Map<string, Record<string, unknown>>();
  try {
    const [, two] = ceiling.cases();
    const cases: { case: Case; batches: number }[] = [
      { case: two as Case, batches: 2 },
      ...sets.map(([name, extra]) => ({
        case: {
          name: `${name}, a stream of ${STREAM}`,
          run: async () => {
            results.set(name, (await lastValueFrom(from(stream).pipe(reduceMetric(saeMetrics(LARGE.learned, extra()), { pool })))) as Record<string, unknown>);
          },
        },
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
    // The six's values in the full set are the six's alone, bit for bit (shared parts, one pass).
    const six = results.get('the six') as Record<string, { data: ArrayLike<number> }>;
    const full = results.get((sets[sets.length - 1] as [string, unknown])[0]) as Record<string, { data: ArrayLike<number> }>;
    for (const key of Object.keys(six)) {
      const a = Array.from((six[key] as { data: ArrayLike<number> }).data);
      const b = Array.from((full[key] as { data: ArrayLike<number> }).data);
      if (a.length !== b.length || a.some((x, i) => !Object.is(x, b[i]))) throw new Error(`bench: ${key} differs between the six and the full set`);
    }
    console.log('\ncheck: the six standard metrics give the same bits alone and in the full set');
    const fullRatio = (rates[rates.length - 1] as { median: number }).median / ceil2;
    console.log(`target the full set >= 0.8 x two-thread ceiling: ${fullRatio >= 0.8 ? 'MET' : 'NOT MET'} (${f2(fullRatio)})`);
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
