/**
 * The pool's life cycle under faults: no unsubscribe, no worker fault and no `close()` may abort
 * or hang the process. Unsubscribing never ends a thread (cancellation is cooperative); a thread
 * that exits is replaced, even after one failed while starting (when Piscina itself replaces
 * none); `close()` errors the streams with a `PoolClosedError` and ends a thread only once it has
 * loaded its module. The schedules that used to abort the process run in a child process whose
 * exit code and signal are asserted.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { from, lastValueFrom, Subject } from 'rxjs';
import {
  accumulateMetric,
  createMetricPool,
  NeuronFiredCountMetric,
  PoolClosedError,
  reduceMetric,
  tensor,
  WorkerError,
  type Batch,
  type MetricPool,
} from '../../src/index.js';
import { bits } from '../support/compare.js';
import { lcgFill, mulberry32 } from '../support/random.js';
import { EXIT_VALUE, LOAD_ENV, LOAD_LOG_ENV, SLOW_VALUE } from '../fixtures/fault-chaos.js';

const WORKERS = 2;
const SHARD_ROWS = 8;
const FEATURES = 6;
const TIMEOUT = 60_000;
const chaos = fileURLToPath(new URL('../fixtures/fault-chaos.ts', import.meta.url));
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** A batch of `rows` rows; `marks` puts a fixture marker at the start of the given shards. */
function makeBatch(rows: number, seed: number, marks: Record<number, number> = {}): Batch {
  const learned = lcgFill(new Float32Array(rows * FEATURES), seed);
  for (const [shard, value] of Object.entries(marks)) learned[Number(shard) * SHARD_ROWS * FEATURES] = value;
  return { learnedActivations: tensor(learned, [rows, FEATURES]) };
}

const metric = (): NeuronFiredCountMetric => new NeuronFiredCountMetric({ numLearnedFeatures: FEATURES });

function inThread(batches: Batch[]): unknown {
  let out: unknown;
  from(batches)
    .pipe(reduceMetric(metric(), { shardRows: SHARD_ROWS, backend: 'wasm' }))
    .subscribe((v) => (out = bits(v)));
  return out;
}

/** A log file the fixture's threads append to once loaded, and the environment that says so. */
function loadLog(): { path: string; lines(): number; done(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'sae-metrics-lifecycle-'));
  const path = join(dir, 'loads.log');
  process.env[LOAD_LOG_ENV] = path;
  return {
    path,
    lines: () => {
      try {
        return readFileSync(path, 'utf8').split('\n').filter((l) => l.startsWith('loaded')).length;
      } catch {
        return 0;
      }
    },
    done: () => {
      delete process.env[LOAD_LOG_ENV];
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

const pools: MetricPool[] = [];
afterEach(async () => {
  delete process.env[LOAD_ENV];
  delete process.env[LOAD_LOG_ENV];
  await Promise.all(pools.splice(0).map((p) => p.close()));
}, TIMEOUT);

function pool(options: Parameters<typeof createMetricPool>[0] = {}): MetricPool {
  const p = createMetricPool({ workers: WORKERS, shardRows: SHARD_ROWS, filename: chaos, backend: 'wasm', ...options });
  pools.push(p);
  return p;
}

describe('unsubscribing', () => {
  it('300 random unsubscribes while shards run end no thread and start none; memory is back where it was', async () => {
    const log = loadLog();
    try {
      const p = pool();
      const rng = mulberry32(0x5b5c);
      // Warm up: both threads loaded, memory at its working size.
      const warm = [makeBatch(20, 1, { 0: SLOW_VALUE }), makeBatch(24, 2, { 1: SLOW_VALUE, 2: SLOW_VALUE })];
      expect(bits(await lastValueFrom(from(warm).pipe(reduceMetric(metric(), { pool: p }))))).toEqual(inThread(warm));
      await vi.waitFor(() => expect(log.lines()).toBe(WORKERS), { timeout: 20_000, interval: 20 });
      const reserved = p.memoryUsage().reserved;
      for (let i = 0; i < 300; i++) {
        const batches = [0, 1, 2].map((b) => makeBatch(24, i * 3 + b, { [b]: SLOW_VALUE }));
        const subscription = from(batches).pipe(reduceMetric(metric(), { pool: p })).subscribe();
        await sleep(Math.floor(rng() * 4));
        subscription.unsubscribe();
        expect(p.inFlight).toBe(0); // cancelled at once, whatever still runs
      }
      await vi.waitFor(() => expect(p.memoryUsage().used).toBe(0), { timeout: 20_000, interval: 20 });
      expect(p.threads).toBe(WORKERS);
      expect(log.lines()).toBe(WORKERS); // no thread was ended, so none was started
      expect(p.memoryUsage().reserved).toBe(reserved);
      // And the pool still gives the in-thread values.
      expect(bits(await lastValueFrom(from(warm).pipe(reduceMetric(metric(), { pool: p }))))).toEqual(inThread(warm));
    } finally {
      log.done();
    }
  }, TIMEOUT);
});

describe('threads that exit', () => {
  it('after threads fail while starting (Piscina then replaces none), waiting shards run on new threads: nothing hangs', async () => {
    // One thread, so that Piscina hands nothing to a thread that has not loaded.
    const p = pool({ workers: 1, maxInFlight: 4 });
    const good = [makeBatch(16, 7), makeBatch(16, 8)];
    expect(bits(await lastValueFrom(from(good).pipe(reduceMetric(metric(), { pool: p }))))).toEqual(inThread(good));
    // Threads made from now on exit while loading.
    process.env[LOAD_ENV] = 'exit';
    // x: its shard exits the thread; y waits behind it.
    const x = lastValueFrom(from([makeBatch(8, 9, { 0: EXIT_VALUE })]).pipe(reduceMetric(metric(), { pool: p })));
    const y = lastValueFrom(from(good).pipe(reduceMetric(metric(), { pool: p })));
    const error = await x.then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(WorkerError);
    expect((error as WorkerError).batchIndex).toBe(0);
    // The replacement exits while loading; threads made after this point load.
    delete process.env[LOAD_ENV];
    const value = await Promise.race([y, sleep(30_000).then(() => 'hung')]);
    expect(value).not.toBe('hung');
    expect(bits(value)).toEqual(inThread(good));
    expect(p.threads).toBe(1);
  }, TIMEOUT);
});

describe('close()', () => {
  it('with batches in flight: dispatched ones finish, the rest error with PoolClosedError (no worker is blamed)', async () => {
    const p = pool({ maxInFlight: 1 });
    const batches = [0, 1, 2, 3].map((b) => makeBatch(24, 40 + b, { 0: SLOW_VALUE, 1: SLOW_VALUE, 2: SLOW_VALUE }));
    const values: unknown[] = [];
    const subject = new Subject<Batch>();
    const ended = new Promise<unknown>((resolve) => {
      subject.pipe(accumulateMetric(metric(), { pool: p })).subscribe({
        next: (v) => values.push(bits(v)),
        error: resolve,
        complete: () => resolve('complete'),
      });
    });
    for (const b of batches) subject.next(b);
    expect([p.inFlight, p.queued]).toEqual([1, 3]);
    await p.close();
    const error = await ended;
    expect(error).toBeInstanceOf(PoolClosedError);
    expect((error as PoolClosedError).batchIndex).toBe(1); // the first batch that was not dispatched
    expect((error as Error).message).toBe('MetricPool: the pool is closed (pool.close() was called), so batch 1 was not computed');
    expect(values).toEqual([inThread(batches.slice(0, 1))]); // batch 0 ran to the end
    expect(p.threads).toBe(0);
    expect([p.inFlight, p.queued, p.memoryUsage().used]).toEqual([0, 0, 0]);
    // A batch handed over later errors the same way.
    await expect(lastValueFrom(from(batches).pipe(reduceMetric(metric(), { pool: p })))).rejects.toThrow(PoolClosedError);
  }, TIMEOUT);

  it('while a shard exits its thread: the replacement thread is seen loading, so close() does not wait out closeTimeout', async () => {
    const closeTimeout = 30_000;
    const p = pool({ closeTimeout });
    // Both threads still load when close() is called, so the thread exits (and Piscina starts its
    // replacement) while the pool closes, after the last shard was handed over.
    const error = lastValueFrom(from([makeBatch(16, 11, { 1: EXIT_VALUE })]).pipe(reduceMetric(metric(), { pool: p }))).then(
      () => undefined,
      (e: unknown) => e,
    );
    const closed = p.close().then(() => 'closed');
    // Loading a thread takes seconds at most, even on a loaded machine; closeTimeout is 30 s.
    expect(await Promise.race([closed, sleep(closeTimeout / 2).then(() => 'waited for closeTimeout')])).toBe('closed');
    expect(await error).toBeInstanceOf(WorkerError); // the batch was dispatched: its thread's exit is its error
    expect(p.threads).toBe(0);
  }, TIMEOUT);

  it('right after creation, it waits until every thread has loaded its module before it ends them', async () => {
    const log = loadLog();
    try {
      process.env[LOAD_ENV] = 'slow';
      const p = pool();
      await p.close();
      expect(log.lines()).toBe(WORKERS);
      expect(p.threads).toBe(0);
    } finally {
      log.done();
    }
  }, TIMEOUT);
});

describe('in a child process (schedules that used to abort the process or hang it)', () => {
  it('random unsubscribes, pools closed with work in flight and threads exiting, pools closed while loading: exit code 0, no signal', () => {
    const [unsubscribes, closes, quickCloses] = [60, 6, 2];
    const script = fileURLToPath(new URL('../fixtures/lifecycle-child.ts', import.meta.url));
    const child = spawnSync(process.execPath, ['--import', 'tsx', script, String(unsubscribes), String(closes), String(quickCloses)], {
      encoding: 'utf8',
      timeout: 100_000,
    });
    expect(child.signal).toBeNull();
    expect(child.status, child.stderr).toBe(0);
    const summary = JSON.parse(child.stdout.trim().split('\n').at(-1) as string) as {
      threadsAfterUnsubscribes: number;
      errors: Record<string, number>;
      workerErrors: string[];
    };
    expect(summary.threadsAfterUnsubscribes).toBe(2);
    // Closing errors streams with PoolClosedError; the only WorkerErrors are the fixture's exits
    // (one stream per closed pool, when it got that far).
    for (const name of Object.keys(summary.errors)) expect(['PoolClosedError', 'WorkerError']).toContain(name);
    expect(summary.errors.WorkerError ?? 0, summary.workerErrors.join('\n')).toBeLessThanOrEqual(closes);
  }, 110_000);
});
