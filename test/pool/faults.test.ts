/**
 * Worker faults through the operators: a worker that throws, a worker whose thread exits, a task
 * that never finishes (aborted by unsubscribing), workers that finish out of order, and batches
 * rejected before dispatch. Each runs on a pool built on a tiny fixture worker
 * (`test/fixtures/fault-*.ts`), and is compared with the in-thread path at the same `shardRows`,
 * which gives the same bits.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { firstValueFrom, from, type Observable } from 'rxjs';
import {
  accumulateMetric,
  createMetricPool,
  forwardMetric,
  InvalidBatchError,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronFiredCountMetric,
  reduceMetric,
  Tensor,
  tensor,
  WorkerError,
  type Batch,
  type MetricPool,
} from '../../src/index.js';
import { bits } from '../support/compare.js';
import { lcgFill } from '../support/random.js';
import { THROW_BATCH, THROW_MESSAGE, THROW_SHARD } from '../fixtures/fault-throw.js';
import { EXIT_BATCH, EXIT_SHARD } from '../fixtures/fault-exit.js';
import { BLOCK_VALUE, STARTED_VALUE, float32Bits } from '../fixtures/fault-block.js';
import { CONTROL_INTS, CONTROL_MAGIC, GATE, LOG, MAGIC, MAX_SHARDS } from '../fixtures/fault-slow-first.js';

const FEATURES = 6;
const DIM = 5;
const SHARD_ROWS = 8;
const WORKERS = 2;
/** Per test: worker threads start slowly (tsx) on a loaded 2-core machine; a hang fails, it does not stall. */
const TIMEOUT = 20_000;

const fixture = (name: string): string => fileURLToPath(new URL(`../fixtures/${name}.ts`, import.meta.url));

/** Deterministic float32 values: about 30% exact zeros, the rest in (-2, 2). */
const values = (n: number, seed: number): Float32Array => lcgFill(new Float32Array(n), seed);

/** A batch for every metric of {@link metrics}; `learned` (if given) holds its learned activations. */
function makeBatch(rows: number, seed: number, learned: Float32Array = new Float32Array(rows * FEATURES)): Batch {
  learned.set(values(rows * FEATURES, seed));
  return {
    learnedActivations: tensor(learned, [rows, FEATURES]),
    sourceActivations: tensor(values(rows * DIM, seed + 1000), [rows, DIM]),
    decodedActivations: tensor(values(rows * DIM, seed + 2000), [rows, DIM]),
  };
}

/** Float sums, squared errors and exact counts, over all three fields. */
function metrics() {
  return new MetricCollection({
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    fired: new NeuronFiredCountMetric({ numLearnedFeatures: FEATURES }),
  });
}

interface Outcome<T> {
  readonly values: T[];
  readonly error: unknown;
  readonly completed: boolean;
}

/** Subscribes and waits for the end (error or completion), keeping every value. */
function collect<T>(source: Observable<T>): Promise<Outcome<T>> {
  return new Promise((resolve) => {
    const values: T[] = [];
    source.subscribe({
      next: (v) => values.push(v),
      error: (error: unknown) => resolve({ values, error, completed: false }),
      complete: () => resolve({ values, error: undefined, completed: true }),
    });
  });
}

/**
 * The in-thread running values (same shard plan and backend as the pool compared with), as bits:
 * pools of the real worker choose 'auto' as in-thread does; fixture pools that read the buffers run 'js'.
 */
async function inThread(batches: readonly Batch[], backend: 'auto' | 'js' = 'auto'): Promise<unknown[]> {
  const out = await collect(from(batches).pipe(accumulateMetric(metrics(), { shardRows: SHARD_ROWS, backend })));
  expect(out.completed).toBe(true);
  return out.values.map(bits);
}

/** Waits until the pool has nothing in flight and its full complement of threads. */
/**
 * Nothing in flight and no thread leaked. Piscina replaces a thread that exited or was terminated
 * (on abort) at once when it had finished starting up; in a race with start-up it leaves the
 * replacement to the next task that finds no idle thread, which spawns one (up to maxThreads).
 * So right after a failure the pool may briefly run fewer threads; {@link settledFull} checks the
 * full count after new work.
 */
async function settled(pool: MetricPool): Promise<void> {
  await vi.waitFor(
    () => {
      expect(pool.inFlight).toBe(0);
      expect(pool.threads).toBeGreaterThanOrEqual(1);
      expect(pool.threads).toBeLessThanOrEqual(WORKERS);
    },
    { timeout: 10_000, interval: 10 },
  );
}

/** Nothing in flight and exactly the configured number of threads (after work ran through the pool). */
async function settledFull(pool: MetricPool): Promise<void> {
  await vi.waitFor(
    () => {
      expect(pool.inFlight).toBe(0);
      expect(pool.threads).toBe(WORKERS);
    },
    { timeout: 10_000, interval: 10 },
  );
}

// Five batches of 20 rows: shards [0, 8), [8, 16), [16, 20).
const batches = [0, 1, 2, 3, 4].map((i) => makeBatch(20, i));
// Good data for a fixture that fails on shard 1 of batch 2: batch 2 here has one shard only.
const goodBatches = [makeBatch(20, 10), makeBatch(17, 11), makeBatch(SHARD_ROWS, 12), makeBatch(20, 13)];

describe('a worker that throws on one shard', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: WORKERS, shardRows: SHARD_ROWS, filename: fixture('fault-throw') });
  });
  afterAll(async () => {
    await pool.close();
  }, TIMEOUT);

  it('errors with a WorkerError naming the batch, shard and rows; earlier values are emitted and correct', async () => {
    const out = await collect(from(batches).pipe(accumulateMetric(metrics(), { pool })));
    expect(out.completed).toBe(false);
    expect(out.error).toBeInstanceOf(WorkerError);
    const error = out.error as WorkerError;
    expect(error.name).toBe('WorkerError');
    expect(error.batchIndex).toBe(THROW_BATCH);
    expect(error.shardIndex).toBe(THROW_SHARD);
    expect(error.rows).toEqual({ start: THROW_SHARD * SHARD_ROWS, end: (THROW_SHARD + 1) * SHARD_ROWS });
    expect(error.cause).toBeInstanceOf(Error);
    expect((error.cause as Error).message).toBe(`${THROW_MESSAGE} on batch ${THROW_BATCH}, shard ${THROW_SHARD}`);
    expect(error.message).toContain(`batch ${THROW_BATCH}, shard ${THROW_SHARD}`);
    expect(error.message).toContain(THROW_MESSAGE);
    // One value per batch before the failed one, each equal to the in-thread value: nothing of
    // batch 2 (or later) was folded in, nothing was counted twice.
    expect(out.values.map(bits)).toEqual(await inThread(batches.slice(0, THROW_BATCH)));
  }, TIMEOUT);

  it('reduceMetric emits nothing when a batch fails', async () => {
    const out = await collect(from(batches).pipe(reduceMetric(metrics(), { pool })));
    expect(out.values).toEqual([]);
    expect(out.error).toBeInstanceOf(WorkerError);
    expect((out.error as WorkerError).batchIndex).toBe(THROW_BATCH);
  }, TIMEOUT);

  it('the same pool is usable afterwards: good data gives the in-thread results', async () => {
    await collect(from(batches).pipe(accumulateMetric(metrics(), { pool })));
    await settled(pool);
    const out = await collect(from(goodBatches).pipe(accumulateMetric(metrics(), { pool })));
    expect(out.error).toBeUndefined();
    expect(out.completed).toBe(true);
    expect(out.values.map(bits)).toEqual(await inThread(goodBatches));
    await settledFull(pool);
  }, TIMEOUT);

  describe('a batch that fails validation', () => {
    // One feature too many for NeuronFiredCountMetric; the other fields are fine.
    const bad: Batch = { ...makeBatch(20, 5), learnedActivations: tensor(values(20 * (FEATURES + 1), 5), [20, FEATURES + 1]) };

    async function inThreadError(source: readonly Batch[]): Promise<unknown> {
      const out = await collect(from(source).pipe(accumulateMetric(metrics(), { shardRows: SHARD_ROWS })));
      expect(out.error).toBeInstanceOf(InvalidBatchError);
      return out.error;
    }

    it('errors the observable before anything is dispatched, with the in-thread message', async () => {
      await settled(pool);
      const peak = pool.peakInFlight;
      let error: unknown;
      from([bad]).pipe(accumulateMetric(metrics(), { pool })).subscribe({ error: (e: unknown) => (error = e) });
      // Dispatching takes a slot synchronously, so a dispatched batch would show here.
      expect(pool.inFlight).toBe(0);
      expect(pool.peakInFlight).toBe(peak);
      expect(error).toBeInstanceOf(InvalidBatchError);
      const expected = (await inThreadError([bad])) as Error;
      expect((error as Error).message).toBe(expected.message);
      expect((error as InvalidBatchError).field).toBe('learnedActivations');
      expect((expected as InvalidBatchError).field).toBe('learnedActivations');
    }, TIMEOUT);

    it('behind good batches in flight, it is not dispatched either (and is not a WorkerError); their values come first, as in-thread', async () => {
      await settled(pool);
      const source = [goodBatches[0] as Batch, goodBatches[1] as Batch, bad];
      const evaluate = vi.spyOn(pool, 'evaluate');
      let out: Promise<Outcome<unknown>>;
      try {
        out = collect(from(source).pipe(accumulateMetric(metrics(), { pool })));
        expect(evaluate).toHaveBeenCalledTimes(2); // the two good batches only
      } finally {
        evaluate.mockRestore();
      }
      const { values: seen, error } = await out;
      expect(error).toBeInstanceOf(InvalidBatchError);
      const expected = (await inThreadError(source)) as Error;
      expect((error as Error).message).toBe(expected.message);
      expect(seen.map(bits)).toEqual(await inThread(source.slice(0, 2)));
      await settled(pool);
    }, TIMEOUT);
  });
});

describe('a worker whose thread exits mid-task', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: WORKERS, shardRows: SHARD_ROWS, filename: fixture('fault-exit') });
  });
  afterAll(async () => {
    await pool.close();
  }, TIMEOUT);

  it('errors with a WorkerError naming the batch and shard; earlier values are emitted and correct', async () => {
    const out = await collect(from(batches).pipe(accumulateMetric(metrics(), { pool })));
    expect(out.completed).toBe(false);
    expect(out.error).toBeInstanceOf(WorkerError);
    const error = out.error as WorkerError;
    expect(error.batchIndex).toBe(EXIT_BATCH);
    expect(error.shardIndex).toBe(EXIT_SHARD);
    expect(error.rows).toEqual({ start: EXIT_SHARD * SHARD_ROWS, end: (EXIT_SHARD + 1) * SHARD_ROWS });
    expect(error.cause).toBeInstanceOf(Error);
    expect((error.cause as Error).message).toMatch(/exited with code:? 1/);
    expect(out.values.map(bits)).toEqual(await inThread(batches.slice(0, EXIT_BATCH)));
  }, TIMEOUT);

  it('the same pool is usable afterwards, with its threads replaced', async () => {
    const failed = await collect(from(batches).pipe(accumulateMetric(metrics(), { pool })));
    expect(failed.error).toBeInstanceOf(WorkerError);
    await settled(pool);
    const out = await collect(from(goodBatches).pipe(accumulateMetric(metrics(), { pool })));
    expect(out.error).toBeUndefined();
    expect(out.values.map(bits)).toEqual(await inThread(goodBatches));
    await settledFull(pool);
  }, TIMEOUT);
});

describe('unsubscribing from a batch whose shard never finishes', () => {
  let pool: MetricPool;
  beforeAll(() => {
    // maxInFlight 1: while the blocked batch runs, the later batches wait for a slot.
    pool = createMetricPool({
      workers: WORKERS,
      shardRows: SHARD_ROWS,
      maxInFlight: 1,
      closeTimeout: 1000,
      filename: fixture('fault-block'),
      backend: 'js',
    });
  });
  afterAll(async () => {
    await pool.close();
  }, TIMEOUT);

  it('the subscription ends at once, the pool works on its other thread, and close() ends the stuck thread after closeTimeout', async () => {
    // Batches in shared memory: the worker sees (and marks) the very same bytes.
    const shared = [0, 1, 2, 3].map((i) => makeBatch(20, 20 + i, pool.allocate([20, FEATURES]).data));
    const learned1 = (shared[1] as Batch).learnedActivations as Tensor<'float32'>;
    learned1.data[0] = BLOCK_VALUE; // batch 1, shard 0 blocks
    const marker = new Int32Array(learned1.data.buffer, learned1.data.byteOffset, 1);

    const seen: unknown[] = [];
    let ended = '';
    const subscription = from(shared)
      .pipe(accumulateMetric(metrics(), { pool }))
      .subscribe({ next: (v) => seen.push(bits(v)), error: () => (ended = 'error'), complete: () => (ended = 'complete') });

    // The fixture swaps the marker when it starts blocking.
    await vi.waitFor(() => expect(Atomics.load(marker, 0)).toBe(float32Bits(STARTED_VALUE)), { timeout: 10_000, interval: 5 });
    expect(pool.inFlight).toBe(1);
    expect(seen).toEqual(await inThread(shared.slice(0, 1), 'js'));

    subscription.unsubscribe();
    expect(subscription.closed).toBe(true);
    // Cancelled at once: the slot is free, though the shard still runs (it is never terminated).
    expect([pool.inFlight, pool.queued]).toEqual([0, 0]);
    expect(ended).toBe(''); // neither error nor complete after unsubscribing
    expect(seen).toHaveLength(1);
    expect(pool.threads).toBe(WORKERS);

    const out = await collect(from(goodBatches).pipe(accumulateMetric(metrics(), { pool })));
    expect(out.error).toBeUndefined();
    expect(out.values.map(bits)).toEqual(await inThread(goodBatches, 'js'));

    const started = Date.now();
    await pool.close();
    expect(Date.now() - started).toBeGreaterThanOrEqual(900); // it waited for the stuck shard
    expect(Date.now() - started).toBeLessThan(10_000);
    expect(pool.threads).toBe(0);
  }, TIMEOUT);

  it('aborting a signal right after evaluate() is called rejects it with the reason', async () => {
    const other = createMetricPool({ workers: 1, shardRows: SHARD_ROWS });
    try {
      const batch = makeBatch(20, 30);
      const parts = Object.values(new L1AbsoluteLoss().definition.parts);
      const controller = new AbortController();
      const pending = other.evaluate(parts, batch, 20, { batchIndex: 0, signal: controller.signal });
      controller.abort(new Error('stop here'));
      await expect(pending).rejects.toThrow('stop here');
      expect(other.inFlight).toBe(0);
    } finally {
      await other.close();
    }
  }, TIMEOUT);
});

describe('an early unsubscribe while shards run', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: WORKERS, shardRows: SHARD_ROWS });
  });
  afterAll(async () => {
    await pool.close();
  }, TIMEOUT);

  it('firstValueFrom (take 1) gives the first value and never raises an uncaught error', async () => {
    const uncaught: string[] = [];
    const onUncaught = (e: unknown): void => {
      uncaught.push(String(e).slice(0, 120));
    };
    process.on('uncaughtException', onUncaught);
    try {
      const expected = (await inThread(batches.slice(0, 1)))[0];
      for (let i = 0; i < 8; i++) {
        expect(bits(await firstValueFrom(from(batches).pipe(accumulateMetric(metrics(), { pool }))))).toEqual(expected);
      }
      await settled(pool);
      await new Promise((resolve) => setTimeout(resolve, 100)); // let late worker messages arrive
    } finally {
      process.off('uncaughtException', onUncaught);
    }
    expect(uncaught).toEqual([]);
  }, TIMEOUT);
});

describe('workers finishing out of order', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: WORKERS, shardRows: SHARD_ROWS, filename: fixture('fault-slow-first'), backend: 'js' });
  });
  afterAll(async () => {
    await pool.close();
  }, TIMEOUT);

  // Batches of 24, 8, 24 and 16 rows: 3, 1, 3 and 2 shards, 9 tasks. Shard 0 of batch 0 waits
  // until the 8 others have finished, so batch 0 finishes last, and its shard 0 after its shards
  // 1 and 2. Only one task ever waits, so whatever order the pool hands tasks out in, the other
  // worker runs the rest: no deadlock.
  const rows = [24, 8, 24, 16];
  const gates = [8, 0, 0, 0];
  const shardCounts = rows.map((r) => Math.ceil(r / SHARD_ROWS));

  function gatedBatches(seed: number): { control: Int32Array; batches: Batch[] } {
    const total = rows.reduce((a, r) => a + r, 0) * FEATURES;
    const buffer = new SharedArrayBuffer(CONTROL_INTS * 4 + total * 4);
    const control = new Int32Array(buffer, 0, CONTROL_INTS);
    gates.forEach((g, b) => (control[GATE + b] = g));
    control[MAGIC] = CONTROL_MAGIC;
    let offset = CONTROL_INTS * 4;
    const out = rows.map((r, b) => {
      const view = new Float32Array(buffer, offset, r * FEATURES);
      offset += view.byteLength;
      return makeBatch(r, seed + b, view);
    });
    return { control, batches: out };
  }

  function checkForcedOrder(control: Int32Array): void {
    const rank = (b: number, s: number): number => control[LOG + b * MAX_SHARDS + s] as number;
    const all = shardCounts.flatMap((n, b) => Array.from({ length: n }, (_, s) => rank(b, s)));
    expect([...all].sort((x, y) => x - y)).toEqual(all.map((_, i) => i + 1)); // every task finished once
    expect(rank(0, 0)).toBe(all.length); // batch 0's shard 0 finished last of all
  }

  it('accumulateMetric: values in batch order, bit for bit the in-thread values', async () => {
    const { control, batches: gated } = gatedBatches(40);
    const out = await collect(from(gated).pipe(accumulateMetric(metrics(), { pool })));
    expect(out.error).toBeUndefined();
    checkForcedOrder(control);
    expect(out.values.map(bits)).toEqual(await inThread(gated, 'js'));
  }, TIMEOUT);

  it('forwardMetric: each value is its own batch, in batch order, bit for bit', async () => {
    const { control, batches: gated } = gatedBatches(50);
    const out = await collect(from(gated).pipe(forwardMetric(metrics(), { pool })));
    expect(out.error).toBeUndefined();
    checkForcedOrder(control);
    const expected = await collect(from(gated).pipe(forwardMetric(metrics(), { shardRows: SHARD_ROWS, backend: 'js' })));
    expect(out.values.map(bits)).toEqual(expected.values.map(bits));
    expect(out.values).toHaveLength(rows.length);
  }, TIMEOUT);
});
