/**
 * The versioned JSON encoding of metric states (`encodeState` / `decodeState`, and
 * `metric.encodeState()` / `metric.loadState(text)`), and states crossing a thread boundary by
 * structured clone.
 *
 * States are compared bit for bit: typed arrays by their bytes (so NaN payloads, -0 and subnormals
 * must survive), plain numbers with `Object.is`. Inputs are arbitrary float32 values, NaN and
 * +-Infinity included, so sums in the states are often NaN or infinite. Expected counts below are
 * written by hand (2**53 - 1, 2**40 + 1 and their sums).
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { MessageChannel, receiveMessageOnPort } from 'node:worker_threads';
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
} from '../src/functional/index.js';
import type { Batch, MetricDefinition, MetricState } from '../src/functional/index.js';
import {
  tensor,
  Tensor,
  Metric,
  encodeState,
  decodeState,
  STATE_FORMAT,
  STATE_VERSION,
  StateDecodeError,
  StateMergeError,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  SparseAutoencoderLoss,
  L0NormMetric,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  FeatureDensityMetric,
  CapacityMetric,
  ReconstructionScoreMetric,
} from '../src/index.js';
import { float32Tensor } from './support/arbitraries.js';
import { difference as deepDifference, viewBytesDifference } from './support/compare.js';

const RUNS = 40;

// ---------------------------------------------------------------------------------------------
// Bitwise deep equality

/** A path to the first difference (typed arrays compared byte for byte), or undefined. */
const difference = (a: unknown, b: unknown): string | undefined => deepDifference(a, b, viewBytesDifference);

function expectBitwiseEqual(actual: unknown, expected: unknown, what: string): void {
  const d = difference(actual, expected);
  expect(d, `${what} differ at ${d}`).toBeUndefined();
}

function resultData(r: unknown): unknown {
  if (r instanceof Tensor) return { dtype: r.dtype, shape: [...r.shape], data: r.data };
  return r;
}

// ---------------------------------------------------------------------------------------------
// Cases: one per metric configuration, with a fixed row shape and arbitrary float32 data

type AnyState = MetricState<Record<string, unknown>>;
type AnyDef = MetricDefinition<AnyState, Tensor>;
type AnyMetric = Metric<AnyState, Tensor>;

interface Case {
  readonly name: string;
  readonly def: AnyDef;
  metric(): AnyMetric;
  batch(rows: number): fc.Arbitrary<Batch>;
}

/** Any float32, NaN and +-Infinity and -0 included, with many exact zeros. */
const anyFloat = fc.oneof({ weight: 1, arbitrary: fc.constant(0) }, { weight: 3, arbitrary: fc.float() });

const tensorArb = (shape: readonly number[]): fc.Arbitrary<Tensor<'float32'>> => float32Tensor(anyFloat, shape);

function activations(fields: readonly string[], row: readonly number[]) {
  return (rows: number): fc.Arbitrary<Batch> => {
    const parts: Record<string, fc.Arbitrary<Tensor<'float32'>>> = {};
    for (const f of fields) parts[f] = tensorArb([rows, ...row]);
    return fc.record(parts);
  };
}

function losses(trailing: readonly number[], numComponents: number) {
  return (rows: number): fc.Arbitrary<Batch> =>
    fc
      .record({
        sourceModelLoss: tensorArb([rows, ...trailing]),
        sourceModelLossWithReconstruction: tensorArb([rows, ...trailing]),
        sourceModelLossWithZeroAblation: tensorArb([rows, ...trailing]),
        componentIdx: fc.option(fc.integer({ min: 0, max: numComponents - 1 }), { nil: undefined }),
      })
      .map(({ componentIdx, ...b }): Batch => (componentIdx === undefined ? b : { ...b, componentIdx }));
}

const LEARNED = ['learnedActivations'];
const RECON = ['sourceActivations', 'decodedActivations'];
const ALL = [...LEARNED, ...RECON];
const asDef = (d: unknown): AnyDef => d as AnyDef;
const asMetric = (m: unknown): AnyMetric => m as AnyMetric;

const CASES: Case[] = [
  { name: 'L1AbsoluteLoss {}', def: asDef(l1AbsoluteLoss()), metric: () => asMetric(new L1AbsoluteLoss()), batch: activations(LEARNED, [3]) },
  {
    name: 'L1AbsoluteLoss {numComponents: 2, keepBatchDim: true}',
    def: asDef(l1AbsoluteLoss({ numComponents: 2, keepBatchDim: true })),
    metric: () => asMetric(new L1AbsoluteLoss({ numComponents: 2, keepBatchDim: true })),
    batch: activations(LEARNED, [2, 3]),
  },
  {
    name: 'L1AbsoluteLoss {keepBatchDim: true} rank 2',
    def: asDef(l1AbsoluteLoss({ keepBatchDim: true })),
    metric: () => asMetric(new L1AbsoluteLoss({ keepBatchDim: true })),
    batch: activations(LEARNED, [2]),
  },
  {
    name: 'L2ReconstructionLoss {numComponents: 3}',
    def: asDef(l2ReconstructionLoss({ numComponents: 3 })),
    metric: () => asMetric(new L2ReconstructionLoss({ numComponents: 3 })),
    batch: activations(RECON, [3, 2]),
  },
  {
    name: 'L2ReconstructionLoss {numComponents: 1, keepBatchDim: true}',
    def: asDef(l2ReconstructionLoss({ numComponents: 1, keepBatchDim: true })),
    metric: () => asMetric(new L2ReconstructionLoss({ numComponents: 1, keepBatchDim: true })),
    batch: activations(RECON, [1, 4]),
  },
  {
    name: 'SparseAutoencoderLoss {}',
    def: asDef(sparseAutoencoderLoss()),
    metric: () => asMetric(new SparseAutoencoderLoss()),
    batch: activations(ALL, [2]),
  },
  {
    name: 'SparseAutoencoderLoss {numComponents: 2, keepBatchDim: true, l1Coefficient: 0.25}',
    def: asDef(sparseAutoencoderLoss({ numComponents: 2, keepBatchDim: true, l1Coefficient: 0.25 })),
    metric: () => asMetric(new SparseAutoencoderLoss({ numComponents: 2, keepBatchDim: true, l1Coefficient: 0.25 })),
    batch: activations(ALL, [2, 2]),
  },
  { name: 'L0NormMetric {}', def: asDef(l0Norm()), metric: () => asMetric(new L0NormMetric()), batch: activations(LEARNED, [3]) },
  {
    name: 'L0NormMetric {numComponents: 2}',
    def: asDef(l0Norm({ numComponents: 2 })),
    metric: () => asMetric(new L0NormMetric({ numComponents: 2 })),
    batch: activations(LEARNED, [2, 3]),
  },
  {
    name: 'NeuronActivityMetric {numLearnedFeatures: 3, thresholdIsDeadPortionFires: 0.5}',
    def: asDef(neuronActivity({ numLearnedFeatures: 3, thresholdIsDeadPortionFires: 0.5 })),
    metric: () => asMetric(new NeuronActivityMetric({ numLearnedFeatures: 3, thresholdIsDeadPortionFires: 0.5 })),
    batch: activations(LEARNED, [3]),
  },
  {
    name: 'NeuronActivityMetric {numLearnedFeatures: 2, numComponents: 2}',
    def: asDef(neuronActivity({ numLearnedFeatures: 2, numComponents: 2 })),
    metric: () => asMetric(new NeuronActivityMetric({ numLearnedFeatures: 2, numComponents: 2 })),
    batch: activations(LEARNED, [2, 2]),
  },
  {
    name: 'NeuronFiredCountMetric {numLearnedFeatures: 3}',
    def: asDef(neuronFiredCount({ numLearnedFeatures: 3 })),
    metric: () => asMetric(new NeuronFiredCountMetric({ numLearnedFeatures: 3 })),
    batch: activations(LEARNED, [3]),
  },
  {
    name: 'FeatureDensityMetric {numLearnedFeatures: 4, numComponents: 1}',
    def: asDef(featureDensity({ numLearnedFeatures: 4, numComponents: 1 })),
    metric: () => asMetric(new FeatureDensityMetric({ numLearnedFeatures: 4, numComponents: 1 })),
    batch: activations(LEARNED, [1, 4]),
  },
  { name: 'CapacityMetric rank 2', def: asDef(capacity()), metric: () => asMetric(new CapacityMetric()), batch: activations(LEARNED, [3]) },
  {
    name: 'CapacityMetric rank 3',
    def: asDef(capacity()),
    metric: () => asMetric(new CapacityMetric()),
    batch: activations(LEARNED, [2, 2]),
  },
  {
    name: 'ReconstructionScoreMetric {}',
    def: asDef(reconstructionScore()),
    metric: () => asMetric(new ReconstructionScoreMetric()),
    batch: losses([], 1),
  },
  {
    name: 'ReconstructionScoreMetric {numComponents: 3}',
    def: asDef(reconstructionScore({ numComponents: 3 })),
    metric: () => asMetric(new ReconstructionScoreMetric({ numComponents: 3 })),
    batch: losses([2], 3),
  },
];

/** `value` after `def.assertState(value)`: a state of `def` (throws StateMergeError when not). */
function checked(def: AnyDef, value: unknown): AnyState {
  def.assertState(value);
  return value;
}

/** init() folded with `min` to 3 batches of 1 to 3 rows. */
function stateArb(c: Case, min = 0): fc.Arbitrary<AnyState> {
  return fc
    .array(
      fc.integer({ min: 1, max: 3 }).chain((rows) => c.batch(rows)),
      { minLength: min, maxLength: 3 },
    )
    .map((batches) => batches.reduce((s, b) => c.def.update(s, b), c.def.init()));
}

/** A metric of case `c` updated with a few fixed batches. */
function updatedMetric(c: Case, seed: number): AnyMetric {
  const m = c.metric();
  for (const b of fc.sample(fc.integer({ min: 1, max: 3 }).chain((rows) => c.batch(rows)), { numRuns: 2, seed })) m.update(b);
  return m;
}

/** `fn()` throws an error of class `cls` (checked by `name` too) whose message matches every pattern. */
function expectThrows(fn: () => unknown, cls: typeof StateDecodeError | typeof StateMergeError, ...patterns: (string | RegExp)[]): Error {
  let caught: unknown;
  try {
    fn();
  } catch (error) {
    caught = error;
  }
  expect(caught, 'expected a throw').toBeInstanceOf(cls);
  const e = caught as Error;
  expect(e.name).toBe(cls.name);
  expect(e).toBeInstanceOf(TypeError);
  for (const p of patterns) expect(e.message).toMatch(p);
  return e;
}

// ---------------------------------------------------------------------------------------------

describe.each(CASES)('$name', (c) => {
  const { def } = c;

  it('decode(encode(s)) equals s bit for bit; the text is versioned JSON and re-encodes to itself', () => {
    fc.assert(
      fc.property(stateArb(c), (s) => {
        const text = encodeState(s);
        const json = JSON.parse(text) as Record<string, unknown>;
        expect(json.format).toBe('sae-metrics/state');
        expect(json.version).toBe(1);
        expect(json.metric).toBe(def.metric);
        expect(json.config).toEqual(def.config);
        const decoded = checked(def, decodeState(text));
        expectBitwiseEqual(decoded, s, 'decoded state');
        expectBitwiseEqual(resultData(def.compute(decoded)), resultData(def.compute(s)), 'compute()');
        expect(encodeState(decoded)).toBe(text);
      }),
      { numRuns: RUNS },
    );
  });

  it('a decoded state merges like the original', () => {
    fc.assert(
      fc.property(stateArb(c), stateArb(c), (a, b) => {
        const expected = def.merge(a, b);
        const decodedA = checked(def, decodeState(encodeState(a)));
        const decodedB = checked(def, decodeState(encodeState(b)));
        expectBitwiseEqual(def.merge(decodedA, decodedB), expected, 'merge of decoded states');
        expectBitwiseEqual(def.merge(decodedA, b), expected, 'merge of a decoded and an original state');
      }),
      { numRuns: 20 },
    );
  });

  it('metric.encodeState() and loadState(text) round-trip the state and the value; the update count is kept', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 3 }).chain((rows) => c.batch(rows)), { minLength: 1, maxLength: 3 }), (batches) => {
        const m = c.metric();
        for (const b of batches) m.update(b);
        const text = m.encodeState();
        expect(text).toBe(encodeState(m.state()));
        const loaded = c.metric();
        loaded.update(batches[0] as Batch);
        loaded.loadState(text);
        expect(loaded.updateCount).toBe(1);
        expectBitwiseEqual(loaded.state(), m.state(), 'loaded state');
        expectBitwiseEqual(resultData(loaded.compute()), resultData(m.compute()), 'compute() of the loaded metric');
        expect(loaded.encodeState()).toBe(text);
        // Loading a state object works the same.
        const fromObject = c.metric();
        fromObject.loadState(decodeState(text) as AnyState);
        expectBitwiseEqual(fromObject.state(), m.state(), 'state loaded from a decoded object');
      }),
      { numRuns: 20 },
    );
  });

  it('a state survives structuredClone and a MessagePort (the thread boundary) and merges after it', () => {
    fc.assert(
      fc.property(stateArb(c), stateArb(c), (a, b) => {
        const cloned = checked(def, structuredClone(a));
        expectBitwiseEqual(cloned, a, 'structuredClone');
        expectBitwiseEqual(def.merge(cloned, b), def.merge(a, b), 'merge after structuredClone');
        expectBitwiseEqual(def.merge(b, cloned), def.merge(b, a), 'merge into after structuredClone');

        const { port1, port2 } = new MessageChannel();
        try {
          port1.postMessage(a);
          const received = checked(def, receiveMessageOnPort(port2)?.message);
          expectBitwiseEqual(received, a, 'state posted through a MessagePort');
          expectBitwiseEqual(def.merge(received, b), def.merge(a, b), 'merge after a MessagePort');
        } finally {
          port1.close();
          port2.close();
        }
      }),
      { numRuns: 20 },
    );
  });

  it('metric.mergeState accepts a structured-cloned metric state', () => {
    const m1 = updatedMetric(c, 1);
    const m2 = updatedMetric(c, 2);
    const expected = def.merge(m1.state(), m2.state());
    m1.mergeState(structuredClone(m2.state()));
    expectBitwiseEqual(m1.state(), expected, 'state after mergeState(structuredClone(state))');
  });
});

describe('loadState of another metric or configuration', () => {
  const pairs: [Case, Case][] = [];
  for (const a of CASES) {
    for (const b of CASES) {
      if (a.def.metric !== b.def.metric || JSON.stringify(a.def.config) !== JSON.stringify(b.def.config)) pairs.push([a, b]);
    }
  }

  it('covers pairs of the same metric with different configurations', () => {
    expect(pairs.some(([a, b]) => a.def.metric === b.def.metric)).toBe(true);
  });

  it.each(pairs.map(([a, b]) => ({ into: a.name, from: b.name, a, b })))(
    'loading a $from state into $into throws StateMergeError and changes nothing',
    ({ a, b }) => {
      const m = updatedMetric(a, 3);
      const before = m.state();
      const value = resultData(m.compute());
      const count = m.updateCount;
      const foreign = updatedMetric(b, 4);
      const pattern =
        a.def.metric === b.def.metric
          ? /cannot merge states of different configurations/
          : `cannot merge a state of ${b.def.metric} into ${a.def.metric}`;
      expectThrows(() => m.loadState(foreign.encodeState()), StateMergeError, new RegExp(`^${a.def.metric}: `), pattern);
      expectThrows(() => m.loadState(foreign.state()), StateMergeError, pattern);
      expectThrows(() => m.mergeState(foreign.state()), StateMergeError);
      expectBitwiseEqual(m.state(), before, 'state after the failed loads');
      expectBitwiseEqual(resultData(m.compute()), value, 'compute() after the failed loads');
      expect(m.updateCount).toBe(count);
    },
  );
});

describe('loadState of a malformed state', () => {
  const firedCase = CASES.find((c) => c.def.metric === 'NeuronFiredCountMetric') as Case;
  const good = (): AnyState => updatedMetric(firedCase, 5).state();

  it.each([
    ['a non-integer count', (f: Float64Array) => f.fill(1.5), /parts\.firedCount\.fired must hold exact non-negative integer counts/],
    ['a negative count', (f: Float64Array) => f.fill(-1), /parts\.firedCount\.fired must hold exact non-negative integer counts/],
    ['a NaN count', (f: Float64Array) => f.fill(NaN), /parts\.firedCount\.fired must hold exact non-negative integer counts/],
  ] as const)('rejects %s with StateMergeError and changes nothing', (_, corrupt, pattern) => {
    const m = updatedMetric(firedCase, 6);
    const before = m.state();
    const bad = good();
    corrupt((bad.parts.firedCount as { fired: Float64Array }).fired);
    expectThrows(() => m.loadState(bad), StateMergeError, pattern);
    expectThrows(() => m.loadState(encodeState(bad)), StateMergeError, pattern);
    expectBitwiseEqual(m.state(), before, 'state');
  });

  it('rejects counts of the wrong length, and a fractional vector count', () => {
    const m = updatedMetric(firedCase, 7);
    const before = m.state();
    const s = good();
    const wrongLength = { ...s, parts: { firedCount: { fired: new Float64Array(4), vectors: 1 } } };
    expectThrows(() => m.loadState(encodeState(wrongLength)), StateMergeError, /parts\.firedCount\.fired must have 3 elements, got 4/);
    const fractional = { ...s, parts: { firedCount: { fired: new Float64Array(3), vectors: 0.5 } } };
    expectThrows(() => m.loadState(encodeState(fractional)), StateMergeError, /parts\.firedCount\.vectors must be a non-negative integer below 2\^53, got 0\.5/);
    expectBitwiseEqual(m.state(), before, 'state');
  });

  it('loadState of undecodable text throws StateDecodeError and changes nothing', () => {
    const m = updatedMetric(firedCase, 8);
    const before = m.state();
    expectThrows(() => m.loadState('{"format":'), StateDecodeError, /^decodeState: the text is not JSON/);
    expectBitwiseEqual(m.state(), before, 'state');
  });
});

describe('counts and non-finite sums survive exactly', () => {
  const BIG = 2 ** 53 - 1; // 9007199254740991
  const MID = 2 ** 40 + 1; // 1099511627777

  it('NeuronFiredCountMetric: counts 2**53 - 1 and 2**40 + 1', () => {
    const def = neuronFiredCount({ numLearnedFeatures: 3 });
    const crafted = {
      metric: 'NeuronFiredCountMetric',
      config: { numLearnedFeatures: 3, numComponents: null },
      parts: { firedCount: { fired: Float64Array.of(9007199254740991, 1099511627777, 0), vectors: 9007199254740991 } },
    };
    // Built through the definition's own merge (which checks the state).
    const s = def.merge(crafted as never, def.init());
    const text = encodeState(s);
    const decoded = decodeState(text);
    expectBitwiseEqual(decoded, s, 'decoded state');
    const parts = decoded.parts as { firedCount: { fired: Float64Array; vectors: number } };
    expect([...parts.firedCount.fired]).toEqual([BIG, MID, 0]);
    expect(parts.firedCount.vectors).toBe(BIG);

    const m = new NeuronFiredCountMetric({ numLearnedFeatures: 3 });
    m.loadState(text);
    const r = m.compute();
    expect(r.dtype).toBe('int64');
    expect([...r.data]).toEqual([9007199254740991, 1099511627777, 0]);
    expect(m.encodeState()).toBe(text);
  });

  it('merging large counts adds exactly (2**40 + 1 twice is 2**41 + 2) and round-trips', () => {
    const def = neuronFiredCount({ numLearnedFeatures: 2, numComponents: 1 });
    const m = new NeuronFiredCountMetric({ numLearnedFeatures: 2, numComponents: 1 });
    m.loadState({
      metric: 'NeuronFiredCountMetric',
      config: { numLearnedFeatures: 2, numComponents: 1 },
      parts: { firedCount: { fired: Float64Array.of(1099511627777, 1), vectors: 1099511627777 } },
    } as never);
    const other = m.clone();
    m.mergeState(other);
    const s = m.state();
    const parts = s.parts.firedCount;
    expect([...parts.fired]).toEqual([2199023255554, 2]);
    expect(parts.vectors).toBe(2199023255554);
    const decoded = checked(asDef(def), decodeState(encodeState(s)));
    expectBitwiseEqual(decoded, s, 'decoded merged state');
    expect([...def.compute(decoded as never).data]).toEqual([2199023255554, 2]);
  });

  it('L0NormMetric and FeatureDensityMetric: exact counts give the exact quotient', () => {
    const l0 = new L0NormMetric();
    l0.loadState({
      metric: 'L0NormMetric',
      config: { numComponents: null },
      parts: { nonZeroCount: { nonZero: Float64Array.of(9007199254740991), vectors: 1099511627777 } },
    } as never);
    const again = new L0NormMetric();
    again.loadState(l0.encodeState());
    expect(again.compute().shape).toEqual([]);
    expect(again.compute().item()).toBe(9007199254740991 / 1099511627777);

    const density = new FeatureDensityMetric({ numLearnedFeatures: 2 });
    density.loadState({
      metric: 'FeatureDensityMetric',
      config: { numLearnedFeatures: 2, numComponents: null },
      parts: { firedCount: { fired: Float64Array.of(1099511627777, 0), vectors: 9007199254740991 } },
    } as never);
    const copy = new FeatureDensityMetric({ numLearnedFeatures: 2 });
    copy.loadState(density.encodeState());
    expect([...copy.compute().data]).toEqual([1099511627777 / 9007199254740991, 0]);
  });

  it('L1AbsoluteLoss: NaN and +Infinity sums, and -0, survive (a sum of absolute values cannot be -Infinity)', () => {
    const m = new L1AbsoluteLoss({ numComponents: 4 });
    const state = (third: number) => ({
      metric: 'L1AbsoluteLoss',
      config: { numComponents: 4, keepBatchDim: false },
      parts: { absolute: { sum: Float64Array.of(NaN, Infinity, third, -0), vectors: 1099511627777 } },
    });
    expectThrows(() => m.loadState(state(-Infinity) as never), StateMergeError, /sum cannot be negative .*got -Infinity at index 2/);
    m.loadState(state(2.5) as never);
    const text = m.encodeState();
    const copy = new L1AbsoluteLoss({ numComponents: 4 });
    copy.loadState(text);
    const parts = copy.state().parts.absolute as { sum: Float64Array; vectors: number };
    expect(Number.isNaN(parts.sum[0])).toBe(true);
    expect(parts.sum[1]).toBe(Infinity);
    expect(parts.sum[2]).toBe(2.5);
    expect(Object.is(parts.sum[3], -0)).toBe(true);
    expect(parts.vectors).toBe(MID);
    const r = copy.compute().data;
    expect(Number.isNaN(r[0])).toBe(true);
    expect([r[1], r[2]]).toEqual([Infinity, 2.5 / 1099511627777]);
    expect(Object.is(r[3], -0)).toBe(true);
  });

  it('ReconstructionScoreMetric: non-finite loss sums survive', () => {
    const m = new ReconstructionScoreMetric({ numComponents: 2 });
    m.loadState({
      metric: 'ReconstructionScoreMetric',
      config: { numComponents: 2 },
      parts: {
        losses: {
          source: Float64Array.of(Infinity, 1),
          reconstruction: Float64Array.of(NaN, 2),
          zeroAblation: Float64Array.of(-Infinity, 5),
        },
      },
    } as never);
    const copy = new ReconstructionScoreMetric({ numComponents: 2 });
    copy.loadState(m.encodeState());
    expectBitwiseEqual(copy.state(), m.state(), 'state');
    const r = copy.compute().data;
    expect(Number.isNaN(r[0])).toBe(true);
    expect(r[1]).toBe(3 / 4); // (5 - 2) / (5 - 1)
  });

  it('keepBatchDim chunks (Float64) and capacity chunks (Float32) keep their type, order and bits', () => {
    const loss = new L1AbsoluteLoss({ numComponents: 2, keepBatchDim: true });
    loss.loadState({
      metric: 'L1AbsoluteLoss',
      config: { numComponents: 2, keepBatchDim: true },
      parts: { absolute: { chunks: [Float64Array.of(1.5, NaN), Float64Array.of(Infinity, 2 ** -1074, 7, 8)], componentAxis: true } },
    } as never);
    const lossCopy = new L1AbsoluteLoss({ numComponents: 2, keepBatchDim: true });
    lossCopy.loadState(loss.encodeState());
    expectBitwiseEqual(lossCopy.state(), loss.state(), 'keepBatchDim state');
    const r = lossCopy.compute();
    expect(r.shape).toEqual([3, 2]);
    expect(r.data[2]).toBe(Infinity);
    expect(r.data[3]).toBe(2 ** -1074);

    const cap = new CapacityMetric();
    cap.loadState({
      metric: 'CapacityMetric',
      config: {},
      parts: { activations: { chunks: [Float32Array.of(1, 0), Float32Array.of(0, 1, 1, 0)], rowShape: [2] } },
    } as never);
    const capCopy = new CapacityMetric();
    capCopy.loadState(cap.encodeState());
    const chunks = capCopy.state().parts.activations.chunks;
    expect(chunks.map((x) => x.constructor)).toEqual([Float32Array, Float32Array]);
    expectBitwiseEqual(capCopy.state(), cap.state(), 'capacity state');
    // Vectors (1,0), (0,1), (1,0): capacities 1/2, 1, 1/2 by hand.
    expect([...capCopy.compute().data]).toEqual([0.5, 1, 0.5]);
  });

  it('merging counts past 2**53 - 1 is refused, not rounded', () => {
    const def = neuronFiredCount({ numLearnedFeatures: 1 });
    const s = def.merge(
      {
        metric: 'NeuronFiredCountMetric',
        config: { numLearnedFeatures: 1, numComponents: null },
        parts: { firedCount: { fired: Float64Array.of(9007199254740991), vectors: 9007199254740991 } },
      } as never,
      def.init(),
    );
    // 2**53 - 1 + 2**53 - 1 is not a safe integer: the merge must not hand back a state that its
    // own definition rejects (or that silently lost exactness).
    expectThrows(() => def.merge(s, s), StateMergeError, /^NeuronFiredCountMetric: /);
  });
});

describe('decodeState rejects', () => {
  const valid = (): Record<string, unknown> =>
    JSON.parse(encodeState(updatedMetric(CASES.find((c) => c.def.metric === 'NeuronFiredCountMetric') as Case, 9).state())) as Record<
      string,
      unknown
    >;
  const withFired = (fired: unknown): string => {
    const o = valid();
    (o.parts as { firedCount: { fired: unknown } }).firedCount.fired = fired;
    return JSON.stringify(o);
  };

  it('exports the format and version it writes', () => {
    expect(STATE_FORMAT).toBe('sae-metrics/state');
    expect(STATE_VERSION).toBe(1);
  });

  it('text that is not JSON, with the parse error as the cause', () => {
    for (const text of ['', '{not json', '{"format": "sae-metrics/state",', 'NaN']) {
      const e = expectThrows(() => decodeState(text), StateDecodeError, /^decodeState: the text is not JSON$/);
      expect((e as Error & { cause?: unknown }).cause).toBeInstanceOf(SyntaxError);
    }
  });

  it('JSON that is not an object', () => {
    for (const text of ['42', 'null', '"state"', 'true']) {
      expectThrows(() => decodeState(text), StateDecodeError, /^decodeState: /);
    }
  });

  it('a wrong or missing format', () => {
    const o = valid();
    expectThrows(
      () => decodeState(JSON.stringify({ ...o, format: 'torchmetrics/state' })),
      StateDecodeError,
      'decodeState: format must be "sae-metrics/state", got "torchmetrics/state"',
    );
    const { format: _, ...noFormat } = o;
    expectThrows(() => decodeState(JSON.stringify(noFormat)), StateDecodeError, /^decodeState: format must be "sae-metrics\/state"/);
  });

  it('an unsupported version', () => {
    const o = valid();
    expectThrows(() => decodeState(JSON.stringify({ ...o, version: 2 })), StateDecodeError, /^decodeState: version 2 is not supported/);
    expectThrows(() => decodeState(JSON.stringify({ ...o, version: '1' })), StateDecodeError, /^decodeState: version "1" is not supported/);
    expectThrows(() => decodeState(JSON.stringify({ ...o, version: 0 })), StateDecodeError, /version 0 is not supported/);
    const { version: _, ...noVersion } = o;
    expectThrows(() => decodeState(JSON.stringify(noVersion)), StateDecodeError, /^decodeState: version/);
  });

  it('a missing metric name, config or parts', () => {
    const o = valid();
    expectThrows(() => decodeState(JSON.stringify({ ...o, metric: 3 })), StateDecodeError, 'decodeState: metric must be a string');
    expectThrows(() => decodeState(JSON.stringify({ ...o, config: null })), StateDecodeError, 'decodeState: config must be an object');
    expectThrows(() => decodeState(JSON.stringify({ ...o, parts: 'x' })), StateDecodeError, 'decodeState: parts must be an object');
  });

  it('a typed-array field of an unknown type or without base64 text', () => {
    expectThrows(
      () => decodeState(withFired({ $typed: 'Int32Array', base64: '' })),
      StateDecodeError,
      'decodeState: parts.firedCount.fired is not a Float64Array or Float32Array encoding',
    );
    expectThrows(() => decodeState(withFired({ $typed: 'Float64Array', base64: 5 })), StateDecodeError, /parts\.firedCount\.fired/);
    expectThrows(() => decodeState(withFired({ $typed: 'Float64Array' })), StateDecodeError, /parts\.firedCount\.fired/);
    expectThrows(() => decodeState(withFired({ $typed: 'toString', base64: '' })), StateDecodeError, /parts\.firedCount\.fired/);
  });

  it('a typed-array field that is not a whole number of elements', () => {
    const fiveBytes = Buffer.from([1, 2, 3, 4, 5]).toString('base64');
    expectThrows(
      () => decodeState(withFired({ $typed: 'Float64Array', base64: fiveBytes })),
      StateDecodeError,
      'decodeState: parts.firedCount.fired has 5 bytes, not a whole number of Float64Array elements',
    );
    expectThrows(() => decodeState(withFired({ $typed: 'Float32Array', base64: fiveBytes })), StateDecodeError, /has 5 bytes/);
  });

  it('a typed-array field whose base64 text has characters outside the base64 alphabet', () => {
    // Node's base64 decoder skips such characters, so '!!!!' would otherwise decode to an empty
    // array: for a chunk list (keepBatchDim, capacity) that is a valid state, silently corrupted.
    const text = encodeState(
      l1AbsoluteLoss({ keepBatchDim: true }).update(l1AbsoluteLoss({ keepBatchDim: true }).init(), {
        learnedActivations: tensor([[1, 2]]),
      }),
    );
    const corrupted = text.replace(/"base64":"[^"]*"/, '"base64":"!!!!"');
    expect(corrupted).not.toBe(text);
    expectThrows(() => decodeState(corrupted), StateDecodeError, /^decodeState: parts\.absolute\.chunks\[0\]/);
    expectThrows(() => decodeState(withFired({ $typed: 'Float64Array', base64: 'AAAA$AAAAAA=' })), StateDecodeError, /parts\.firedCount\.fired/);
  });

  it('a non-finite number encoding other than NaN and +-Infinity; those three decode', () => {
    const o = valid();
    const withVectors = (v: unknown): string => {
      const c = structuredClone(o);
      (c.parts as { firedCount: { vectors: unknown } }).firedCount.vectors = v;
      return JSON.stringify(c);
    };
    expectThrows(
      () => decodeState(withVectors({ $number: 'lots' })),
      StateDecodeError,
      'decodeState: parts.firedCount.vectors is not a non-finite number encoding',
    );
    expectThrows(() => decodeState(withVectors({ $number: '12' })), StateDecodeError, /parts\.firedCount\.vectors/);
    for (const [text, n] of [
      ['NaN', NaN],
      ['Infinity', Infinity],
      ['-Infinity', -Infinity],
    ] as const) {
      const decoded = decodeState(withVectors({ $number: text }));
      expect((decoded.parts as { firedCount: { vectors: number } }).firedCount.vectors).toBe(n);
    }
  });
});

// ---------------------------------------------------------------------------------------------
// Hostile state text (issue 10, item 6): valid encoded states of every metric, mutated. Each is
// either refused (StateDecodeError or StateMergeError naming the field, the metric unchanged) or
// accepted, and then it computes and re-encodes to the very same text. Mutations that can only
// give an impossible state must be refused.

type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Key = string | number;

/** A site of a parsed encoded state: its path and what is there. */
interface Site {
  readonly path: readonly Key[];
  readonly kind: 'object' | 'array' | 'number' | 'typed' | 'other';
}

const isTyped = (v: Json): v is { $typed: string; base64: string } =>
  typeof v === 'object' && v !== null && !Array.isArray(v) && typeof v.$typed === 'string';

function sitesOf(v: Json, path: Key[] = [], out: Site[] = []): Site[] {
  if (isTyped(v)) out.push({ path, kind: 'typed' });
  else if (Array.isArray(v)) {
    out.push({ path, kind: 'array' });
    v.forEach((x, i) => sitesOf(x, [...path, i], out));
  } else if (typeof v === 'object' && v !== null) {
    out.push({ path, kind: 'object' });
    for (const [k, x] of Object.entries(v)) sitesOf(x, [...path, k], out);
  } else out.push({ path, kind: typeof v === 'number' ? 'number' : 'other' });
  return out;
}

const pathText = (path: readonly Key[]): string =>
  path.map((k, i) => (typeof k === 'number' ? `[${k}]` : i === 0 ? k : `.${k}`)).join('');

function getAt(root: Json, path: readonly Key[]): Json {
  let v: Json = root;
  for (const k of path) v = (v as Record<Key, Json>)[k] as Json;
  return v;
}

function setAt(root: Json, path: readonly Key[], value: Json): void {
  const parent = getAt(root, path.slice(0, -1)) as Record<Key, Json>;
  Object.defineProperty(parent, path[path.length - 1] as Key, { value, enumerable: true, writable: true, configurable: true });
}

const typedOf = (v: { $typed: string; base64: string }): Float64Array | Float32Array => {
  const bytes = Buffer.from(v.base64, 'base64');
  const copy = new Uint8Array(bytes).buffer;
  return v.$typed === 'Float64Array' ? new Float64Array(copy) : new Float32Array(copy);
};
const typedJson = (a: Float64Array | Float32Array): Json => ({
  $typed: a instanceof Float64Array ? 'Float64Array' : 'Float32Array',
  base64: Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64'),
});

/** The meaning of a typed or number site, for the mutations that must be refused. */
function meaningOf(path: readonly Key[]): 'count' | 'nonNegative' | 'rowShape' | 'config' | 'version' | 'any' {
  const names = path.filter((k): k is string => typeof k === 'string');
  const last = names[names.length - 1];
  if (names[0] === 'config') return 'config';
  if (names[0] === 'version') return 'version';
  if (last === 'vectors' || last === 'fired' || last === 'nonZero') return 'count';
  if (last === 'rowShape') return 'rowShape';
  if (last === 'sum' || (last === 'chunks' && (names[1] === 'absolute' || names[1] === 'mse'))) return 'nonNegative';
  return 'any';
}

/** Whether a number at a site of this meaning makes the state impossible. */
function impossible(meaning: ReturnType<typeof meaningOf>, v: number, before: number): boolean {
  switch (meaning) {
    case 'count':
      return !Number.isSafeInteger(v) || v < 0;
    case 'nonNegative':
      return v < 0;
    case 'rowShape':
      return !Number.isSafeInteger(v) || v <= 0 || v > 2 ** 31 - 1;
    case 'config':
    case 'version':
      return v !== before;
    default:
      return false;
  }
}

const DEEP = 'DEEP-NESTING-HERE';
const NUMBERS = [-1, -0.5, 0.5, 1.5, -0, 0, 1, 2, 3, 2 ** 31, 2 ** 40, 2 ** 53, 2 ** 53 + 2, 1e300, -1e300];
const TYPED_VALUES = [-1, -0, 0, 0.5, 1, NaN, Infinity, -Infinity, 2 ** 53, -1e-300, 1e300];
const EXTRA_KEYS = ['extra', '__proto__', 'constructor', 'prototype', '$number'];
const REPLACEMENTS: Json[] = [
  null,
  true,
  'x',
  {},
  [],
  { $number: 'NaN' },
  { $typed: 'Float32Array', base64: '' },
  { $typed: 'Float64Array', base64: 'AAAAAAAA8D8=' },
  { $typed: 'Int8Array', base64: '' },
];

interface Hostile {
  readonly text: string;
  /** Where the mutation is (a refusal may name any of these, or a field inside them). */
  readonly fields: readonly string[];
  /** The mutation can only give an impossible state. */
  readonly mustRefuse: boolean;
  readonly what: string;
}

/** A hostile text made from a valid encoded state: one mutation drawn with `pick`. */
function mutate(text: string, pick: (n: number) => number): Hostile {
  const root = JSON.parse(text) as Json;
  const sites = sitesOf(root);
  const choose = <T>(xs: readonly T[]): T => xs[pick(xs.length)] as T;
  const of = (kind: Site['kind']) => sites.filter((s) => s.kind === kind && s.path.length > 0);
  const kinds = ['extraKey', 'dropKey', 'number', 'typedValue', 'typedLength', 'typedName', 'base64', 'deep', 'replace', 'arrayLength'] as const;
  const kind = choose(kinds);
  const done = (site: readonly Key[], mustRefuse: boolean, what: string, replace?: (t: string) => string, siblings: readonly Key[][] = []): Hostile => {
    let out = JSON.stringify(root);
    if (replace) out = replace(out);
    const fields = [site, ...siblings].map(pathText);
    return { text: out, fields, mustRefuse, what: `${kind} at ${pathText(site) || 'the root'}: ${what}` };
  };
  switch (kind) {
    case 'extraKey': {
      const site = choose([...of('object'), ...of('typed'), { path: [], kind: 'object' as const }]);
      const key = choose(EXTRA_KEYS);
      const value = choose<Json>([0, { $typed: 'Float64Array', base64: '' }, {}]);
      const siblings = Object.keys(getAt(root, site.path) as object).map((k) => [...site.path, k]);
      setAt(root, [...site.path, key], value);
      // A marker key ($number) turns its object into an encoding: a refusal may name the other keys.
      return done([...site.path, key], true, `key ${key}`, undefined, siblings);
    }
    case 'dropKey': {
      const site = choose([...of('object'), ...of('typed'), { path: [], kind: 'object' as const }].filter((s) => Object.keys(getAt(root, s.path) as object).length > 0));
      const key = choose(Object.keys(getAt(root, site.path) as object));
      delete (getAt(root, site.path) as Record<string, Json>)[key];
      return done([...site.path, key], true, `without ${key}`);
    }
    case 'number': {
      const sites_ = of('number');
      if (sites_.length === 0) return done([], false, 'nothing');
      const site = choose(sites_);
      const before = getAt(root, site.path) as number;
      const v = choose([...NUMBERS, before + 0.5, -before, before + 1, before - 1]);
      setAt(root, site.path, v);
      return done(site.path, impossible(meaningOf(site.path), Object.is(v, -0) ? 0 : v, before), `${before} -> ${v}`);
    }
    case 'typedValue':
    case 'typedLength':
    case 'typedName':
    case 'base64': {
      const sites_ = of('typed');
      if (sites_.length === 0) return done([], false, 'nothing');
      const site = choose(sites_);
      const t = getAt(root, site.path) as { $typed: string; base64: string };
      const a = typedOf(t);
      const meaning = meaningOf(site.path);
      if (kind === 'typedValue') {
        if (a.length === 0) return done(site.path, false, 'empty');
        const i = pick(a.length);
        const v = choose(TYPED_VALUES);
        a[i] = v;
        setAt(root, site.path, typedJson(a));
        const stored = a[i] as number;
        return done(site.path, impossible(meaning, stored, NaN), `[${i}] = ${v}`);
      }
      if (kind === 'typedLength') {
        const delta = choose([-3, -2, -1, 1, 2, 3]);
        const n = Math.max(0, a.length + delta);
        const b = new (a.constructor as Float64ArrayConstructor)(n);
        b.set(a.subarray(0, Math.min(n, a.length)));
        setAt(root, site.path, typedJson(b));
        // Fixed-length fields (sums, counts) cannot change length; a chunk cannot be empty.
        const fixed = site.path.every((k) => k !== 'chunks');
        return done(site.path, fixed || n === 0, `length ${a.length} -> ${n}`);
      }
      if (kind === 'typedName') {
        t.$typed = t.$typed === 'Float64Array' ? 'Float32Array' : 'Float64Array';
        return done(site.path, true, `as ${t.$typed}`);
      }
      // A non-canonical base64 text: unused bits set before the padding.
      if (!t.base64.endsWith('=')) return done(site.path, false, 'no padding');
      const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
      const end = t.base64.replace(/=+$/, '');
      const last = alphabet.indexOf(end[end.length - 1] as string);
      t.base64 = end.slice(0, -1) + (alphabet[last ^ 1] as string) + t.base64.slice(end.length);
      return done([...site.path, 'base64'], true, 'non-canonical base64');
    }
    case 'deep': {
      const site = choose(sites.filter((s) => s.path.length > 0));
      const depth = choose([33, 100, 10_000]);
      const open = choose(['[', '{"a":']);
      const close = open === '[' ? ']' : '}';
      setAt(root, site.path, DEEP);
      return done(site.path, true, `${depth} deep`, (t) => t.replace(`"${DEEP}"`, open.repeat(depth) + '0' + close.repeat(depth)));
    }
    case 'replace': {
      const site = choose(sites.filter((s) => s.path.length > 0));
      setAt(root, site.path, choose(REPLACEMENTS));
      return done(site.path, false, `replaced by ${JSON.stringify(getAt(root, site.path))}`);
    }
    case 'arrayLength': {
      const sites_ = of('array');
      if (sites_.length === 0) return done([], false, 'nothing');
      const site = choose(sites_);
      const a = getAt(root, site.path) as Json[];
      if (a.length > 0 && pick(2) === 0) a.splice(pick(a.length), 1);
      else a.push(a.length > 0 ? (structuredClone(a[pick(a.length)]) as Json) : 1);
      return done(site.path, false, `length -> ${a.length}`);
    }
  }
}

/** The path's first two steps (`parts.firedCount`), the part or top-level field a refusal must be about. */
const head = (field: string): string => (field.match(/^[^.[]+(?:\.[^.[]+|\[[^\]]+\])?/) ?? [''])[0];

describe('hostile state text is refused, or accepted and then computes and re-encodes to the same text', () => {
  const RUNS_PER_CASE = 150;

  /** `fn()` either throws a state error naming a field under `h.field`'s part, or returns. */
  function refusal(fn: () => unknown, h: Hostile): (StateDecodeError | StateMergeError) | undefined {
    try {
      fn();
      return undefined;
    } catch (error) {
      if (!(error instanceof StateDecodeError) && !(error instanceof StateMergeError)) {
        throw new Error(`${h.what}: expected StateDecodeError or StateMergeError, got ${String(error)}`);
      }
      const field = error.field;
      expect(field, `${h.what}: ${error.message} names no field`).toBeTypeOf('string');
      expect(error.message, h.what).toContain(field as string);
      const a = head(field as string);
      const related = h.fields.some((f) => a.startsWith(head(f)) || head(f).startsWith(a));
      expect(related, `${h.what}: the error names ${String(field)} (${error.message})`).toBe(true);
      return error;
    }
  }

  it.each(CASES.map((c) => [c.name, c] as const))('%s', (_name, c) => {
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(stateArb(c), fc.array(fc.nat(), { minLength: 8, maxLength: 8 }), fc.integer({ min: 1, max: 3 }), (s, draws, seed) => {
        let k = 0;
        const h = mutate(encodeState(s), (n) => (draws[k++ % draws.length] as number) % n);
        const m = updatedMetric(c, seed);
        const before = m.encodeState();
        const count = m.updateCount;
        const value = resultData(m.compute());

        const load = refusal(() => m.loadState(h.text), h);
        if (load !== undefined) {
          refused++;
          expect(m.encodeState(), h.what).toBe(before);
          expect(m.updateCount).toBe(count);
          expectBitwiseEqual(resultData(m.compute()), value, `compute() after refusing ${h.what}`);
          // The same state merged is refused too, and changes nothing.
          expect(refusal(() => m.mergeState(h.text), h), h.what).toBeDefined();
          expect(m.encodeState(), h.what).toBe(before);
          return;
        }
        accepted++;
        expect(h.mustRefuse, `${h.what} was accepted`).toBe(false);
        expect(m.compute()).toBeInstanceOf(Tensor);
        expect(m.encodeState(), h.what).toBe(h.text);
        const again = c.metric();
        again.loadState(m.encodeState());
        expect(again.encodeState(), h.what).toBe(h.text);
        // Loaded as an object, the decoded state gives the same state.
        const fromObject = c.metric();
        fromObject.loadState(decodeState(h.text) as AnyState);
        expect(fromObject.encodeState(), h.what).toBe(h.text);
      }),
      { numRuns: RUNS_PER_CASE, seed: 10_6 + CASES.indexOf(c) },
    );
    // The generator reaches both outcomes (a property that only ever refuses would prove little).
    expect(refused).toBeGreaterThan(RUNS_PER_CASE / 4);
    expect(accepted).toBeGreaterThan(0);
  });
});

describe("issue 10's hostile states, one by one", () => {
  const l1Text = (): string => {
    const m = new L1AbsoluteLoss();
    m.update({ learnedActivations: tensor([[1, 2]]) });
    return m.encodeState();
  };
  const f64 = (...values: number[]): string => Buffer.from(Float64Array.from(values).buffer).toString('base64');

  it.each([
    [
      'a __proto__ key under parts',
      () => l1Text().replace('"parts":{', `"parts":{"__proto__":{"absolute":{"sum":{"$typed":"Float64Array","base64":"${f64(3)}"},"vectors":1}},`),
      StateDecodeError,
      'parts.__proto__',
    ],
    ['a constructor key in a part', () => l1Text().replace('"vectors":1', '"vectors":1,"constructor":{}'), StateDecodeError, 'parts.absolute.constructor'],
    ['an unknown part', () => l1Text().replace('"parts":{', '"parts":{"extra":{"sum":0},'), StateMergeError, 'parts.extra'],
    ['an unknown field in a part', () => l1Text().replace('"vectors":1', '"vectors":1,"extra":2'), StateMergeError, 'parts.absolute.extra'],
    ['a missing field', () => l1Text().replace(',"vectors":1', ''), StateMergeError, 'parts.absolute.vectors'],
    ['an unknown top-level field', () => l1Text().replace('"version":1', '"version":1,"extra":{}'), StateDecodeError, 'extra'],
    ['a negative sum of absolute values', () => l1Text().replace(f64(3), f64(-3)), StateMergeError, 'parts.absolute.sum'],
    ['a non-zero sum over zero vectors', () => l1Text().replace('"vectors":1', '"vectors":0'), StateMergeError, 'parts.absolute.sum'],
    ['a fractional count', () => l1Text().replace('"vectors":1', '"vectors":1.5'), StateMergeError, 'parts.absolute.vectors'],
    ['a count past 2^53', () => l1Text().replace('"vectors":1', '"vectors":9007199254740993'), StateMergeError, 'parts.absolute.vectors'],
    ['a number out of the float64 range', () => l1Text().replace('"vectors":1', '"vectors":1e999'), StateDecodeError, 'parts.absolute.vectors'],
    ['JSON nested 10,000 deep', () => l1Text().replace('"vectors":1', `"vectors":${'['.repeat(10_000)}1${']'.repeat(10_000)}`), StateDecodeError, 'parts.absolute.vectors'],
    ['JSON nested 10,000 deep in the format', () => l1Text().replace('"format":"sae-metrics/state"', `"format":${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`), StateDecodeError, 'format'],
    ['non-canonical base64', () => l1Text().replace(f64(3), f64(3).replace(/A=$/, 'B=')), StateDecodeError, 'parts.absolute.sum.base64'],
  ] as const)('%s is refused, naming the field, and changes nothing', (_name, text, cls, field) => {
    const m = new L1AbsoluteLoss();
    m.update({ learnedActivations: tensor([[5, 5]]) });
    const before = m.encodeState();
    const e = expectThrows(() => m.loadState(text()), cls);
    // The field itself, or (nesting too deep) the path down to where the limit was passed.
    expect((e as StateMergeError).field).toMatch(new RegExp(`^${field.replace(/[.[\]$]/g, '\\$&')}(\\[0\\]|\\.a)*$`));
    expect(e.message).toContain(field);
    expect(m.encodeState()).toBe(before);
    expectThrows(() => m.mergeState(text()), cls);
    expect(m.encodeState()).toBe(before);
  });

  it.each([
    ['counts over zero vectors (L0)', new L0NormMetric(), { nonZeroCount: { nonZero: Float64Array.of(2), vectors: 0 } }, 'parts.nonZeroCount.nonZero'],
    ['fired counts over zero vectors', new NeuronFiredCountMetric({ numLearnedFeatures: 1 }), { firedCount: { fired: Float64Array.of(1), vectors: 0 } }, 'parts.firedCount.fired'],
    ['a Capacity rowShape of [2^40]', new CapacityMetric(), { activations: { chunks: [new Float32Array(0)], rowShape: [2 ** 40] } }, 'parts.activations.rowShape'],
    ['a Capacity rowShape with no rows', new CapacityMetric(), { activations: { chunks: [], rowShape: [3] } }, 'parts.activations.chunks'],
    ['an empty keepBatchDim chunk', new L1AbsoluteLoss({ keepBatchDim: true }), { absolute: { chunks: [new Float64Array(0)], componentAxis: false } }, 'parts.absolute.chunks[0]'],
    ['a negative per-vector squared error', new L2ReconstructionLoss({ keepBatchDim: true }), { mse: { chunks: [Float64Array.of(1), Float64Array.of(1, -2)], componentAxis: false } }, 'parts.mse.chunks[1]'],
    ['values without a component axis for two components', new L1AbsoluteLoss({ numComponents: 2, keepBatchDim: true }), { absolute: { chunks: [Float64Array.of(1, 2)], componentAxis: false } }, 'parts.absolute.componentAxis'],
  ] as const)('%s is refused, naming the field, as text and as an object', (_name, metric, parts, field) => {
    const m = asMetric(metric);
    const state = { metric: m.definition.metric, config: m.definition.config, parts };
    const before = m.encodeState();
    for (const s of [state, encodeState(state as never)]) {
      const e = expectThrows(() => m.loadState(s as never), StateMergeError);
      expect(e.message).toContain(field);
      expect((e as StateMergeError).field?.startsWith(field.replace(/\[\d+\]$/, ''))).toBe(true);
      expectThrows(() => m.mergeState(s as never), StateMergeError);
    }
    expect(m.encodeState()).toBe(before);
  });
});

describe('a state object from elsewhere is read once, as plain data', () => {
  const good = () => {
    const m = new NeuronFiredCountMetric({ numLearnedFeatures: 2 });
    m.update({ learnedActivations: tensor([[1, 0], [1, 1]]) });
    return m;
  };

  it('a getter is read once: what is checked is what is loaded (a getter that turns bad after the check changes nothing)', () => {
    const m = new NeuronFiredCountMetric({ numLearnedFeatures: 2 });
    let reads = 0;
    const valid = good().state().parts.firedCount;
    const part = {
      get fired() {
        reads++;
        return reads === 1 ? valid.fired : Float64Array.of(-5, 7);
      },
      vectors: 2,
    };
    m.loadState({ ...good().state(), parts: { firedCount: part } });
    expect(reads).toBe(1);
    expect([...m.compute().data]).toEqual([2, 1]);
    const again = new NeuronFiredCountMetric({ numLearnedFeatures: 2 });
    again.loadState(m.encodeState());
    expect(again.encodeState()).toBe(m.encodeState());
  });

  it('an own __proto__ key (as JSON.parse makes it) is refused by loadState and mergeState', () => {
    const m = good();
    const before = m.encodeState();
    const s = JSON.parse('{"__proto__": {"firedCount": 1}}') as Record<string, unknown>;
    const state = { ...good().state(), parts: s };
    for (const f of [() => m.loadState(state as never), () => m.mergeState(state as never)]) {
      const e = expectThrows(f, StateMergeError, /parts\.__proto__ is a prototype key/);
      expect((e as StateMergeError).field).toBe('parts.__proto__');
    }
    expect(m.encodeState()).toBe(before);
  });

  it('a part that is a class instance, or whose prototype was replaced, is refused', () => {
    const m = good();
    const valid = good().state().parts.firedCount;
    class Part {
      fired = valid.fired;
      vectors = 2;
    }
    expectThrows(() => m.loadState({ ...good().state(), parts: { firedCount: new Part() } } as never), StateMergeError, /parts\.firedCount must be plain data/);
    const swapped = Object.setPrototypeOf({ fired: valid.fired }, { vectors: 2 }) as object;
    expectThrows(() => m.loadState({ ...good().state(), parts: { firedCount: swapped } } as never), StateMergeError, /parts\.firedCount/);
  });

  it('a state nested 10,000 deep is refused with StateMergeError, not a stack overflow', () => {
    const m = good();
    let deep: unknown = 1;
    for (let i = 0; i < 10_000; i++) deep = [deep];
    const state = { ...good().state(), parts: { firedCount: { fired: deep, vectors: 2 } } };
    const e = expectThrows(() => m.loadState(state as never), StateMergeError, /is nested more than 32 levels deep/);
    expect((e as StateMergeError).field).toMatch(/^parts\.firedCount\.fired(\[0\])+$/);
    expectThrows(() => m.mergeState(state as never), StateMergeError, /is nested more than 32 levels deep/);
    const def = m.definition as unknown as AnyDef;
    expectThrows(() => def.merge(def.init(), state as never), StateMergeError, /parts\.firedCount\.fired must be a Float64Array/);
  });

  it('a loaded state does not share memory with the object it came from (a SharedArrayBuffer included)', () => {
    const m = new NeuronFiredCountMetric({ numLearnedFeatures: 2 });
    const fired = new Float64Array(new SharedArrayBuffer(16));
    fired.set([2, 1]);
    m.loadState({ ...good().state(), parts: { firedCount: { fired, vectors: 2 } } });
    fired.set([-1, 99]);
    expect([...m.compute().data]).toEqual([2, 1]);
  });
});

describe('typed-array subclasses (issue 10, item 9)', () => {
  class Sub32 extends Float32Array {}
  class Sub64 extends Float64Array {}

  it('CapacityMetric fed a Float32Array subclass encodes a state that decodes and round-trips', () => {
    const cap = new CapacityMetric();
    cap.update({ learnedActivations: { data: Sub32.from([1, 0, 1, 0, 1, 0]), shape: [2, 3] } });
    const text = cap.encodeState();
    expect(text).toContain('"$typed":"Float32Array"');
    const copy = new CapacityMetric();
    copy.loadState(text);
    expect(copy.encodeState()).toBe(text);
    expect([...copy.compute().data]).toEqual([1, 1]); // orthogonal vectors
  });

  it('a state holding subclass instances (functional API) encodes under the base name', () => {
    const def = capacity();
    const s = def.merge(def.init(), {
      metric: 'CapacityMetric',
      config: {},
      parts: { activations: { chunks: [Sub32.from([1, 2])], rowShape: [2] } },
    } as never);
    const decoded = decodeState(encodeState(s));
    expect((decoded.parts as { activations: { chunks: Float32Array[] } }).activations.chunks[0]).toEqual(Float32Array.of(1, 2));
    const l1 = l1AbsoluteLoss({ keepBatchDim: true });
    const t = l1.merge(l1.init(), {
      metric: 'L1AbsoluteLoss',
      config: { numComponents: 1, keepBatchDim: true },
      parts: { absolute: { chunks: [Sub64.from([3])], componentAxis: false } },
    } as never);
    expect(encodeState(t)).toContain('"$typed":"Float64Array"');
    expect(encodeState(checked(asDef(l1), decodeState(encodeState(t))))).toBe(encodeState(t));
  });
});

describe('SparseAutoencoderLoss: the L1 and MSE parts count the same vectors', () => {
  // Both parts are folded from the same batches: a state whose parts disagree computes NaN or a
  // value of no stream, and its next update throws. Values below by hand.
  const sums = (abs: number, mse: number) => ({
    absolute: { sum: Float64Array.of(abs ? 4 : 0), vectors: abs },
    mse: { sum: Float64Array.of(mse ? 1 : 0), vectors: mse },
  });
  const items = (abs: Float64Array[], absAxis: boolean | null, mse: Float64Array[], mseAxis: boolean | null) => ({
    absolute: { chunks: abs, componentAxis: absAxis },
    mse: { chunks: mse, componentAxis: mseAxis },
  });
  it.each([
    ['vector counts 2 and 0', {}, sums(2, 0)],
    ['vector counts 2 and 5', {}, sums(2, 5)],
    ['3 and 1 per-vector values', { keepBatchDim: true }, items([Float64Array.of(1, 2, 3)], false, [Float64Array.of(1)], false)],
    ['per-vector values with and without a component axis', { keepBatchDim: true }, items([Float64Array.of(1)], true, [Float64Array.of(1)], false)],
    ['per-vector L1 values and no MSE values', { keepBatchDim: true }, items([Float64Array.of(1)], false, [], null)],
  ] as const)('%s are refused, naming parts, as text and as an object', (_name, options, parts) => {
    const m = new SparseAutoencoderLoss(options);
    const batch = { learnedActivations: tensor([[1, -1]]), sourceActivations: tensor([[1, 1]]), decodedActivations: tensor([[0, 1]]) };
    m.update(batch);
    const before = m.encodeState();
    const state = { metric: m.definition.metric, config: m.definition.config, parts };
    for (const s of [state, encodeState(state as never)]) {
      const e = expectThrows(() => m.loadState(s as never), StateMergeError, /^SparseAutoencoderLoss: state\.parts /, /absolute/, /mse/);
      expect((e as StateMergeError).field).toBe('parts');
      expectThrows(() => m.mergeState(s as never), StateMergeError, /^SparseAutoencoderLoss: the incoming state\.parts /);
      expect(m.encodeState()).toBe(before);
    }
    // The metric still works: l1 2 per vector * 0.001 + mse 0.5.
    m.update(batch);
    expect([...m.compute().data]).toEqual('keepBatchDim' in options ? [0.502, 0.502] : [0.502]);
  });

  it('parts that agree are accepted and compute the value by hand', () => {
    const m = new SparseAutoencoderLoss({ keepBatchDim: true, l1Coefficient: 0.5 });
    m.loadState({ metric: m.definition.metric, config: m.definition.config, parts: items([Float64Array.of(2), Float64Array.of(4)], false, [Float64Array.of(1, 3)], false) } as never);
    expect([...m.compute().data]).toEqual([2, 5]);
  });
});

describe('an array in a state object is read once, and holes are refused', () => {
  const cap = (chunks: unknown) => ({ metric: 'CapacityMetric', config: {}, parts: { activations: { chunks, rowShape: [2] } } });

  it('a sparse array of length 2^32 - 1 is refused at its first hole, at once, and changes nothing', () => {
    const m = new CapacityMetric();
    m.update({ learnedActivations: tensor([[1, 0]]) });
    const before = m.encodeState();
    const chunks: unknown[] = [];
    chunks.length = 2 ** 32 - 1;
    chunks[0] = Float32Array.of(1, 2);
    for (const run of [() => m.loadState(cap(chunks) as never), () => m.mergeState(cap(chunks) as never)]) {
      const e = expectThrows(run, StateMergeError, /^CapacityMetric: (the incoming )?state\.parts\.activations\.chunks\[1\] is a hole in a sparse array/);
      expect((e as StateMergeError).field).toBe('parts.activations.chunks[1]');
    }
    expect(m.encodeState()).toBe(before);
  });

  it('a Proxy array whose length grows with every read is read once', () => {
    let reads = 0;
    const chunks = new Proxy([Float32Array.of(1, 0), Float32Array.of(0, 1)], {
      get: (target, key, receiver) => (key === 'length' ? 2 + reads++ : (Reflect.get(target, key, receiver) as unknown)),
    });
    const m = new CapacityMetric();
    m.loadState(cap(chunks) as never);
    expect(reads).toBe(1);
    expect([...m.compute().data]).toEqual([1, 1]); // two orthogonal vectors
  });
});
