/**
 * Determinism of the pipeline: for every metric, the four operators (`accumulateMetric`,
 * `forwardMetric`, `reduceMetric`, `computeEvery`) give the same bits in-thread and through worker
 * pools of 1, 2 and 4 workers at the same shardRows (same shard plan, same merge tree), and those
 * results match the plain class path (`update(b)` / `forward(b)` per batch, no sharding).
 *
 * - Data: seeded PRNG (mulberry32); sparse activations with exact zeros (a few -0) and negatives;
 *   rank 2 and rank 3 with 1 to 3 components; batches of odd sizes (1, 7, 13, 129, 300, 1000, 2500
 *   rows); shardRows 1, 64 and 1024 (pools of 1, 2 and 4 workers each), and 256 (the shuffling pool).
 * - Targets: all nine metric classes (the three losses with keepBatchDim false and true), two
 *   ClasswiseWrapperWithMean, and a MetricCollection of the SAE set (SparseAutoencoderLoss,
 *   L1AbsoluteLoss, L2ReconstructionLoss, L0NormMetric, FeatureDensityMetric, NeuronActivityMetric).
 * - Bit-identical: same emissions, same keys in the same order, same dtype and shape, and the same
 *   bytes of every Float64Array (so NaN payloads and -0 count too).
 * - Against the class path: dtype, shape and keys equal; int64 counts exactly; float64 within
 *   |actual - expected| <= 1e-6 * |expected| (the operators run the pool's backend, by default
 *   the WebAssembly pass, which sums blocks of float32 values carried into float64; NaN only
 *   where NaN); per-vector values (keepBatchDim) in arrival order.
 * - Out of order: a fixture worker (test/fixtures/equivalence-shuffle.ts) delays each shard by a
 *   pseudo-random amount derived from (batchIndex, shardIndex), so shards and batches complete out
 *   of order (checked from the completions it announces); results are still bit-identical to
 *   in-thread, and per-vector values still come in arrival order.
 *
 * Pools are created once per shardRows group in beforeAll and closed in afterAll (a pool's shardRows
 * is fixed, and each worker thread costs a few hundred ms to start under tsx).
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { from, lastValueFrom, toArray, type OperatorFunction } from 'rxjs';
import {
  accumulateMetric,
  forwardMetric,
  reduceMetric,
  computeEvery,
  createMetricPool,
  tensor,
  Tensor,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  SparseAutoencoderLoss,
  L0NormMetric,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  FeatureDensityMetric,
  CapacityMetric,
  ReconstructionScoreMetric,
  ClasswiseWrapperWithMean,
  MetricCollection,
} from '../../src/index.js';
import type { Batch, MetricPool, MetricTarget, MetricOperatorOptions } from '../../src/index.js';
import { SHUFFLE_CHANNEL, shuffleDelayMs, type ShuffleCompletion } from '../fixtures/equivalence-shuffle.js';
import { mulberry32 } from '../support/random.js';

// ---------------------------------------------------------------------------------------------
// Results and comparisons

type Result = Tensor | Readonly<Record<string, Tensor>>;

/** A result as (key, tensor) pairs, in key order as produced ('' for a lone tensor). */
function entriesOf(r: Result): [string, Tensor][] {
  return r instanceof Tensor ? [['', r]] : Object.entries(r);
}

function bytesOf(t: Tensor): Buffer {
  return Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

/** Same emissions, keys (in order), dtypes, shapes and bytes. */
function expectIdentical(actual: readonly Result[], expected: readonly Result[], label: string): void {
  expect(actual.length, `${label}: number of emissions`).toBe(expected.length);
  expected.forEach((want, k) => {
    const got = actual[k] as Result;
    const a = entriesOf(got);
    const e = entriesOf(want);
    expect(a.map(([key]) => key), `${label}: emission ${k} keys`).toEqual(e.map(([key]) => key));
    e.forEach(([key, w], i) => {
      const g = (a[i] as [string, Tensor])[1];
      const where = `${label}: emission ${k}${key ? ` [${key}]` : ''}`;
      expect(g.dtype, `${where} dtype`).toBe(w.dtype);
      expect([...g.shape], `${where} shape`).toEqual([...w.shape]);
      if (!bytesOf(g).equals(bytesOf(w))) {
        const j = g.data.findIndex((v, m) => !Object.is(v, w.data[m]));
        expect.fail(`${where}: not bit-identical at element ${j}: ${g.data[j]} vs ${w.data[j]}`);
      }
    });
  });
}

/** The WebAssembly pass's bound: blocks of at most 16 non-negative float32 terms per lane (15u). */
const REL_TOL = 1e-6;

/**
 * Same emissions, keys, dtypes and shapes; int64 exactly; float64 within REL_TOL relative (NaN
 * only where NaN). Per-vector values (`exact`) too are compared within REL_TOL: the class path
 * runs the plain JavaScript kernel in float64 and the operators the pool's backend (the fused
 * WebAssembly pass by default here, float32 blocks carried into float64); their order is still
 * pinned, since neighbouring vectors' values differ by far more than REL_TOL.
 */
function expectClose(actual: readonly Result[], expected: readonly Result[], _perVector: boolean, label: string): void {
  expect(actual.length, `${label}: number of emissions`).toBe(expected.length);
  expected.forEach((want, k) => {
    const a = entriesOf(actual[k] as Result);
    const e = entriesOf(want);
    expect(a.map(([key]) => key), `${label}: emission ${k} keys`).toEqual(e.map(([key]) => key));
    e.forEach(([key, w], i) => {
      const g = (a[i] as [string, Tensor])[1];
      const where = `${label}: emission ${k}${key ? ` [${key}]` : ''}`;
      expect(g.dtype, `${where} dtype`).toBe(w.dtype);
      expect([...g.shape], `${where} shape`).toEqual([...w.shape]);
      const bad: string[] = [];
      for (let j = 0; j < w.data.length; j++) {
        const x = g.data[j] as number;
        const y = w.data[j] as number;
        let ok: boolean;
        if (Number.isNaN(y)) ok = Number.isNaN(x);
        else if (w.dtype === 'int64') ok = Object.is(x, y);
        else ok = Math.abs(x - y) <= REL_TOL * Math.abs(y);
        if (!ok && bad.length < 3) bad.push(`[${j}] ${x} vs ${y}`);
      }
      expect(bad, `${where} values`).toEqual([]);
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Seeded data

type Rng = () => number;

/** ReLU-like sparse values: about half exactly zero (a few -0), a fifth of the rest negative. */
function sparse(rng: Rng, n: number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    if (rng() < 0.5) out[i] = rng() < 0.05 ? -0 : 0;
    else out[i] = (rng() < 0.2 ? -1 : 1) * (rng() * 3 + 1e-3);
  }
  return out;
}

/** `base` plus noise, exactly equal at about a quarter of the elements. */
function noisy(rng: Rng, base: Float32Array): Float32Array {
  return base.map((v) => (rng() < 0.25 ? v : v + (rng() - 0.5) * 2));
}

/** Shape of `rows` activation vectors: `[rows, F]`, or `[rows, C, F]` with a component axis. */
function shapeOf(rows: number, components: number | undefined, features: number): number[] {
  return components === undefined ? [rows, features] : [rows, components, features];
}

interface Scenario {
  readonly name: string;
  readonly seed: number;
  readonly shardRows: number;
  /** Undefined: rank 2 (no component axis). */
  readonly components: number | undefined;
  /** Learned features. */
  readonly features: number;
  /** Source / decoded features. */
  readonly inputFeatures: number;
  /** Rows of each batch. */
  readonly sizes: readonly number[];
  /** Rows of each batch for CapacityMetric (its compute is quadratic in all rows seen). */
  readonly capacitySizes: readonly number[];
}

interface Streams {
  readonly activations: Batch[];
  readonly capacity: Batch[];
  readonly recon: Batch[];
}

function activationBatch(rng: Rng, s: Scenario, rows: number): Batch {
  const learnedShape = shapeOf(rows, s.components, s.features);
  const inputShape = shapeOf(rows, s.components, s.inputFeatures);
  const learned = sparse(rng, learnedShape.reduce((a, b) => a * b, 1));
  const source = sparse(rng, inputShape.reduce((a, b) => a * b, 1));
  return {
    learnedActivations: tensor(learned, learnedShape),
    sourceActivations: tensor(source, inputShape),
    decodedActivations: tensor(noisy(rng, source), inputShape),
  };
}

/** Losses per item: source in [1, 2), with reconstruction in [2, 3), zero-ablated in [5, 6). */
function reconBatch(rng: Rng, rows: number, componentIdx: number | undefined): Batch {
  const make = (lo: number): Tensor<'float32'> => tensor(Float32Array.from({ length: rows }, () => lo + rng()), [rows]);
  const batch: Batch = {
    sourceModelLoss: make(1),
    sourceModelLossWithReconstruction: make(2),
    sourceModelLossWithZeroAblation: make(5),
  };
  return componentIdx === undefined ? batch : { ...batch, componentIdx };
}

function streamsOf(s: Scenario): Streams {
  const rng = mulberry32(s.seed);
  const n = s.components ?? 1;
  return {
    activations: s.sizes.map((rows) => activationBatch(rng, s, rows)),
    capacity: s.capacitySizes.map((rows) => activationBatch(rng, s, rows)),
    // componentIdx cycles through undefined, then -n .. n-1 (negative counts from the end)
    recon: s.sizes.map((rows, k) => reconBatch(rng, rows, k % (2 * n + 1) === 0 ? undefined : (k % (2 * n + 1)) - 1 - n)),
  };
}

// ---------------------------------------------------------------------------------------------
// Targets

interface TargetCase {
  readonly name: string;
  readonly make: () => MetricTarget;
  readonly stream: keyof Streams;
  /** Per-vector values (keepBatchDim): compared with the class path in arrival order. */
  readonly perVector: boolean;
}

function targetsOf(s: Scenario): TargetCase[] {
  const n = s.components ?? 1;
  const withC = s.components === undefined ? {} : { numComponents: s.components };
  const F = s.features;
  const names = Array.from({ length: n }, (_, i) => `c${i}`);
  const t = (name: string, make: () => MetricTarget, stream: keyof Streams = 'activations', perVector = false): TargetCase => ({
    name,
    make,
    stream,
    perVector,
  });
  return [
    t('L1AbsoluteLoss', () => new L1AbsoluteLoss({ numComponents: n })),
    t('L1AbsoluteLoss keepBatchDim', () => new L1AbsoluteLoss({ numComponents: n, keepBatchDim: true }), 'activations', true),
    t('L2ReconstructionLoss', () => new L2ReconstructionLoss({ numComponents: n })),
    t('L2ReconstructionLoss keepBatchDim', () => new L2ReconstructionLoss({ numComponents: n, keepBatchDim: true }), 'activations', true),
    t('SparseAutoencoderLoss', () => new SparseAutoencoderLoss({ numComponents: n, l1Coefficient: 0.01 })),
    t(
      'SparseAutoencoderLoss keepBatchDim',
      () => new SparseAutoencoderLoss({ numComponents: n, l1Coefficient: 0.01, keepBatchDim: true }),
      'activations',
      true,
    ),
    t('L0NormMetric', () => new L0NormMetric(withC)),
    t('NeuronActivityMetric', () => new NeuronActivityMetric({ numLearnedFeatures: F, ...withC, thresholdIsDeadPortionFires: 0.3 })),
    t('NeuronFiredCountMetric', () => new NeuronFiredCountMetric({ numLearnedFeatures: F, ...withC })),
    t('FeatureDensityMetric', () => new FeatureDensityMetric({ numLearnedFeatures: F, ...withC })),
    t('CapacityMetric', () => new CapacityMetric(), 'capacity'),
    t('ReconstructionScoreMetric', () => new ReconstructionScoreMetric({ numComponents: n }), 'recon'),
    t(
      'ClasswiseWrapperWithMean(L2ReconstructionLoss)',
      () => new ClasswiseWrapperWithMean(new L2ReconstructionLoss({ numComponents: n }), { componentNames: names }),
    ),
    t(
      'ClasswiseWrapperWithMean(NeuronFiredCountMetric)',
      () => new ClasswiseWrapperWithMean(new NeuronFiredCountMetric({ numLearnedFeatures: F, ...withC }), { prefix: 'fired' }),
    ),
    t(
      'MetricCollection of the SAE set',
      () =>
        new MetricCollection({
          loss: new SparseAutoencoderLoss({ numComponents: n, l1Coefficient: 0.01 }),
          l1: new L1AbsoluteLoss({ numComponents: n }),
          l2: new L2ReconstructionLoss({ numComponents: n }),
          l0: new L0NormMetric(withC),
          density: new FeatureDensityMetric({ numLearnedFeatures: F, ...withC }),
          activity: new NeuronActivityMetric({ numLearnedFeatures: F, ...withC }),
        }),
    ),
  ];
}

// ---------------------------------------------------------------------------------------------
// Operators, and the class path each one is compared with

/** The class API the plain path uses (a Metric or a MetricCollection). */
interface ClassPath {
  update(batch: Batch): void;
  forward(batch: Batch): Result;
  compute(): Result;
  reset(): void;
}

function rowsOf(batch: Batch): number {
  const t = (batch.learnedActivations ?? batch.sourceModelLoss) as Tensor;
  return t.shape[0] as number;
}

interface OperatorCase {
  readonly name: string;
  readonly operator: (target: MetricTarget, options: MetricOperatorOptions) => OperatorFunction<Batch, Result>;
  readonly classPath: (metric: ClassPath, batches: readonly Batch[]) => Result[];
}

function windowed(metric: ClassPath, batches: readonly Batch[], size: (b: Batch) => number, window: number, partial: boolean): Result[] {
  const out: Result[] = [];
  let seen = 0;
  for (const b of batches) {
    metric.update(b);
    seen += size(b);
    if (seen >= window) {
      out.push(metric.compute());
      metric.reset();
      seen = 0;
    }
  }
  if (partial && seen > 0) out.push(metric.compute());
  return out;
}

/** The operators, with computeEvery's vector window at about a third of the stream's rows. */
function operatorsFor(batches: readonly Batch[]): OperatorCase[] {
  const vectors = Math.max(2, Math.round(batches.reduce((n, b) => n + rowsOf(b), 0) / 3));
  return [
    {
      name: 'accumulateMetric',
      operator: (t, o) => accumulateMetric(t, o) as OperatorFunction<Batch, Result>,
      classPath: (m, bs) =>
        bs.map((b) => {
          m.update(b);
          return m.compute();
        }),
    },
    {
      name: 'forwardMetric',
      operator: (t, o) => forwardMetric(t, o) as OperatorFunction<Batch, Result>,
      classPath: (m, bs) => bs.map((b) => m.forward(b)),
    },
    {
      name: 'reduceMetric',
      operator: (t, o) => reduceMetric(t, o) as OperatorFunction<Batch, Result>,
      classPath: (m, bs) => {
        for (const b of bs) m.update(b);
        return [m.compute()];
      },
    },
    {
      name: 'computeEvery({ batches: 2 }, { emitPartial: true })',
      operator: (t, o) => computeEvery(t, { batches: 2 }, { ...o, emitPartial: true }) as OperatorFunction<Batch, Result>,
      classPath: (m, bs) => windowed(m, bs, () => 1, 2, true),
    },
    {
      name: `computeEvery({ vectors: ${vectors} })`,
      operator: (t, o) => computeEvery(t, { vectors }, o) as OperatorFunction<Batch, Result>,
      classPath: (m, bs) => windowed(m, bs, rowsOf, vectors, false),
    },
  ];
}

function run(op: OperatorCase, target: MetricTarget, batches: readonly Batch[], options: MetricOperatorOptions): Promise<Result[]> {
  return lastValueFrom(from(batches).pipe(op.operator(target, options), toArray()));
}

// ---------------------------------------------------------------------------------------------
// Scenarios: every target x operator x executor

/** Scenarios grouped by shardRows: each group shares one pool of 1, 2 and 4 workers. */
const GROUPS: readonly { readonly shardRows: number; readonly scenarios: readonly Scenario[] }[] = [
  {
    shardRows: 1,
    scenarios: [
      {
        name: 'rank 2 (no component axis)',
        seed: 11,
        shardRows: 1,
        components: undefined,
        features: 5,
        inputFeatures: 4,
        sizes: [1, 7, 13, 2],
        capacitySizes: [7, 1, 13],
      },
    ],
  },
  {
    shardRows: 64,
    scenarios: [
      {
        name: 'rank 3 with 2 components',
        seed: 22,
        shardRows: 64,
        components: 2,
        features: 7,
        inputFeatures: 5,
        sizes: [7, 300, 1, 129],
        capacitySizes: [7, 129, 1],
      },
      {
        name: 'rank 3 with 3 components',
        seed: 33,
        shardRows: 64,
        components: 3,
        features: 6,
        inputFeatures: 4,
        sizes: [1000, 7, 300, 1],
        capacitySizes: [300, 7, 1],
      },
    ],
  },
  {
    shardRows: 1024,
    scenarios: [
      {
        name: 'rank 3 with 1 component',
        seed: 44,
        shardRows: 1024,
        components: 1,
        features: 8,
        inputFeatures: 6,
        sizes: [2500, 1, 1000],
        capacitySizes: [1, 300, 7],
      },
    ],
  },
];

const WORKERS = [1, 2, 4] as const;

for (const group of GROUPS) {
  describe(`shardRows ${group.shardRows}, pools of 1, 2 and 4 workers`, () => {
    const pools: MetricPool[] = [];

    beforeAll(() => {
      for (const workers of WORKERS) pools.push(createMetricPool({ workers, shardRows: group.shardRows }));
    });
    afterAll(async () => {
      await Promise.all(pools.map((p) => p.close()));
    });

    for (const scenario of group.scenarios) {
      describe(`${scenario.name}, batches of ${scenario.sizes.join(', ')} rows`, () => {
        const streams = streamsOf(scenario);
        for (const target of targetsOf(scenario)) {
          it(`${target.name}: every operator gives the same bits in-thread and on 1, 2 and 4 workers, and matches the class path`, async () => {
            const batches = streams[target.stream];
            expect(pools.map((p) => [p.workers, p.shardRows])).toEqual(WORKERS.map((w) => [w, scenario.shardRows]));
            for (const op of operatorsFor(batches)) {
              const label = `${target.name} / ${op.name}`;
              const metric = target.make();
              const inThread = await run(op, metric, batches, { shardRows: scenario.shardRows });
              const viaPools = await Promise.all(pools.map((pool) => run(op, metric, batches, { pool })));
              viaPools.forEach((got, i) => expectIdentical(got, inThread, `${label}: ${WORKERS[i]} worker(s) vs in-thread`));
              const plain = op.classPath(target.make() as unknown as ClassPath, batches);
              expect(plain.length, `${label}: the class path emits`).toBeGreaterThan(0);
              expectClose(inThread, plain, target.perVector, `${label}: in-thread vs class path`);
            }
          }, 20_000);
        }
      });
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Shards and batches completing out of order

describe('shards and batches completing out of order (fixture worker equivalence-shuffle, 4 workers, shardRows 256)', () => {
  const SHUFFLE = fileURLToPath(new URL('../fixtures/equivalence-shuffle.ts', import.meta.url));
  const scenario: Scenario = {
    name: 'shuffle',
    seed: 55,
    shardRows: 256,
    components: 2,
    features: 6,
    inputFeatures: 5,
    sizes: [1000, 7, 300, 513, 1, 64],
    capacitySizes: [260, 7, 129, 1],
  };
  // shards per batch: 4, 1, 2, 3, 1, 1
  const TASKS = scenario.sizes.reduce((n, rows) => n + Math.ceil(rows / scenario.shardRows), 0);
  const streams = streamsOf(scenario);
  let pool: MetricPool;
  let channel: BroadcastChannel;
  const completions: ShuffleCompletion[] = [];

  beforeAll(() => {
    pool = createMetricPool({ workers: 4, shardRows: scenario.shardRows, filename: SHUFFLE });
    channel = new BroadcastChannel(SHUFFLE_CHANNEL);
    channel.onmessage = (event) => completions.push(event.data as ShuffleCompletion);
  });
  afterAll(async () => {
    channel.close();
    await pool.close();
  });

  it('the fixture really completes shards, and batches, out of order', async () => {
    // the delays are a fixed function of (batchIndex, shardIndex) and not all equal
    const delays = scenario.sizes.flatMap((rows, b) =>
      Array.from({ length: Math.ceil(rows / scenario.shardRows) }, (_, s) => shuffleDelayMs(b, s)),
    );
    expect(new Set(delays).size).toBeGreaterThan(2);
    completions.length = 0;
    const metric = new L1AbsoluteLoss({ numComponents: 2, keepBatchDim: true });
    const accumulate = operatorsFor(streams.activations)[0] as OperatorCase;
    const got = await run(accumulate, metric, streams.activations, { pool });
    const deadline = Date.now() + 10_000;
    while (completions.length < TASKS && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    expect(completions.length).toBe(TASKS);
    expect(new Set(completions.map((c) => `${c.batchIndex}/${c.shardIndex}`)).size).toBe(TASKS);
    const order = [...completions].sort((a, b) => a.at - b.at);
    const dispatch = (c: ShuffleCompletion): number => c.batchIndex * 1000 + c.shardIndex;
    const shardInversions = order.filter((c, i) => i > 0 && dispatch(c) < dispatch(order[i - 1] as ShuffleCompletion));
    expect(shardInversions.length, 'some shard finished before one dispatched earlier').toBeGreaterThan(0);
    const lastOfBatch = (b: number): number => Math.max(...order.filter((c) => c.batchIndex === b).map((c) => c.at));
    const batchOvertakes = order.filter((c) => c.batchIndex > 0 && c.at < lastOfBatch(c.batchIndex - 1));
    expect(batchOvertakes.length, 'some batch had a shard done before the previous batch was').toBeGreaterThan(0);
    // and the result is still the in-thread one, in arrival order
    expectIdentical(got, await run(accumulate, metric, streams.activations, { shardRows: scenario.shardRows }), 'L1 keepBatchDim');
  });

  it('keepBatchDim values come out in arrival order: vector g, component c has L1 2g + c + 1 (hand-computed), whatever order shards finish in', async () => {
    // learnedActivations[g, c] = [-(2g + c + 1), 0, 0] for the g-th vector of the whole stream
    let g0 = 0;
    const batches: Batch[] = scenario.sizes.map((rows) => {
      const data = new Float32Array(rows * 2 * 3);
      for (let r = 0; r < rows; r++) for (let c = 0; c < 2; c++) data[(r * 2 + c) * 3] = -(2 * (g0 + r) + c + 1);
      g0 += rows;
      return { learnedActivations: tensor(data, [rows, 2, 3]) };
    });
    /** The expected per-vector values of vectors [from, to) of the stream, shape [to - from, 2]. */
    const expected = (fromVector: number, toVector: number): number[] =>
      Array.from({ length: (toVector - fromVector) * 2 }, (_, i) => 2 * fromVector + i + 1);
    const metric = new L1AbsoluteLoss({ numComponents: 2, keepBatchDim: true });
    const [accumulated, forwarded] = await Promise.all([
      lastValueFrom(from(batches).pipe(accumulateMetric(metric, { pool }), toArray())),
      lastValueFrom(from(batches).pipe(forwardMetric(metric, { pool }), toArray())),
    ]);
    let seen = 0;
    scenario.sizes.forEach((rows, k) => {
      const acc = accumulated[k] as Tensor;
      const fwd = forwarded[k] as Tensor;
      expect([...acc.shape], `accumulated shape after batch ${k}`).toEqual([seen + rows, 2]);
      expect([...acc.data], `accumulated values after batch ${k}`).toEqual(expected(0, seen + rows));
      expect([...fwd.shape], `forward shape of batch ${k}`).toEqual([rows, 2]);
      expect([...fwd.data], `forward values of batch ${k}`).toEqual(expected(seen, seen + rows));
      seen += rows;
    });
  });

  for (const target of targetsOf(scenario)) {
    it(`${target.name}: every operator gives the same bits as in-thread${target.perVector ? ', per-vector values in arrival order (as the class path)' : ''}`, async () => {
      const batches = streams[target.stream];
      for (const op of operatorsFor(batches)) {
        const label = `${target.name} / ${op.name}`;
        const metric = target.make();
        const shuffled = await run(op, metric, batches, { pool });
        const inThread = await run(op, metric, batches, { shardRows: scenario.shardRows });
        expectIdentical(shuffled, inThread, `${label}: shuffled pool vs in-thread`);
        if (target.perVector) {
          expectClose(shuffled, op.classPath(target.make() as unknown as ClassPath, batches), true, `${label}: shuffled pool vs class path`);
        }
      }
    }, 20_000);
  }
});
