/**
 * Attack on the metric operators' RxJS contracts, on a pool and in-thread, with seeded schedules:
 * whatever the schedule, a subscription's values, and how it ends, must be those of the same
 * batches through the same operator in-thread (the operators' documented promise), values once
 * each and in batch order, an error or completion exactly once, nothing after it, and no
 * unhandled promise rejection.
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Observable, retry, Subject, type OperatorFunction } from 'rxjs';
import {
  accumulateMetric,
  CapacityMetric,
  computeEvery,
  DeadFeaturesOverWindow,
  createMetricPool,
  forwardMetric,
  L1AbsoluteLoss,
  MetricCollection,
  NeuronActivityMetric,
  reduceMetric,
  tensor,
  TopActivations,
  type Batch,
  type LearnedBatch,
  type MetricOperatorOptions,
  type MetricPool,
  type MetricTarget,
} from '../../src/index.js';
import { randomTensor } from '../support/batches.js';
import { bits } from '../support/compare.js';
import { watch } from '../support/watch.js';
import { mulberry32 } from '../support/random.js';

const FEATURES = 5;
const COMPONENTS = 2;

function metrics(): MetricCollection {
  const o = { numLearnedFeatures: FEATURES, numComponents: COMPONENTS };
  return new MetricCollection({
    l1: new L1AbsoluteLoss({ numComponents: COMPONENTS }),
    dead: new NeuronActivityMetric(o),
    top: new TopActivations({ ...o, k: 2 }),
  });
}

const batchOf = (seed: number, rows: number): LearnedBatch => ({ learnedActivations: randomTensor([rows, COMPONENTS, FEATURES], seed, -1, 2, 0.4) });

type OperatorName = 'accumulate' | 'forward' | 'reduce' | 'every';
const operators: Record<OperatorName, (o: MetricOperatorOptions) => OperatorFunction<Batch, unknown>> = {
  accumulate: (o) => accumulateMetric(metrics(), o),
  forward: (o) => forwardMetric(metrics(), o),
  reduce: (o) => reduceMetric(metrics(), o),
  every: (o) => computeEvery(metrics(), { batches: 2 }, { ...o, emitPartial: true }),
};

let pool: MetricPool;
const rejections: unknown[] = [];
const onRejection = (reason: unknown): void => {
  rejections.push(reason);
};
beforeAll(() => {
  pool = createMetricPool({ workers: 2, shardRows: 2, maxInFlight: 3 });
  process.on('unhandledRejection', onRejection);
});
afterAll(async () => {
  process.off('unhandledRejection', onRejection);
  await pool.close();
});
afterEach(async () => {
  // Let any stray rejection surface before it is checked.
  await new Promise((resolve) => setTimeout(resolve, 20));
  expect(rejections).toEqual([]);
});

describe('a rejected batch or a source error after batches still on the pool', () => {
  const SEED = 0x0e5c0de;
  const PLANS = 24;
  it(`their values come first, then the error, as in-thread (${PLANS} seeded schedules)`, async () => {
    const random = mulberry32(SEED);
    for (let p = 0; p < PLANS; p++) {
      const n = 2 + Math.floor(random() * 7);
      const batches = Array.from({ length: n }, (_, i) => batchOf(1000 * p + i, 1 + Math.floor(random() * 9)));
      const name = (['accumulate', 'forward', 'reduce', 'every'] as const)[p % 4] as OperatorName;
      const failure = random() < 0.5 ? 'rejected batch' : 'source error';
      // Waits between pushes (turns of the event loop), so that some batches are done by then.
      const waits = batches.map(() => (random() < 0.3 ? Math.floor(random() * 3) : 0));
      const run = async (options: MetricOperatorOptions): Promise<{ events: unknown[]; observed: boolean }> => {
        const subject = new Subject<Batch>();
        const seen = watch(subject, operators[name](options));
        for (const [i, b] of batches.entries()) {
          subject.next(b);
          for (let w = 0; w < (waits[i] as number); w++) await new Promise((resolve) => setImmediate(resolve));
        }
        if (failure === 'rejected batch') subject.next({});
        else subject.error(new Error(`the source failed after ${n} batches`));
        // Nothing that comes later is taken.
        subject.next(batchOf(7, 3));
        await seen.ended;
        await new Promise((resolve) => setTimeout(resolve, 5));
        return { events: seen.events, observed: subject.observed };
      };
      const inThread = await run({ shardRows: 2 });
      const onPool = await run({ pool });
      const label = `plan ${p}: ${name}, ${n} batches, then a ${failure}`;
      expect(onPool.events, label).toEqual(inThread.events);
      expect(onPool.observed, label).toBe(false);
      expect(String((inThread.events.at(-1) as { error?: string }).error), label).toMatch(/Error$/);
    }
    expect(pool.inFlight + pool.queued).toBe(0);
    expect(pool.memoryUsage().used).toBe(0);
  }, 60_000);
});

describe('the metric is a template, taken when the operator is made', () => {
  const batches = [1, 2, 3, 4].map((seed) => batchOf(seed, 2 + seed));
  /** The running L1 values of `batches`, by a metric used alone. */
  const runningL1 = (): unknown[] => {
    const m = new L1AbsoluteLoss({ numComponents: COMPONENTS });
    return batches.map((b) => {
      m.update(b);
      return bits(m.compute());
    });
  };

  for (const where of ['in-thread', 'on a pool'] as const) {
    it(`${where}: neither an option changed afterwards nor the template's state changed while it runs is seen, retry included`, async () => {
      const template = new L1AbsoluteLoss({ numComponents: COMPONENTS });
      const operator = accumulateMetric(template, where === 'on a pool' ? { pool } : {});
      template.keepBatchDim = true;
      let attempt = 0;
      const seen = await new Promise<unknown[]>((resolve, reject) => {
        const out: unknown[] = [];
        const source = new Observable<Batch>((subscriber) => {
          const first = attempt++ === 0;
          // Between the attempts, the option goes back and forth; meanwhile the state changes.
          template.keepBatchDim = !template.keepBatchDim;
          for (const [i, b] of batches.entries()) {
            subscriber.next(b);
            template.update(batchOf(99, 3));
            template.loadState(template.state());
            template.mergeState(template);
            if (first && i === 1) {
              subscriber.error(new Error('the first attempt fails after 2 batches'));
              return;
            }
          }
          subscriber.complete();
        });
        source.pipe(operator, retry(1)).subscribe({ next: (v) => out.push(bits(v)), error: reject, complete: () => resolve(out) });
      });
      const expected = runningL1();
      expect(seen).toEqual([...expected.slice(0, 2), ...expected]);
    }, 20_000);
  }
});

describe('a subscriber that pushes the next batch from inside next (re-entrant)', () => {
  const batches = Array.from({ length: 6 }, (_, i) => batchOf(7000 + i, 1 + ((i * 3) % 5)));
  /** Each batch's value alone, by a collection used alone. */
  const alone = batches.map((b) => {
    const m = metrics();
    m.update(b);
    return bits(m.compute());
  });

  for (const where of ['in-thread', 'on a pool'] as const) {
    for (const window of [{ batches: 1 }, { vectors: 1 }] as const) {
      it(`${where}: computeEvery(${JSON.stringify(window)}) gives each batch's own value (the window is reset before it is emitted)`, async () => {
        const subject = new Subject<Batch>();
        let pushed = 0;
        const seen = await new Promise<unknown[]>((resolve, reject) => {
          const out: unknown[] = [];
          subject.pipe(computeEvery(metrics(), window, where === 'on a pool' ? { pool } : { shardRows: 2 })).subscribe({
            next: (v) => {
              out.push(bits(v));
              if (pushed < batches.length) subject.next(batches[pushed++] as Batch);
              else subject.complete();
            },
            error: reject,
            complete: () => resolve(out),
          });
          subject.next(batches[pushed++] as Batch);
        });
        expect(seen).toEqual(alone);
      }, 20_000);
    }
  }
});

/** A resizable ArrayBuffer (Node 20 has them; this TypeScript lib does not declare them). */
const Resizable = ArrayBuffer as unknown as new (bytes: number, options: { maxByteLength: number }) => ArrayBuffer & { resize(bytes: number): void };

describe('checks that depend on earlier batches, while those are still on the pool', () => {
  // L1 keepBatchDim and Capacity keep one row shape; TopActivations and DeadFeaturesOverWindow
  // refuse a firstVectorIndex below the vectors seen. In-thread, a batch meets the state of every
  // batch before it (or, in computeEvery, the reset after its window): on a pool it must too,
  // whether those batches are still on the pool or not.
  const SEED = 0x57a7e;
  const PLANS = 32;
  const o = { numLearnedFeatures: FEATURES, numComponents: COMPONENTS };
  const targets = [
    () => new MetricCollection({ l1: new L1AbsoluteLoss({ numComponents: COMPONENTS, keepBatchDim: true }), top: new TopActivations({ ...o, k: 2 }) }),
    () => new MetricCollection({ capacity: new CapacityMetric(), window: new DeadFeaturesOverWindow({ ...o, windowVectors: 4 }) }),
    () => new L1AbsoluteLoss({ numComponents: COMPONENTS, keepBatchDim: true }),
    () => new CapacityMetric(),
    () => new TopActivations({ ...o, k: 2 }),
  ];

  it(`a batch is refused, or taken, as in-thread, with the in-thread error (${PLANS} seeded schedules)`, async () => {
    const random = mulberry32(SEED);
    let refused = 0;
    let taken = 0;
    for (let p = 0; p < PLANS; p++) {
      const target = targets[p % targets.length] as () => MetricTarget;
      const n = 2 + Math.floor(random() * 6);
      const components = random() < 0.7;
      let vectors = 0;
      const batches = Array.from({ length: n }, (_, i): Batch => {
        const rows = 1 + Math.floor(random() * 3);
        // Now and then the other rank (one component, no component axis) or a declared first index.
        const rank3 = random() < 0.2 ? !components : components;
        const learned = randomTensor(rank3 ? [rows, COMPONENTS, FEATURES] : [rows, FEATURES], 9000 + 100 * p + i, -1, 2, 0.4);
        const r = random();
        const first = r < 0.15 ? Math.max(0, vectors - 1 - Math.floor(random() * 2)) : r < 0.3 ? vectors + Math.floor(random() * 3) : undefined;
        vectors = (first ?? vectors) + rows;
        return first === undefined ? { learnedActivations: learned } : { learnedActivations: learned, firstVectorIndex: first };
      });
      const waits = batches.map(() => (random() < 0.3 ? 1 + Math.floor(random() * 3) : 0));
      const every = random() < 0.4;
      const make = (options: MetricOperatorOptions): OperatorFunction<Batch, unknown> =>
        every ? computeEvery(target(), { batches: 1 + Math.floor(p / 5) % 2 }, { ...options, emitPartial: true }) : accumulateMetric(target(), options);
      const run = async (options: MetricOperatorOptions): Promise<unknown[]> => {
        const subject = new Subject<Batch>();
        const seen = watch(subject, make(options));
        for (const [i, b] of batches.entries()) {
          subject.next(b);
          for (let w = 0; w < (waits[i] as number); w++) await new Promise((resolve) => setTimeout(resolve, 1));
        }
        subject.complete();
        await seen.ended;
        return seen.events;
      };
      const inThread = await run({ shardRows: 2 });
      const onPool = await run({ pool });
      expect(onPool, `plan ${p}: ${every ? 'computeEvery' : 'accumulateMetric'}, ${n} batches`).toEqual(inThread);
      if (inThread.at(-1) === 'complete') taken++;
      else refused++;
    }
    // The schedules exercise both outcomes.
    expect(refused).toBeGreaterThan(3);
    expect(taken).toBeGreaterThan(3);
  }, 60_000);

  it("the caller's memory transferred or shrunk right after next, behind batches on the pool, changes nothing", async () => {
    // The pool copies a batch inside next; whatever checks come later must not read the caller's memory.
    const shapes = [[3, COMPONENTS, FEATURES], [2, COMPONENTS, FEATURES], [4, COMPONENTS, FEATURES], [1, COMPONENTS, FEATURES]];
    const pristine = shapes.map((shape, i) => randomTensor(shape, 4242 + i, -1, 2, 0.4));
    const expected: unknown[] = [];
    const alone = new L1AbsoluteLoss({ numComponents: COMPONENTS, keepBatchDim: true });
    for (const t of pristine) {
      alone.update({ learnedActivations: t });
      expected.push(bits(alone.compute()));
    }
    const subject = new Subject<Batch>();
    const seen = watch(subject, accumulateMetric(new L1AbsoluteLoss({ numComponents: COMPONENTS, keepBatchDim: true }), { pool }));
    for (const [i, t] of pristine.entries()) {
      const n = t.data.length;
      // Even batches on a buffer that is transferred away (detached), odd ones on a resizable one shrunk to nothing.
      const buffer = i % 2 === 0 ? new ArrayBuffer(4 * n) : new Resizable(4 * n, { maxByteLength: 8 * n });
      const data = new Float32Array(buffer);
      data.set(t.data);
      subject.next({ learnedActivations: tensor(data, [...t.shape]) });
      if (i % 2 === 0) structuredClone(buffer, { transfer: [buffer] });
      else (buffer as InstanceType<typeof Resizable>).resize(0);
      expect(data.length).toBe(0);
    }
    subject.complete();
    await seen.ended;
    expect(seen.events).toEqual([...expected, 'complete']);
  }, 20_000);
});

describe('many subscriptions on one pool at once, under seeded schedules', () => {
  const SEED = 0x5ced;
  const ROUNDS = 4;
  const AT_ONCE = 8;

  interface Plan {
    readonly name: OperatorName;
    readonly batches: Batch[];
    readonly waits: number[];
    readonly failure: 'rejected batch' | 'source error' | undefined;
    /** Unsubscribe from inside `next` once this many values came (undefined: never). */
    readonly stopAfter: number | undefined;
    /** Push the next batch from inside `next` (re-entrant), instead of from the loop. */
    readonly reentrant: boolean;
    /** Unsubscribe from outside after this many milliseconds (undefined: never). */
    readonly cancelAfter: number | undefined;
  }

  function makePlan(random: () => number, p: number): Plan {
    const n = 1 + Math.floor(random() * 6);
    const name = (['accumulate', 'forward', 'reduce', 'every'] as const)[Math.floor(random() * 4)] as OperatorName;
    const r = random();
    return {
      name,
      batches: Array.from({ length: n }, (_, i) => batchOf(50_000 + 100 * p + i, 1 + Math.floor(random() * 8))),
      waits: Array.from({ length: n }, () => (random() < 0.4 ? 1 + Math.floor(random() * 2) : 0)),
      failure: r < 0.25 ? 'rejected batch' : r < 0.4 ? 'source error' : undefined,
      stopAfter: random() < 0.25 ? Math.floor(random() * n) + 1 : undefined,
      reentrant: name !== 'reduce' && random() < 0.3,
      cancelAfter: random() < 0.2 ? Math.floor(random() * 6) : undefined,
    };
  }

  /** Runs a plan; resolves with what the subscriber saw once the run is over. */
  async function run(plan: Plan, options: MetricOperatorOptions): Promise<unknown[]> {
    const subject = new Subject<Batch>();
    let pushed = 0;
    const finish = (): void => {
      if (plan.failure === 'rejected batch') subject.next({});
      else if (plan.failure === 'source error') subject.error(new Error('the source failed'));
      else subject.complete();
    };
    const seen = watch(subject, operators[plan.name](options), ({ events: values, subscription: self }, end) => {
      if (plan.stopAfter !== undefined && values.length >= plan.stopAfter) {
        self.unsubscribe();
        end();
        return;
      }
      if (plan.reentrant && pushed < plan.batches.length) subject.next(plan.batches[pushed++] as Batch);
      else if (plan.reentrant && pushed === plan.batches.length) {
        pushed++;
        finish();
      }
    });
    const { subscription } = seen;
    let cancel: () => void = () => undefined;
    const cancelled = new Promise<void>((resolve) => (cancel = resolve));
    if (plan.cancelAfter !== undefined && options.pool !== undefined) {
      setTimeout(() => {
        if (subscription.closed) return;
        subscription.unsubscribe();
        seen.events.push('cancelled');
        cancel();
      }, plan.cancelAfter);
    }
    if (plan.reentrant) {
      subject.next(plan.batches[pushed++] as Batch);
    } else {
      for (const [i, b] of plan.batches.entries()) {
        if (subscription.closed) break;
        subject.next(b);
        pushed++;
        for (let w = 0; w < (plan.waits[i] as number); w++) await new Promise((resolve) => setImmediate(resolve));
      }
      if (!subscription.closed) finish();
    }
    // A re-entrant plan whose operator emits no value for some batches (every, reduce) is pushed on from here.
    while (plan.reentrant && !subscription.closed && pushed <= plan.batches.length) {
      await new Promise((resolve) => setTimeout(resolve, 1));
      if (subscription.closed) break;
      if (pushed < plan.batches.length) subject.next(plan.batches[pushed++] as Batch);
      else {
        pushed++;
        finish();
      }
    }
    await Promise.race([seen.ended, cancelled]);
    // Anything that came after the end would be here now.
    await new Promise((resolve) => setTimeout(resolve, 10));
    return seen.events;
  }

  for (let round = 0; round < ROUNDS; round++) {
    it(`round ${round}: each subscription sees what it sees in-thread, once, in order; the pool ends idle`, async () => {
      const random = mulberry32(SEED + round);
      const plans = Array.from({ length: AT_ONCE }, (_, p) => makePlan(random, round * AT_ONCE + p));
      const expected = await Promise.all(plans.map((plan) => run(plan, { shardRows: 2 })));
      const got = await Promise.all(plans.map((plan) => run(plan, { pool })));
      for (const [p, plan] of plans.entries()) {
        const label = `round ${round}, plan ${p}: ${plan.name}, ${plan.batches.length} batches, ${plan.failure ?? 'no failure'}, stop after ${String(plan.stopAfter)}, ${plan.reentrant ? 're-entrant' : 'pushed'}`;
        const mine = got[p] as unknown[];
        if (mine.at(-1) === 'cancelled') {
          // Cancelled from outside on the pool: a prefix of the in-thread values, and nothing after.
          const values = (expected[p] as unknown[]).filter((e) => typeof e !== 'string' && !(typeof e === 'object' && e !== null && 'error' in e));
          expect(mine.slice(0, -1), label).toEqual(values.slice(0, mine.length - 1));
        } else expect(mine, label).toEqual(expected[p]);
      }
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(pool.inFlight + pool.queued).toBe(0);
      expect(pool.memoryUsage().used).toBe(0);
    }, 30_000);
  }
});

/** The second attack, on the checks made at a batch's turn: its caller changes its memory after next. */
type ResizableBuffer = InstanceType<typeof Resizable>;

/** What the caller does to a batch's memory right after handing it over. */
type Mutation = 'none' | 'transfer' | 'shrink' | 'grow' | 'overwrite' | 'replace';
const MUTATIONS: readonly Mutation[] = ['none', 'transfer', 'shrink', 'grow', 'overwrite', 'replace'];

interface BatchSpec {
  readonly shape: readonly number[];
  readonly seed: number;
  readonly first: number | undefined;
  readonly mutation: Mutation;
}

/** A fresh batch of `spec` on memory the mutation can act on; `mutate` acts. */
function build(spec: BatchSpec): { batch: Batch; mutate: () => void } {
  const random = mulberry32(spec.seed);
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const buffer = spec.mutation === 'shrink' || spec.mutation === 'grow' ? new Resizable(4 * n, { maxByteLength: 8 * n + 8 }) : new ArrayBuffer(4 * n);
  // Length-tracking on a resizable buffer: its length follows the buffer's.
  const data = new Float32Array(buffer);
  for (let i = 0; i < n; i++) data[i] = random() < 0.4 ? 0 : -1 + 3 * random();
  const learnedActivations = { data, shape: [...spec.shape] };
  const batch: Record<string, unknown> = { learnedActivations };
  if (spec.first !== undefined) batch.firstVectorIndex = spec.first;
  const mutate = (): void => {
    switch (spec.mutation) {
      case 'transfer':
        structuredClone(buffer, { transfer: [buffer] });
        break;
      case 'shrink':
        (buffer as ResizableBuffer).resize(0);
        break;
      case 'grow':
        (buffer as ResizableBuffer).resize(8 * n + 8);
        break;
      case 'overwrite':
        data.fill(Number.NaN);
        break;
      case 'replace':
        // The caller's tensor object now names other memory, of another shape, and another first index.
        learnedActivations.data = new Float32Array(3);
        learnedActivations.shape = [3];
        batch.firstVectorIndex = -1;
        break;
      case 'none':
        break;
    }
  };
  return { batch: batch as Batch, mutate };
}

const shape = { numLearnedFeatures: FEATURES, numComponents: COMPONENTS };
const stateTargets: readonly (() => MetricTarget)[] = [
  () => new CapacityMetric(),
  () => new L1AbsoluteLoss({ numComponents: COMPONENTS, keepBatchDim: true }),
  () => new TopActivations({ ...shape, k: 2 }),
  () => new DeadFeaturesOverWindow({ ...shape, windowVectors: 3 }),
  // The first member passes alone what the second refuses alone, and refuses against the state.
  () => new MetricCollection({ capacity: new CapacityMetric(), top: new TopActivations({ ...shape, k: 2 }) }),
  () => new MetricCollection({ l1: new L1AbsoluteLoss({ numComponents: COMPONENTS, keepBatchDim: true }), window: new DeadFeaturesOverWindow({ ...shape, windowVectors: 3 }) }),
];

/** Pushes the batches (each mutated right after next), then completes; resolves with what was seen. */
async function runMutated(make: () => OperatorFunction<Batch, unknown>, specs: readonly BatchSpec[], waits: readonly number[]): Promise<unknown[]> {
  const subject = new Subject<Batch>();
  const { events, ended } = watch(subject, make());
  for (const [i, spec] of specs.entries()) {
    const { batch, mutate } = build(spec);
    subject.next(batch);
    mutate();
    for (let w = 0; w < (waits[i] as number); w++) await new Promise((resolve) => setTimeout(resolve, 1));
  }
  subject.complete();
  await ended;
  // Anything after the end would be here now.
  await new Promise((resolve) => setTimeout(resolve, 5));
  return events;
}

describe("a batch checked at its turn, whose caller changed its memory after handing it over", () => {
  const SEED = 0x7e5e7;
  const PLANS = 64;

  it(`is taken or refused as in-thread, with the in-thread error, after the in-thread values (${PLANS} seeded schedules)`, async () => {
    const random = mulberry32(SEED);
    const outcomes = { refused: 0, taken: 0, mutated: 0 };
    for (let p = 0; p < PLANS; p++) {
      const target = stateTargets[p % stateTargets.length] as () => MetricTarget;
      const n = 2 + Math.floor(random() * 5);
      const components = random() < 0.6;
      let vectors = 0;
      const specs = Array.from({ length: n }, (_, i): BatchSpec => {
        const rows = 1 + Math.floor(random() * 3);
        const r = random();
        // Now and then the other rank, another feature count (refused alone) or a first index going back.
        const rank3 = r < 0.2 ? !components : components;
        const features = r > 0.9 ? FEATURES + 1 : FEATURES;
        const f = random();
        const first = f < 0.2 ? Math.max(0, vectors - 1 - Math.floor(random() * 2)) : f < 0.3 ? vectors + Math.floor(random() * 3) : undefined;
        vectors = (first ?? vectors) + rows;
        const mutation = i === 0 ? 'none' : (MUTATIONS[Math.floor(random() * MUTATIONS.length)] as Mutation);
        return { shape: rank3 ? [rows, COMPONENTS, features] : [rows, features], seed: 31_000 + 100 * p + i, first, mutation };
      });
      const waits = specs.map(() => (random() < 0.25 ? 1 + Math.floor(random() * 2) : 0));
      const kind = Math.floor(random() * 3);
      const window = random() < 0.5 ? { batches: 1 + Math.floor(random() * 2) } : { vectors: 2 + Math.floor(random() * 4) };
      const make = (options: MetricOperatorOptions) => (): OperatorFunction<Batch, unknown> =>
        kind === 0
          ? accumulateMetric(target(), options)
          : kind === 1
            ? computeEvery(target(), window, { ...options, emitPartial: true })
            : forwardMetric(target(), options);
      const inThread = await runMutated(make({ shardRows: 2 }), specs, waits);
      const onPool = await runMutated(make({ pool }), specs, waits);
      const label = `plan ${p}: ${kind === 1 ? `every ${JSON.stringify(window)}` : kind === 0 ? 'accumulate' : 'forward'}, ${specs.map((s) => `[${s.shape.join(',')}]@${String(s.first)}:${s.mutation}`).join(' ')}`;
      expect(onPool, label).toEqual(inThread);
      if (inThread.at(-1) === 'complete') outcomes.taken++;
      else outcomes.refused++;
      if (specs.some((s) => s.mutation !== 'none')) outcomes.mutated++;
    }
    expect(outcomes.refused).toBeGreaterThan(8);
    expect(outcomes.taken).toBeGreaterThan(8);
    expect(pool.inFlight + pool.queued).toBe(0);
    expect(pool.memoryUsage().used).toBe(0);
  }, 60_000);
});
