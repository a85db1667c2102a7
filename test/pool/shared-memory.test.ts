/**
 * Float32 tensors in shared memory (src/pool/shared-memory.ts) and how the pool hands them to its
 * workers:
 *
 * - `allocateShared(shape)` and `pool.allocate(shape)` give a zero-filled float32 Tensor over a
 *   SharedArrayBuffer, and reject bad shapes with a message;
 * - `toShared` of a shared tensor is the same buffer and offset (no copy); of an ordinary tensor, a
 *   new SharedArrayBuffer holding equal values (one copy, the original untouched);
 * - `fromShared` round-trips, and rejects a shape that does not fit;
 * - through a real pool (fixture worker test/fixtures/equivalence-probe.ts, which runs the same
 *   `runShardTask` as the real worker and uses a control block at the start of the buffer): every
 *   shard of a batch written into `pool.allocate(...)` memory is read in place, and a write the
 *   producer makes while a shard is held (after dispatch) is what that shard computes, where a copy
 *   would have shown the old values.
 *
 * Pool results are compared bit for bit with the in-thread executor at the same shardRows.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { from, lastValueFrom, toArray } from 'rxjs';
import { allocateShared, fromShared, toShared } from '../../src/pool/shared-memory.js';
import { inThreadExecutor } from '../../src/pool/executor.js';
import { accumulateMetric, createMetricPool, L1AbsoluteLoss, L0NormMetric, Tensor, tensor, type MetricPool } from '../../src/index.js';
import type { Batch, StatePart } from '../../src/index.js';
import { PROBE_HEADER_BYTES, PROBE_MAGIC, PROBE_SLOT } from '../fixtures/equivalence-probe.js';

const PROBE = fileURLToPath(new URL('../fixtures/equivalence-probe.ts', import.meta.url));

const FEATURES = 8;
/** Rows of FEATURES float32 that hold the probe's control block. */
const HEADER_ROWS = PROBE_HEADER_BYTES / (FEATURES * 4);
const SHARD_ROWS = 16;

function expectZeroFilledShared(t: Tensor<'float32'>, shape: readonly number[]): void {
  expect(t).toBeInstanceOf(Tensor);
  expect(t.dtype).toBe('float32');
  expect([...t.shape]).toEqual([...shape]);
  expect(t.data).toBeInstanceOf(Float32Array);
  expect(t.data.buffer).toBeInstanceOf(SharedArrayBuffer);
  const size = shape.reduce((a, b) => a * b, 1);
  expect(t.data.length).toBe(size);
  expect(t.data.byteOffset).toBe(0);
  expect(t.data.buffer.byteLength).toBe(size * 4);
  expect(t.data.every((v) => Object.is(v, 0))).toBe(true);
}

const BAD_SHAPES: readonly unknown[] = [[-1], [2, -3], [1.5], [2, Number.NaN], [Number.POSITIVE_INFINITY], ['2'], [null]];

describe('allocateShared', () => {
  it('gives a zero-filled float32 Tensor over a new SharedArrayBuffer', () => {
    expectZeroFilledShared(allocateShared([3, 5]), [3, 5]);
    expectZeroFilledShared(allocateShared([2, 3, 4]), [2, 3, 4]);
    expectZeroFilledShared(allocateShared([0, 4]), [0, 4]);
    expectZeroFilledShared(allocateShared([]), []);
    const a = allocateShared([4]);
    const b = allocateShared([4]);
    expect(a.data.buffer).not.toBe(b.data.buffer);
  });

  it('rejects a shape that is not a list of non-negative integers, with a message', () => {
    for (const shape of BAD_SHAPES) {
      expect(() => allocateShared(shape as number[]), JSON.stringify(shape)).toThrow(RangeError);
      expect(() => allocateShared(shape as number[])).toThrow(
        new RangeError(`allocate: shape must hold non-negative integers, got [${(shape as number[]).join(', ')}]`),
      );
    }
    for (const shape of ['3', 3, null, undefined, { length: 1, 0: 2 }]) {
      expect(() => allocateShared(shape as unknown as number[]), String(shape)).toThrow(TypeError);
      expect(() => allocateShared(shape as unknown as number[]), String(shape)).toThrow(
        /^allocate: shape must be an array of non-negative integers, got /,
      );
    }
    expect(() => allocateShared(3 as unknown as number[])).toThrow(/got 3$/);
    expect(() => allocateShared('3' as unknown as number[])).toThrow(/got "3"$/);
  });
});

describe('toShared / fromShared', () => {
  it('of a shared tensor: the same buffer and offset (no copy), a write through either is seen by the other', () => {
    const t = allocateShared([4, 3]);
    t.data.set([1, -2, 0, 3.5, 4, 5, -6, 7, 8, 9, 10, 11]);
    const s = toShared(t);
    expect(s.buffer).toBe(t.data.buffer);
    expect(s.byteOffset).toBe(0);
    expect(s.length).toBe(12);
    expect(s.shape).toEqual([4, 3]);
    const back = fromShared(s);
    expect(back.data.buffer).toBe(t.data.buffer);
    back.data[5] = 42;
    expect(t.data[5]).toBe(42);

    // a view into the middle of shared memory keeps its offset
    const whole = allocateShared([5, 3]);
    const view = new Tensor(whole.data.subarray(3, 12), [3, 3], 'float32');
    expect(view.data.buffer instanceof SharedArrayBuffer).toBe(true);
    const sv = toShared(view);
    expect(sv.buffer).toBe(whole.data.buffer);
    expect(sv.byteOffset).toBe(12);
    expect(sv.length).toBe(9);
    const viewBack = fromShared(sv);
    viewBack.data[0] = -1;
    expect(whole.data[3]).toBe(-1);
  });

  it('of an ordinary tensor: a new SharedArrayBuffer holding equal values; the original is untouched', () => {
    const t = tensor([
      [1, -2, 0],
      [3.25, -0, 1e-30],
    ]);
    expect(t.data.buffer instanceof SharedArrayBuffer).toBe(false);
    const s = toShared(t);
    expect(s.buffer).toBeInstanceOf(SharedArrayBuffer);
    expect(s.byteOffset).toBe(0);
    expect(s.length).toBe(6);
    expect(s.buffer.byteLength).toBe(24);
    expect(s.shape).toEqual([2, 3]);
    const copy = new Float32Array(s.buffer);
    expect([...copy].every((v, i) => Object.is(v, t.data[i]))).toBe(true);
    copy[0] = 99;
    expect(t.data[0]).toBe(1);
    expect(t.data.buffer.byteLength).toBe(24); // not transferred (detached) either

    // a view at an offset of an ordinary buffer: only its elements are copied
    const base = new Float32Array([9, 9, 1, 2, 3, 4, 9]);
    const sv = toShared({ data: base.subarray(2, 6), shape: [2, 2] });
    expect(sv.byteOffset).toBe(0);
    expect([...new Float32Array(sv.buffer)]).toEqual([1, 2, 3, 4]);
  });

  it('fromShared(toShared(t)) round-trips data and shape', () => {
    const data = new Float32Array(2 * 3 * 4).map((_, i) => (i % 5 === 0 ? 0 : (i - 11) / 7));
    for (const t of [tensor(data, [2, 3, 4]), tensor([7]), tensor(data.slice(0, 6), [6])]) {
      const back = fromShared(toShared(t));
      expect([...back.shape]).toEqual([...t.shape]);
      expect(back.data).toBeInstanceOf(Float32Array);
      expect([...back.data].every((v, i) => Object.is(v, t.data[i]))).toBe(true);
    }
  });

  it('fromShared rejects a shape that does not hold the elements, naming both', () => {
    const buffer = new SharedArrayBuffer(12);
    expect(() => fromShared({ buffer, byteOffset: 0, length: 3, shape: [2, 2] })).toThrow(RangeError);
    expect(() => fromShared({ buffer, byteOffset: 0, length: 3, shape: [2, 2] })).toThrow(
      'fromShared: shape [2, 2] does not hold 3 elements',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Through a real pool

describe('MetricPool and shared memory (fixture worker equivalence-probe)', () => {
  let pool: MetricPool;

  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, filename: PROBE, backend: 'js' });
  });
  afterAll(async () => {
    await pool.close();
  });

  /**
   * `rows` rows of FEATURES float32, written into `pool.allocate` memory after a control block:
   * the batch tensor is a view that starts PROBE_HEADER_BYTES into the buffer.
   */
  function probedBatch(rows: number, seed: number, hold: boolean): { batch: Batch; view: Tensor<'float32'>; header: Int32Array; firsts: Float32Array } {
    const whole = pool.allocate([HEADER_ROWS + rows, FEATURES]);
    const header = new Int32Array(whole.data.buffer, 0, PROBE_HEADER_BYTES / 4);
    const firsts = new Float32Array(whole.data.buffer, 0, PROBE_HEADER_BYTES / 4);
    const view = new Tensor(whole.data.subarray(HEADER_ROWS * FEATURES), [rows, FEATURES], 'float32');
    for (let i = 0; i < view.data.length; i++) view.data[i] = ((i * 7 + seed) % 11) - 4; // zeros and negatives
    header[PROBE_SLOT.magic] = PROBE_MAGIC;
    header[PROBE_SLOT.hold] = hold ? 1 : 0;
    return { batch: { learnedActivations: view }, view, header, firsts };
  }

  const l1Parts = (): StatePart<unknown>[] => Object.values(new L1AbsoluteLoss().definition.parts) as StatePart<unknown>[];

  /** Bit-exact comparison of two evaluated partial-state maps. */
  function expectSameBits(actual: ReadonlyMap<string, unknown>, expected: ReadonlyMap<string, unknown>): void {
    expect([...actual.keys()]).toEqual([...expected.keys()]);
    for (const [id, value] of expected) {
      const got = actual.get(id) as { sum: Float64Array; vectors: number };
      const want = value as { sum: Float64Array; vectors: number };
      expect(got.vectors, id).toBe(want.vectors);
      expect(Buffer.from(got.sum.buffer, got.sum.byteOffset, got.sum.byteLength).equals(
        Buffer.from(want.sum.buffer, want.sum.byteOffset, want.sum.byteLength),
      ), id).toBe(true);
    }
  }

  it('pool.allocate gives a zero-filled float32 Tensor over a SharedArrayBuffer, and rejects bad shapes', () => {
    expectZeroFilledShared(pool.allocate([7, 3]), [7, 3]);
    expectZeroFilledShared(pool.allocate([2, 3, 5]), [2, 3, 5]);
    for (const shape of BAD_SHAPES) {
      expect(() => pool.allocate(shape as number[]), JSON.stringify(shape)).toThrow(
        /^allocate: shape must hold non-negative integers, got \[/,
      );
    }
  });

  it('pool.release hands a tensor\'s buffer to the next allocation of the same size, zero-filled again', () => {
    const first = pool.allocate([4, 6]);
    first.data.fill(7);
    const buffer = first.data.buffer;
    pool.release(first);
    const second = pool.allocate([6, 4]); // same size, another shape
    expect(second.data.buffer).toBe(buffer);
    expectZeroFilledShared(second, [6, 4]);
    // Released once only: a second release throws, and the buffer is not handed out twice.
    pool.release(second);
    expect(() => pool.release(second)).toThrow(new Error('MetricPool.release: this tensor (shape [6,4]) was already released'));
    const third = pool.allocate([24]);
    const fourth = pool.allocate([24]);
    expect(third.data.buffer).toBe(buffer);
    expect(fourth.data.buffer).not.toBe(buffer);
    // Another size never gets it.
    pool.release(third);
    expect(pool.allocate([25]).data.buffer).not.toBe(buffer);
  });

  it('every shard reads the batch in place: the workers see the producer\'s whole buffer at its offset and write into it', async () => {
    const rows = 5 * SHARD_ROWS + 3; // 6 shards
    const { batch, view, header, firsts } = probedBatch(rows, 3, false);
    const got = await pool.evaluate(l1Parts(), batch, rows, { batchIndex: 0 });
    // every shard's worker wrote into the producer's memory (a copy would leave the count at 0)
    expect(Atomics.load(header, PROBE_SLOT.tasks)).toBe(6);
    // the buffer the workers received is the producer's, not a copy of the view (which would have
    // byteLength rows * FEATURES * 4 and offset 0)
    expect(header[PROBE_SLOT.byteLength]).toBe(view.data.buffer.byteLength);
    expect(header[PROBE_SLOT.byteOffset]).toBe(PROBE_HEADER_BYTES);
    for (let s = 0; s < 6; s++) expect(firsts[PROBE_SLOT.first + s], `shard ${s}`).toBe(view.data[s * SHARD_ROWS * FEATURES]);
    expectSameBits(got, inThreadExecutor(SHARD_ROWS).evaluate(l1Parts(), batch, rows, { batchIndex: 0 }) as ReadonlyMap<string, unknown>);
  });

  it('a write the producer makes after dispatch, while shard 0 is held, is what the worker computes (a copy would show the old values)', async () => {
    const rows = 2 * SHARD_ROWS + 5; // 3 shards; only shard 0 is held, and only shard 0's rows change
    const { batch, view, header, firsts } = probedBatch(rows, 5, true);
    const before = inThreadExecutor(SHARD_ROWS).evaluate(l1Parts(), batch, rows, { batchIndex: 0 }) as ReadonlyMap<string, unknown>;
    const evaluation = pool.evaluate(l1Parts(), batch, rows, { batchIndex: 0 });
    const deadline = Date.now() + 10_000;
    while (Atomics.load(header, PROBE_SLOT.arrived) !== 1 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 1));
    }
    expect(Atomics.load(header, PROBE_SLOT.arrived), 'shard 0 reached the hold point').toBe(1);
    // the producer rewrites shard 0's rows in place (the worker holds a view of them)
    for (let i = 0; i < SHARD_ROWS * FEATURES; i++) view.data[i] = 100 + (i % 13);
    Atomics.store(header, PROBE_SLOT.release, 1);
    Atomics.notify(header, PROBE_SLOT.release);
    const got = await evaluation;
    expect(firsts[PROBE_SLOT.first + 0], 'shard 0 read the new first element').toBe(100);
    const after = inThreadExecutor(SHARD_ROWS).evaluate(l1Parts(), batch, rows, { batchIndex: 0 }) as ReadonlyMap<string, unknown>;
    expectSameBits(got, after);
    // and not what a copy taken at dispatch would have given
    const id = [...before.keys()][0] as string;
    expect((got.get(id) as { sum: Float64Array }).sum[0]).not.toBe((before.get(id) as { sum: Float64Array }).sum[0]);
    expect(Atomics.load(header, PROBE_SLOT.tasks)).toBe(3);
  });

  it('through accumulateMetric, batches written into pool.allocate memory are read in place and give the in-thread results', async () => {
    const sizes = [1, SHARD_ROWS, 3 * SHARD_ROWS + 1];
    const made = sizes.map((rows, k) => probedBatch(rows, k, false));
    const batches = made.map((m) => m.batch);
    const metric = new L0NormMetric();
    const viaPool = await lastValueFrom(from(batches).pipe(accumulateMetric(metric, { pool }), toArray()));
    const inThread = await lastValueFrom(from(batches).pipe(accumulateMetric(metric, { shardRows: SHARD_ROWS }), toArray()));
    expect(made.map((m) => Atomics.load(m.header, PROBE_SLOT.tasks))).toEqual([1, 1, 4]);
    expect(viaPool.length).toBe(3);
    viaPool.forEach((t, k) => {
      const want = inThread[k] as Tensor;
      expect(t.dtype).toBe(want.dtype);
      expect([...t.shape]).toEqual([...want.shape]);
      expect(Object.is(t.item(), want.item()), `batch ${k}`).toBe(true);
    });
  });

  it('an ordinary (non-shared) batch is copied once for the workers and left intact', async () => {
    const data = new Float32Array(3 * SHARD_ROWS * FEATURES).map((_, i) => ((i * 5) % 9) - 3);
    const t = tensor(data, [3 * SHARD_ROWS, FEATURES]);
    const batch: Batch = { learnedActivations: t };
    const got = await pool.evaluate(l1Parts(), batch, 3 * SHARD_ROWS, { batchIndex: 0 });
    expect(t.data.buffer instanceof SharedArrayBuffer).toBe(false);
    expect(t.data.buffer.byteLength).toBe(data.byteLength); // not transferred
    expect([...t.data].every((v, i) => Object.is(v, ((i * 5) % 9) - 3))).toBe(true);
    expectSameBits(got, inThreadExecutor(SHARD_ROWS).evaluate(l1Parts(), batch, 3 * SHARD_ROWS, { batchIndex: 0 }) as ReadonlyMap<string, unknown>);
  });
});
