import { lastValueFrom, take, tap, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  L1AbsoluteLoss,
  accumulateMetric,
  createMetricPool,
  fromBatches,
  tensor,
  type Batch,
  type MetricPool,
} from '../../src/index.js';

const batch = (i: number): Batch => ({ learnedActivations: tensor([[i, -1, 0]]) });
/** L1 after batches 0..k-1 of `batch`: mean over k vectors of (i + 1). */
const expectedL1 = (k: number): number => Array.from({ length: k }, (_, i) => i + 1).reduce((a, b) => a + b, 0) / k;

let pool: MetricPool;
beforeAll(() => {
  pool = createMetricPool({ workers: 2, shardRows: 1, maxInFlight: 2 });
});
afterAll(async () => {
  await pool.close();
});

describe('fromBatches', () => {
  it('emits a sync iterable in order, in-thread, and completes', async () => {
    const values = await lastValueFrom(
      fromBatches([0, 1, 2, 3].map(batch)).pipe(accumulateMetric(new L1AbsoluteLoss()), toArray()),
    );
    expect(values.map((v) => v.item())).toEqual([1, 2, 3, 4].map(expectedL1));
  });

  it('pulls an async generator only when the pool has a free slot', async () => {
    // Every batch in memory is either in the pool (dispatched or queued) or the one being made:
    // when the producer is asked for a batch, the pool must have room for it.
    let maxLoadWhenPulled = 0;
    async function* source(): AsyncGenerator<Batch> {
      for (let i = 0; i < 12; i++) {
        maxLoadWhenPulled = Math.max(maxLoadWhenPulled, pool.inFlight + pool.queued);
        yield batch(i);
      }
    }
    const values = await lastValueFrom(
      fromBatches(source(), { pool }).pipe(accumulateMetric(new L1AbsoluteLoss(), { pool }), toArray()),
    );
    expect(values.map((v) => v.item())).toEqual(Array.from({ length: 12 }, (_, k) => expectedL1(k + 1)));
    expect(maxLoadWhenPulled).toBeLessThan(pool.maxInFlight);
    expect(pool.peakInFlight).toBe(pool.maxInFlight);
    expect(pool.inFlight + pool.queued).toBe(0);
  });

  it('lets a pushing source queue batches in the pool, which still dispatches at most maxInFlight', async () => {
    const batches = Array.from({ length: 12 }, (_, i) => batch(i));
    let maxQueued = 0;
    const values = await lastValueFrom(
      fromBatches(batches).pipe(
        tap(() => (maxQueued = Math.max(maxQueued, pool.queued))),
        accumulateMetric(new L1AbsoluteLoss(), { pool }),
        toArray(),
      ),
    );
    expect(values.map((v) => v.item())).toEqual(Array.from({ length: 12 }, (_, k) => expectedL1(k + 1)));
    expect(maxQueued).toBeGreaterThan(0);
    expect(pool.peakInFlight).toBeLessThanOrEqual(pool.maxInFlight);
  });

  it('stops the iterator when the subscriber unsubscribes', async () => {
    let returned = false;
    function* endless(): Generator<Batch> {
      try {
        for (let i = 0; ; i++) yield batch(i);
      } finally {
        returned = true;
      }
    }
    const values = await lastValueFrom(fromBatches(endless()).pipe(take(3), toArray()));
    expect(values).toHaveLength(3);
    expect(returned).toBe(true);
  });

  it('passes an error thrown by the producer to the subscriber', async () => {
    async function* failing(): AsyncGenerator<Batch> {
      yield batch(0);
      throw new Error('disk read failed');
    }
    await expect(lastValueFrom(fromBatches(failing(), { pool }))).rejects.toThrow('disk read failed');
  });

  it('checks its arguments when created', () => {
    expect(() => fromBatches(5 as never)).toThrow(
      new TypeError('fromBatches: batches must be an iterable or async iterable, got 5'),
    );
    expect(() => fromBatches([], { pool: {} as never })).toThrow(
      new TypeError('fromBatches: options.pool must be a MetricPool, got an object'),
    );
  });
});
