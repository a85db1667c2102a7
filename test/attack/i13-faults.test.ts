/**
 * Attack on issue 13's metrics under worker faults: on a pool of the fault-chaos fixture worker,
 * seeded plans of sparse and dense batches (some with `firstVectorIndex`), some with a shard that
 * throws or whose thread exits, some unsubscribed mid-way, many at once. Every value emitted before
 * the faulty batch must be the in-thread value bit for bit (a failed batch is not counted: the
 * vector numbering does not advance for it), the error names the faulty batch and shard, and the
 * same batches with the faults removed, run again on the same pool afterwards, give the in-thread
 * values bit for bit (nothing left behind by failed or cancelled work).
 */
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { from, type OperatorFunction } from 'rxjs';
import {
  accumulateMetric,
  createMetricPool,
  DeadFeaturesOverWindow,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureFrequencyStats,
  forwardMetric,
  MetricCollection,
  reduceMetric,
  tensor,
  TopActivations,
  WorkerError,
  type Batch,
  type MetricOperatorOptions,
  type MetricPool,
} from '../../src/index.js';
import { bits } from '../support/compare.js';
import { outcomeOf, type Outcome } from '../support/outcome.js';
import { mulberry32 } from '../support/random.js';
import { EXIT_VALUE, SLOW_VALUE, THROW_VALUE } from '../fixtures/fault-chaos.js';

const SEED = 0x13a77ac;
const SHARD_ROWS = 8;
const FEATURES = 7;
const COMPONENTS = 2;
const PLANS = 48;
const AT_ONCE = 12;

const fixture = fileURLToPath(new URL('../fixtures/fault-chaos.ts', import.meta.url));

type Operator = 'accumulate' | 'forward' | 'reduce';

interface Plan {
  readonly batches: Batch[];
  readonly clean: Batch[];
  readonly fault: { readonly batch: number; readonly shard: number } | undefined;
  readonly operator: Operator;
  readonly unsubscribeAfter: number | undefined;
}

function metrics(): MetricCollection {
  const o = { numLearnedFeatures: FEATURES, numComponents: COMPONENTS };
  return new MetricCollection({
    top: new TopActivations({ ...o, k: 2 }),
    dead: new DeadFeaturesOverWindow({ ...o, windowVectors: 9 }),
    freq: new FeatureFrequencyStats(o),
    actstats: new FeatureActivationStats(o),
    acthist: new FeatureActivationHistogram(o),
  });
}

function operatorOf(name: Operator, options: MetricOperatorOptions): OperatorFunction<Batch, unknown> {
  if (name === 'accumulate') return accumulateMetric(metrics(), options);
  if (name === 'forward') return forwardMetric(metrics(), options);
  return reduceMetric(metrics(), options);
}

function makePlan(r: () => number): Plan {
  const count = 1 + Math.floor(r() * 5);
  const batches: Batch[] = [];
  const clean: Batch[] = [];
  let fault: Plan['fault'];
  let next = 0;
  const width = COMPONENTS * FEATURES;
  for (let b = 0; b < count; b++) {
    const rows = 1 + Math.floor(r() * 4 * SHARD_ROWS);
    const dense = r() < 0.4;
    const data = Float32Array.from({ length: rows * width }, () => (dense ? 0.5 + Math.floor(r() * 8) / 4 : r() < 0.05 ? Math.floor(r() * 8) / 4 : 0));
    const shards = Math.ceil(rows / SHARD_ROWS);
    const shard = Math.floor(r() * shards);
    const cleanData = data.slice();
    const roll = r();
    if (roll < 0.15) {
      // A faulty shard; in-thread (and in the clean copy) a large activation, as on its other values.
      data[shard * SHARD_ROWS * width] = roll < 0.09 ? THROW_VALUE : EXIT_VALUE;
      cleanData[shard * SHARD_ROWS * width] = 5;
      fault ??= { batch: b, shard };
    } else if (roll < 0.25) {
      data[shard * SHARD_ROWS * width] = SLOW_VALUE;
      cleanData[shard * SHARD_ROWS * width] = SLOW_VALUE;
    }
    const first = r() < 0.5 ? next + Math.floor(r() * 20) : undefined;
    const extra = first === undefined ? {} : { firstVectorIndex: first };
    batches.push({ learnedActivations: tensor(data, [rows, COMPONENTS, FEATURES]), ...extra });
    clean.push({ learnedActivations: tensor(cleanData, [rows, COMPONENTS, FEATURES]), ...extra });
    next = (first ?? next) + rows;
  }
  const operators: Operator[] = ['accumulate', 'forward', 'reduce'];
  return { batches, clean, fault, operator: operators[Math.floor(r() * 3)] as Operator, unsubscribeAfter: r() < 0.25 ? Math.floor(r() * 4) : undefined };
}

function run(plan: Plan, batches: Batch[], pool: MetricPool, unsubscribeAfter: number | undefined): Promise<Outcome> {
  return outcomeOf(from(batches).pipe(operatorOf(plan.operator, { pool })), unsubscribeAfter);
}

function inThread(plan: Plan, batches: Batch[]): unknown[] {
  const values: unknown[] = [];
  from(batches)
    .pipe(operatorOf(plan.operator, { shardRows: SHARD_ROWS, backend: 'wasm' }))
    .subscribe({ next: (v) => values.push(bits(v)), error: (e: unknown) => { throw e; } });
  return values;
}

describe('issue 13 metrics on a pool whose workers throw, exit and are unsubscribed from', () => {
  let pool: MetricPool;
  beforeAll(() => {
    pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, maxInFlight: 4, filename: fixture, backend: 'wasm' });
  });
  afterAll(async () => {
    await pool.close();
  });

  it('values before a fault are the in-thread ones; the error names the batch; clean reruns are exact', async () => {
    const r = mulberry32(SEED);
    const plans = Array.from({ length: PLANS }, () => makePlan(r));
    let faults = 0;
    let unsubscribed = 0;
    for (let i = 0; i < plans.length; i += AT_ONCE) {
      const group = plans.slice(i, i + AT_ONCE);
      const outcomes = await Promise.all(group.map((p) => run(p, p.batches, pool, p.unsubscribeAfter)));
      group.forEach((plan, j) => {
        const o = outcomes[j] as Outcome;
        const expected = inThread(plan, plan.batches);
        const faultAt = plan.fault?.batch;
        const allowed = faultAt === undefined ? expected : plan.operator === 'reduce' ? [] : expected.slice(0, faultAt);
        expect(o.values, `plan ${i + j}`).toEqual(allowed.slice(0, o.values.length));
        if (o.ending === 'complete') expect(plan.fault, `plan ${i + j} completed`).toBeUndefined();
        if (o.ending === 'unsubscribed') unsubscribed++;
        if (o.ending === 'error') {
          faults++;
          expect(o.error, `plan ${i + j}`).toBeInstanceOf(WorkerError);
          const e = o.error as WorkerError;
          expect([e.batchIndex, e.shardIndex], `plan ${i + j}`).toEqual([plan.fault?.batch, plan.fault?.shard]);
        }
      });
      // The same plans, faults removed, all at once on the same pool: every value exact.
      const reruns = await Promise.all(group.map((p) => run(p, p.clean, pool, undefined)));
      group.forEach((plan, j) => {
        const o = reruns[j] as Outcome;
        expect(o.ending, `plan ${i + j} rerun`).toBe('complete');
        expect(o.values, `plan ${i + j} rerun`).toEqual(inThread(plan, plan.clean));
      });
    }
    expect(faults).toBeGreaterThan(3);
    expect(unsubscribed).toBeGreaterThan(0);
  }, 120_000);
});
