/**
 * Threads that exit in the middle of a shard, after their kernel took, grew and wrote its regions
 * of the shared memory (fired entries, per-feature statistics), while the other threads run the
 * full metric set on batches of growing and shrinking size and density, several at once: every
 * batch without the exit gives the in-thread value bit for bit (a region freed at an exit is never
 * in use by two threads, and what it holds never reaches a value), each one with it a WorkerError,
 * and the shared memory stops growing once the largest batches have run.
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, lastValueFrom } from 'rxjs';
import { createMetricPool, reduceMetric, WorkerError, type Batch, type MetricPool } from '../../src/index.js';
import { fullSet } from '../support/full-set.js';
import { bits } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';
import { sparseFullBatch } from '../support/batches.js';
import { EXIT_AFTER_VALUE } from '../fixtures/fault-exit-after.js';

const FEATURES = 1024;
const DIM = 8;
const SHARD_ROWS = 16;
const ROUNDS = 16;
const fixture = fileURLToPath(new URL('../fixtures/fault-exit-after.ts', import.meta.url));

function batchOf(r: () => number, rows: number, density: number, exitAt?: number): Batch {
  return sparseFullBatch(r, rows, FEATURES, DIM, density, exitAt === undefined ? [] : [exitAt * SHARD_ROWS], EXIT_AFTER_VALUE);
}

describe('threads that exit after their kernel used its regions (wasm, full set)', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 3, shardRows: SHARD_ROWS, maxInFlight: 4, filename: fixture, backend: 'wasm' });
  });
  afterAll(async () => {
    await pool.close();
  }, 20_000);

  it(`${ROUNDS} seeded rounds of batches at once, some with an exit after a shard`, async () => {
    const r = mulberry32(0xe7a1);
    const reserved: number[] = [];
    let failed = 0;
    let compared = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const runs = Array.from({ length: 4 }, () => {
        const rows = SHARD_ROWS * (1 + Math.floor(r() * 4));
        const density = [0.01, 0.1, 0.6][Math.floor(r() * 3)] as number;
        const exit = r() < 0.35 ? Math.floor(r() * (rows / SHARD_ROWS)) : undefined;
        const batches = [batchOf(r, rows, density, exit), batchOf(r, rows, density)];
        const inThread = exit === undefined ? lastValueFrom(from(batches).pipe(reduceMetric(fullSet(FEATURES, DIM), { shardRows: SHARD_ROWS, backend: 'wasm' }))) : undefined;
        // Settled as it comes (a rejection awaited later would be reported as unhandled first).
        const onPool = lastValueFrom(from(batches).pipe(reduceMetric(fullSet(FEATURES, DIM), { pool }))).then(
          (value) => ({ value, error: undefined }),
          (error: unknown) => ({ value: undefined, error }),
        );
        return { exit, inThread, onPool };
      });
      for (const { exit, inThread, onPool } of runs) {
        const got = await onPool;
        if (exit !== undefined) {
          expect(got.error).toBeInstanceOf(WorkerError);
          failed++;
        } else {
          expect(got.error).toBeUndefined();
          expect(bits(got.value), `round ${round}`).toEqual(bits(await inThread));
          compared++;
        }
      }
      reserved.push(pool.memoryUsage().reserved);
    }
    expect(failed).toBeGreaterThan(3);
    expect(compared).toBeGreaterThan(10);
    expect(pool.threads).toBe(3);
    // Growth stops: the exited threads' regions went to the threads after them (without that,
    // 16 rounds grow it past twice what it held after the first 4).
    console.log('reserved after each round (MiB):', reserved.map((b) => (b / 2 ** 20).toFixed(2)).join(' '));
    expect(reserved[ROUNDS - 1] as number).toBeLessThanOrEqual(1.5 * (reserved[3] as number));
  }, 60_000);
});
