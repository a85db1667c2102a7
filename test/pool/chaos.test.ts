/**
 * Chaos: many subscriptions at once on one pool (the fixture worker `fault-chaos`, wasm backend),
 * fed by pushing and pulling sources, through every operator, with random unsubscribes, shards
 * that throw, threads that exit mid-shard, slow shards, and pools closed while work is in flight.
 * Seeded: the same schedule of batches and faults on every run (thread timing varies).
 *
 * Every subscription settles (a value, an error or completion) or is unsubscribed; every value
 * equals, bit for bit, the in-thread value for the same batches; an error is a `WorkerError`
 * naming the first faulty batch and its shard, or (on a closed pool) a `PoolClosedError`; the pool
 * ends with nothing in flight, its full thread count, and its shared memory all free again, grown
 * no further than what was in use at once (threads that exited took no scratch space of their own).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { from, Subject, type Observable, type OperatorFunction } from 'rxjs';
import {
  accumulateMetric,
  createMetricPool,
  forwardMetric,
  fromBatches,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronFiredCountMetric,
  PoolClosedError,
  reduceMetric,
  tensor,
  WorkerError,
  type Batch,
  type MetricOperatorOptions,
  type MetricPool,
} from '../../src/index.js';
import { bits } from '../support/compare.js';
import { outcomeOf, type Outcome } from '../support/outcome.js';
import { lcgFill, mulberry32 } from '../support/random.js';
import { EXIT_VALUE, SLOW_VALUE, THROW_MESSAGE, THROW_VALUE } from '../fixtures/fault-chaos.js';

const SEED = 0x10c4a05;
const PAGE = 65536;
const WORKERS = 2;
const SHARD_ROWS = 8;
const FEATURES = 6;
const DIM = 5;
/** Subscriptions running at once, and rounds of them, on the long-lived pool. */
const AT_ONCE = 50;
const ROUNDS = 20;
/** Pools closed while their subscriptions run. */
const CLOSED_POOLS = 3;
/** No subscription may take longer than this to settle (a hang fails, it does not stall). */
const SETTLE_MS = 20_000;

const fixture = fileURLToPath(new URL('../fixtures/fault-chaos.ts', import.meta.url));

type Fault = 'throw' | 'exit';
type Source = 'from' | 'subject' | 'fromBatches';
type Operator = 'accumulate' | 'forward' | 'reduce';

interface Plan {
  readonly batches: Batch[];
  /** The first batch that throws or exits, and its shard. */
  readonly fault: { readonly batch: number; readonly shard: number; readonly kind: Fault } | undefined;
  readonly source: Source;
  readonly operator: Operator;
  /** Unsubscribe after this many ms (undefined: never). */
  readonly unsubscribeAfter: number | undefined;
  /** Pauses of a pushing Subject between batches, ms. */
  readonly pauses: number[];
}

function metrics() {
  return new MetricCollection({
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    fired: new NeuronFiredCountMetric({ numLearnedFeatures: FEATURES }),
  });
}

function operatorOf(name: Operator, options: MetricOperatorOptions): OperatorFunction<Batch, unknown> {
  if (name === 'accumulate') return accumulateMetric(metrics(), options);
  if (name === 'forward') return forwardMetric(metrics(), options);
  return reduceMetric(metrics(), options);
}

function makePlan(rng: () => number, seed: number): Plan {
  const count = 1 + Math.floor(rng() * 4);
  let fault: Plan['fault'];
  const batches: Batch[] = [];
  for (let b = 0; b < count; b++) {
    const rows = 1 + Math.floor(rng() * 3 * SHARD_ROWS);
    const learned = lcgFill(new Float32Array(rows * FEATURES), seed * 16 + b);
    const shards = Math.ceil(rows / SHARD_ROWS);
    const roll = rng();
    const shard = Math.floor(rng() * shards);
    if (roll < 0.05) {
      const kind: Fault = roll < 0.03 ? 'throw' : 'exit';
      learned[shard * SHARD_ROWS * FEATURES] = kind === 'throw' ? THROW_VALUE : EXIT_VALUE;
      fault ??= { batch: b, shard, kind };
    } else if (roll < 0.15) learned[shard * SHARD_ROWS * FEATURES] = SLOW_VALUE;
    batches.push({
      learnedActivations: tensor(learned, [rows, FEATURES]),
      sourceActivations: tensor(lcgFill(new Float32Array(rows * DIM), seed * 16 + b + 5000), [rows, DIM]),
      decodedActivations: tensor(lcgFill(new Float32Array(rows * DIM), seed * 16 + b + 9000), [rows, DIM]),
    });
  }
  const sources: Source[] = ['from', 'subject', 'fromBatches'];
  const operators: Operator[] = ['accumulate', 'forward', 'reduce'];
  return {
    batches,
    fault,
    source: sources[Math.floor(rng() * 3)] as Source,
    operator: operators[Math.floor(rng() * 3)] as Operator,
    unsubscribeAfter: rng() < 0.35 ? Math.floor(rng() * 5) : undefined,
    pauses: batches.map(() => Math.floor(rng() * 2)),
  };
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

function sourceOf(plan: Plan, pool: MetricPool): Observable<Batch> {
  if (plan.source === 'from') return from(plan.batches);
  if (plan.source === 'fromBatches') return fromBatches(plan.batches, { pool });
  const subject = new Subject<Batch>();
  // Pushes on subscription, with pauses: batches arrive while earlier ones run.
  void (async () => {
    await sleep(0);
    for (const [b, batch] of plan.batches.entries()) {
      subject.next(batch);
      await sleep(plan.pauses[b] as number);
    }
    subject.complete();
  })();
  return subject;
}

/** Runs one plan on `pool`; resolves with what happened (or rejects when it does not settle in time). */
function run(plan: Plan, pool: MetricPool): Promise<Outcome> {
  return outcomeOf(sourceOf(plan, pool).pipe(operatorOf(plan.operator, { pool })), plan.unsubscribeAfter, SETTLE_MS);
}

/** The values the same operator gives in-thread over all the plan's batches (no faults there). */
function inThread(plan: Plan): unknown[] {
  const values: unknown[] = [];
  from(plan.batches)
    .pipe(operatorOf(plan.operator, { shardRows: SHARD_ROWS, backend: 'wasm' }))
    .subscribe({ next: (v) => values.push(bits(v)), error: (e: unknown) => { throw e; } });
  return values;
}

/** Checks an outcome against the plan and the in-thread values; `closed`: the pool may have been closed. */
function check(plan: Plan, outcome: Outcome, closed: boolean): void {
  const expected = inThread(plan);
  const faultAt = plan.fault?.batch;
  // Values before the first faulty batch (reduce: none before completion).
  const allowed = faultAt === undefined ? expected : plan.operator === 'reduce' ? [] : expected.slice(0, faultAt);
  expect(outcome.values).toEqual(allowed.slice(0, outcome.values.length));
  if (outcome.ending === 'complete') {
    expect(plan.fault).toBeUndefined();
    expect(outcome.values).toEqual(expected);
  } else if (outcome.ending === 'error') {
    const error = outcome.error;
    if (error instanceof PoolClosedError) {
      expect(closed).toBe(true);
      return;
    }
    expect(error).toBeInstanceOf(WorkerError);
    const fault = plan.fault as NonNullable<Plan['fault']>;
    expect(fault).toBeDefined();
    const workerError = error as WorkerError;
    expect([workerError.batchIndex, workerError.shardIndex]).toEqual([fault.batch, fault.shard]);
    const cause = (workerError.cause as Error).message;
    if (fault.kind === 'throw') expect(cause).toBe(`${THROW_MESSAGE} on batch ${fault.batch}, shard ${fault.shard}`);
    else expect(cause).toMatch(/exited with code:? 1/);
    expect(outcome.values).toEqual(allowed);
  }
}

async function settledPool(pool: MetricPool): Promise<void> {
  await vi.waitFor(
    () => {
      expect(pool.inFlight).toBe(0);
      expect(pool.queued).toBe(0);
      expect(pool.threads).toBe(WORKERS);
      expect(pool.memoryUsage().used).toBe(0);
    },
    { timeout: 15_000, interval: 20 },
  );
}

describe('chaos on one pool', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: WORKERS, shardRows: SHARD_ROWS, maxInFlight: 4, filename: fixture, backend: 'wasm' });
  });
  afterAll(async () => {
    await pool.close();
  }, 20_000);

  it(`${AT_ONCE * ROUNDS} subscriptions, ${AT_ONCE} at a time: every one settles with the in-thread values or the right error; the pool ends whole, its memory free and no larger than its peak use`, async () => {
    const rng = mulberry32(SEED);
    const endings = { complete: 0, error: 0, unsubscribed: 0, exits: 0 };
    for (let round = 0; round < ROUNDS; round++) {
      const plans = Array.from({ length: AT_ONCE }, (_, i) => makePlan(rng, round * AT_ONCE + i));
      const outcomes = await Promise.all(plans.map((plan) => run(plan, pool)));
      plans.forEach((plan, i) => {
        const outcome = outcomes[i] as Outcome;
        check(plan, outcome, false);
        endings[outcome.ending]++;
        if (outcome.ending === 'error' && plan.fault?.kind === 'exit') endings.exits++;
      });
    }
    await settledPool(pool);
    // Every kind of ending happened, threads exited and were replaced.
    expect(endings.complete).toBeGreaterThan(AT_ONCE);
    expect(endings.error).toBeGreaterThan(10);
    expect(endings.unsubscribed).toBeGreaterThan(AT_ONCE);
    expect(endings.exits).toBeGreaterThan(5);
    const memory = pool.memoryUsage();
    expect(memory.used).toBe(0);
    // Grown only to what was in use at once (and a page of slack for the arena's holes): the
    // threads that exited and were replaced took no scratch space of their own.
    expect(memory.reserved).toBeLessThanOrEqual(Math.ceil(memory.peak / PAGE) * PAGE + PAGE);
  }, 120_000);
});

describe('chaos with close()', () => {
  it(`${CLOSED_POOLS} pools closed while ${AT_ONCE} subscriptions run on each: PoolClosedError or the right value or error, never a worker blamed for the close`, async () => {
    const rng = mulberry32(SEED + 1);
    let closedErrors = 0;
    for (let p = 0; p < CLOSED_POOLS; p++) {
      const pool = createMetricPool({ workers: WORKERS, shardRows: SHARD_ROWS, maxInFlight: 4, filename: fixture, backend: 'wasm' });
      const plans = Array.from({ length: AT_ONCE }, (_, i) => makePlan(rng, 100_000 + p * AT_ONCE + i));
      const outcomes = Promise.all(plans.map((plan) => run(plan, pool)));
      await sleep(Math.floor(rng() * 40));
      await pool.close();
      const settled = await outcomes;
      plans.forEach((plan, i) => {
        const outcome = settled[i] as Outcome;
        check(plan, outcome, true);
        if (outcome.error instanceof PoolClosedError) closedErrors++;
      });
      expect(pool.threads).toBe(0);
      expect(pool.inFlight).toBe(0);
      expect(pool.memoryUsage().used).toBe(0);
    }
    expect(closedErrors).toBeGreaterThan(0);
  }, 120_000);
});
