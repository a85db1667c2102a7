/**
 * The shared buffers a pool keeps for reuse off the wasm backend (copies of finished batches,
 * released tensors) are bounded in number whatever the batch sizes: a training loop whose batches
 * all differ in rows (variable-length sequences, each file's shorter last batch) must not make the
 * pool keep a buffer for every size it ever saw.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom } from 'rxjs';
import { accumulateMetric, createMetricPool, fromBatches, L1AbsoluteLoss, NeuronFiredCountMetric, MetricCollection, tensor, type Batch, type MetricPool } from '../../src/index.js';
import { SpareBuffers } from '../../src/pool/spare-buffers.js';
import { bits } from '../support/compare.js';
import { lcgFill, mulberry32 } from '../support/random.js';

const FEATURES = 64;
const BATCHES = 300;

describe('a js-backend pool fed batches of ever new sizes', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: 32, maxInFlight: 2, backend: 'js' });
  });
  afterAll(async () => {
    await pool.close();
  }, 20_000);

  it(`${BATCHES} copied batches and as many allocated tensors, each of its own size: the buffers kept for reuse stay a few batches' worth; values exact`, async () => {
    const r = mulberry32(0x5ba4e);
    const metrics = () => new MetricCollection({ l1: new L1AbsoluteLoss(), fired: new NeuronFiredCountMetric({ numLearnedFeatures: FEATURES }) });
    const batches: Batch[] = Array.from({ length: BATCHES }, (_, i) => {
      const rows = 1 + i + Math.floor(r() * 3) * BATCHES; // every batch a size of its own
      return { learnedActivations: tensor(lcgFill(new Float32Array(rows * FEATURES), i), [rows, FEATURES]) };
    });
    const largest = Math.max(...batches.map((b) => (b.learnedActivations as { data: Float32Array }).data.byteLength));
    const expected = bits(await lastValueFrom(from(batches).pipe(accumulateMetric(metrics(), { shardRows: 32, backend: 'js' }))));
    // Copies of ordinary arrays, paced by the pool.
    expect(bits(await lastValueFrom(fromBatches(batches, { pool }).pipe(accumulateMetric(metrics(), { pool }))))).toEqual(expected);
    // Tensors allocated by the pool and released after each batch.
    async function* allocated(): AsyncGenerator<Batch> {
      for (const b of batches) {
        const src = b.learnedActivations as { data: Float32Array; shape: number[] };
        const t = pool.allocate(src.shape);
        t.data.set(src.data);
        yield { learnedActivations: t };
        pool.release(t);
      }
    }
    expect(bits(await lastValueFrom(fromBatches(allocated(), { pool }).pipe(accumulateMetric(metrics(), { pool }))))).toEqual(expected);
    const { reserved, used } = pool.memoryUsage();
    expect(used).toBe(0);
    // A handful of batches' worth (3 fields a batch, maxInFlight + 1 batches), not one per size.
    expect(reserved).toBeLessThanOrEqual(3 * (pool.maxInFlight + 1) * largest);
  }, 60_000);
});

describe('SpareBuffers', () => {
  it('keeps at most perSize of a size and limit in all, dropping the size used longest ago', () => {
    const spare = new SpareBuffers(3, 2);
    const b = (n: number) => new SharedArrayBuffer(n);
    const [a1, a2, a3] = [b(8), b(8), b(8)];
    spare.give(a1);
    spare.give(a2);
    spare.give(a3); // a third of size 8: not kept
    expect(spare.bytes).toBe(16);
    const c = b(16);
    spare.give(c);
    expect(spare.bytes).toBe(32);
    const d = b(32);
    spare.give(d); // four in all: one of size 8 (used longest ago) goes
    expect(spare.bytes).toBe(56);
    expect(spare.take(8)).toBe(a1);
    expect(spare.take(8)).toBeUndefined();
    expect(spare.take(16)).toBe(c);
    expect(spare.take(32)).toBe(d);
    expect(spare.bytes).toBe(0);
  });
});
