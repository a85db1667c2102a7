/**
 * Attack on the operators' deferred errors (a refused batch or a source error waits behind the
 * batches still on the pool) when the pool itself fails: a worker that throws on a batch before
 * a refused one, a shard held running while the source errors and the subscriber leaves, and
 * `close()` while an error waits. Whatever the schedule: the values before the first failure are
 * the in-thread values, once each and in order; exactly one error, nothing after it; no hang, no
 * unhandled rejection; the pool ends with nothing in flight and its memory back.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { Subject, type OperatorFunction } from 'rxjs';
import {
  accumulateMetric,
  CapacityMetric,
  computeEvery,
  createMetricPool,
  forwardMetric,
  L1AbsoluteLoss,
  MetricCollection,
  PoolClosedError,
  reduceMetric,
  tensor,
  TopActivations,
  WorkerError,
  type Batch,
  type MetricOperatorOptions,
  type MetricPool,
} from '../../src/index.js';
import { bits } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';
import { watch } from '../support/watch.js';
import { THROW_BATCH, THROW_SHARD } from '../fixtures/fault-throw.js';
import { CONTROL_INTS, CONTROL_MAGIC, FINISHED, GATE, MAGIC } from '../fixtures/fault-slow-first.js';

const FEATURES = 4;
const SHARD_ROWS = 2;
const TIMEOUT = 30_000;
const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}.ts`, import.meta.url));

/**
 * Metrics whose checks depend on the state (row shape, rank, first vector index). CapacityMetric
 * first: it takes alone what L1 and TopActivations refuse alone, and refuses it against the state.
 */
function metrics(): MetricCollection {
  return new MetricCollection({
    capacity: new CapacityMetric(),
    l1: new L1AbsoluteLoss({ keepBatchDim: true }),
    top: new TopActivations({ numLearnedFeatures: FEATURES, k: 2 }),
  });
}

type OperatorName = 'accumulate' | 'forward' | 'reduce' | 'every';
const NAMES: readonly OperatorName[] = ['accumulate', 'forward', 'reduce', 'every'];
const operators: Record<OperatorName, (o: MetricOperatorOptions) => OperatorFunction<Batch, unknown>> = {
  accumulate: (o) => accumulateMetric(metrics(), o),
  forward: (o) => forwardMetric(metrics(), o),
  reduce: (o) => reduceMetric(metrics(), o),
  every: (o) => computeEvery(metrics(), { vectors: 5 }, { ...o, emitPartial: true }),
};

/** Seeded values, about 40% exact zeros, into `data`. */
function fill(data: Float32Array, seed: number): Float32Array {
  const random = mulberry32(seed);
  for (let i = 0; i < data.length; i++) data[i] = random() < 0.4 ? 0 : -1 + 3 * random();
  return data;
}

const good = (rows: number, seed: number): Batch => ({ learnedActivations: tensor(fill(new Float32Array(rows * FEATURES), seed), [rows, FEATURES]) });

/**
 * A batch refused: by every metric alone (no field); by CapacityMetric against the state (other
 * rows) before the others refuse it alone; only against the state (a first index going back).
 */
function refused(kind: number, seed: number): Batch {
  if (kind === 0) return {};
  if (kind === 1) return { learnedActivations: tensor(fill(new Float32Array(2 * FEATURES), seed), [2, 1, FEATURES]) };
  return { learnedActivations: tensor(fill(new Float32Array(2 * FEATURES), seed), [2, FEATURES]), firstVectorIndex: 0 };
}

const isEnd = (e: unknown): boolean => e === 'complete' || (typeof e === 'object' && e !== null && 'error' in e);

/** The in-thread events of `batches`, then the source's `error` (or completion). */
async function inThread(name: OperatorName, batches: readonly Batch[], error?: Error): Promise<unknown[]> {
  const subject = new Subject<Batch>();
  const seen = watch(subject, operators[name]({ shardRows: SHARD_ROWS, backend: 'js' }));
  for (const b of batches) subject.next(b);
  if (error === undefined) subject.complete();
  else subject.error(error);
  await seen.ended;
  return seen.events;
}

const rejections: unknown[] = [];
const onRejection = (reason: unknown): void => {
  rejections.push(reason);
};
beforeAll(() => {
  process.on('unhandledRejection', onRejection);
});
afterAll(() => {
  process.off('unhandledRejection', onRejection);
});
afterEach(async () => {
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(rejections).toEqual([]);
});

describe('a worker that throws on a batch before a refused one (or a source error)', () => {
  const SEED = 0xfa017;
  const PLANS = 24;
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, maxInFlight: 3, filename: fixture('fault-throw'), backend: 'js' });
  });
  afterAll(async () => {
    await pool.close();
  }, TIMEOUT);

  it(`the in-thread values of the batches before it, then its WorkerError, once (${PLANS} seeded schedules)`, async () => {
    const random = mulberry32(SEED);
    for (let p = 0; p < PLANS; p++) {
      const name = NAMES[p % NAMES.length] as OperatorName;
      // Batches 0 .. THROW_BATCH - 1 are taken; batch THROW_BATCH has a shard THROW_SHARD, which throws.
      const before = Array.from({ length: THROW_BATCH }, (_, i) => good(1 + Math.floor(random() * 4), 60_000 + 100 * p + i));
      const faulty = good(SHARD_ROWS * THROW_SHARD + 1 + Math.floor(random() * 3), 60_050 + 100 * p);
      const after = Array.from({ length: Math.floor(random() * 3) }, (_, i) => good(1 + Math.floor(random() * 3), 60_060 + 100 * p + i));
      const end = Math.floor(random() * 4); // 0-2: a refused batch of that kind; 3: a source error
      const waits = [...before, faulty, ...after].map(() => (random() < 0.3 ? 1 : 0));
      const subject = new Subject<Batch>();
      const seen = watch(subject, operators[name]({ pool }));
      for (const [i, b] of [...before, faulty, ...after].entries()) {
        subject.next(b);
        if (waits[i] === 1) await new Promise((resolve) => setImmediate(resolve));
      }
      if (end < 3) subject.next(refused(end, 60_090 + p));
      else subject.error(new Error('the source failed'));
      subject.next(good(2, 1)); // nothing after is taken
      await seen.ended;
      await new Promise((resolve) => setTimeout(resolve, 10));
      const label = `plan ${p}: ${name}, ${before.length + 1 + after.length} batches, then ${end < 3 ? `refused batch ${end}` : 'a source error'}`;
      const expected = (await inThread(name, before, new Error('stop'))).filter((e) => !isEnd(e));
      expect(seen.events.slice(0, -1), label).toEqual(expected);
      expect(seen.events.at(-1), label).toMatchObject({ error: WorkerError.name });
      expect(subject.observed, label).toBe(false);
    }
    await vi.waitFor(() => expect(pool.inFlight + pool.queued).toBe(0), { timeout: 10_000 });
    expect(pool.memoryUsage().used).toBe(0);
  }, 60_000);
});

/**
 * Batches whose learnedActivations share one SharedArrayBuffer after a fault-slow-first control
 * block: shard 0 of batch 0 does not finish until the test lets it (see {@link release}).
 */
function gated(rows: readonly number[], seed: number): { control: Int32Array; batches: Batch[] } {
  const total = rows.reduce((a, r) => a + r, 0) * FEATURES;
  const buffer = new SharedArrayBuffer(CONTROL_INTS * 4 + total * 4);
  const control = new Int32Array(buffer, 0, CONTROL_INTS);
  control[GATE] = 1_000_000; // batch 0 waits for this many shards to finish: until released
  control[MAGIC] = CONTROL_MAGIC;
  let offset = CONTROL_INTS * 4;
  const batches = rows.map((r, b) => {
    const data = fill(new Float32Array(buffer, offset, r * FEATURES), seed + b);
    offset += data.byteLength;
    return { learnedActivations: tensor(data, [r, FEATURES]) };
  });
  return { control, batches };
}

/** Lets the held shard finish. */
function release(control: Int32Array): void {
  Atomics.add(control, FINISHED, 1_000_000);
  Atomics.notify(control, FINISHED);
}

describe('an error waiting behind a shard that is held running', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, maxInFlight: 2, filename: fixture('fault-slow-first'), backend: 'js' });
  });
  afterAll(async () => {
    await pool.close();
  }, TIMEOUT);

  for (const name of NAMES) {
    for (const failure of ['source error', 'refused batch'] as const) {
      it(`${name}, ${failure}: nothing comes while it is held; unsubscribing then leaves the pool idle, its memory back, and nothing is ever delivered`, async () => {
        const { control, batches } = gated([3, 2, 4], 70_000);
        const subject = new Subject<Batch>();
        const seen = watch(subject, operators[name]({ pool }));
        for (const b of batches) subject.next(b);
        if (failure === 'source error') subject.error(new Error('the source failed'));
        else subject.next(refused(1, 70_100));
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(seen.events).toEqual([]);
        seen.subscription.unsubscribe();
        expect(pool.inFlight + pool.queued).toBe(0);
        release(control);
        await vi.waitFor(() => expect(pool.memoryUsage().used).toBe(0), { timeout: 10_000, interval: 10 });
        await new Promise((resolve) => setTimeout(resolve, 50));
        expect(seen.events).toEqual([]);
      }, TIMEOUT);

      it(`${name}, ${failure}: once released, the in-thread values, then the in-thread error`, async () => {
        const { control, batches } = gated([3, 2, 4], 71_000);
        const subject = new Subject<Batch>();
        const seen = watch(subject, operators[name]({ pool }));
        for (const b of batches) subject.next(b);
        const error = new Error('the source failed');
        const last = refused(2, 71_100);
        if (failure === 'source error') subject.error(error);
        else subject.next(last);
        await new Promise((resolve) => setTimeout(resolve, 20));
        expect(seen.events).toEqual([]);
        release(control);
        await seen.ended;
        await new Promise((resolve) => setTimeout(resolve, 20));
        const expected = failure === 'source error' ? await inThread(name, batches, error) : await inThread(name, [...batches, last]);
        expect(seen.events).toEqual(expected);
        expect(String((expected.at(-1) as { error?: string }).error)).toMatch(/Error$/);
        await vi.waitFor(() => expect(pool.memoryUsage().used).toBe(0), { timeout: 10_000, interval: 10 });
      }, TIMEOUT);
    }
  }
});

describe('close() while an error waits behind batches on the pool', () => {
  for (const name of NAMES) {
    // maxInFlight 1: the batches behind the held one wait for a slot, and the close refuses them;
    // 3: all are running, and the close waits for them.
    for (const maxInFlight of [1, 3]) {
      it(`${name}, maxInFlight ${maxInFlight}: one error, after in-thread values only, and close() returns`, async () => {
        const pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, maxInFlight, closeTimeout: 5000, filename: fixture('fault-slow-first'), backend: 'js' });
        try {
          // Threads loaded, so that the held shard is running when close() comes.
          const warm = new Subject<Batch>();
          const warmed = watch(warm, operators[name]({ pool }));
          for (let i = 0; i < 4; i++) warm.next(good(4, i));
          warm.complete();
          await warmed.ended;
          const { control, batches } = gated([3, 2, 2], 72_000);
          const last = refused(1, 72_100);
          const subject = new Subject<Batch>();
          const seen = watch(subject, operators[name]({ pool }));
          for (const b of batches) subject.next(b);
          subject.next(last);
          const closed = pool.close();
          setTimeout(() => release(control), 100);
          await closed;
          await seen.ended;
          await new Promise((resolve) => setTimeout(resolve, 20));
          const expected = await inThread(name, [...batches, last]);
          if (maxInFlight === 3) expect(seen.events).toEqual(expected);
          else {
            // Batch 0's value (as in-thread), then batch 1's PoolClosedError, and nothing else.
            const values = await inThread(name, batches.slice(0, 1), new Error('stop'));
            expect(seen.events.slice(0, -1)).toEqual(values.slice(0, -1));
            expect(seen.events.at(-1)).toMatchObject({ error: PoolClosedError.name, message: expect.stringContaining('batch 1') as unknown });
          }
          expect(String((expected.at(-1) as { error?: string }).error)).toBe('InvalidBatchError');
          expect(pool.inFlight + pool.queued).toBe(0);
        } finally {
          await pool.close();
        }
      }, TIMEOUT);
    }
  }
});
