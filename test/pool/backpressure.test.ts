/**
 * Backpressure: a pool dispatches at most `maxInFlight` batches at once, whatever the producer
 * does, against a slowed worker (`test/fixtures/fault-slow.ts`, a few ms per shard). Results are
 * compared bit for bit with the in-thread path at the same `shardRows`.
 */
import { getEventListeners } from 'node:events';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, type Observable } from 'rxjs';
import {
  accumulateMetric,
  createMetricPool,
  L0NormMetric,
  L1AbsoluteLoss,
  MetricCollection,
  NeuronFiredCountMetric,
  tensor,
  type Batch,
  type MetricPool,
} from '../../src/index.js';
import { bits } from '../support/compare.js';
import { lcgFill as fill } from '../support/random.js';
import { CLOCK, CONTROL_INTS, CONTROL_MAGIC, LOG, MAGIC, MAX_SHARDS } from '../fixtures/fault-slow.js';

const slowWorker = fileURLToPath(new URL('../fixtures/fault-slow.ts', import.meta.url));

function metrics(features: number) {
  return new MetricCollection({
    l1: new L1AbsoluteLoss(),
    l0: new L0NormMetric(),
    fired: new NeuronFiredCountMetric({ numLearnedFeatures: features }),
  });
}

/** Subscribes and waits for completion, keeping every value (as bits). */
function collectBits<T>(source: Observable<T>): Promise<unknown[]> {
  return new Promise((resolve, reject) => {
    const values: unknown[] = [];
    source.subscribe({ next: (v) => values.push(bits(v)), error: reject, complete: () => resolve(values) });
  });
}

describe('many large batches from a lazy producer, maxInFlight 2', () => {
  const BATCHES = 40;
  const ROWS = 2048;
  const FEATURES = 512;
  const SHARD_ROWS = 1024;
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, maxInFlight: 2, filename: slowWorker, backend: 'js' });
  });
  afterAll(async () => {
    await pool.close();
  }, 20_000);

  /** 40 batches of 2048 x 512 float32 (4 MiB each), each made only when pulled. */
  function* produce(): Generator<Batch> {
    for (let b = 0; b < BATCHES; b++) {
      yield { learnedActivations: tensor(fill(new Float32Array(ROWS * FEATURES), b), [ROWS, FEATURES]) };
    }
  }

  it('never dispatches more than maxInFlight batches, reaches the bound, and gives the in-thread results', async () => {
    expect(pool.maxInFlight).toBe(2);
    const got = await collectBits(from(produce()).pipe(accumulateMetric(metrics(FEATURES), { pool })));
    expect(pool.peakInFlight).toBeLessThanOrEqual(pool.maxInFlight);
    expect(pool.peakInFlight).toBe(pool.maxInFlight); // the bound was exercised
    expect(pool.inFlight).toBe(0);
    expect(got).toHaveLength(BATCHES);
    const expected = await collectBits(from(produce()).pipe(accumulateMetric(metrics(FEATURES), { shardRows: SHARD_ROWS, backend: 'js' })));
    expect(got).toEqual(expected);
  }, 20_000);
});

describe('maxInFlight 1', () => {
  const BATCHES = 8;
  const ROWS = 256;
  const FEATURES = 32;
  const SHARD_ROWS = 64; // 4 shards a batch, over 2 workers
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, maxInFlight: 1, filename: slowWorker, backend: 'js' });
  });
  afterAll(async () => {
    await pool.close();
  }, 20_000);

  /** Batches whose learned activations follow a control block the worker logs into. */
  function logged(seed: number): { control: Int32Array; batches: Batch[] } {
    const size = ROWS * FEATURES;
    const buffer = new SharedArrayBuffer(CONTROL_INTS * 4 + BATCHES * size * 4);
    const control = new Int32Array(buffer, 0, CONTROL_INTS);
    control[MAGIC] = CONTROL_MAGIC;
    const batches = Array.from({ length: BATCHES }, (_, b) => ({
      learnedActivations: tensor(fill(new Float32Array(buffer, CONTROL_INTS * 4 + b * size * 4, size), seed + b), [ROWS, FEATURES]),
    }));
    return { control, batches };
  }

  it('serialises batches: every shard of a batch starts after every shard of the one before finished', async () => {
    const { control, batches } = logged(100);
    const got = await collectBits(from(batches).pipe(accumulateMetric(metrics(FEATURES), { pool })));
    expect(pool.peakInFlight).toBe(1);
    expect(pool.inFlight).toBe(0);
    const shards = ROWS / SHARD_ROWS;
    const at = (b: number, s: number, end: 0 | 1): number => control[LOG + 2 * (b * MAX_SHARDS + s) + end] as number;
    expect(control[CLOCK]).toBe(2 * BATCHES * shards); // every task logged its start and finish
    for (let b = 1; b < BATCHES; b++) {
      const previousEnd = Math.max(...Array.from({ length: shards }, (_, s) => at(b - 1, s, 1)));
      const start = Math.min(...Array.from({ length: shards }, (_, s) => at(b, s, 0)));
      expect(start).toBeGreaterThan(previousEnd);
    }
    expect(got).toEqual(await collectBits(from(batches).pipe(accumulateMetric(metrics(FEATURES), { shardRows: SHARD_ROWS, backend: 'js' }))));
  }, 20_000);

  it('waiting for a slot leaves no abort listener behind on the caller\'s signal', async () => {
    const { batches } = logged(200);
    const parts = Object.values(new L1AbsoluteLoss().definition.parts);
    const controller = new AbortController();
    await Promise.all(batches.map((batch, batchIndex) => pool.evaluate(parts, batch, ROWS, { batchIndex, signal: controller.signal })));
    expect(pool.inFlight).toBe(0);
    expect(getEventListeners(controller.signal, 'abort')).toHaveLength(0);
  }, 20_000);

  it('a long stream through a full pool raises no MaxListenersExceededWarning', async () => {
    const warnings: string[] = [];
    const onWarning = (w: Error): void => {
      warnings.push(`${w.name}: ${w.message}`);
    };
    process.on('warning', onWarning);
    try {
      const batches = Array.from({ length: 16 }, (_, b) => ({
        learnedActivations: tensor(fill(new Float32Array(SHARD_ROWS * FEATURES), 300 + b), [SHARD_ROWS, FEATURES]),
      }));
      const got = await collectBits(from(batches).pipe(accumulateMetric(metrics(FEATURES), { pool })));
      expect(got).toHaveLength(16);
      await new Promise((resolve) => setImmediate(resolve)); // warnings are emitted on the next tick
    } finally {
      process.off('warning', onWarning);
    }
    expect(warnings.filter((w) => w.startsWith('MaxListenersExceededWarning'))).toEqual([]);
  }, 20_000);
});
