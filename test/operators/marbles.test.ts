/**
 * Marble tests (RxJS `TestScheduler`) of the four metric operators, in-thread (no pool), where
 * evaluation is synchronous and marble frames are exact: `accumulateMetric`, `forwardMetric`,
 * `reduceMetric` and `computeEvery` (`{ batches }`, `{ vectors }`, `emitPartial`), each with a
 * metric and with a `MetricCollection`.
 *
 * What is asserted: the frame of every emission, completion and error; when the operator
 * subscribes to and unsubscribes from its source; that the operator is cold and re-subscribable
 * (every subscription starts from scratch) and never subscribes on its own; that the metric passed
 * in is a template left unchanged; creation-time argument errors with their messages; mid-stream
 * batch errors (the same `InvalidBatchError` as the plain class gives), source errors, and the
 * no-data value of `reduceMetric` on an empty source.
 *
 * Expected values: `v('ab')` is the value the target computes over the batches `a` then `b`,
 * from the float64 reference implementations in `test/reference/` (fed the same float32 values);
 * a few tests also pin those values by hand. Floats are compared with a relative tolerance of
 * 1e-12; integer counts are exact; every tensor's dtype is checked.
 */
import { afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import { inspect } from 'node:util';
import { concat, from, Observable, scan, take, type OperatorFunction } from 'rxjs';
import { TestScheduler, type RunHelpers } from 'rxjs/testing';
import {
  accumulateMetric,
  computeEvery,
  forwardMetric,
  InvalidBatchError,
  L1AbsoluteLoss,
  MetricCollection,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  reduceMetric,
  Tensor,
  tensor,
} from '../../src/index.js';
import type { Batch, DType, LearnedBatch, Metric, MetricTarget, NestedArray } from '../../src/index.js';
import {
  type RefArray,
  refL1AbsoluteLoss,
  refNeuronActivity,
  refNeuronFiredCount,
  toNested,
} from '../reference/index.js';
import { ref, thrown } from '../support/compare.js';

// ---------------------------------------------------------------------------------------------
// Assertions

/** Relative tolerance for float64 results against the float64 reference. */
const REL = 1e-12;

/** An expected tensor: its dtype and its values as nested arrays (a bare number for a 0-d tensor). */
class Expected {
  constructor(
    readonly dtype: DType,
    readonly value: NestedArray,
  ) {}
}
const f64 = (value: NestedArray): Expected => new Expected('float64', value);
const i64 = (value: NestedArray): Expected => new Expected('int64', value);

function sameNumber(actual: number, expected: number): boolean {
  return Object.is(actual, expected) || Math.abs(actual - expected) <= REL * Math.max(Math.abs(actual), Math.abs(expected));
}

const show = (x: unknown): string => (x instanceof Tensor ? String(x) : inspect(x, { depth: 6, breakLength: Infinity }));

/**
 * Collects the differences between `actual` and `expected`: an {@link Expected} matches a Tensor
 * of that dtype whose `toArray()` is close to its value; an expected Error matches an error of the
 * same class, name and message (and, for an InvalidBatchError, the same metric and field);
 * numbers match within {@link REL}; arrays and objects match element by element.
 */
function collectMismatches(actual: unknown, expected: unknown, path: string, out: string[]): void {
  if (expected instanceof Expected) {
    if (!(actual instanceof Tensor)) {
      out.push(`${path}: expected a ${expected.dtype} tensor ${show(expected.value)}, got ${show(actual)}`);
      return;
    }
    if (actual.dtype !== expected.dtype) out.push(`${path}: expected dtype ${expected.dtype}, got ${show(actual)}`);
    collectMismatches(actual.toArray(), expected.value, `${path}<tensor>`, out);
    return;
  }
  if (expected instanceof Error) {
    if (
      !(actual instanceof Error) ||
      actual.constructor !== expected.constructor ||
      actual.name !== expected.name ||
      actual.message !== expected.message
    ) {
      out.push(`${path}: expected ${show(expected)}, got ${show(actual)}`);
      return;
    }
    if (expected instanceof InvalidBatchError && actual instanceof InvalidBatchError) {
      if (actual.metric !== expected.metric || actual.field !== expected.field) {
        out.push(`${path}: expected metric/field ${expected.metric}/${expected.field}, got ${actual.metric}/${actual.field}`);
      }
    }
    return;
  }
  if (typeof expected === 'number') {
    if (typeof actual !== 'number' || !sameNumber(actual, expected)) out.push(`${path}: expected ${expected}, got ${show(actual)}`);
    return;
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) {
      out.push(`${path}: expected ${show(expected)}, got ${show(actual)}`);
      return;
    }
    expected.forEach((e, i) => collectMismatches(actual[i], e, `${path}[${i}]`, out));
    return;
  }
  if (typeof expected === 'object' && expected !== null) {
    if (typeof actual !== 'object' || actual === null || actual instanceof Tensor || Array.isArray(actual)) {
      out.push(`${path}: expected ${show(expected)}, got ${show(actual)}`);
      return;
    }
    const a = actual as Record<string, unknown>;
    const e = expected as Record<string, unknown>;
    for (const key of new Set([...Object.keys(a), ...Object.keys(e)])) collectMismatches(a[key], e[key], `${path}.${key}`, out);
    return;
  }
  if (!Object.is(actual, expected)) out.push(`${path}: expected ${show(expected)}, got ${show(actual)}`);
}

/** The TestScheduler's deep-equality assertion (messages and subscription logs). */
function assertMarbles(actual: unknown, expected: unknown): void {
  const out: string[] = [];
  collectMismatches(actual, expected, '', out);
  expect(out, `marbles differ\nactual:   ${show(actual)}\nexpected: ${show(expected)}\n`).toEqual([]);
}

/** Runs `callback` in a fresh TestScheduler (virtual time, one frame per marble character). */
function marbles(callback: (helpers: RunHelpers) => void): void {
  new TestScheduler(assertMarbles).run(callback);
}


// ---------------------------------------------------------------------------------------------
// Batches (three learned features, rank 2) and targets

const A: LearnedBatch = { learnedActivations: tensor([[1, 0, 1]]) }; // L1 2; fires features 0 and 2
const B: Batch = { learnedActivations: tensor([[0, 1, 0]]) }; // L1 1; fires feature 1
const C: Batch = { learnedActivations: tensor([[2, 2, 0], [0, 0, 0]]) }; // 2 vectors: L1 4 and 0; fires 0 and 1
const Z: Batch = { learnedActivations: tensor([[0, 0, 0]]) }; // L1 0; fires nothing
const N: Batch = { learnedActivations: tensor([[-1, 0, 0]]) }; // L1 1; fires nothing (fired means x > 0)
const BATCHES = { a: A, b: B, c: C, z: Z, n: N } as const satisfies Record<string, Batch>;
type Letter = keyof typeof BATCHES;

/** Rejected by L1AbsoluteLoss (and every metric): rank 1. */
const RANK1: Batch = { learnedActivations: tensor([1, 0, 1]) };
/** Rejected by the fired-count metrics (numLearnedFeatures 3), accepted by L1AbsoluteLoss. */
const TWO_FEATURES: Batch = { learnedActivations: tensor([[1, 2]]) };

const refArray = (batch: Batch): RefArray => ref(batch.learnedActivations);
const nested = (a: RefArray): NestedArray => toNested(a) as NestedArray;

const refL1 = (w: Batch[]): Expected => f64(nested(refL1AbsoluteLoss(w.map(refArray), { keepBatchDim: false, numComponents: 1 })));
const refDead = (w: Batch[]): Expected =>
  i64(nested(refNeuronActivity(w.map(refArray), { thresholdIsDeadPortionFires: 0, numLearnedFeatures: 3 })));
const refFired = (w: Batch[]): Expected => i64(nested(refNeuronFiredCount(w.map(refArray))));

interface Case {
  readonly name: string;
  /** A new template of the target. */
  readonly make: () => MetricTarget;
  /** A batch this target rejects whatever came before. */
  readonly bad: Batch;
  /** The expected value over a window of batches (non-empty). */
  readonly value: (window: Batch[]) => unknown;
  /** The expected value on no data (by hand: NaN mean, every feature dead, zero counts). */
  readonly empty: unknown;
  /** The metrics of the target (to check update counts and warnings). */
  readonly metrics: (target: MetricTarget) => Metric[];
}

const CASES: readonly Case[] = [
  {
    name: 'L1AbsoluteLoss',
    make: () => new L1AbsoluteLoss(),
    bad: RANK1,
    value: refL1,
    empty: f64(NaN),
    metrics: (t) => [t as Metric],
  },
  {
    name: 'NeuronActivityMetric',
    make: () => new NeuronActivityMetric({ numLearnedFeatures: 3 }),
    bad: TWO_FEATURES,
    value: refDead,
    empty: i64(3),
    metrics: (t) => [t as Metric],
  },
  {
    name: 'MetricCollection',
    make: () =>
      new MetricCollection({
        l1: new L1AbsoluteLoss(),
        dead: new NeuronActivityMetric({ numLearnedFeatures: 3 }),
        fired: new NeuronFiredCountMetric({ numLearnedFeatures: 3 }),
      }),
    bad: TWO_FEATURES,
    value: (w) => ({ l1: refL1(w), dead: refDead(w), fired: refFired(w) }),
    empty: { l1: f64(NaN), dead: i64(3), fired: i64([0, 0, 0]) },
    metrics: (t) => Object.values((t as MetricCollection).metrics),
  },
];

/** The error the plain class gives for `bad` after folding `before` into a fresh copy of `target`. */
function plainError(target: MetricTarget, bad: Batch, before: Batch[] = []): unknown {
  const copy = target.clone();
  copy.reset();
  for (const batch of before) copy.update(batch);
  return thrown(() => copy.update(bad));
}

/** `v('ab')`: the target's expected value over batches `a` then `b`. */
function valueOf(c: Case): (letters: string) => unknown {
  return (letters) => c.value([...letters].map((l) => BATCHES[l as Letter]));
}

let warn: MockInstance<typeof process.emitWarning>;
beforeEach(() => {
  warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  warn.mockRestore();
});

/** The compute-before-update warnings emitted so far, as text. */
const warnings = (): string[] => warn.mock.calls.map((call) => String(call[0]));

// ---------------------------------------------------------------------------------------------
// The assertion itself can fail

describe('the marble assertion', () => {
  const failing = (expected: Record<string, unknown>, error?: unknown) => () =>
    marbles(({ cold, expectObservable }) => {
      const source = cold('-a-b|', BATCHES);
      expectObservable(source.pipe(accumulateMetric(new L1AbsoluteLoss()))).toBe('-x-y|', expected, error);
    });

  it('accepts the right values and rejects a wrong value, dtype, shape, kind or frame', () => {
    expect(failing({ x: f64(2), y: f64(1.5) })).not.toThrow();
    expect(failing({ x: f64(2), y: f64(1.5 * (1 + 1e-9)) })).toThrow('marbles differ');
    expect(failing({ x: i64(2), y: f64(1.5) })).toThrow('marbles differ');
    expect(failing({ x: f64([2]), y: f64(1.5) })).toThrow('marbles differ');
    expect(failing({ x: 2, y: f64(1.5) })).toThrow('marbles differ');
    expect(() =>
      marbles(({ cold, expectObservable }) => {
        expectObservable(cold('-a-b|', BATCHES).pipe(accumulateMetric(new L1AbsoluteLoss()))).toBe('--x-y|', { x: f64(2), y: f64(1.5) });
      }),
    ).toThrow('marbles differ');
  });

  it('compares errors by class, message, metric and field', () => {
    const run = (error: unknown) => () =>
      marbles(({ cold, expectObservable }) => {
        expectObservable(cold('-x', { x: RANK1 }).pipe(forwardMetric(new L1AbsoluteLoss()))).toBe('-#', {}, error);
      });
    const right = plainError(new L1AbsoluteLoss(), RANK1) as InvalidBatchError;
    expect(run(right)).not.toThrow();
    expect(run(new TypeError(right.message))).toThrow('marbles differ');
    expect(run(new InvalidBatchError(right.metric, right.field, 'something else'))).toThrow('marbles differ');
    expect(run(new InvalidBatchError(right.metric, 'sourceActivations', right.message.slice(right.metric.length + 2)))).toThrow(
      'marbles differ',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The expected values, pinned by hand once (the rest of the file uses the reference)

describe('expected values (by hand)', () => {
  it('accumulateMetric gives the running value: L1 2, 3/2, 7/4; dead 1, 0, 0; fired counts add up', () => {
    const target = CASES[2]?.make() as MetricTarget;
    marbles(({ cold, expectObservable }) => {
      const source = cold('-a-b-c|', BATCHES);
      expectObservable(source.pipe(accumulateMetric(target))).toBe('-x-y-z|', {
        x: { l1: f64(2), dead: i64(1), fired: i64([1, 0, 1]) },
        y: { l1: f64(1.5), dead: i64(0), fired: i64([1, 1, 1]) },
        z: { l1: f64(1.75), dead: i64(0), fired: i64([2, 2, 1]) },
      });
    });
  });

  it('forwardMetric gives each batch its own value: L1 2, 1, 2; dead 1, 2, 1', () => {
    const target = CASES[2]?.make() as MetricTarget;
    marbles(({ cold, expectObservable }) => {
      const source = cold('-a-b-c|', BATCHES);
      expectObservable(source.pipe(forwardMetric(target))).toBe('-x-y-z|', {
        x: { l1: f64(2), dead: i64(1), fired: i64([1, 0, 1]) },
        y: { l1: f64(1), dead: i64(2), fired: i64([0, 1, 0]) },
        z: { l1: f64(2), dead: i64(1), fired: i64([1, 1, 0]) },
      });
    });
  });

  it('computeEvery({ vectors: 2 }) closes a window after the batch that fills it and restarts the count', () => {
    // a (1 vector) + c (2 vectors) = 3 >= 2: L1 (2 + 4 + 0) / 3 = 2; then b + z: L1 (1 + 0) / 2 = 0.5.
    marbles(({ cold, expectObservable }) => {
      const source = cold('-a-c-b-z|', BATCHES);
      expectObservable(source.pipe(computeEvery(new L1AbsoluteLoss(), { vectors: 2 }))).toBe('---x---y|', {
        x: f64(2),
        y: f64(0.5),
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Per target: timing, subscriptions, coldness, templates, errors

describe.each(CASES)('operators over $name', (c) => {
  const v = valueOf(c);

  describe('emission timing and subscription lifetimes', () => {
    it('accumulateMetric emits the running value in the frame of each batch', () => {
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-c|', BATCHES);
        expectObservable(source.pipe(accumulateMetric(c.make()))).toBe('-x-y-z|', { x: v('a'), y: v('ab'), z: v('abc') });
        expectSubscriptions(source.subscriptions).toBe('^-----!');
      });
      expect(warn).not.toHaveBeenCalled();
    });

    it('forwardMetric emits each batch its own value in the frame of that batch', () => {
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-c|', BATCHES);
        expectObservable(source.pipe(forwardMetric(c.make()))).toBe('-x-y-z|', { x: v('a'), y: v('b'), z: v('c') });
        expectSubscriptions(source.subscriptions).toBe('^-----!');
      });
      expect(warn).not.toHaveBeenCalled();
    });

    it('reduceMetric emits once, in the frame of completion', () => {
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-c|', BATCHES);
        expectObservable(source.pipe(reduceMetric(c.make()))).toBe('------(r|)', { r: v('abc') });
        expectSubscriptions(source.subscriptions).toBe('^-----!');
      });
      expect(warn).not.toHaveBeenCalled();
    });

    it('computeEvery({ batches: 2 }) emits in the frame that fills the window, then restarts the count', () => {
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-c-z-n|', BATCHES);
        expectObservable(source.pipe(computeEvery(c.make(), { batches: 2 }))).toBe('---x---y--|', { x: v('ab'), y: v('cz') });
        expectSubscriptions(source.subscriptions).toBe('^---------!');
      });
      expect(warn).not.toHaveBeenCalled();
    });

    it('computeEvery({ batches: 2 }, { emitPartial }) emits the unfinished window in the completion frame, only if asked', () => {
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-c|', BATCHES);
        expectObservable(source.pipe(computeEvery(c.make(), { batches: 2 }, { emitPartial: true }))).toBe('---x--(y|)', {
          x: v('ab'),
          y: v('c'),
        });
        expectObservable(source.pipe(computeEvery(c.make(), { batches: 2 }, { emitPartial: false }))).toBe('---x--|', { x: v('ab') });
        expectObservable(source.pipe(computeEvery(c.make(), { batches: 2 }))).toBe('---x--|', { x: v('ab') });
        expectSubscriptions(source.subscriptions).toBe(['^-----!', '^-----!', '^-----!']);
      });
    });

    it('computeEvery({ batches: 2 }, { emitPartial: true }) emits nothing extra when the last window is full', () => {
      marbles(({ cold, expectObservable }) => {
        const source = cold('-a-b|', BATCHES);
        expectObservable(source.pipe(computeEvery(c.make(), { batches: 2 }, { emitPartial: true }))).toBe('---x|', { x: v('ab') });
      });
    });

    it('computeEvery({ vectors: 2 }) counts vectors (rows), never splits a batch, and restarts at 0', () => {
      // a: 1 vector; c: 2 more (3 >= 2, emit, restart); b: 1; z: 2 (emit); n: 1 (unfinished).
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-c-b-z-n|', BATCHES);
        expectObservable(source.pipe(computeEvery(c.make(), { vectors: 2 }))).toBe('---x---y--|', { x: v('ac'), y: v('bz') });
        expectObservable(source.pipe(computeEvery(c.make(), { vectors: 2 }, { emitPartial: true }))).toBe('---x---y--(p|)', {
          x: v('ac'),
          y: v('bz'),
          p: v('n'),
        });
        expectSubscriptions(source.subscriptions).toBe(['^---------!', '^---------!']);
      });
    });

    it('emits in the same frame with several shards per batch (shardRows: 1)', () => {
      marbles(({ cold, expectObservable }) => {
        const source = cold('-c-a-c|', BATCHES);
        expectObservable(source.pipe(accumulateMetric(c.make(), { shardRows: 1 }))).toBe('-x-y-z|', {
          x: v('c'),
          y: v('ca'),
          z: v('cac'),
        });
        expectObservable(source.pipe(forwardMetric(c.make(), { shardRows: 1 }))).toBe('-x-y-z|', { x: v('c'), y: v('a'), z: v('c') });
        expectObservable(source.pipe(reduceMetric(c.make(), { shardRows: 1 }))).toBe('------(r|)', { r: v('cac') });
        expectObservable(source.pipe(computeEvery(c.make(), { vectors: 3 }, { shardRows: 1 }))).toBe('---x--|', { x: v('ca') });
      });
    });

    it('unsubscribes from the source when the subscriber unsubscribes early, and emits nothing after', () => {
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-c-z|', BATCHES);
        expectObservable(source.pipe(accumulateMetric(c.make())), '^--!').toBe('-x-', { x: v('a') });
        expectObservable(source.pipe(forwardMetric(c.make())), '^--!').toBe('-x-', { x: v('a') });
        expectObservable(source.pipe(reduceMetric(c.make())), '^--!').toBe('---');
        expectObservable(source.pipe(computeEvery(c.make(), { batches: 2 }, { emitPartial: true })), '^---!').toBe('---x', {
          x: v('ab'),
        });
        expectObservable(source.pipe(computeEvery(c.make(), { vectors: 2 }, { emitPartial: true })), '^--!').toBe('---');
        expectSubscriptions(source.subscriptions).toBe(['^--!', '^--!', '^--!', '^---!', '^--!']);
      });
    });
  });

  describe('cold and re-subscribable', () => {
    it('never subscribes to the source on its own', () => {
      marbles(({ cold, expectSubscriptions }) => {
        const source = cold('-a-b-c|', BATCHES);
        source.pipe(accumulateMetric(c.make()));
        source.pipe(forwardMetric(c.make()));
        source.pipe(reduceMetric(c.make()));
        source.pipe(computeEvery(c.make(), { batches: 1 }, { emitPartial: true }));
        expectSubscriptions(source.subscriptions).toBe([]);
      });
    });

    it('subscribes once per subscription, exactly when subscribed (a hot source at frames 0 and 4)', () => {
      // The late subscriber sees only c and z, and starts from scratch.
      marbles(({ hot, expectObservable, expectSubscriptions }) => {
        const source = hot('-a-b-c-z-|', BATCHES);
        const acc = source.pipe(accumulateMetric(c.make()));
        expectObservable(acc).toBe('-w-x-y-z-|', { w: v('a'), x: v('ab'), y: v('abc'), z: v('abcz') });
        expectObservable(acc, '----^').toBe('-----y-z-|', { y: v('c'), z: v('cz') });
        const fwd = source.pipe(forwardMetric(c.make()));
        expectObservable(fwd).toBe('-w-x-y-z-|', { w: v('a'), x: v('b'), y: v('c'), z: v('z') });
        expectObservable(fwd, '----^').toBe('-----y-z-|', { y: v('c'), z: v('z') });
        const red = source.pipe(reduceMetric(c.make()));
        expectObservable(red).toBe('---------(r|)', { r: v('abcz') });
        expectObservable(red, '----^').toBe('---------(r|)', { r: v('cz') });
        const every = source.pipe(computeEvery(c.make(), { batches: 3 }, { emitPartial: true }));
        expectObservable(every).toBe('-----x---(p|)', { x: v('abc'), p: v('z') });
        expectObservable(every, '----^').toBe('---------(p|)', { p: v('cz') });
        // Logged in the order the subscriptions happen: the four early ones, then the four late ones.
        const early = Array<string>(4).fill('^--------!');
        const late = Array<string>(4).fill('----^----!');
        expectSubscriptions(source.subscriptions).toBe([...early, ...late]);
      });
    });

    it('re-subscribing (concat of the same observable twice) starts each run from scratch', () => {
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-c|', BATCHES);
        const twice = <T>(op: OperatorFunction<Batch, T>) => {
          const piped = source.pipe(op);
          return concat(piped, piped);
        };
        expectObservable(twice(accumulateMetric(c.make()))).toBe('-x-y-z-x-y-z|', { x: v('a'), y: v('ab'), z: v('abc') });
        expectObservable(twice(forwardMetric(c.make()))).toBe('-x-y-z-x-y-z|', { x: v('a'), y: v('b'), z: v('c') });
        expectObservable(twice(reduceMetric(c.make()))).toBe('------r-----(r|)', { r: v('abc') });
        expectObservable(twice(computeEvery(c.make(), { batches: 2 }, { emitPartial: true }))).toBe('---x--y--x--(y|)', {
          x: v('ab'),
          y: v('c'),
        });
        expectObservable(twice(computeEvery(c.make(), { vectors: 2 }))).toBe('---x-y---x-y|', { x: v('ab'), y: v('c') });
        // Logged in the order the subscriptions happen: the five first runs, then the five second runs.
        const first = Array<string>(5).fill('^-----!');
        const second = Array<string>(5).fill('------^-----!');
        expectSubscriptions(source.subscriptions).toBe([...first, ...second]);
      });
    });

    it('two simultaneous subscriptions to one piped observable have independent states', () => {
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-c|', BATCHES);
        const acc = source.pipe(accumulateMetric(c.make()));
        expectObservable(acc).toBe('-x-y-z|', { x: v('a'), y: v('ab'), z: v('abc') });
        expectObservable(acc, '--^').toBe('---x-y-z|', { x: v('a'), y: v('ab'), z: v('abc') });
        expectSubscriptions(source.subscriptions).toBe(['^-----!', '--^-----!']);
      });
    });

    it('does not call the source before subscription, and calls it once per subscription', () => {
      let calls = 0;
      const source = new Observable<Batch>((subscriber) => {
        calls++;
        subscriber.next(A);
        subscriber.complete();
      });
      const piped = [
        source.pipe(accumulateMetric(c.make())),
        source.pipe(forwardMetric(c.make())),
        source.pipe(reduceMetric(c.make())),
        source.pipe(computeEvery(c.make(), { vectors: 1 })),
      ];
      expect(calls).toBe(0);
      for (const p of piped) p.subscribe();
      expect(calls).toBe(4);
    });
  });

  describe('the metric is a template', () => {
    it('is unchanged after every operator ran on it', () => {
      const template = c.make();
      const fresh = c.make();
      marbles(({ cold, expectObservable }) => {
        const source = cold('-a-b-c|', BATCHES);
        expectObservable(source.pipe(accumulateMetric(template))).toBe('-x-y-z|', { x: v('a'), y: v('ab'), z: v('abc') });
        expectObservable(source.pipe(forwardMetric(template))).toBe('-x-y-z|', { x: v('a'), y: v('b'), z: v('c') });
        expectObservable(source.pipe(reduceMetric(template))).toBe('------(r|)', { r: v('abc') });
        expectObservable(source.pipe(computeEvery(template, { batches: 2 }, { emitPartial: true }))).toBe('---x--(y|)', {
          x: v('ab'),
          y: v('c'),
        });
      });
      const metrics = c.metrics(template);
      expect(metrics.map((m) => m.updateCount)).toEqual(metrics.map(() => 0));
      expect(metrics.map((m) => m.state())).toEqual(c.metrics(fresh).map((m) => m.state()));
    });

    it('a template that already holds data is left as it is, and each run starts from scratch', () => {
      const template = c.make();
      template.update(B);
      const metrics = c.metrics(template);
      const before = metrics.map((m) => m.state());
      marbles(({ cold, expectObservable }) => {
        const source = cold('-a-c|', BATCHES);
        expectObservable(source.pipe(accumulateMetric(template))).toBe('-x-y|', { x: v('a'), y: v('ac') });
        expectObservable(source.pipe(reduceMetric(template))).toBe('----(r|)', { r: v('ac') });
      });
      expect(metrics.map((m) => m.updateCount)).toEqual(metrics.map(() => 1));
      expect(metrics.map((m) => m.state())).toEqual(before);
    });
  });

  describe('errors while running', () => {
    it('a rejected batch errors the output in its frame with the plain class error; earlier values are kept; the source is dropped', () => {
      const error = plainError(c.make(), c.bad, [A, B]);
      expect(error).toBeInstanceOf(InvalidBatchError);
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-x-c|', { ...BATCHES, x: c.bad });
        expectObservable(source.pipe(accumulateMetric(c.make()))).toBe('-p-q-#', { p: v('a'), q: v('ab') }, error);
        expectObservable(source.pipe(forwardMetric(c.make()))).toBe('-p-q-#', { p: v('a'), q: v('b') }, error);
        expectObservable(source.pipe(reduceMetric(c.make()))).toBe('-----#', {}, error);
        expectObservable(source.pipe(computeEvery(c.make(), { batches: 2 }, { emitPartial: true }))).toBe('---p-#', { p: v('ab') }, error);
        expectObservable(source.pipe(computeEvery(c.make(), { vectors: 1 }, { emitPartial: true }))).toBe(
          '-p-q-#',
          { p: v('a'), q: v('b') },
          error,
        );
        const sub = '^----!';
        expectSubscriptions(source.subscriptions).toBe([sub, sub, sub, sub, sub]);
      });
    });

    it('a rejected first batch errors at once, before anything is emitted', () => {
      const error = plainError(c.make(), c.bad);
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('--x-a|', { ...BATCHES, x: c.bad });
        expectObservable(source.pipe(accumulateMetric(c.make()))).toBe('--#', {}, error);
        expectObservable(source.pipe(reduceMetric(c.make()))).toBe('--#', {}, error);
        expectSubscriptions(source.subscriptions).toBe(['^-!', '^-!']);
      });
    });

    it('a batch that is not an object errors the output with the plain class error', () => {
      const notABatch = null as unknown as Batch;
      const error = plainError(c.make(), notABatch);
      expect(error).toBeInstanceOf(InvalidBatchError);
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-x-b|', { ...BATCHES, x: notABatch });
        expectObservable(source.pipe(forwardMetric(c.make()))).toBe('-p-#', { p: v('a') }, error);
        expectSubscriptions(source.subscriptions).toBe('^--!');
      });
    });

    it('a source error passes through; earlier values are kept; no partial window is emitted', () => {
      const error = new Error('the source failed');
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold('-a-b-c-#', BATCHES, error);
        expectObservable(source.pipe(accumulateMetric(c.make()))).toBe('-p-q-r-#', { p: v('a'), q: v('ab'), r: v('abc') }, error);
        expectObservable(source.pipe(forwardMetric(c.make()))).toBe('-p-q-r-#', { p: v('a'), q: v('b'), r: v('c') }, error);
        expectObservable(source.pipe(reduceMetric(c.make()))).toBe('-------#', {}, error);
        expectObservable(source.pipe(computeEvery(c.make(), { batches: 2 }, { emitPartial: true }))).toBe('---p---#', { p: v('ab') }, error);
        const sub = '^------!';
        expectSubscriptions(source.subscriptions).toBe([sub, sub, sub, sub]);
      });
    });
  });

  describe('an empty source', () => {
    it("reduceMetric emits the metric's no-data value with the compute-before-update warning", () => {
      const template = c.make();
      marbles(({ cold, expectObservable, expectSubscriptions }) => {
        const source = cold<Batch>('---|');
        expectObservable(source.pipe(reduceMetric(template))).toBe('---(r|)', { r: c.empty });
        expectSubscriptions(source.subscriptions).toBe('^--!');
      });
      const names = c.metrics(template).map((m) => m.definition.metric);
      expect(warn).toHaveBeenCalledTimes(names.length);
      expect(warnings()).toEqual(names.map((name) => `${name}: compute() was called before update(); the metric states have not been updated yet`));
      expect(warn.mock.calls.map((call) => (call[1] as { code?: string } | undefined)?.code)).toEqual(
        names.map(() => 'SAE_METRICS_COMPUTE_BEFORE_UPDATE'),
      );
    });

    it('the other operators complete without emitting (and without warning)', () => {
      marbles(({ cold, expectObservable }) => {
        const source = cold<Batch>('---|');
        expectObservable(source.pipe(accumulateMetric(c.make()))).toBe('---|');
        expectObservable(source.pipe(forwardMetric(c.make()))).toBe('---|');
        expectObservable(source.pipe(computeEvery(c.make(), { batches: 1 }, { emitPartial: true }))).toBe('---|');
        expectObservable(source.pipe(computeEvery(c.make(), { vectors: 1 }, { emitPartial: true }))).toBe('---|');
      });
      expect(warn).not.toHaveBeenCalled();
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Validation that depends on earlier batches

describe('a batch rejected because of earlier batches (L1AbsoluteLoss keepBatchDim)', () => {
  // keepBatchDim concatenates per-vector values of one shape: a rank-3 batch after a rank-2 one is rejected.
  const K: LearnedBatch = { learnedActivations: tensor([[[1, 0, 1]]]) };
  const keep = (): L1AbsoluteLoss => new L1AbsoluteLoss({ keepBatchDim: true });
  const refKeep = (w: Batch[]): Expected => f64(nested(refL1AbsoluteLoss(w.map(refArray), { keepBatchDim: true, numComponents: 1 })));

  it('errors the output in the frame of that batch with the error the plain class gives', () => {
    const error = plainError(keep(), K, [A]);
    expect(error).toBeInstanceOf(InvalidBatchError);
    expect(() => keep().update(K)).not.toThrow(); // K alone is fine
    marbles(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('-a-k-b|', { a: A, b: B, k: K });
      expectObservable(source.pipe(accumulateMetric(keep()))).toBe('-p-#', { p: refKeep([A]) }, error);
      expectObservable(source.pipe(reduceMetric(keep()))).toBe('---#', {}, error);
      expectSubscriptions(source.subscriptions).toBe(['^--!', '^--!']);
    });
  });

  it('computeEvery resets between windows, so the next window may take the other shape (as reset() does)', () => {
    const plain = keep();
    plain.update(A);
    plain.reset();
    expect(() => plain.update(K)).not.toThrow();
    marbles(({ cold, expectObservable }) => {
      const source = cold('-a-k-b|', { a: A, b: B, k: K });
      expectObservable(source.pipe(computeEvery(keep(), { batches: 1 }))).toBe('-p-q-r|', {
        p: refKeep([A]),
        q: refKeep([K]),
        r: refKeep([B]),
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Creation-time errors

const OPERATORS: readonly { name: string; create: (target: unknown, options?: unknown) => unknown }[] = [
  { name: 'accumulateMetric', create: (t, o) => accumulateMetric(t as MetricTarget, o as never) },
  { name: 'forwardMetric', create: (t, o) => forwardMetric(t as MetricTarget, o as never) },
  { name: 'reduceMetric', create: (t, o) => reduceMetric(t as MetricTarget, o as never) },
  { name: 'computeEvery', create: (t, o) => computeEvery(t as MetricTarget, { batches: 1 }, o as never) },
];

describe.each(OPERATORS)('$name: bad arguments throw when the operator is created', ({ name, create }) => {
  it.each([
    [undefined, 'undefined'],
    [null, 'null'],
    [{}, 'an object'],
    [new L1AbsoluteLoss().definition, 'an object'],
    [L1AbsoluteLoss, 'a function'],
    ['L1AbsoluteLoss', '"L1AbsoluteLoss"'],
  ])('a target that is not a metric or collection (%s)', (target, described) => {
    expect(() => create(target)).toThrow(TypeError);
    expect(() => create(target)).toThrow(`${name}: metric must be a sae-metrics Metric or MetricCollection, got ${described}`);
  });

  it('options that are not an object', () => {
    expect(() => create(new L1AbsoluteLoss(), 5)).toThrow(TypeError);
    expect(() => create(new L1AbsoluteLoss(), 5)).toThrow(`${name}: options must be an object, got 5`);
    expect(() => create(new L1AbsoluteLoss(), null)).toThrow(`${name}: options must be an object, got null`);
  });

  it('options.pool that is not a MetricPool', () => {
    expect(() => create(new L1AbsoluteLoss(), { pool: {} })).toThrow(TypeError);
    expect(() => create(new L1AbsoluteLoss(), { pool: {} })).toThrow(
      `${name}: options.pool must be a MetricPool (see createMetricPool), got an object`,
    );
  });

  it.each([
    [0, '0'],
    [-1, '-1'],
    [1.5, '1.5'],
    [Number.NaN, 'NaN'],
    ['2', '"2"'],
  ])('options.shardRows that is not a positive integer (%s)', (shardRows, described) => {
    const collection = new MetricCollection({ l1: new L1AbsoluteLoss() });
    expect(() => create(collection, { shardRows })).toThrow(RangeError);
    expect(() => create(collection, { shardRows })).toThrow(`${name}: options.shardRows must be a positive integer, got ${described}`);
  });

  it('creating the operator touches neither the metric nor anything else', () => {
    const template = new L1AbsoluteLoss();
    create(template);
    create(template, { shardRows: 7 });
    expect(template.updateCount).toBe(0);
    expect(warn).not.toHaveBeenCalled();
  });
});

describe('computeEvery: a bad window or emitPartial throws when the operator is created', () => {
  const metric = new NeuronActivityMetric({ numLearnedFeatures: 3 });
  const create = (window: unknown, options?: unknown) => () => computeEvery(metric, window as never, options as never);

  it.each([
    [{}, 'an object'],
    [{ batches: 1, vectors: 1 }, 'an object'],
    [undefined, 'undefined'],
    [null, 'null'],
    [2, '2'],
  ])('a window that is not { batches } or { vectors } (%o)', (window, described) => {
    expect(create(window)).toThrow(TypeError);
    expect(create(window)).toThrow(`computeEvery: window must be { batches: n } or { vectors: n }, got ${described}`);
  });

  it.each([
    [{ batches: 0 }, 'batches', '0'],
    [{ batches: -2 }, 'batches', '-2'],
    [{ batches: 2.5 }, 'batches', '2.5'],
    [{ batches: Infinity }, 'batches', 'Infinity'],
    [{ vectors: 1.5 }, 'vectors', '1.5'],
    [{ vectors: 0 }, 'vectors', '0'],
    [{ vectors: '4' }, 'vectors', '"4"'],
    [{ vectors: undefined }, 'vectors', 'undefined'],
  ])('a window size that is not a positive integer (%o)', (window, unit, described) => {
    expect(create(window)).toThrow(RangeError);
    expect(create(window)).toThrow(`computeEvery: window.${unit} must be a positive integer, got ${described}`);
  });

  it.each([
    ['yes', '"yes"'],
    [1, '1'],
    [null, 'null'],
  ])('emitPartial that is not a boolean (%o)', (emitPartial, described) => {
    expect(create({ batches: 1 }, { emitPartial })).toThrow(TypeError);
    expect(create({ batches: 1 }, { emitPartial })).toThrow(`computeEvery: options.emitPartial must be a boolean, got ${described}`);
  });

  it('the target is checked first, then the options, then the window', () => {
    expect(() => computeEvery({} as never, {} as never)).toThrow('computeEvery: metric must be');
    expect(() => computeEvery(metric, {} as never, { shardRows: 0 })).toThrow('computeEvery: options.shardRows');
    expect(() => computeEvery(metric, {} as never, { emitPartial: 'no' as never })).toThrow('computeEvery: options.emitPartial');
  });
});

// ---------------------------------------------------------------------------------------------
// Synchronous sources: the operator stops pulling when its subscriber is gone (as `scan` does)

describe('a synchronous source is not pulled after the output is done', () => {
  /** A synchronous source of 50 batches that counts how many were pulled. */
  function counted(bad?: { at: number; batch: Batch }): { source: Observable<Batch>; pulled: () => number } {
    let pulled = 0;
    function* batches(): Generator<Batch> {
      for (let i = 0; i < 50; i++) {
        pulled++;
        yield bad !== undefined && i === bad.at ? bad.batch : A;
      }
    }
    return { source: from({ [Symbol.iterator]: batches }), pulled: () => pulled };
  }

  it('take(1) after accumulateMetric pulls one batch (the subscriber unsubscribed)', () => {
    const control = counted();
    control.source.pipe(scan((n: number) => n + 1, 0), take(1)).subscribe();
    expect(control.pulled()).toBe(1); // what RxJS's own scan does
    const { source, pulled } = counted();
    const out: number[] = [];
    source.pipe(accumulateMetric(new L1AbsoluteLoss()), take(1)).subscribe((t) => out.push(t.item()));
    expect(out).toEqual([2]);
    expect(pulled()).toBe(1);
  });

  it('a rejected batch stops the pulling (the output errored)', () => {
    const { source, pulled } = counted({ at: 2, batch: RANK1 });
    let error: unknown;
    source.pipe(forwardMetric(new L1AbsoluteLoss())).subscribe({ error: (e: unknown) => (error = e) });
    expect(error).toBeInstanceOf(InvalidBatchError);
    expect(pulled()).toBe(3);
  });
});
