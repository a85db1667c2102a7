/**
 * A batch's `componentIdx` and `firstVectorIndex` reach the workers only as numbers: a value that
 * cannot cross a thread boundary (a function, a symbol, an object with methods), on a batch whose
 * metrics do not read it, is ignored through the pool as it is in-thread, instead of failing the
 * batch with a WorkerError that blames a worker. Metrics that read it refuse it before any task is
 * dispatched, with their own message, in-thread and through the pool alike.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom } from 'rxjs';
import { createMetricPool, L1AbsoluteLoss, NeuronFiredCountMetric, reduceMetric, tensor, TopActivations, type MetricPool } from '../../src/index.js';
import { bits } from '../support/compare.js';

const EXTRAS: [string, Record<string, unknown>][] = [
  ['componentIdx: a function', { componentIdx: () => 0 }],
  ['componentIdx: a symbol', { componentIdx: Symbol('c') }],
  ['firstVectorIndex: a function', { firstVectorIndex: () => 1 }],
  ['firstVectorIndex: an object with valueOf', { firstVectorIndex: { valueOf: () => 3 } }],
];

describe('batch extras that cannot be cloned', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 1, shardRows: 4, backend: 'wasm' });
  });
  afterAll(async () => {
    await pool.close();
  }, 20_000);

  const learnedActivations = tensor(Float32Array.from({ length: 40 }, (_, i) => (i % 3) / 2), [8, 5]);
  for (const [name, extra] of EXTRAS) {
    it(`${name}: ignored by metrics that do not read it, through the pool as in-thread`, async () => {
      for (const metric of [() => new L1AbsoluteLoss(), () => new NeuronFiredCountMetric({ numLearnedFeatures: 5 })]) {
        const batch = { learnedActivations, ...extra } as never;
        const expected = bits(await lastValueFrom(from([batch]).pipe(reduceMetric(metric(), { shardRows: 4, backend: 'wasm' }))));
        expect(bits(await lastValueFrom(from([batch]).pipe(reduceMetric(metric(), { pool }))))).toEqual(expected);
      }
    });
  }

  it('firstVectorIndex that is not a number: refused by TopActivations before dispatch, in-thread and through the pool alike', async () => {
    const batch = { learnedActivations, firstVectorIndex: () => 1 } as never;
    const top = () => new TopActivations({ numLearnedFeatures: 5, k: 2 });
    const inThread = lastValueFrom(from([batch]).pipe(reduceMetric(top(), { shardRows: 4 })));
    const pooled = lastValueFrom(from([batch]).pipe(reduceMetric(top(), { pool })));
    await expect(inThread).rejects.toThrow(/^TopActivations: firstVectorIndex must be a non-negative integer below 2\^53/);
    await expect(pooled).rejects.toThrow(/^TopActivations: firstVectorIndex must be a non-negative integer below 2\^53/);
  });
});
