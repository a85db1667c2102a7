/**
 * The reconstruction-quality metrics through the pipeline: `accumulateMetric` and `forwardMetric`
 * give the same bits in-thread and through worker pools of 1, 2 and 4 workers (the same shard
 * plan and merge tree), for each metric alone and for a collection of all six with
 * `L2ReconstructionLoss` (which shares their read of source and decoded activations); the results
 * match the class path within 2e-6 (the pool's WebAssembly pass against the class path's chunked
 * one, which are the same bits, and both near float64).
 *
 * Also: a pool on the `js` backend (the JavaScript kernel in the workers) agrees with the wasm
 * one within 2e-6, and its own results are the same bits at 1 and 4 workers.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom, toArray, type OperatorFunction } from 'rxjs';
import {
  accumulateMetric,
  CosineSimilarity,
  createMetricPool,
  ExplainedVariance,
  forwardMetric,
  FractionOfVarianceUnexplained,
  L2Ratio,
  L2ReconstructionLoss,
  MetricCollection,
  NormalizedMse,
  RelativeReconstructionBias,
  Tensor,
  tensor,
} from '../../src/index.js';
import type { Batch, MetricOperatorOptions, MetricPool, MetricTarget } from '../../src/index.js';
import { mulberry32 } from '../support/random.js';

type Result = Tensor | Readonly<Record<string, Tensor>>;
const entriesOf = (r: Result): [string, Tensor][] => (r instanceof Tensor ? [['', r]] : Object.entries(r));
const bytesOf = (t: Tensor): string => Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex');

function expectIdentical(actual: readonly Result[], expected: readonly Result[], what: string): void {
  expect(actual.length, what).toBe(expected.length);
  expected.forEach((e, k) => {
    const a = entriesOf(actual[k] as Result);
    expect(a.map(([key]) => key), what).toEqual(entriesOf(e).map(([key]) => key));
    entriesOf(e).forEach(([key, t], i) => {
      const g = (a[i] as [string, Tensor])[1];
      expect([...g.shape], `${what} ${key}`).toEqual([...t.shape]);
      if (bytesOf(g) !== bytesOf(t)) expect.fail(`${what}: emission ${k} ${key} not bit-identical: ${Array.from(g.data).join(', ')} vs ${Array.from(t.data).join(', ')}`);
    });
  });
}

function expectClose(actual: readonly Result[], expected: readonly Result[], what: string): void {
  expect(actual.length, what).toBe(expected.length);
  expected.forEach((e, k) => {
    const a = entriesOf(actual[k] as Result);
    entriesOf(e).forEach(([key, t], i) => {
      const g = (a[i] as [string, Tensor])[1];
      for (let j = 0; j < t.data.length; j++) {
        const x = g.data[j] as number;
        const y = t.data[j] as number;
        const ok = Number.isFinite(y) ? Math.abs(x - y) <= 2e-6 * Math.max(1, Math.abs(y)) : Object.is(x, y) || (Number.isNaN(x) && Number.isNaN(y));
        if (!ok) expect.fail(`${what}: emission ${k} ${key}[${j}] = ${x}, expected ${y}`);
      }
    });
  });
}

/** Source with some zero vectors, decoded a noisy copy; `[rows, C, D]` or `[rows, D]`. */
function batches(seed: number, sizes: readonly number[], components: number | undefined, features: number): Batch[] {
  const rng = mulberry32(seed);
  return sizes.map((rows) => {
    const shape = components === undefined ? [rows, features] : [rows, components, features];
    const n = shape.reduce((a, b) => a * b, 1);
    const source = new Float32Array(n);
    const decoded = new Float32Array(n);
    for (let v = 0; v < n / features; v++) {
      const zero = rng() < 0.1;
      for (let f = 0; f < features; f++) {
        const i = v * features + f;
        source[i] = zero ? 0 : 50 + (rng() - 0.5) * 8;
        decoded[i] = rng() < 0.2 ? source[i] : (source[i] as number) * 0.9 + (rng() - 0.5);
      }
    }
    return { sourceActivations: tensor(source, shape), decodedActivations: tensor(decoded, shape) };
  });
}

function targets(n: number, d: number): [string, () => MetricTarget][] {
  const o = { numComponents: n };
  return [
    ['ExplainedVariance', () => new ExplainedVariance({ ...o, numFeatures: d })],
    ['FractionOfVarianceUnexplained', () => new FractionOfVarianceUnexplained({ ...o, numFeatures: d })],
    ['CosineSimilarity', () => new CosineSimilarity(o)],
    ['L2Ratio', () => new L2Ratio(o)],
    ['RelativeReconstructionBias', () => new RelativeReconstructionBias(o)],
    ['NormalizedMse', () => new NormalizedMse(o)],
    [
      'a collection of the six and L2ReconstructionLoss',
      () =>
        new MetricCollection({
          ev: new ExplainedVariance({ ...o, numFeatures: d }),
          fvu: new FractionOfVarianceUnexplained({ ...o, numFeatures: d }),
          cos: new CosineSimilarity(o),
          l2ratio: new L2Ratio(o),
          shrinkage: new RelativeReconstructionBias(o),
          nmse: new NormalizedMse(o),
          l2: new L2ReconstructionLoss(o),
        }),
    ],
  ];
}

type Op = (t: MetricTarget, o: MetricOperatorOptions) => OperatorFunction<Batch, Result>;
const OPS: [string, Op][] = [
  ['accumulateMetric', (t, o) => accumulateMetric(t, o) as OperatorFunction<Batch, Result>],
  ['forwardMetric', (t, o) => forwardMetric(t, o) as OperatorFunction<Batch, Result>],
];

const run = (op: Op, target: MetricTarget, bs: readonly Batch[], o: MetricOperatorOptions): Promise<Result[]> =>
  lastValueFrom(from(bs).pipe(op(target, o), toArray()));

interface ClassLike {
  update(b: Batch): void;
  forward(b: Batch): Result;
  compute(): Result;
}

const SCENARIOS = [
  { name: 'rank 3, 3 components of 5, batches of 300, 7, 1, 129', shardRows: 64, seed: 1, components: 3, features: 5, sizes: [300, 7, 1, 129] },
  { name: 'rank 2, 33 features, batches of 1, 13, 70', shardRows: 8, seed: 2, components: undefined, features: 33, sizes: [1, 13, 70] },
] as const;

for (const s of SCENARIOS) {
  describe(`${s.name}; shardRows ${s.shardRows}`, () => {
    const pools: MetricPool[] = [];
    let jsPools: MetricPool[] = [];
    beforeAll(() => {
      for (const workers of [1, 2, 4]) pools.push(createMetricPool({ workers, shardRows: s.shardRows }));
      jsPools = [1, 4].map((workers) => createMetricPool({ workers, shardRows: s.shardRows, backend: 'js' }));
    });
    afterAll(async () => {
      await Promise.all([...pools, ...jsPools].map((p) => p.close()));
    });
    const data = batches(s.seed, s.sizes, s.components, s.features);
    for (const [name, make] of targets(s.components ?? 1, s.features)) {
      it(`${name}: the same bits in-thread and on 1, 2 and 4 workers; near the class path and the js backend`, async () => {
        for (const [opName, op] of OPS) {
          const what = `${name} / ${opName}`;
          const inThread = await run(op, make(), data, { shardRows: s.shardRows });
          const viaPools = await Promise.all(pools.map((pool) => run(op, make(), data, { pool })));
          viaPools.forEach((got, i) => expectIdentical(got, inThread, `${what}: ${[1, 2, 4][i]} worker(s) vs in-thread`));
          const metric = make() as unknown as ClassLike;
          const plain = opName === 'forwardMetric' ? data.map((b) => metric.forward(b)) : data.map((b) => (metric.update(b), metric.compute()));
          expectClose(inThread, plain, `${what}: in-thread vs class path`);
          const [js1, js4] = await Promise.all(jsPools.map((pool) => run(op, make(), data, { pool })));
          expectIdentical(js4 as Result[], js1 as Result[], `${what}: js backend, 4 workers vs 1`);
          expectClose(js1 as Result[], inThread, `${what}: js backend vs wasm`);
        }
      }, 30_000);
    }
  });
}
