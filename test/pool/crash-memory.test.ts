/**
 * A thread that exits leaves no memory behind: the regions of the shared WebAssembly memory a
 * worker's kernel took for itself (its room for a shard's fired entries and for their per-feature
 * statistics, which only the full metric set asks for) go to the thread that replaces it, instead
 * of being lost for the life of the pool. Seeded: the same batches and exits on every run.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom } from 'rxjs';
import { createMetricPool, reduceMetric, WorkerError, type Batch, type MetricPool } from '../../src/index.js';
import { fullSet } from '../support/full-set.js';
import { bits } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';
import { sparseFullBatch } from '../support/batches.js';
import { EXIT_VALUE } from '../fixtures/fault-chaos.js';

const PAGE = 65536;
const FEATURES = 512;
const DIM = 16;
const ROWS = 64;
const SHARD_ROWS = 16;
const ROUNDS = 12;
const fixture = fileURLToPath(new URL('../fixtures/fault-chaos.ts', import.meta.url));

function sparseBatch(r: () => number, exitAtShard?: number): Batch {
  return sparseFullBatch(r, ROWS, FEATURES, DIM, 0.03, exitAtShard === undefined ? [] : [exitAtShard * SHARD_ROWS], EXIT_VALUE);
}

describe('threads that exit on a pool running the full metric set (wasm)', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, maxInFlight: 2, filename: fixture, backend: 'wasm' });
  });
  afterAll(async () => {
    await pool.close();
  }, 20_000);

  it(`${ROUNDS} rounds of an exit: the shared memory stops growing once the first replacement ran; values stay the in-thread ones`, async () => {
    const r = mulberry32(0xc4a54);
    const clean = [0, 1, 2].map(() => sparseBatch(r));
    const expected = bits(await lastValueFrom(from(clean).pipe(reduceMetric(fullSet(FEATURES, DIM), { shardRows: SHARD_ROWS, backend: 'wasm' }))));
    const reserved: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      // Both threads run full-set shards (each takes its rooms), then one of them exits.
      for (let k = 0; k < 2; k++) {
        expect(bits(await lastValueFrom(from(clean).pipe(reduceMetric(fullSet(FEATURES, DIM), { pool }))))).toEqual(expected);
      }
      const failing = lastValueFrom(from([sparseBatch(r, round % (ROWS / SHARD_ROWS))]).pipe(reduceMetric(fullSet(FEATURES, DIM), { pool })));
      await expect(failing).rejects.toBeInstanceOf(WorkerError);
      reserved.push(pool.memoryUsage().reserved);
    }
    expect(bits(await lastValueFrom(from(clean).pipe(reduceMetric(fullSet(FEATURES, DIM), { pool }))))).toEqual(expected);
    expect(pool.threads).toBe(2);
    console.log('reserved after each round (MiB):', reserved.map((b) => (b / 2 ** 20).toFixed(2)).join(' '));
    // Replacements took the rooms of the threads they replaced: after the first rounds, no growth
    // but a page or two of the arena's (copies of batches land in different holes).
    expect(reserved[ROUNDS - 1] as number).toBeLessThanOrEqual((reserved[2] as number) + 2 * PAGE);
  }, 60_000);
});
