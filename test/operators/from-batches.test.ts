import { lastValueFrom, Subject, take, tap, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  L1AbsoluteLoss,
  accumulateMetric,
  createMetricPool,
  fromBatches,
  reduceMetric,
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

  it('several fromBatches streams on one pool all complete: a producer that finds its source done keeps no other waiting', async () => {
    // One slot: x and y each push a batch, then both wait for room. When y's batch is done, both
    // may go; x finds its source done and pushes nothing, so y must not be left waiting.
    const one = createMetricPool({ workers: 1, maxInFlight: 1 });
    try {
      const run = (i: number) => lastValueFrom(fromBatches([batch(i)], { pool: one }).pipe(accumulateMetric(new L1AbsoluteLoss(), { pool: one }), toArray()));
      const all = await Promise.race([Promise.all([run(0), run(1), run(2)]), new Promise<'hung'>((resolve) => setTimeout(() => resolve('hung'), 10_000))]);
      expect(all).not.toBe('hung');
      expect((all as { item(): number }[][]).map((values) => values.map((v) => v.item()))).toEqual([[1], [2], [3]]);
    } finally {
      await one.close();
    }
  }, 20_000);

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

  it('unsubscribing does not throw when the generator throws as it stops, with a pool or without', async () => {
    function* throwsOnReturn(): Generator<Batch> {
      try {
        for (let i = 0; ; i++) yield batch(i);
      } finally {
        // eslint-disable-next-line no-unsafe-finally
        throw new Error('cleanup failed');
      }
    }
    // In-thread, a synchronous iterable is drained inside subscribe: unsubscribed from downstream.
    expect(() => fromBatches(throwsOnReturn()).pipe(take(2)).subscribe()).not.toThrow();
    let values = 0;
    const subscription = fromBatches(throwsOnReturn(), { pool })
      .pipe(accumulateMetric(new L1AbsoluteLoss(), { pool }))
      .subscribe({ next: () => values++ });
    while (values < 2) await new Promise((resolve) => setTimeout(resolve, 1));
    expect(() => subscription.unsubscribe()).not.toThrow();
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

describe('a pushing source that outruns the pool', () => {
  const ROWS = 128;
  const FEATURES = 256; // 128 KiB a batch
  const BYTES = ROWS * FEATURES * 4;
  const wide = (i: number): Batch => ({ learnedActivations: tensor(new Float32Array(ROWS * FEATURES).fill(i + 1), [ROWS, FEATURES]) });
  let small: MetricPool;
  const warnings: Error[] = [];
  const onWarning = (w: Error): void => {
    warnings.push(w);
  };
  beforeAll(() => {
    small = createMetricPool({ workers: 1, maxInFlight: 1, maxQueuedBytes: 8 * BYTES });
    process.on('warning', onWarning);
  });
  afterAll(async () => {
    process.off('warning', onWarning);
    await small.close();
  });
  const queueWarnings = (): Error[] => warnings.filter((w) => (w as { code?: string }).code === 'SAE_METRICS_POOL_QUEUE');

  it('is told once, by a warning that names fromBatches, when the batches waiting pass half of maxQueuedBytes', async () => {
    for (let stream = 0; stream < 2; stream++) {
      const subject = new Subject<Batch>();
      const result = lastValueFrom(subject.pipe(accumulateMetric(new L1AbsoluteLoss(), { pool: small }), toArray()));
      for (let i = 0; i < 7; i++) subject.next(wide(i)); // one dispatched, six waiting: 768 KiB > 512 KiB
      expect(small.queued).toBe(6);
      expect(small.queuedBytes).toBe(6 * BYTES);
      subject.complete();
      const values = await result;
      expect(values.map((v) => v.item())).toEqual(Array.from({ length: 7 }, (_, k) => (FEATURES * (k + 2)) / 2));
    }
    await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    expect(queueWarnings()).toHaveLength(1);
    expect((queueWarnings()[0] as Error).message).toBe(
      'MetricPool: 5 batches (0.6 MiB) are waiting for a worker: the source pushes batches faster than the pool computes them, and each waiting batch holds its data. Pull batches with fromBatches(iterable, { pool }), which waits for the pool; past maxQueuedBytes (1048576 bytes) the stream errors',
    );
  });

  it('past maxQueuedBytes the stream errors with a RangeError that says what to do, and the memory is back', async () => {
    const subject = new Subject<Batch>();
    const result = lastValueFrom(subject.pipe(accumulateMetric(new L1AbsoluteLoss(), { pool: small })));
    for (let i = 0; i < 12; i++) subject.next(wide(i)); // the tenth is the ninth waiting: past 1 MiB
    subject.complete();
    const error = await result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RangeError);
    expect((error as Error).message).toBe(
      'MetricPool: batch 9 would make the batches waiting for a worker hold 1179648 bytes, past maxQueuedBytes (1048576): the source pushes batches faster than the pool computes them; pull them with fromBatches(iterable, { pool }), which waits for the pool, or raise maxQueuedBytes',
    );
    expect([small.inFlight, small.queued, small.queuedBytes]).toEqual([0, 0, 0]);
    await new Promise((resolve) => setTimeout(resolve, 50));
    expect(small.memoryUsage().used).toBe(0);
  });

  it('counts only the copies it makes: pool-allocated batches past maxQueuedBytes wait without an error', async () => {
    const subject = new Subject<Batch>();
    const result = lastValueFrom(subject.pipe(reduceMetric(new L1AbsoluteLoss(), { pool: small })));
    const before = queueWarnings().length;
    for (let i = 0; i < 12; i++) {
      const t = small.allocate([ROWS, FEATURES]);
      t.data.fill(i + 1);
      subject.next({ learnedActivations: t });
      small.release(t); // deferred until its batch is done
    }
    expect(small.queued).toBe(11);
    expect(small.queuedBytes).toBe(0);
    subject.complete();
    expect((await result).item()).toBe((FEATURES * 13) / 2); // the mean of 1..12 per feature
    await new Promise((resolve) => setImmediate(resolve));
    expect(queueWarnings()).toHaveLength(before);
    expect(small.memoryUsage().used).toBe(0);
  });
});
