/**
 * The same bits from every entry point on the same backend and shard plan: for every metric class
 * (and a classwise wrapper, and a collection of the SAE set), over a stream of seeded batches,
 *
 * - `metric.update(b)` then `compute()`, and `metric.forward(b)` (the class path);
 * - the same metric inside a `MetricCollection` (`collection.update`, `collection.forward`);
 * - the in-thread operators with their defaults (`accumulateMetric`, `forwardMetric`,
 *   `reduceMetric`, `computeEvery`);
 * - the same operators on pools of 1 and 2 workers with the default `shardRows`;
 *
 * give identical results: same keys, dtypes, shapes and bytes of every value (NaN payloads and -0
 * included). The class path, the default in-thread operators and a default pool run the same
 * backend (asserted: the WebAssembly pass here) and the same shard plan (1024 rows), so batches of
 * 2500 rows (three shards) and of 1 and 700 rows are compared.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom, toArray, type OperatorFunction } from 'rxjs';
import {
  accumulateMetric,
  CapacityMetric,
  computeEvery,
  ClasswiseWrapperWithMean,
  createMetricPool,
  FeatureDensityMetric,
  forwardMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  ReconstructionScoreMetric,
  reduceMetric,
  SparseAutoencoderLoss,
  tensor,
  type AnyMetric,
  type Batch,
  type MetricPool,
  type MetricTarget,
} from '../src/index.js';
import { defaultExecutor } from '../src/pool/executor.js';
import { bits } from './support/compare.js';
import { mulberry32 } from './support/random.js';

const SIZES = [2500, 1, 700];
const FEATURES = 37;
const INPUTS = 29;

/** Sparse values with exact zeros, -0, negatives and a few NaN and infinities. */
function sparse(rng: () => number, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const u = rng();
    if (u < 0.5) out[i] = u < 0.02 ? -0 : 0;
    else if (u < 0.501) out[i] = Number.NaN;
    else if (u < 0.502) out[i] = Infinity;
    else out[i] = (rng() < 0.2 ? -1 : 1) * (rng() * 3 + 1e-3);
  }
  return out;
}

function batches(components: number | undefined, seed: number): Batch[] {
  const rng = mulberry32(seed);
  const shape = (rows: number, f: number): number[] => (components === undefined ? [rows, f] : [rows, components, f]);
  const c = components ?? 1;
  return SIZES.map((rows, k) => {
    const source = Float32Array.from({ length: rows * c * INPUTS }, () => rng() * 2 - 1);
    const losses = (lo: number): Float32Array => Float32Array.from({ length: rows }, () => lo + rng());
    return {
      learnedActivations: tensor(sparse(rng, rows * c * FEATURES), shape(rows, FEATURES)),
      sourceActivations: tensor(source, shape(rows, INPUTS)),
      decodedActivations: tensor(source.map((v) => (rng() < 0.25 ? v : v + (rng() - 0.5) * 0.2)), shape(rows, INPUTS)),
      sourceModelLoss: tensor(losses(1), [rows]),
      sourceModelLossWithReconstruction: tensor(losses(2), [rows]),
      sourceModelLossWithZeroAblation: tensor(losses(5), [rows]),
      ...(k === 2 && c > 1 ? { componentIdx: 1 } : {}),
    };
  });
}

/** Every metric class, by name, for `components` components (undefined: no component axis). */
function metricsFor(components: number | undefined): Record<string, () => AnyMetric> {
  const n = components ?? 1;
  const withC = components === undefined ? {} : { numComponents: components };
  return {
    l1: () => new L1AbsoluteLoss({ numComponents: n }),
    l1Items: () => new L1AbsoluteLoss({ numComponents: n, keepBatchDim: true }),
    l2: () => new L2ReconstructionLoss({ numComponents: n }),
    l2Items: () => new L2ReconstructionLoss({ numComponents: n, keepBatchDim: true }),
    sae: () => new SparseAutoencoderLoss({ numComponents: n, l1Coefficient: 0.01 }),
    saeItems: () => new SparseAutoencoderLoss({ numComponents: n, keepBatchDim: true }),
    l0: () => new L0NormMetric(withC),
    dead: () => new NeuronActivityMetric({ numLearnedFeatures: FEATURES, ...withC, thresholdIsDeadPortionFires: 0.3 }),
    fired: () => new NeuronFiredCountMetric({ numLearnedFeatures: FEATURES, ...withC }),
    density: () => new FeatureDensityMetric({ numLearnedFeatures: FEATURES, ...withC }),
    score: () => new ReconstructionScoreMetric({ numComponents: n }),
    classwise: () => new ClasswiseWrapperWithMean(new L2ReconstructionLoss({ numComponents: n }), { prefix: 'l2' }),
  };
}

type Emissions = unknown[];

function run(target: MetricTarget, operator: (t: MetricTarget) => OperatorFunction<Batch, unknown>, stream: readonly Batch[]): Promise<Emissions> {
  return lastValueFrom(from(stream).pipe(operator(target), toArray()));
}

/** What each entry point gives for one target: running values after each batch, and each batch's own value. */
interface Results {
  readonly running: Emissions;
  readonly own: Emissions;
}

function viaClass(make: () => MetricTarget, stream: readonly Batch[]): Results {
  const updated = make();
  const forwarded = make();
  const running: Emissions = [];
  const own: Emissions = [];
  for (const b of stream) {
    updated.update(b);
    running.push(bits(updated.compute()));
    own.push(bits(forwarded.forward(b)));
  }
  expect(bits(forwarded.compute()), 'forward accumulates what update does').toEqual(running[running.length - 1]);
  return { running, own };
}

async function viaOperators(make: () => MetricTarget, stream: readonly Batch[], pool?: MetricPool): Promise<Results> {
  const options = pool === undefined ? undefined : { pool };
  const running = await run(make(), (t) => accumulateMetric(t, options), stream);
  const own = await run(make(), (t) => forwardMetric(t, options), stream);
  const last = await run(make(), (t) => reduceMetric(t, options), stream);
  expect(bits(last[0]), 'reduceMetric gives the last running value').toEqual(bits(running[running.length - 1]));
  const windows = await run(make(), (t) => computeEvery(t, { batches: 1 }, options), stream);
  expect(windows.map(bits), 'computeEvery({ batches: 1 }) gives each batch\'s own value').toEqual(own.map(bits));
  return { running: running.map(bits), own: own.map(bits) };
}

/** The results of the metric under `key` of collection results. */
function pick(results: Results, keys: readonly string[]): Results {
  const only = (e: unknown): unknown => Object.fromEntries(keys.map((k) => [k, (e as Record<string, unknown>)[k]]));
  return { running: results.running.map(only), own: results.own.map(only) };
}

describe.each([
  { name: 'rank 2', components: undefined, seed: 1 },
  { name: 'rank 3, 2 components', components: 2, seed: 2 },
])('every entry point gives the same bits ($name; batches of 2500, 1 and 700 rows)', ({ components, seed }) => {
  const stream = batches(components, seed);
  const makers = metricsFor(components);
  const pools: MetricPool[] = [];

  beforeAll(() => {
    pools.push(createMetricPool({ workers: 1 }), createMetricPool({ workers: 2 }));
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  it('the class path, the default operators and a default pool run the same backend and shard plan', () => {
    expect(defaultExecutor().backend).toBe('wasm');
    expect(defaultExecutor().shardRows).toBe(1024);
    for (const pool of pools) expect([pool.backend, pool.shardRows]).toEqual([defaultExecutor().backend, defaultExecutor().shardRows]);
  });

  for (const [name, make] of Object.entries(makers)) {
    it(`${name}: update, forward, the operators in-thread and on 1 and 2 workers`, async () => {
      const want = viaClass(make, stream);
      expect(await viaOperators(make, stream), 'in-thread operators').toEqual(want);
      for (const pool of pools) expect(await viaOperators(make, stream, pool), `${pool.workers} worker(s)`).toEqual(want);
    }, 30_000);
  }

  it('each metric alone and inside one collection of all of them (update, forward, operators, pool)', async () => {
    const all = (): MetricCollection => new MetricCollection(Object.fromEntries(Object.entries(makers).map(([k, m]) => [k, m()])));
    const together = viaClass(all, stream);
    expect(await viaOperators(all, stream), 'collection, in-thread operators').toEqual(together);
    expect(await viaOperators(all, stream, pools[1]), 'collection, 2 workers').toEqual(together);
    for (const [name, make] of Object.entries(makers)) {
      const alone = viaClass(make, stream);
      const keys = name === 'classwise' ? Object.keys((alone.running[0] as Record<string, unknown>)) : [name];
      const wrap = (r: Results): Results =>
        name === 'classwise' ? r : { running: r.running.map((v) => ({ [name]: v })), own: r.own.map((v) => ({ [name]: v })) };
      expect(pick(together, keys), `${name} in the collection`).toEqual(wrap(alone));
    }
  }, 60_000);

  it('CapacityMetric: update, forward and the in-thread operators (its compute is quadratic: small batches)', async () => {
    const small = stream.map((b, k) => {
      const t = b.learnedActivations as ReturnType<typeof tensor>;
      const rows = [3, 1, 5][k] as number;
      const width = t.data.length / (t.shape[0] as number);
      return { learnedActivations: tensor(t.data.slice(0, rows * width), [rows, ...t.shape.slice(1)]) };
    });
    const make = (): AnyMetric => new CapacityMetric();
    const want = viaClass(make, small);
    expect(await viaOperators(make, small)).toEqual(want);
    expect(await viaOperators(make, small, pools[0])).toEqual(want);
  });
});
