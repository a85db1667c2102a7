/**
 * Attack on the numbers of the SAE evaluation metrics: hostile values (+Infinity among a
 * feature's fired activations, ...) cut into batches and shards in seeded random ways, through
 * the class, in-thread operators (WebAssembly and JavaScript kernels) and a wasm pool, against the
 * float64 references. Each case here failed before its fix.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom } from 'rxjs';
import { createMetricPool, FeatureActivationStats, reduceMetric, tensor } from '../../src/index.js';
import type { LearnedBatch, MetricPool } from '../../src/index.js';
import { refFeatureActivationStats } from '../reference/feature-stats.js';
import { bits } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';

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
