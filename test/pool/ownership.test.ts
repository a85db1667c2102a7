/**
 * Who owns a batch's memory: the values of a batch are the values it had when it was handed to
 * the pool, whatever the caller does afterwards. A tensor from `pool.allocate` is the pool's until
 * its batch is done (`release()` meanwhile is deferred; a second `release()` and handing a released
 * tensor over throw); an ordinary array is copied inside `next`, before it returns, so a batch that
 * waits for a slot never reads the caller's later writes. Checked on the wasm and js backends,
 * against the in-thread value of the same code.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { lastValueFrom, Subject } from 'rxjs';
import {
  createMetricPool,
  InvalidBatchError,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  reduceMetric,
  tensor,
  type Batch,
  type MetricPool,
  type Tensor,
} from '../../src/index.js';
import { bits } from '../support/compare.js';

const ROWS = 2048;
const FEATURES = 256;
/** Six batches of constants 1..6: L1 = 256 * mean(1..6) = 896 whatever the order of batches. */
const VALUES = [1, 2, 3, 4, 5, 6];
const L1 = 896;

const TIMEOUT = 30_000;

/** The value a stream of these batches gives in-thread: the reference for the pooled runs. */
function inThreadL1(): unknown {
  const subject = new Subject<Batch>();
  let out: unknown;
  subject.pipe(reduceMetric(new L1AbsoluteLoss(), { shardRows: 512, backend: 'wasm' })).subscribe((v) => (out = bits(v)));
  for (const v of VALUES) subject.next({ learnedActivations: tensor(new Float32Array(ROWS * FEATURES).fill(v), [ROWS, FEATURES]) });
  subject.complete();
  return out;
}

describe.each(['wasm', 'js'] as const)('the %s backend', (backend) => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: 512, maxInFlight: 2, backend });
  });
  afterAll(async () => {
    await pool.close();
  }, TIMEOUT);

  it('release() right after next(): the batch keeps its values (the release waits for the batch), 20 runs', async () => {
    const expected = inThreadL1();
    for (let run = 0; run < 20; run++) {
      const subject = new Subject<Batch>();
      const result = lastValueFrom(subject.pipe(reduceMetric(new L1AbsoluteLoss(), { pool })));
      for (const v of VALUES) {
        const t = pool.allocate([ROWS, FEATURES]);
        t.data.fill(v);
        subject.next({ learnedActivations: t });
        pool.release(t); // the next allocation must not get (and overwrite) this memory meanwhile
      }
      subject.complete();
      const value = await result;
      expect(value.item(), `run ${run}`).toBe(L1);
      expect(bits(value)).toEqual(expected);
    }
    expect(pool.memoryUsage().used).toBe(0); // every deferred release happened
  }, TIMEOUT);

  it('one ordinary Float32Array reused for every batch pushed through a Subject gives the in-thread value, 20 runs', async () => {
    const expected = inThreadL1();
    const buffer = new Float32Array(ROWS * FEATURES);
    for (let run = 0; run < 20; run++) {
      const subject = new Subject<Batch>();
      const result = lastValueFrom(subject.pipe(reduceMetric(new L1AbsoluteLoss(), { pool })));
      for (const v of VALUES) {
        buffer.fill(v); // overwrites the previous batch, which may still wait for a slot
        subject.next({ learnedActivations: tensor(buffer, [ROWS, FEATURES]) });
      }
      subject.complete();
      const value = await result;
      expect(value.item(), `run ${run}`).toBe(L1);
      expect(bits(value)).toEqual(expected);
    }
  }, TIMEOUT);

  it('a release() while the batch runs is deferred until it is done, then the memory is back', async () => {
    const before = pool.memoryUsage().used;
    const t = pool.allocate([ROWS, FEATURES]);
    t.data.fill(3);
    const parts = Object.values(new L1AbsoluteLoss().definition.parts);
    const pending = pool.evaluate(parts, { learnedActivations: t }, ROWS, { batchIndex: 0 });
    pool.release(t);
    expect(pool.memoryUsage().used).toBeGreaterThanOrEqual(before + ROWS * FEATURES * 4); // still held
    const other = pool.allocate([ROWS, FEATURES]);
    expect(other.data.buffer === t.data.buffer && other.data.byteOffset === t.data.byteOffset).toBe(false);
    await pending;
    pool.release(other);
    expect(pool.memoryUsage().used).toBe(before);
  }, TIMEOUT);

  it('a view of part of an allocated tensor is the pool\'s too: releasing the tensor waits for the view\'s batch', async () => {
    const expected = inThreadL1();
    const subject = new Subject<Batch>();
    const result = lastValueFrom(subject.pipe(reduceMetric(new L1AbsoluteLoss(), { pool })));
    for (const v of VALUES) {
      const whole = pool.allocate([ROWS + 16, FEATURES]);
      whole.data.fill(v);
      subject.next({ learnedActivations: tensor(whole.data.subarray(16 * FEATURES), [ROWS, FEATURES]) });
      pool.release(whole);
    }
    subject.complete();
    expect(bits(await result)).toEqual(expected);
  }, TIMEOUT);

  it('release() twice, or of a tensor the pool did not allocate, throws; the memory is given back once', () => {
    const before = pool.memoryUsage().used;
    const t = pool.allocate([4, 6]);
    pool.release(t);
    expect(pool.memoryUsage().used).toBe(before);
    expect(() => pool.release(t)).toThrow(new Error('MetricPool.release: this tensor (shape [4,6]) was already released'));
    expect(pool.memoryUsage().used).toBe(before);
    expect(() => pool.release(tensor([[1, 2]]) as Tensor<'float32'>)).toThrow(
      new TypeError("MetricPool.release: tensor must be a tensor from this pool's allocate(), got a Tensor"),
    );
    expect(() => pool.release(undefined as never)).toThrow(
      new TypeError("MetricPool.release: tensor must be a tensor from this pool's allocate(), got undefined"),
    );
  });

  it('a released tensor handed to the pool errors the stream with an InvalidBatchError naming the field', async () => {
    const before = pool.memoryUsage().used;
    const source = pool.allocate([4, 5]);
    const decoded = pool.allocate([4, 5]);
    pool.release(decoded);
    const subject = new Subject<Batch>();
    const result = lastValueFrom(subject.pipe(reduceMetric(new L2ReconstructionLoss(), { pool })));
    subject.next({ sourceActivations: source, decodedActivations: decoded });
    subject.complete();
    const error = await result.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(InvalidBatchError);
    expect((error as InvalidBatchError).field).toBe('decodedActivations');
    expect((error as Error).message).toBe(
      'MetricPool: decodedActivations is a tensor given back with pool.release(); allocate a new one (pool.allocate) for each batch still to come',
    );
    pool.release(source); // not pinned by the refused batch
    expect(pool.memoryUsage().used).toBe(before);
  }, TIMEOUT);
});

describe('a SharedArrayBuffer the caller made', () => {
  it('on the wasm backend it is copied inside next(): a later write does not change the result', async () => {
    const pool = createMetricPool({ workers: 1, shardRows: 512, maxInFlight: 1, backend: 'wasm' });
    try {
      const expected = inThreadL1();
      const shared = new Float32Array(new SharedArrayBuffer(ROWS * FEATURES * 4));
      const subject = new Subject<Batch>();
      const result = lastValueFrom(subject.pipe(reduceMetric(new L1AbsoluteLoss(), { pool })));
      for (const v of VALUES) {
        shared.fill(v);
        subject.next({ learnedActivations: tensor(shared, [ROWS, FEATURES]) });
      }
      subject.complete();
      expect(bits(await result)).toEqual(expected);
    } finally {
      await pool.close();
    }
  }, TIMEOUT);
});

describe('a tensor allocated by another pool', () => {
  // On the js backend a SharedArrayBuffer was shared as it is, even one that another pool owns and
  // hands out again after release(): the batch read that pool's next tensor (25600 instead of 896).
  it.each([
    ['js', 'js'],
    ['wasm', 'js'],
    ['js', 'wasm'],
    ['wasm', 'wasm'],
  ] as const)('from a %s pool to a %s pool: released and its memory reused at once, the batch keeps its values', async (ownerBackend, backend) => {
    const owner = createMetricPool({ workers: 1, backend: ownerBackend });
    const pool = createMetricPool({ workers: 1, shardRows: 512, maxInFlight: 1, backend });
    try {
      const expected = inThreadL1();
      const subject = new Subject<Batch>();
      const result = lastValueFrom(subject.pipe(reduceMetric(new L1AbsoluteLoss(), { pool })));
      const later: Tensor<'float32'>[] = [];
      for (const v of VALUES) {
        const t = owner.allocate([ROWS, FEATURES]);
        t.data.fill(v);
        subject.next({ learnedActivations: t });
        owner.release(t); // its owner may hand the memory out again at once
        const next = owner.allocate([ROWS, FEATURES]);
        next.data.fill(100);
        later.push(next);
      }
      subject.complete();
      expect(bits(await result)).toEqual(expected);
      for (const t of later) owner.release(t);
      expect(owner.memoryUsage().used).toBe(0);
    } finally {
      await Promise.all([owner.close(), pool.close()]);
    }
  }, TIMEOUT);
});
