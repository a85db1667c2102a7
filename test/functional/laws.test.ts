/**
 * The monoid laws of every metric definition, as fast-check properties:
 *
 * - identity: `merge(init(), s)` and `merge(s, init())` equal `s`;
 * - associativity: `merge(merge(a, b), c)` equals `merge(a, merge(b, c))`;
 * - commutativity for the sum/count states (everything but `keepBatchDim` and capacity);
 * - homomorphism: `update(s, x ++ y)` equals `merge(update(s, x), update(init(), y))`, and for
 *   every state (the ordered ones included) `merge(update(y), update(x))` equals `update(y ++ x)`:
 *   a merge puts the receiver's vectors first;
 * - row ranges: updating with rows `[0, k)` and `[k, n)` and merging equals updating with all rows;
 * - purity: `update`, `merge` and `compute` never mutate their arguments, and `compute`'s result
 *   does not alias the state;
 * - the class level: `metric.mergeState(other)` equals one metric updated with both streams, and
 *   the update counts add up.
 *
 * Exactness: every input value is a small dyadic rational (an integer in [-8, 8] divided by 4, with
 * many exact zeros) and every feature count that a mean divides by (L2 / SparseAutoencoderLoss
 * source features) is a power of two, so every float64 sum and per-vector mean in these tests is
 * exact whatever the order of the additions. Equality is therefore exact (bit for bit, with
 * `Object.is`: NaN equals NaN), with no tolerance.
 *
 * "Equal states" means: equal `compute()` results (dtype, shape, data) AND deeply equal state
 * parts. Where the number of chunks an ordered state is split into legitimately differs (one
 * `update` of `x ++ y` against the merge of two updates) the chunks are compared concatenated; the
 * identity and associativity laws compare the chunk lists exactly.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import {
  l1AbsoluteLoss,
  l2ReconstructionLoss,
  sparseAutoencoderLoss,
  l0Norm,
  neuronActivity,
  neuronFiredCount,
  featureDensity,
  capacity,
  reconstructionScore,
} from '../../src/functional/index.js';
import type { Batch, MetricDefinition, MetricState } from '../../src/functional/index.js';
import {
  tensor,
  Tensor,
  Metric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  SparseAutoencoderLoss,
  L0NormMetric,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  FeatureDensityMetric,
  CapacityMetric,
  ReconstructionScoreMetric,
  ClasswiseWrapperWithMean,
  InvalidBatchError,
} from '../../src/index.js';
import type { TensorLike } from '../../src/index.js';
import { float32Tensor } from '../support/arbitraries.js';
import { difference as deepDifference, viewElementsDifference } from '../support/compare.js';

const RUNS = 50;

// ---------------------------------------------------------------------------------------------
// Equality helpers

/** A path to the first difference between `a` and `b`, or undefined when they are deeply equal. */
const difference = (a: unknown, b: unknown): string | undefined => deepDifference(a, b, viewElementsDifference);

function expectDeepEqual(actual: unknown, expected: unknown, what: string): void {
  const d = difference(actual, expected);
  expect(d, `${what} differ at ${d}`).toBeUndefined();
}

/** The state with every ordered `chunks` list replaced by its concatenation (one chunk, or none). */
function normalized(value: unknown): unknown {
  if (ArrayBuffer.isView(value) || typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return value.map(normalized);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(value)) {
    if (k === 'chunks' && Array.isArray(v) && v.every((c) => c instanceof Float64Array || c instanceof Float32Array)) {
      const chunks = v as (Float64Array | Float32Array)[];
      if (chunks.length === 0) {
        out[k] = [];
        continue;
      }
      const first = chunks[0] as Float64Array | Float32Array;
      const n = chunks.reduce((s, c) => s + c.length, 0);
      const joined = first instanceof Float32Array ? new Float32Array(n) : new Float64Array(n);
      let o = 0;
      for (const c of chunks) {
        if (c.constructor !== first.constructor) throw new Error('chunks of mixed types');
        joined.set(c, o);
        o += c.length;
      }
      out[k] = [joined];
    } else {
      out[k] = normalized(v);
    }
  }
  return out;
}

/** A compute() result as plain data: dtype, shape, data (or a record of them). */
function resultData(r: unknown): unknown {
  if (r instanceof Tensor) return { dtype: r.dtype, shape: [...r.shape], data: r.data };
  if (typeof r === 'object' && r !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(r)) out[k] = resultData(v);
    return out;
  }
  return r;
}

type AnyState = MetricState<Record<string, unknown>>;
type AnyDef = MetricDefinition<AnyState, Tensor>;

/**
 * `actual` equals `expected`: the same compute() result exactly, and the same state (the chunk lists
 * exactly when `exactChunks`, else concatenated), metric and config.
 */
function expectSameState(def: AnyDef, actual: AnyState, expected: AnyState, exactChunks: boolean, what: string): void {
  expectDeepEqual(resultData(def.compute(actual)), resultData(def.compute(expected)), `${what}: compute() results`);
  expect(actual.metric).toBe(expected.metric);
  expectDeepEqual(actual.config, expected.config, `${what}: configs`);
  if (exactChunks) expectDeepEqual(actual.parts, expected.parts, `${what}: state parts`);
  else expectDeepEqual(normalized(actual.parts), normalized(expected.parts), `${what}: state parts (chunks concatenated)`);
}

// ---------------------------------------------------------------------------------------------
// Generators: the shape of a batch first, then its data

/** Small dyadic rationals k / 4 for k in [-8, 8], with many exact zeros: float32-exact, sums exact. */
const value = fc
  .oneof({ weight: 3, arbitrary: fc.constant(0) }, { weight: 4, arbitrary: fc.integer({ min: -8, max: 8 }) })
  .map((k) => k / 4);

const tensorArb = (shape: readonly number[]): fc.Arbitrary<Tensor<'float32'>> => float32Tensor(value, shape);

/** Everything about a batch's shape but its row count. */
interface Shape {
  /** Components on axis 1, or null for rank-2 inputs (no component axis). */
  readonly components: number | null;
  readonly learnedFeatures: number;
  readonly sourceFeatures: number;
  /** Trailing dimensions of the reconstruction-score losses. */
  readonly trailing: readonly number[];
  readonly componentIdx: number | undefined;
}

interface Case {
  readonly name: string;
  readonly def: AnyDef;
  /** Whether the state is ordered (keepBatchDim, capacity): no commutativity. */
  readonly ordered: boolean;
  /** Whether batches of one stream may have different shapes (everything but capacity). */
  readonly mixedShapes: boolean;
  readonly shape: fc.Arbitrary<Shape>;
  batch(shape: Shape, rows: number): fc.Arbitrary<Batch>;
  /** A metric object with the same definition. */
  metric(): Metric<AnyState, unknown>;
}

type Fields = readonly ('learned' | 'source')[];

function activationShape(
  components: readonly (number | null)[],
  learned: readonly number[],
  source: readonly number[] = [1],
): fc.Arbitrary<Shape> {
  return fc.record({
    components: fc.constantFrom(...components),
    learnedFeatures: fc.constantFrom(...learned),
    sourceFeatures: fc.constantFrom(...source),
    trailing: fc.constant([]),
    componentIdx: fc.constant(undefined),
  });
}

function activationBatch(fields: Fields) {
  return (s: Shape, rows: number): fc.Arbitrary<Batch> => {
    const dims = (features: number): number[] => (s.components === null ? [rows, features] : [rows, s.components, features]);
    const parts: Record<string, fc.Arbitrary<Tensor<'float32'>>> = {};
    if (fields.includes('learned')) parts.learnedActivations = tensorArb(dims(s.learnedFeatures));
    if (fields.includes('source')) {
      parts.sourceActivations = tensorArb(dims(s.sourceFeatures));
      parts.decodedActivations = tensorArb(dims(s.sourceFeatures));
    }
    return fc.record(parts);
  };
}

function lossBatch(s: Shape, rows: number): fc.Arbitrary<Batch> {
  const shape = [rows, ...s.trailing];
  return fc
    .record({
      sourceModelLoss: tensorArb(shape),
      sourceModelLossWithReconstruction: tensorArb(shape),
      sourceModelLossWithZeroAblation: tensorArb(shape),
    })
    .map((b): Batch => (s.componentIdx === undefined ? b : { ...b, componentIdx: s.componentIdx }));
}

const asDef = (d: unknown): AnyDef => d as AnyDef;
const asMetric = (m: unknown): Metric<AnyState, unknown> => m as Metric<AnyState, unknown>;

/** Component-axis choices for a loss metric with numComponents `n`: with keepBatchDim one fixed axis. */
function lossAxes(n: number | undefined, axis: boolean, keep: boolean): (number | null)[] {
  if (n === undefined || n === 1) return keep ? [axis ? 1 : null] : [null, 1];
  return [n];
}

function buildCases(): Case[] {
  const cases: Case[] = [];
  const POW2 = [1, 2, 4, 8];
  const ANY = [1, 2, 3, 5];

  // The three losses: numComponents default / 1 (rank 3) / 2 / 3, keepBatchDim false / true.
  const lossConfigs: { numComponents?: number; axis: boolean }[] = [
    { axis: false },
    { numComponents: 1, axis: true },
    { numComponents: 2, axis: true },
    { numComponents: 3, axis: true },
  ];
  for (const keepBatchDim of [false, true]) {
    for (const cfg of lossConfigs) {
      const n = cfg.numComponents;
      const opts = n === undefined ? { keepBatchDim } : { numComponents: n, keepBatchDim };
      const axes = lossAxes(n, cfg.axis, keepBatchDim);
      const label = `${JSON.stringify(opts)} axes ${JSON.stringify(axes)}`;
      cases.push({
        name: `l1AbsoluteLoss ${label}`,
        def: asDef(l1AbsoluteLoss(opts)),
        ordered: keepBatchDim,
        mixedShapes: true,
        shape: activationShape(axes, ANY),
        batch: activationBatch(['learned']),
        metric: () => asMetric(new L1AbsoluteLoss(opts)),
      });
      cases.push({
        name: `l2ReconstructionLoss ${label}`,
        def: asDef(l2ReconstructionLoss(opts)),
        ordered: keepBatchDim,
        mixedShapes: true,
        shape: activationShape(axes, [1], POW2),
        batch: activationBatch(['source']),
        metric: () => asMetric(new L2ReconstructionLoss(opts)),
      });
      const saeOpts = n === 3 ? { ...opts, l1Coefficient: 0.5 } : opts;
      cases.push({
        name: `sparseAutoencoderLoss ${JSON.stringify(saeOpts)} axes ${JSON.stringify(axes)}`,
        def: asDef(sparseAutoencoderLoss(saeOpts)),
        ordered: keepBatchDim,
        mixedShapes: true,
        shape: activationShape(axes, ANY, POW2),
        batch: activationBatch(['learned', 'source']),
        metric: () => asMetric(new SparseAutoencoderLoss(saeOpts)),
      });
    }
  }

  // L0: numComponents unset (rank 2 only), 1 (rank 2 or 3), 2, 3.
  const l0Configs: { opts: { numComponents?: number }; axes: (number | null)[] }[] = [
    { opts: {}, axes: [null] },
    { opts: { numComponents: 1 }, axes: [null, 1] },
    { opts: { numComponents: 2 }, axes: [2] },
    { opts: { numComponents: 3 }, axes: [3] },
  ];
  for (const { opts, axes } of l0Configs) {
    cases.push({
      name: `l0Norm ${JSON.stringify(opts)}`,
      def: asDef(l0Norm(opts)),
      ordered: false,
      mixedShapes: true,
      shape: activationShape(axes, ANY),
      batch: activationBatch(['learned']),
      metric: () => asMetric(new L0NormMetric(opts)),
    });
  }

  // The fired-count family: numComponents unset / 1 / 2 / 3, several feature counts and thresholds.
  const firedConfigs: { numLearnedFeatures: number; numComponents?: number; axes: (number | null)[]; threshold: number }[] = [
    { numLearnedFeatures: 3, axes: [null], threshold: 0 },
    { numLearnedFeatures: 4, numComponents: 1, axes: [null, 1], threshold: 0.25 },
    { numLearnedFeatures: 1, numComponents: 2, axes: [2], threshold: 0.5 },
    { numLearnedFeatures: 2, numComponents: 3, axes: [3], threshold: 1 },
  ];
  for (const { axes, threshold, ...base } of firedConfigs) {
    const shape = activationShape(axes, [base.numLearnedFeatures]);
    const withThreshold = { ...base, thresholdIsDeadPortionFires: threshold };
    cases.push({
      name: `neuronActivity ${JSON.stringify(withThreshold)}`,
      def: asDef(neuronActivity(withThreshold)),
      ordered: false,
      mixedShapes: true,
      shape,
      batch: activationBatch(['learned']),
      metric: () => asMetric(new NeuronActivityMetric(withThreshold)),
    });
    cases.push({
      name: `neuronFiredCount ${JSON.stringify(base)}`,
      def: asDef(neuronFiredCount(base)),
      ordered: false,
      mixedShapes: true,
      shape,
      batch: activationBatch(['learned']),
      metric: () => asMetric(new NeuronFiredCountMetric(base)),
    });
    cases.push({
      name: `featureDensity ${JSON.stringify(base)}`,
      def: asDef(featureDensity(base)),
      ordered: false,
      mixedShapes: true,
      shape,
      batch: activationBatch(['learned']),
      metric: () => asMetric(new FeatureDensityMetric(base)),
    });
  }
  // The default threshold (option left out).
  cases.push({
    name: 'neuronActivity {"numLearnedFeatures":2} (default threshold)',
    def: asDef(neuronActivity({ numLearnedFeatures: 2 })),
    ordered: false,
    mixedShapes: true,
    shape: activationShape([null], [2]),
    batch: activationBatch(['learned']),
    metric: () => asMetric(new NeuronActivityMetric({ numLearnedFeatures: 2 })),
  });

  // Capacity: rank 2, and rank 3 with 1, 2, 3 components; one row shape per stream.
  for (const axes of [[null], [1], [2], [3]] as (number | null)[][]) {
    cases.push({
      name: `capacity components ${JSON.stringify(axes[0])}`,
      def: asDef(capacity()),
      ordered: true,
      mixedShapes: false,
      shape: activationShape(axes, [1, 2, 3]),
      batch: activationBatch(['learned']),
      metric: () => asMetric(new CapacityMetric()),
    });
  }

  // Reconstruction score: numComponents 1 / 2 / 3, componentIdx left out or given.
  for (const numComponents of [undefined, 1, 2, 3]) {
    const opts = numComponents === undefined ? {} : { numComponents };
    const n = numComponents ?? 1;
    const idx =
      numComponents === undefined
        ? fc.constant(undefined)
        : fc.oneof(fc.constant(undefined), fc.integer({ min: 0, max: n - 1 }));
    cases.push({
      name: `reconstructionScore ${JSON.stringify(opts)}`,
      def: asDef(reconstructionScore(opts)),
      ordered: false,
      mixedShapes: true,
      shape: fc.record({
        components: fc.constant(null),
        learnedFeatures: fc.constant(1),
        sourceFeatures: fc.constant(1),
        trailing: fc.constantFrom([], [1], [2], [3]),
        componentIdx: idx,
      }),
      batch: lossBatch,
      metric: () => asMetric(new ReconstructionScoreMetric(opts)),
    });
  }
  return cases;
}

const CASES = buildCases();

const rowsArb = (min = 1, max = 4): fc.Arbitrary<number> => fc.integer({ min, max });

/** A batch whose shape comes from `shape`. */
function batchArb(c: Case, shape: fc.Arbitrary<Shape>, rows = rowsArb()): fc.Arbitrary<Batch> {
  return fc.tuple(shape, rows).chain(([s, n]) => c.batch(s, n));
}

/** A state: init() folded with 0 to 3 batches. */
function stateArb(c: Case, shape: fc.Arbitrary<Shape>): fc.Arbitrary<AnyState> {
  return fc
    .array(batchArb(c, shape), { minLength: 0, maxLength: 3 })
    .map((batches) => batches.reduce((s, b) => c.def.update(s, b), c.def.init()));
}

/** The shape arbitrary for the several states or batches of one property run. */
function streamShape<T>(c: Case, f: (shape: fc.Arbitrary<Shape>) => fc.Arbitrary<T>): fc.Arbitrary<T> {
  return c.mixedShapes ? f(c.shape) : c.shape.chain((s) => f(fc.constant(s)));
}

/** One state whose batches share a shape when the stream requires it. */
function oneState(c: Case): fc.Arbitrary<AnyState> {
  return streamShape(c, (shape) => stateArb(c, shape));
}

function isTensorLike(v: unknown): v is TensorLike {
  return typeof v === 'object' && v !== null && 'data' in v && (v as { data: unknown }).data instanceof Float32Array;
}

/** `x ++ y`: every tensor field concatenated along the batch axis; other fields (componentIdx) from x. */
function concat(x: Batch, y: Batch): Batch {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(x)) {
    const w = y[k];
    if (isTensorLike(v) && isTensorLike(w)) {
      expect(v.shape.slice(1)).toEqual(w.shape.slice(1));
      const data = new Float32Array(v.data.length + w.data.length);
      data.set(v.data, 0);
      data.set(w.data, v.data.length);
      out[k] = tensor(data, [(v.shape[0] as number) + (w.shape[0] as number), ...v.shape.slice(1)]);
    } else {
      expect(w).toEqual(v);
      out[k] = v;
    }
  }
  return out as Batch;
}

function rowsOf(b: Batch): number {
  const t = (b.learnedActivations ?? b.sourceActivations ?? b.sourceModelLoss) as TensorLike;
  return t.shape[0] as number;
}

// ---------------------------------------------------------------------------------------------

describe('the generators', () => {
  it('cover all nine definitions, with and without a component axis and keepBatchDim', () => {
    const metrics = new Set(CASES.map((c) => c.def.metric));
    expect([...metrics].sort()).toEqual(
      [
        'CapacityMetric',
        'FeatureDensityMetric',
        'L0NormMetric',
        'L1AbsoluteLoss',
        'L2ReconstructionLoss',
        'NeuronActivityMetric',
        'NeuronFiredCountMetric',
        'ReconstructionScoreMetric',
        'SparseAutoencoderLoss',
      ].sort(),
    );
    expect(CASES.filter((c) => c.def.config.keepBatchDim === true)).toHaveLength(12);
  });

  it('concat joins batches along the batch axis', () => {
    const x = { learnedActivations: tensor([[1, 2]]) };
    const y = { learnedActivations: tensor([[3, 4], [5, 6]]) };
    const xy = concat(x, y).learnedActivations as Tensor;
    expect(xy.shape).toEqual([3, 2]);
    expect(xy.toArray()).toEqual([[1, 2], [3, 4], [5, 6]]);
  });

  it('normalized concatenates chunks and the equality helper sees NaN as NaN and -0 apart from 0', () => {
    expect(normalized({ chunks: [Float64Array.of(1), Float64Array.of(2, 3)] })).toEqual({ chunks: [Float64Array.of(1, 2, 3)] });
    expect(difference(Float64Array.of(NaN), Float64Array.of(NaN))).toBeUndefined();
    expect(difference(Float64Array.of(0), Float64Array.of(-0))).toBeDefined();
    expect(difference({ a: 1 }, { a: 1, b: 2 })).toBeDefined();
    expect(difference(Float32Array.of(1), Float64Array.of(1))).toBeDefined();
  });
});

describe.each(CASES)('$name', (c) => {
  const { def } = c;

  it('identity: merge(init(), s) and merge(s, init()) equal s', () => {
    fc.assert(
      fc.property(oneState(c), (s) => {
        expectSameState(def, def.merge(def.init(), s), s, true, 'merge(init(), s) vs s');
        expectSameState(def, def.merge(s, def.init()), s, true, 'merge(s, init()) vs s');
        expectSameState(def, def.merge(def.init(), def.init()), def.init(), true, 'merge(init(), init()) vs init()');
      }),
      { numRuns: RUNS },
    );
  });

  it('associativity: merge(merge(a, b), c) equals merge(a, merge(b, c))', () => {
    fc.assert(
      fc.property(
        streamShape(c, (shape) => fc.tuple(stateArb(c, shape), stateArb(c, shape), stateArb(c, shape))),
        ([a, b, d]) => {
          expectSameState(def, def.merge(def.merge(a, b), d), def.merge(a, def.merge(b, d)), true, 'associativity');
        },
      ),
      { numRuns: RUNS },
    );
  });

  if (!c.ordered) {
    it('commutativity: merge(a, b) equals merge(b, a)', () => {
      fc.assert(
        fc.property(
          streamShape(c, (shape) => fc.tuple(stateArb(c, shape), stateArb(c, shape))),
          ([a, b]) => {
            expectSameState(def, def.merge(a, b), def.merge(b, a), true, 'commutativity');
          },
        ),
        { numRuns: RUNS },
      );
    });
  }

  it(`homomorphism${c.ordered ? ' and order' : ''}: update(s, x ++ y) equals merge(update(s, x), update(init(), y)); merge(update(y), update(x)) equals update(y ++ x)`, () => {
    fc.assert(
      fc.property(
        c.shape.chain((s) => {
          const shape = fc.constant(s);
          return fc.tuple(stateArb(c, shape), batchArb(c, shape), batchArb(c, shape));
        }),
        ([s, x, y]) => {
          const xy = concat(x, y);
          const yx = concat(y, x);
          expect(rowsOf(xy)).toBe(rowsOf(x) + rowsOf(y));
          const init = def.init();
          expectSameState(def, def.merge(def.update(init, x), def.update(init, y)), def.update(init, xy), false, 'x then y');
          expectSameState(def, def.merge(def.update(init, y), def.update(init, x)), def.update(init, yx), false, 'y then x');
          expectSameState(def, def.merge(def.update(s, x), def.update(init, y)), def.update(s, xy), false, 's, x then y');
          // Updating batch by batch is the same as one update of the concatenation.
          expectSameState(def, def.update(def.update(s, x), y), def.update(s, xy), false, 'update(update(s, x), y)');
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('row ranges: rows [0, k) merged with rows [k, n) equal all rows, for every split point k', () => {
    fc.assert(
      fc.property(
        c.shape.chain((s) => {
          const shape = fc.constant(s);
          return fc.tuple(stateArb(c, shape), batchArb(c, shape, rowsArb(2, 6)));
        }).chain(([s, batch]) => fc.tuple(fc.constant(s), fc.constant(batch), fc.integer({ min: 1, max: rowsOf(batch) - 1 }))),
        ([s, batch, k]) => {
          const n = rowsOf(batch);
          const init = def.init();
          const whole = def.update(init, batch);
          const split = def.merge(def.update(init, batch, { start: 0, end: k }), def.update(init, batch, { start: k, end: n }));
          expectSameState(def, split, whole, false, `split at ${k} of ${n}`);
          expectSameState(def, def.update(s, batch, { start: 0, end: n }), def.update(s, batch), true, 'explicit full range');
          const folded = def.update(def.update(s, batch, { start: 0, end: k }), batch, { start: k, end: n });
          expectSameState(def, folded, def.update(s, batch), false, `two ranges folded into s at ${k}`);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('row ranges: an empty or out-of-bounds range is rejected', () => {
    fc.assert(
      fc.property(
        batchArb(c, c.shape).chain((batch) => {
          const n = rowsOf(batch);
          return fc.tuple(
            fc.constant(batch),
            fc.oneof(
              fc.integer({ min: 0, max: n }).map((k) => ({ start: k, end: k })),
              fc.integer({ min: n + 1, max: n + 3 }).map((end) => ({ start: 0, end })),
              fc.constant({ start: -1, end: n }),
            ),
          );
        }),
        ([batch, rows]) => {
          expect(() => def.update(def.init(), batch, rows)).toThrow(InvalidBatchError);
        },
      ),
      { numRuns: 20 },
    );
  });

  it('purity: update, merge and compute never mutate their arguments', () => {
    fc.assert(
      fc.property(
        streamShape(c, (shape) => fc.tuple(stateArb(c, shape), stateArb(c, shape), batchArb(c, shape))),
        ([a, b, batch]) => {
          const [a0, b0, batch0] = structuredClone([a, b, batch]);
          const n = rowsOf(batch);
          def.update(a, batch);
          def.update(a, batch, { start: n - 1, end: n });
          expectDeepEqual(a, a0, 'state after update');
          expectDeepEqual(batch, batch0, 'batch after update');
          def.merge(a, b);
          def.merge(b, a);
          expectDeepEqual(a, a0, 'first state after merge');
          expectDeepEqual(b, b0, 'second state after merge');
          def.compute(a);
          expectDeepEqual(a, a0, 'state after compute');
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("purity: compute's result does not alias the state (writing to it changes nothing)", () => {
    fc.assert(
      fc.property(oneState(c), (s) => {
        const s0 = structuredClone(s);
        const before = resultData(def.compute(s));
        const r = def.compute(s);
        r.data.fill(12345);
        expectDeepEqual(s, s0, 'state after writing to its result');
        expectDeepEqual(resultData(def.compute(s)), before, 'compute() after writing to an earlier result');
      }),
      { numRuns: 30 },
    );
  });

  it('class level: mergeState(other) equals one metric updated with both streams; update counts add up', () => {
    fc.assert(
      fc.property(
        streamShape(c, (shape) =>
          fc.tuple(fc.array(batchArb(c, shape), { minLength: 1, maxLength: 3 }), fc.array(batchArb(c, shape), { maxLength: 3 })),
        ),
        ([streamA, streamB]) => {
          const m1 = c.metric();
          const m2 = c.metric();
          const both = c.metric();
          for (const b of streamA) m1.update(b);
          for (const b of streamB) m2.update(b);
          for (const b of [...streamA, ...streamB]) both.update(b);
          const m2State = m2.state();
          m1.mergeState(m2);
          expect(m1.updateCount).toBe(streamA.length + streamB.length);
          expect(m2.updateCount).toBe(streamB.length);
          expectDeepEqual(m2.state(), m2State, 'the merged-in metric');
          expectDeepEqual(resultData(m1.compute()), resultData(both.compute()), 'compute()');
          expectDeepEqual(normalized(m1.state().parts), normalized(both.state().parts), 'state parts (chunks concatenated)');

          // Merging a state object instead of a metric gives the same value.
          const m3 = c.metric();
          for (const b of streamA) m3.update(b);
          m3.mergeState(m2State);
          expectDeepEqual(resultData(m3.compute()), resultData(both.compute()), 'compute() after mergeState(state)');
        },
      ),
      { numRuns: 30 },
    );
  });
});

describe('class level: ClasswiseWrapperWithMean', () => {
  it('mergeState(other) equals one wrapper updated with both streams; update counts add up', () => {
    const shape = activationShape([2], [1, 2, 3]);
    const c = CASES.find((k) => k.name === 'l0Norm {"numComponents":2}') as Case;
    const wrap = (): ClasswiseWrapperWithMean => new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 }), { prefix: 'l0' });
    fc.assert(
      fc.property(
        fc.tuple(fc.array(batchArb(c, shape), { minLength: 1, maxLength: 3 }), fc.array(batchArb(c, shape), { maxLength: 3 })),
        ([streamA, streamB]) => {
          const m1 = wrap();
          const m2 = wrap();
          const both = wrap();
          for (const b of streamA) m1.update(b);
          for (const b of streamB) m2.update(b);
          for (const b of [...streamA, ...streamB]) both.update(b);
          m1.mergeState(m2);
          expect(m1.updateCount).toBe(streamA.length + streamB.length);
          expectDeepEqual(resultData(m1.compute()), resultData(both.compute()), 'compute()');
          expect(Object.keys(m1.compute()).sort()).toEqual(['l0/0', 'l0/1', 'l0/mean']);
        },
      ),
      { numRuns: 30 },
    );
  });
});
