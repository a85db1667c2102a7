/**
 * Memory comes back: tensors from `pool.allocate` that nobody references are reclaimed before the
 * wasm arena grows (the garbage collector follows the JavaScript heap, where such a tensor is a
 * small object, so the pool runs it itself past 64 MiB of allocations); unsubscribing leaves the
 * shared memory where it was (no thread restarts, so no new scratch space; copies and per-shard
 * scratch space are freed once no thread reads them).
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { from, lastValueFrom } from 'rxjs';
import { accumulateMetric, createMetricPool, NeuronFiredCountMetric, tensor, type Batch, type MetricPool } from '../../src/index.js';
import { bits } from '../support/compare.js';
import { lcgFill, mulberry32 } from '../support/random.js';

const MiB = 2 ** 20;
const PAGE = 65536;
const child = fileURLToPath(new URL('../fixtures/gc-child.ts', import.meta.url));

describe('unreachable allocated tensors', () => {
  it.each([
    ['with --expose-gc', ['--expose-gc']],
    ['without it', []],
  ])('%s: 150 tensors of 32 MiB (4.7 GiB, past the 4 GiB the memory can hold), dropped, never released: all allocated, the memory stays small', (_, flags) => {
    const run = spawnSync(process.execPath, [...flags, '--import', 'tsx', child, '150'], { encoding: 'utf8', timeout: 100_000 });
    expect(run.signal).toBeNull();
    expect(run.status, run.stderr).toBe(0);
    const out = JSON.parse(run.stdout.trim().split('\n').at(-1) as string) as { allocated: number; peakReserved: number };
    expect(out.allocated).toBe(150);
    expect(out.peakReserved).toBeLessThan(512 * 2 ** 20);
  }, 110_000);
});

describe('3000 random unsubscribes on the real worker (wasm)', () => {
  const FEATURES = 1024;
  const ROWS = 256;
  const BATCH_BYTES = ROWS * FEATURES * 4;
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: 128, backend: 'wasm' });
  });
  afterAll(async () => {
    await pool.close();
  }, 20_000);

  it('leave the shared memory where it was: grown only to what was in use at once, all of it free again; the values after are the in-thread ones', async () => {
    const batches: Batch[] = [0, 1, 2].map((b) => ({ learnedActivations: tensor(lcgFill(new Float32Array(ROWS * FEATURES), b), [ROWS, FEATURES]) }));
    const metric = (): NeuronFiredCountMetric => new NeuronFiredCountMetric({ numLearnedFeatures: FEATURES });
    const run = (): Promise<unknown> => lastValueFrom(from(batches).pipe(accumulateMetric(metric(), { pool }))).then(bits);
    const expected = await lastValueFrom(from(batches).pipe(accumulateMetric(metric(), { shardRows: 128, backend: 'wasm' }))).then(bits);
    expect(await run()).toEqual(expected);
    const rng = mulberry32(0x3000);
    for (let i = 0; i < 3000; i++) {
      const subscription = from(batches).pipe(accumulateMetric(metric(), { pool })).subscribe();
      if (rng() < 0.5) await new Promise((resolve) => setImmediate(resolve));
      else if (rng() < 0.5) await Promise.resolve();
      subscription.unsubscribe();
    }
    await vi.waitFor(() => expect(pool.memoryUsage().used).toBe(0), { timeout: 20_000, interval: 20 });
    const { reserved, peak } = pool.memoryUsage();
    console.log({ reserved, peak, batches: peak / BATCH_BYTES });
    // At most: the batches of maxInFlight dispatched jobs, of `workers` cancelled ones whose shards
    // still run, and the three of the subscription being made, plus scratch space.
    expect(peak).toBeLessThanOrEqual((pool.maxInFlight + pool.workers + 3) * BATCH_BYTES + MiB);
    // Every byte the memory grew by was in use at some moment (nothing grows it behind the pool's back).
    expect(reserved).toBeLessThanOrEqual(peak + 4 * PAGE);
    expect(pool.threads).toBe(2);
    expect(await run()).toEqual(expected);
  }, 120_000);
});
