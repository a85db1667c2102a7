/**
 * Chaos with the full metric set (the six standard metrics and the eleven SAE evaluation metrics):
 * pools of 1 to 4 workers (the fault-chaos fixture worker, wasm backend) run seeded plans of
 * batches of mixed shapes (rank 2 and 3, 5 to 2000 features) and densities (nearly empty, every value
 * fired, NaN and infinities among them), many at once, with shards that throw, threads that exit,
 * slow shards, unsubscribes at random moments, and streams that are resubscribed after their error
 * (`retry`), on the same batches without the fault.
 *
 * Every value is the in-thread value bit for bit (a failed batch is not counted, nor counted twice
 * after the retry); every subscription settles in time; the pool ends with nothing in flight, its
 * full thread count and its shared memory free (that threads that exit leave no memory behind is
 * crash-memory.test.ts's to show: which thread meets which shard here varies with the machine's
 * load); a pool closed with work in flight errors that work with `PoolClosedError`, never a
 * `WorkerError`.
 */
import { fileURLToPath } from 'node:url';
import { describe, expect, it, vi } from 'vitest';
import { defer, from, retry, type OperatorFunction } from 'rxjs';
import {
  accumulateMetric,
  createMetricPool,
  forwardMetric,
  PoolClosedError,
  reduceMetric,
  tensor,
  WorkerError,
  type Batch,
  type MetricOperatorOptions,
  type MetricPool,
} from '../../src/index.js';
import { bits } from '../support/compare.js';
import { fullSet } from '../support/full-set.js';
import { outcomeOf, type Outcome } from '../support/outcome.js';
import { mulberry32 } from '../support/random.js';
import { EXIT_VALUE, SLOW_VALUE, THROW_MESSAGE, THROW_VALUE } from '../fixtures/fault-chaos.js';

const SHARD_ROWS = 8;
const DIM = 3;
const PAGE = 65536;
const AT_ONCE = 10;
const ROUNDS = 4;
const SETTLE_MS = 20_000;
const fixture = fileURLToPath(new URL('../fixtures/fault-chaos.ts', import.meta.url));

type Operator = 'accumulate' | 'forward' | 'reduce';
type Fault = 'throw' | 'exit';
const SHAPES = [
  { components: undefined, features: 5 },
  { components: 2, features: 7 },
  { components: undefined, features: 300 },
  // Dense shards of this width are past the WebAssembly statistics' scratch: their entries go to the
  // JavaScript parts.
  { components: undefined, features: 2000 },
] as const;

interface Plan {
  readonly shape: (typeof SHAPES)[number];
  readonly batches: Batch[];
  /** The same batches without the fault (what a retry reads). */
  readonly clean: Batch[];
  readonly fault: { readonly batch: number; readonly shard: number; readonly kind: Fault } | undefined;
  readonly operator: Operator;
  readonly unsubscribeAfter: number | undefined;
  readonly retry: boolean;
}

function operatorOf(plan: Plan, options: MetricOperatorOptions): OperatorFunction<Batch, unknown> {
  const m = fullSet(plan.shape.features, DIM, plan.shape.components);
  if (plan.operator === 'accumulate') return accumulateMetric(m, options);
  if (plan.operator === 'forward') return forwardMetric(m, options);
  return reduceMetric(m, options);
}

function makePlan(r: () => number): Plan {
  const shape = SHAPES[Math.floor(r() * SHAPES.length)] as Plan['shape'];
  const c = shape.components ?? 1;
  const width = c * shape.features;
  const count = 1 + Math.floor(r() * 4);
  const batches: Batch[] = [];
  const clean: Batch[] = [];
  let fault: Plan['fault'];
  for (let b = 0; b < count; b++) {
    const rows = 1 + Math.floor(r() * 4 * SHARD_ROWS);
    const mode = Math.floor(r() * 3);
    const data = new Float32Array(rows * width);
    for (let i = 0; i < data.length; i++) {
      if (mode === 0) data[i] = r() < 0.03 ? Math.fround(r() * 4) : 0;
      else if (mode === 1) data[i] = Math.fround(1e-3 + r() * 50);
      else data[i] = r() < 0.02 ? [NaN, Infinity, -Infinity, -0, 1e-45][Math.floor(r() * 5)] as number : r() < 0.5 ? Math.floor(r() * 8) / 4 : 0;
    }
    const shard = Math.floor(r() * Math.ceil(rows / SHARD_ROWS));
    const cleanData = data.slice();
    const roll = r();
    if (roll < 0.18 && fault === undefined) {
      const kind: Fault = roll < 0.09 ? 'throw' : 'exit';
      data[shard * SHARD_ROWS * width] = kind === 'throw' ? THROW_VALUE : EXIT_VALUE;
      cleanData[shard * SHARD_ROWS * width] = 5;
      fault = { batch: b, shard, kind };
    } else if (roll < 0.3) {
      data[shard * SHARD_ROWS * width] = SLOW_VALUE;
      cleanData[shard * SHARD_ROWS * width] = SLOW_VALUE;
    }
    const dims = shape.components === undefined ? [rows] : [rows, c];
    const s = Float32Array.from({ length: rows * c * DIM }, () => r() - 0.5);
    const d = Float32Array.from({ length: rows * c * DIM }, () => r() - 0.5);
    const rest = { sourceActivations: tensor(s, [...dims, DIM]), decodedActivations: tensor(d, [...dims, DIM]) };
    batches.push({ learnedActivations: tensor(data, [...dims, shape.features]), ...rest });
    clean.push({ learnedActivations: tensor(cleanData, [...dims, shape.features]), ...rest });
  }
  const operators: Operator[] = ['accumulate', 'forward', 'reduce'];
  return {
    shape,
    batches,
    clean,
    fault,
    operator: operators[Math.floor(r() * 3)] as Operator,
    unsubscribeAfter: r() < 0.25 ? Math.floor(r() * 6) : undefined,
    retry: r() < 0.5,
  };
}

function run(plan: Plan, pool: MetricPool): Promise<Outcome> {
  let attempt = 0;
  // A retry subscribes again: the second time the batches come without the fault.
  const source = defer(() => from(attempt++ === 0 ? plan.batches : plan.clean)).pipe(operatorOf(plan, { pool }));
  return outcomeOf(plan.retry ? source.pipe(retry(1)) : source, plan.unsubscribeAfter, SETTLE_MS);
}

function inThread(plan: Plan, batches: Batch[]): unknown[] {
  const values: unknown[] = [];
  from(batches)
    .pipe(operatorOf(plan, { shardRows: SHARD_ROWS, backend: 'wasm' }))
    .subscribe({ next: (v) => values.push(bits(v)), error: (e: unknown) => { throw e; } });
  return values;
}

/** Checks an outcome: the in-thread values before the fault, then (retried) all the clean ones. */
function check(plan: Plan, o: Outcome, label: string, closed = false): void {
  const before = plan.fault === undefined ? inThread(plan, plan.batches) : plan.operator === 'reduce' ? [] : inThread(plan, plan.batches.slice(0, plan.fault.batch));
  const retried = plan.fault !== undefined && plan.retry;
  const expected = retried ? [...before, ...inThread(plan, plan.clean)] : before;
  expect(o.values, label).toEqual(expected.slice(0, o.values.length));
  if (o.ending === 'complete') {
    expect(plan.fault === undefined || plan.retry, `${label} completed`).toBe(true);
    expect(o.values, label).toEqual(expected);
  }
  if (o.ending === 'error') {
    if (closed && o.error instanceof PoolClosedError) return;
    expect(o.error, label).toBeInstanceOf(WorkerError);
    const e = o.error as WorkerError;
    expect(plan.fault, label).toBeDefined();
    expect(plan.retry, `${label}: a retried stream errs only on a closed pool`).toBe(false);
    expect([e.batchIndex, e.shardIndex], label).toEqual([plan.fault?.batch, plan.fault?.shard]);
    if (plan.fault?.kind === 'throw') expect((e.cause as Error).message, label).toContain(THROW_MESSAGE);
    else expect((e.cause as Error).message, label).toMatch(/exited with code:? 1/);
    expect(o.values, label).toEqual(before);
  }
}

async function settled(pool: MetricPool, workers: number): Promise<void> {
  await vi.waitFor(
    () => {
      expect([pool.inFlight, pool.queued, pool.threads, pool.memoryUsage().used]).toEqual([0, 0, workers, 0]);
    },
    { timeout: 15_000, interval: 20 },
  );
}

describe('the full metric set on pools whose workers throw, exit, are slow and are unsubscribed from', () => {
  for (const workers of [1, 2, 3, 4]) {
    it(`${workers} worker(s): ${ROUNDS} rounds of ${AT_ONCE} plans at once; values exact, the pool whole, its memory free`, async () => {
      const r = mulberry32(0xf5c4a05 + workers);
      const pool = createMetricPool({ workers, shardRows: SHARD_ROWS, maxInFlight: 2 * workers, filename: fixture, backend: 'wasm' });
      try {
        const seen = { error: 0, exits: 0, retried: 0, unsubscribed: 0 };
        const reserved: number[] = [];
        for (let round = 0; round < ROUNDS; round++) {
          const plans = Array.from({ length: AT_ONCE }, () => makePlan(r));
          const outcomes = await Promise.all(plans.map((p) => run(p, pool)));
          plans.forEach((plan, i) => {
            const o = outcomes[i] as Outcome;
            check(plan, o, `round ${round}, plan ${i}`);
            if (o.ending === 'error') seen.error++;
            if (o.ending === 'unsubscribed') seen.unsubscribed++;
            if (plan.fault?.kind === 'exit' && o.ending !== 'unsubscribed') seen.exits++;
            if (plan.fault !== undefined && plan.retry && o.ending === 'complete') seen.retried++;
          });
          await settled(pool, workers);
          reserved.push(pool.memoryUsage().reserved);
        }
        console.log(`${workers} worker(s):`, seen, 'reserved (pages) after each round:', reserved.map((b) => b / PAGE).join(' '));
        expect(seen.exits).toBeGreaterThan(0);
        expect(seen.retried).toBeGreaterThan(0);
        expect(seen.error + seen.unsubscribed).toBeGreaterThan(0);
      } finally {
        await pool.close();
      }
    }, 60_000);
  }

  it('pools closed with plans in flight: PoolClosedError or the values and errors above', async () => {
    const r = mulberry32(0xc105ed);
    let closedErrors = 0;
    for (let p = 0; p < 3; p++) {
      const workers = 1 + p;
      const pool = createMetricPool({ workers, shardRows: SHARD_ROWS, maxInFlight: 2, filename: fixture, backend: 'wasm' });
      const plans = Array.from({ length: AT_ONCE }, () => makePlan(r));
      const outcomes = Promise.all(plans.map((plan) => run(plan, pool)));
      await new Promise((resolve) => setTimeout(resolve, Math.floor(r() * 30)));
      await pool.close();
      const settledOutcomes = await outcomes;
      plans.forEach((plan, i) => {
        const o = settledOutcomes[i] as Outcome;
        check(plan, o, `pool ${p}, plan ${i}`, true);
        if (o.error instanceof PoolClosedError) closedErrors++;
      });
      expect([pool.threads, pool.inFlight, pool.memoryUsage().used]).toEqual([0, 0, 0]);
    }
    expect(closedErrors).toBeGreaterThan(0);
  }, 60_000);
});
