/**
 * The feature statistics of issue 13 through the worker pool: `accumulateMetric` gives the same
 * bits in-thread and on pools of 1, 2 and 4 workers at the same shardRows (same shard plan, same
 * merge tree), for each metric alone and for a collection of the three with NeuronActivityMetric
 * (one pass a shard for all of them), and the same bits again in-thread with the plain JavaScript
 * kernel (the WebAssembly pass lists the same fired entries); and the results agree with the plain class path (no
 * sharding): counts exactly, moments within 1e-12 relative.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom, toArray } from 'rxjs';
import {
  accumulateMetric,
  createMetricPool,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureFrequencyStats,
  MetricCollection,
  NeuronActivityMetric,
  tensor,
  Tensor,
} from '../../src/index.js';
import type { LearnedBatch, MetricPool, MetricTarget, MetricOperatorOptions } from '../../src/index.js';
import { bits } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';

const SHARD_ROWS = 64;
const WORKERS = [1, 2, 4] as const;

/** About `density` of the values fired (log-uniform over 1e-5 .. 1e5), a sixth as many negative, the rest 0. */
function sparse(seed: number, n: number, density = 0.25): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = r();
    out[i] = u < density ? 10 ** (-5 + 10 * r()) : u < density * 1.2 ? -r() : 0;
  }
  return out;
}

interface Scenario {
  readonly name: string;
  readonly components: number | undefined;
  readonly features: number;
  readonly sizes: readonly number[];
  /** The portion of values fired in each batch (default 0.25). */
  readonly densities?: readonly number[];
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'rank 2', components: undefined, features: 9, sizes: [300, 1, 129, 64, 1000] },
  { name: 'rank 3 with 3 components', components: 3, features: 5, sizes: [7, 513, 65] },
  // 37 features: the WebAssembly pass's blocks of sixteen and of four values, and a scalar tail.
  { name: 'rank 2, 37 features', components: undefined, features: 37, sizes: [200, 65] },
  // Sparse and dense batches in turn: the workers' room for positive entries is outgrown and grows
  // while the pool's arena takes the batches' copies.
  { name: 'rank 2, 40 features, 2% and 95% fired in turn', components: undefined, features: 40, sizes: [500, 500, 300, 1000, 64], densities: [0.02, 0.95, 0.02, 0.95, 0.5] },
];

function batchesOf(s: Scenario, seed: number): LearnedBatch[] {
  return s.sizes.map((rows, k) => {
    const shape = s.components === undefined ? [rows, s.features] : [rows, s.components, s.features];
    return { learnedActivations: tensor(sparse(seed + k, shape.reduce((a, b) => a * b, 1), s.densities?.[k]), shape) };
  });
}

async function run(metric: MetricTarget, batches: readonly LearnedBatch[], options: MetricOperatorOptions): Promise<unknown[]> {
  return lastValueFrom(from(batches).pipe(accumulateMetric(metric, options), toArray()));
}

/** Flat (key, tensor) pairs of a result or a collection's result. */
function tensors(value: unknown, prefix = ''): [string, Tensor][] {
  if (value instanceof Tensor) return [[prefix, value]];
  return Object.entries(value as object).flatMap(([k, v]) => tensors(v, prefix === '' ? k : `${prefix}.${k}`));
}

describe(`feature statistics through pools of 1, 2 and 4 workers (shardRows ${SHARD_ROWS})`, () => {
  const pools: MetricPool[] = [];
  beforeAll(() => {
    for (const workers of WORKERS) pools.push(createMetricPool({ workers, shardRows: SHARD_ROWS }));
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  for (const s of SCENARIOS) {
    const opts = { numLearnedFeatures: s.features, ...(s.components === undefined ? {} : { numComponents: s.components }) };
    const targets: [string, () => MetricTarget][] = [
      ['FeatureFrequencyStats', () => new FeatureFrequencyStats(opts)],
      ['FeatureActivationStats', () => new FeatureActivationStats(opts)],
      ['FeatureActivationHistogram', () => new FeatureActivationHistogram({ ...opts, binsPerDecade: 4 })],
      [
        'a collection of the three and NeuronActivityMetric',
        () =>
          new MetricCollection({
            freq: new FeatureFrequencyStats(opts),
            stats: new FeatureActivationStats(opts),
            hist: new FeatureActivationHistogram(opts),
            dead: new NeuronActivityMetric(opts),
          }),
      ],
    ];
    for (const [name, make] of targets) {
      it(`${s.name}, batches of ${s.sizes.join(', ')} rows: ${name} gives the same bits in-thread and on 1, 2 and 4 workers, and matches the class path`, async () => {
        const batches = batchesOf(s, 11);
        const inThread = await run(make(), batches, { shardRows: SHARD_ROWS });
        expect(inThread.length).toBe(batches.length);
        const viaPools = await Promise.all(pools.map((pool) => run(make(), batches, { pool })));
        viaPools.forEach((got, i) => expect(bits(got), `${WORKERS[i]} worker(s) vs in-thread`).toEqual(bits(inThread)));
        // The pools and the default in-thread path run the WebAssembly pass; the plain JavaScript kernel gives the same bits.
        expect(pools.map((p) => p.backend)).toEqual(WORKERS.map(() => 'wasm'));
        const js = await run(make(), batches, { shardRows: SHARD_ROWS, backend: 'js' });
        expect(bits(js), 'in-thread js kernel vs in-thread default').toEqual(bits(inThread));
        // The class path: one update per batch, no shards.
        const plain = make() as { update(b: LearnedBatch): void; compute(): unknown };
        batches.forEach((b, k) => {
          plain.update(b);
          const want = tensors(plain.compute());
          const got = tensors(inThread[k]);
          expect(got.map(([key]) => key)).toEqual(want.map(([key]) => key));
          want.forEach(([key, w], j) => {
            const g = (got[j] as [string, Tensor])[1];
            expect(g.dtype, key).toBe(w.dtype);
            for (let i = 0; i < w.data.length; i++) {
              const x = g.data[i] as number;
              const y = w.data[i] as number;
              const ok = Object.is(x, y) || (w.dtype === 'float64' && Math.abs(x - y) <= 1e-12 * Math.abs(y));
              if (!ok) expect.fail(`batch ${k} ${key}[${i}]: ${x} vs ${y}`);
            }
          });
        });
      }, 30_000);
    }
  }
});
