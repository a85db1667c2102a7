/**
 * Attack on issue 13's guarantees through the pool: random (seeded) schedules of batch sizes,
 * shard sizes, rank 2 and rank 3, sparse and fully dense batches in turn (the positives room of the
 * pooled and chunked WebAssembly kernels outgrown), hostile values (NaN, ±Infinity, -0, subnormals,
 * float32 values on and beside the histogram's edges), and `firstVectorIndex` on some batches only.
 * Every new metric, in one collection with existing metrics and alone, must give the same bits
 * in-thread (wasm and js kernels) and on pools of 1, 2 and 4 workers; the counting metrics
 * (frequency, histogram, top, dead window) must also not change with the batch cut.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom, toArray } from 'rxjs';
import {
  accumulateMetric,
  forwardMetric,
  createMetricPool,
  DeadFeaturesOverWindow,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureDensityMetric,
  FeatureFrequencyStats,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  tensor,
  TopActivations,
  type Batch,
  type MetricOperatorOptions,
  type MetricPool,
  type MetricTarget,
} from '../../src/index.js';
import { bits } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';

const SHARD_ROWS = 16;
const DIM = 3;

/** Values a histogram or a top list might get wrong. */
const HOSTILE = [
  NaN, Infinity, -Infinity, -0, 0, 1e-45, 1.1754942e-38, 1e-4, Math.fround(1e-4), 1e4, Math.fround(1e4),
  Math.fround(10 ** -3.9), Math.fround(10 ** 0.1), 1, 10, 100, 3.4028234663852886e38, Math.fround(1e-5), 2, 2, 2,
];

interface Schedule {
  readonly seed: number;
  readonly components: number | undefined;
  readonly features: number;
  readonly batches: Batch[];
}

function schedule(seed: number): Schedule {
  const r = mulberry32(seed);
  const components = [undefined, 1, 3][Math.floor(r() * 3)];
  const features = 1 + Math.floor(r() * 40);
  const width = (components ?? 1) * features;
  const count = 2 + Math.floor(r() * 6);
  const batches: Batch[] = [];
  let next = 0;
  for (let b = 0; b < count; b++) {
    const rows = 1 + Math.floor(r() * (r() < 0.3 ? 300 : 40));
    // Alternate: nearly empty, fully dense, hostile.
    const mode = b % 3;
    const data = new Float32Array(rows * width);
    for (let i = 0; i < data.length; i++) {
      if (mode === 0) data[i] = r() < 0.01 ? r() * 5 : 0;
      else if (mode === 1) data[i] = 1e-3 + r() * 50;
      else data[i] = r() < 0.5 ? (HOSTILE[Math.floor(r() * HOSTILE.length)] as number) : Math.floor(r() * 8) / 4;
    }
    const shape = components === undefined ? [rows, features] : [rows, components, features];
    const withIndex = r() < 0.5;
    const first = withIndex ? next + Math.floor(r() * 3) * Math.floor(r() * 50) : undefined;
    const batch: Batch = {
      learnedActivations: tensor(data, shape),
      sourceActivations: tensor(Float32Array.from({ length: rows * (components ?? 1) * DIM }, () => r() - 0.5), components === undefined ? [rows, DIM] : [rows, components, DIM]),
      decodedActivations: tensor(Float32Array.from({ length: rows * (components ?? 1) * DIM }, () => r() - 0.5), components === undefined ? [rows, DIM] : [rows, components, DIM]),
      ...(first === undefined ? {} : { firstVectorIndex: first }),
    };
    batches.push(batch);
    next = (first ?? next) + rows;
  }
  return { seed, components, features, batches };
}

function newMetrics(s: Schedule): Record<string, MetricTarget> {
  const o = { numLearnedFeatures: s.features, ...(s.components === undefined ? {} : { numComponents: s.components }) };
  const c = s.components === undefined ? {} : { numComponents: s.components };
  return {
    freq: new FeatureFrequencyStats(o),
    actstats: new FeatureActivationStats(o),
    acthist: new FeatureActivationHistogram({ ...o, binsPerDecade: 10 }),
    top: new TopActivations({ ...o, k: 3 }),
    dead: new DeadFeaturesOverWindow({ ...o, windowVectors: 17 }),
    l1: new L1AbsoluteLoss(c),
    l2: new L2ReconstructionLoss(c),
    l0: new L0NormMetric(c),
    fired: new NeuronFiredCountMetric(o),
    activity: new NeuronActivityMetric(o),
    density: new FeatureDensityMetric(o),
  } as unknown as Record<string, MetricTarget>;
}

async function run(target: MetricTarget, batches: Batch[], options: MetricOperatorOptions, forward = false): Promise<unknown> {
  const op = forward ? forwardMetric(target, options) : accumulateMetric(target, options);
  const out = await lastValueFrom(from(batches).pipe(op as never, toArray()));
  return out.map(bits);
}

const SEEDS = Array.from({ length: 10 }, (_, i) => 0xa77ac0 + i);

describe('issue 13 metrics under random schedules: in-thread, 1/2/4 workers, alone and together', () => {
  const pools: MetricPool[] = [];
  beforeAll(() => {
    for (const workers of [1, 2, 4]) pools.push(createMetricPool({ workers, shardRows: SHARD_ROWS }));
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  for (const seed of SEEDS) {
    it(`seed ${seed.toString(16)}`, async () => {
      const s = schedule(seed);
      const together = await run(new MetricCollection(newMetrics(s) as never), s.batches, { shardRows: SHARD_ROWS });
      // The JS kernel sums losses in float64 (not the wasm bits); the new metrics must agree.
      const js = (await run(new MetricCollection(newMetrics(s) as never), s.batches, { shardRows: SHARD_ROWS, backend: 'js' })) as Record<string, unknown>[];
      const pick = (steps: unknown) =>
        (steps as Record<string, unknown>[]).map((v) => Object.fromEntries(Object.entries(v).filter(([k]) => !/^l[12]($|_)/.test(k))));
      expect(pick(js), 'in-thread js kernel vs wasm').toEqual(pick(together));
      for (const pool of pools) {
        const got = await run(new MetricCollection(newMetrics(s) as never), s.batches, { pool });
        expect(got, `${pool.workers} workers`).toEqual(together);
      }
      // Each metric alone gives its own bits in the collection.
      const steps = together as Record<string, unknown>[];
      for (const [name, metric] of Object.entries(newMetrics(s))) {
        const alone = (await run(metric, s.batches, { pool: pools[1] as MetricPool })) as unknown[];
        // Records are flattened as `<name>_<key>` (keys clash: `vectors`), a tensor stays under `name`.
        const inCollection = steps.map((v, i) => {
          const a = alone[i] as Record<string, unknown>;
          if ('hex' in a) return v[name];
          return Object.fromEntries(Object.keys(a).map((k) => [k, v[`${name}_${k}`]]));
        });
        expect(alone, `${name} alone`).toEqual(inCollection);
      }
    }, 60_000);
  }

  for (const seed of SEEDS.slice(0, 5)) {
    it(`seed ${seed.toString(16)}: the counting metrics do not change with the batch cut`, async () => {
      const s = schedule(seed);
      const o = { numLearnedFeatures: s.features, ...(s.components === undefined ? {} : { numComponents: s.components }) };
      const make = () =>
        new MetricCollection({
          freq: new FeatureFrequencyStats(o),
          acthist: new FeatureActivationHistogram(o),
          top: new TopActivations({ ...o, k: 2 }),
          dead: new DeadFeaturesOverWindow({ ...o, windowVectors: 5 }),
        });
      // Re-cut the stream into batches of one row each (firstVectorIndex carried over to a row).
      const rows: Batch[] = [];
      for (const b of s.batches) {
        const t = b.learnedActivations!;
        const n = t.shape[0] as number;
        const per = t.data.length / n;
        for (let i = 0; i < n; i++) {
          const first = b.firstVectorIndex;
          rows.push({
            learnedActivations: tensor(t.data.slice(i * per, (i + 1) * per) as Float32Array, [1, ...t.shape.slice(1)]),
            ...(first === undefined ? {} : { firstVectorIndex: first + i }),
          });
        }
      }
      const whole = ((await run(make(), s.batches, { pool: pools[2] as MetricPool })) as unknown[]).at(-1);
      const cut = ((await run(make(), rows, { shardRows: 1 })) as unknown[]).at(-1);
      expect(cut).toEqual(whole);
    }, 60_000);
  }
});

describe('issue 13 metrics: large shards far denser than the last (positives room outgrown), forwardMetric against the class', () => {
  const pools: MetricPool[] = [];
  beforeAll(() => {
    for (const workers of [1, 2]) pools.push(createMetricPool({ workers, shardRows: 256 }));
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  it('1 in 1000 fired, then every value fired, in turn, 300 features', async () => {
    const r = mulberry32(0xde45e);
    const features = 300;
    const batches: Batch[] = [0.001, 1, 0, 1, 0.001, 0.5, 1].map((density, b) => {
      const rows = 200 + Math.floor(r() * 400);
      const data = Float32Array.from({ length: rows * features }, () => (r() < density ? 1e-6 + r() * 100 : 0));
      return { learnedActivations: tensor(data, [rows, features]), ...(b % 2 === 1 ? { firstVectorIndex: 10_000 * b } : {}) };
    });
    const s: Schedule = { seed: 0, components: undefined, features, batches };
    const make = () => new MetricCollection(Object.fromEntries(Object.entries(newMetrics(s)).filter(([k]) => !/^l[12]$/.test(k))) as never);
    const want = await run(make(), batches, { shardRows: 256 });
    expect(await run(make(), batches, { shardRows: 256, backend: 'js' }), 'in-thread js kernel').toEqual(want);
    for (const pool of pools) expect(await run(make(), batches, { pool }), `${pool.workers} workers`).toEqual(want);
    // forwardMetric: each batch's own value, as the class's forward() gives it (one shard per batch there).
    const cls = make() as unknown as { forward(b: Batch): unknown };
    const byClass = batches.map((b) => bits(cls.forward(b)));
    const fwd = (await run(make(), batches, { pool: pools[1] as MetricPool, shardRows: 256 } as MetricOperatorOptions, true)) as Record<string, unknown>[];
    const exact = (steps: unknown) => (steps as Record<string, unknown>[]).map((v) => Object.fromEntries(Object.entries(v).filter(([k]) => !/^actstats_(mean|std|meanOverAll)$/.test(k))));
    expect(exact(fwd)).toEqual(exact(byClass));
  }, 120_000);
});
