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
    ['a non-integer count', (f: Float64Array) => f.fill(1.5), /parts\.firedCount fired must hold exact non-negative integer counts/],
    ['a negative count', (f: Float64Array) => f.fill(-1), /parts\.firedCount fired must hold exact non-negative integer counts/],
    ['a NaN count', (f: Float64Array) => f.fill(NaN), /parts\.firedCount fired must hold exact non-negative integer counts/],
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
    expectThrows(() => m.loadState(encodeState(wrongLength)), StateMergeError, /fired must have 3 elements, got 4/);
    const fractional = { ...s, parts: { firedCount: { fired: new Float64Array(3), vectors: 0.5 } } };
    expectThrows(() => m.loadState(encodeState(fractional)), StateMergeError, /vectors must be a non-negative integer, got 0\.5/);
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

  it('L1AbsoluteLoss: NaN and +-Infinity sums, and -0, survive', () => {
    const m = new L1AbsoluteLoss({ numComponents: 4 });
    m.loadState({
      metric: 'L1AbsoluteLoss',
      config: { numComponents: 4, keepBatchDim: false },
      parts: { absolute: { sum: Float64Array.of(NaN, Infinity, -Infinity, -0), vectors: 1099511627777 } },
    } as never);
    const text = m.encodeState();
    const copy = new L1AbsoluteLoss({ numComponents: 4 });
    copy.loadState(text);
    const parts = copy.state().parts.absolute as { sum: Float64Array; vectors: number };
    expect(Number.isNaN(parts.sum[0])).toBe(true);
    expect(parts.sum[1]).toBe(Infinity);
    expect(parts.sum[2]).toBe(-Infinity);
    expect(Object.is(parts.sum[3], -0)).toBe(true);
    expect(parts.vectors).toBe(MID);
    const r = copy.compute().data;
    expect(Number.isNaN(r[0])).toBe(true);
    expect([r[1], r[2]]).toEqual([Infinity, -Infinity]);
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
      parts: { absolute: { chunks: [Float64Array.of(1.5, NaN), Float64Array.of(-Infinity, 2 ** -1074, 7, 8)], componentAxis: true } },
    } as never);
    const lossCopy = new L1AbsoluteLoss({ numComponents: 2, keepBatchDim: true });
    lossCopy.loadState(loss.encodeState());
    expectBitwiseEqual(lossCopy.state(), loss.state(), 'keepBatchDim state');
    const r = lossCopy.compute();
    expect(r.shape).toEqual([3, 2]);
    expect(r.data[2]).toBe(-Infinity);
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
