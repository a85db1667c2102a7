/**
 * torchmetrics `Metric` behaviours, for every metric class: `forward`, the `compute` cache, the
 * compute-before-update warning, `reset`, `clone`, state snapshots and round trips, the
 * `keepBatchDim` setter, merge errors, and the arrival order of ordered states.
 *
 * Expected values come from the float64 reference implementations in `test/reference/` (fed the
 * same float32 values converted to float64) or are written out by hand. Floats are compared with a
 * relative tolerance of 1e-12 (see `expectTensorClose`); integer counts are exact.
 */
import { afterEach, beforeEach, describe, expect, it, vi, type MockInstance } from 'vitest';
import {
  CapacityMetric,
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  ReconstructionScoreMetric,
  SparseAutoencoderLoss,
  StateMergeError,
} from '../../src/index.js';
import type { Batch, Metric, Tensor } from '../../src/index.js';
import {
  type RefArray,
  refCapacityMetric,
  refFeatureDensity,
  refL0Norm,
  refL1AbsoluteLoss,
  refL2ReconstructionLoss,
  refNeuronActivity,
  refNeuronFiredCount,
  refReconstructionScore,
  refSparseAutoencoderLoss,
} from '../reference/index.js';
import { C, F, learned, lossBatch, reconstruction, rowsOf, saeBatch } from '../support/batches.js';
import { ref, thrown } from '../support/compare.js';

// ---------------------------------------------------------------------------------------------
// Helpers

/** Relative tolerance for float64 results against the float64 reference. */
const REL = 1e-12;

function expectTensorClose(actual: Tensor, expected: RefArray, rel = REL): void {
  expect(actual.shape).toEqual(expected.shape);
  expect(actual.data.length).toBe(expected.data.length);
  expected.data.forEach((e, i) => {
    const a = actual.data[i] as number;
    if (Number.isNaN(e)) expect(a, `element ${i}: expected NaN`).toBeNaN();
    else expect(Math.abs(a - e), `element ${i}: got ${a}, expected ${e}`).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(e)));
  });
}

/** Same dtype, shape and bits (NaN equals NaN, 0 differs from -0). */
function expectTensorSame(actual: Tensor, expected: Tensor): void {
  expect(actual.dtype).toBe(expected.dtype);
  expect(actual.shape).toEqual(expected.shape);
  expect(Array.from(actual.data)).toEqual(Array.from(expected.data));
}

/** Every typed array inside a (state) value. */
function typedArrays(value: unknown, out: (Float32Array | Float64Array)[] = []): (Float32Array | Float64Array)[] {
  if (value instanceof Float32Array || value instanceof Float64Array) out.push(value);
  else if (Array.isArray(value)) for (const v of value) typedArrays(v, out);
  else if (typeof value === 'object' && value !== null) for (const v of Object.values(value)) typedArrays(v, out);
  return out;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type TensorMetric = Metric<any, Tensor>;

const l1Ref = (keepBatchDim: boolean, numComponents?: number) => (bs: Batch[]) =>
  refL1AbsoluteLoss(
    bs.map((b) => ref(b.learnedActivations)),
    numComponents === undefined ? { keepBatchDim } : { keepBatchDim, numComponents },
  );
const l2Ref = (keepBatchDim: boolean) => (bs: Batch[]) =>
  refL2ReconstructionLoss(
    bs.map((b) => ({ decoded: ref(b.decodedActivations), source: ref(b.sourceActivations) })),
    { keepBatchDim },
  );
const saeRef = (keepBatchDim: boolean, l1Coefficient: number) => (bs: Batch[]) =>
  refSparseAutoencoderLoss(
    bs.map((b) => ({ learned: ref(b.learnedActivations), decoded: ref(b.decodedActivations), source: ref(b.sourceActivations) })),
    { keepBatchDim, l1Coefficient },
  );

interface Case {
  readonly name: string;
  readonly dtype: 'float64' | 'int64';
  make(): TensorMetric;
  /** The same class with another configuration (none for CapacityMetric, which has no options). */
  readonly other?: () => TensorMetric;
  batch(seed: number): Batch;
  /** What compute() returns after `update` with each batch in order. */
  expected(batches: Batch[]): RefArray;
  /** What compute() returns before any update (by hand). */
  readonly empty: RefArray;
  /** Whether the state keeps values in arrival order (merges by concatenation). */
  readonly ordered: boolean;
}

const NaN2: RefArray = { shape: [C], data: [NaN, NaN] };
const NaN0: RefArray = { shape: [], data: [NaN] };
const EMPTY: RefArray = { shape: [0], data: [] };

const cases: Case[] = [
  {
    name: 'L1AbsoluteLoss',
    dtype: 'float64',
    make: () => new L1AbsoluteLoss({ numComponents: C }),
    other: () => new L1AbsoluteLoss({ numComponents: 3 }),
    batch: (s) => learned(s, true),
    expected: l1Ref(false, C),
    empty: NaN2, // zeros(2) / 0
    ordered: false,
  },
  {
    name: 'L1AbsoluteLoss',
    dtype: 'float64',
    make: () => new L1AbsoluteLoss({ numComponents: C, keepBatchDim: true }),
    other: () => new L1AbsoluteLoss({ numComponents: C }),
    batch: (s) => learned(s, true),
    expected: l1Ref(true),
    empty: EMPTY,
    ordered: true,
  },
  {
    name: 'L2ReconstructionLoss',
    dtype: 'float64',
    make: () => new L2ReconstructionLoss(),
    other: () => new L2ReconstructionLoss({ keepBatchDim: true }),
    batch: (s) => reconstruction(s, false),
    expected: l2Ref(false),
    empty: NaN0, // zeros(1) / 0, squeezed
    ordered: false,
  },
  {
    name: 'L2ReconstructionLoss',
    dtype: 'float64',
    make: () => new L2ReconstructionLoss({ keepBatchDim: true }),
    other: () => new L2ReconstructionLoss({ keepBatchDim: true, numComponents: C }),
    batch: (s) => reconstruction(s, false),
    expected: l2Ref(true),
    empty: EMPTY,
    ordered: true,
  },
  {
    name: 'SparseAutoencoderLoss',
    dtype: 'float64',
    make: () => new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: 0.25 }),
    other: () => new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: 0.5 }),
    batch: (s) => saeBatch(s, true),
    expected: saeRef(false, 0.25),
    empty: NaN2,
    ordered: false,
  },
  {
    name: 'SparseAutoencoderLoss',
    dtype: 'float64',
    make: () => new SparseAutoencoderLoss({ keepBatchDim: true, l1Coefficient: 0.25 }),
    other: () => new SparseAutoencoderLoss({ keepBatchDim: false, l1Coefficient: 0.25 }),
    batch: (s) => saeBatch(s, false),
    expected: saeRef(true, 0.25),
    empty: EMPTY,
    ordered: true,
  },
  {
    name: 'L0NormMetric',
    dtype: 'float64',
    make: () => new L0NormMetric(),
    other: () => new L0NormMetric({ numComponents: C }),
    batch: (s) => learned(s, false),
    expected: (bs) => refL0Norm(bs.map((b) => ref(b.learnedActivations))),
    empty: NaN0, // 0 / 0
    ordered: false,
  },
  {
    name: 'NeuronActivityMetric',
    dtype: 'int64',
    make: () => new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: C, thresholdIsDeadPortionFires: 0.3 }),
    other: () => new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: C, thresholdIsDeadPortionFires: 0.5 }),
    batch: (s) => learned(s, true),
    expected: (bs) =>
      refNeuronActivity(
        bs.map((b) => ref(b.learnedActivations)),
        { numLearnedFeatures: F, numComponents: C, thresholdIsDeadPortionFires: 0.3 },
      ),
    empty: { shape: [C], data: [F, F] }, // nothing fired: every neuron is dead
    ordered: false,
  },
  {
    name: 'NeuronFiredCountMetric',
    dtype: 'int64',
    make: () => new NeuronFiredCountMetric({ numLearnedFeatures: F }),
    other: () => new NeuronFiredCountMetric({ numLearnedFeatures: F + 1 }),
    batch: (s) => learned(s, false),
    expected: (bs) => refNeuronFiredCount(bs.map((b) => ref(b.learnedActivations))),
    empty: { shape: [F], data: [0, 0, 0, 0] },
    ordered: false,
  },
  {
    name: 'FeatureDensityMetric',
    dtype: 'float64',
    make: () => new FeatureDensityMetric({ numLearnedFeatures: F, numComponents: C }),
    other: () => new FeatureDensityMetric({ numLearnedFeatures: F }),
    batch: (s) => learned(s, true),
    expected: (bs) => refFeatureDensity(bs.map((b) => ref(b.learnedActivations))),
    empty: { shape: [C, F], data: new Array<number>(C * F).fill(NaN) }, // 0 / 0
    ordered: false,
  },
  {
    name: 'CapacityMetric',
    dtype: 'float64',
    make: () => new CapacityMetric(),
    batch: (s) => learned(s, true),
    expected: (bs) => refCapacityMetric(bs.map((b) => ref(b.learnedActivations))),
    empty: EMPTY,
    ordered: true,
  },
  {
    name: 'ReconstructionScoreMetric',
    dtype: 'float64',
    make: () => new ReconstructionScoreMetric({ numComponents: C }),
    other: () => new ReconstructionScoreMetric({ numComponents: 3 }),
    batch: lossBatch,
    expected: (bs) =>
      refReconstructionScore(
        bs.map((b) => ({
          sourceModelLoss: ref(b.sourceModelLoss),
          sourceModelLossWithReconstruction: ref(b.sourceModelLossWithReconstruction),
          sourceModelLossWithZeroAblation: ref(b.sourceModelLossWithZeroAblation),
          componentIdx: b.componentIdx as number,
        })),
        { numComponents: C },
      ),
    empty: NaN2, // (0 - 0) / (0 - 0)
    ordered: false,
  },
];

const label = (c: Case): string => `${c.name}(${JSON.stringify(c.make().definition.config)})`;
const named = cases.map((c) => [label(c), c] as const);

let warn: MockInstance<typeof process.emitWarning>;
beforeEach(() => {
  // Silences and records the compute-before-update warning.
  warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
});

it('covers all nine metric classes', () => {
  expect(new Set(cases.map((c) => c.name)).size).toBe(9);
  for (const c of cases) expect(c.make().constructor.name).toBe(c.name);
});

// ---------------------------------------------------------------------------------------------

describe.each(named)('%s', (_, c) => {
  const [b1, b2, b3, b4] = [1, 2, 3, 4].map((s) => c.batch(s)) as [Batch, Batch, Batch, Batch];

  it('forward returns the value of the batch alone and folds the batch in', () => {
    const m = c.make();
    expect(m.updateCount).toBe(0);
    const v1 = m.forward(b1);
    expect(v1.dtype).toBe(c.dtype);
    expectTensorClose(v1, c.expected([b1]));
    expect(m.updateCount).toBe(1);
    const v2 = m.forward(b2);
    expectTensorClose(v2, c.expected([b2]));
    expect(m.updateCount).toBe(2);
    const acc = m.compute();
    expectTensorClose(acc, c.expected([b1, b2]));

    const fresh = c.make();
    fresh.update(b1);
    expect(fresh.updateCount).toBe(1);
    fresh.update(b2);
    expect(fresh.updateCount).toBe(2);
    expectTensorSame(acc, fresh.compute());
    expect(m.state()).toEqual(fresh.state());
  });

  it('compute() is cached until the state next changes', () => {
    const m = c.make();
    m.update(b1);
    const snapshot = m.state();
    const values: Tensor[] = [];
    const check = (expected: RefArray): void => {
      const v = m.compute();
      for (const old of values) expect(v).not.toBe(old);
      expect(m.compute()).toBe(v);
      expect(m.compute()).toBe(v);
      expectTensorClose(v, expected);
      values.push(v);
    };
    check(c.expected([b1]));
    m.update(b2);
    check(c.expected([b1, b2]));
    m.forward(b3);
    check(c.expected([b1, b2, b3]));
    const other = c.make();
    other.update(b4);
    m.mergeState(other);
    check(c.expected([b1, b2, b3, b4]));
    m.loadState(snapshot);
    check(c.expected([b1]));
    m.reset();
    check(c.empty);
  });

  it('compute() before any update warns once and still returns a value', () => {
    const m = c.make();
    const v = m.compute();
    expect(warn).toHaveBeenCalledTimes(1);
    const [message, options] = warn.mock.calls[0] as unknown as [string | Error, unknown];
    expect(String(message)).toContain(c.name);
    expect(String(message)).toContain('compute');
    expect(options).toMatchObject({ code: 'SAE_METRICS_COMPUTE_BEFORE_UPDATE' });
    expect(v.dtype).toBe(c.dtype);
    expectTensorClose(v, c.empty);
    expectTensorClose(m.compute(), c.empty);
    expect(warn).toHaveBeenCalledTimes(1);

    const updated = c.make();
    updated.update(b1);
    updated.compute();
    expect(warn).toHaveBeenCalledTimes(1);
  });

  it('reset() returns to the identity state and updateCount 0', () => {
    const m = c.make();
    m.update(b1);
    m.forward(b2);
    expect(m.updateCount).toBe(2);
    m.reset();
    expect(m.updateCount).toBe(0);
    expect(m.state()).toEqual(m.definition.init());
    expect(m.state()).toEqual(c.make().state());
    expectTensorClose(m.compute(), c.empty);
    m.update(b3);
    expect(m.updateCount).toBe(1);
    expectTensorClose(m.compute(), c.expected([b3]));
  });

  it('clone() is independent and starts with the same value and updateCount', () => {
    const m = c.make();
    m.update(b1);
    m.update(b2);
    const copy = m.clone();
    expect(copy).not.toBe(m);
    expect(copy.constructor).toBe(m.constructor);
    expect(copy.definition.config).toEqual(m.definition.config);
    expect(copy.updateCount).toBe(2);
    expect(copy.state()).toEqual(m.state());
    expectTensorSame(copy.compute(), m.compute());

    copy.update(b3);
    expect(copy.updateCount).toBe(3);
    expect(m.updateCount).toBe(2);
    expectTensorClose(m.compute(), c.expected([b1, b2]));
    expectTensorClose(copy.compute(), c.expected([b1, b2, b3]));

    m.update(b4);
    expectTensorClose(m.compute(), c.expected([b1, b2, b4]));
    expectTensorClose(copy.compute(), c.expected([b1, b2, b3]));
    m.reset();
    expect(copy.updateCount).toBe(3);
    expectTensorClose(copy.compute(), c.expected([b1, b2, b3]));
  });

  it('state() is a snapshot', () => {
    const m = c.make();
    m.update(b1);
    const s1 = m.state();
    const s1Copy = m.state();
    expect(s1).not.toBe(s1Copy);
    m.update(b2);
    expect(s1).toEqual(s1Copy);
    expectTensorClose(m.definition.compute(s1), c.expected([b1]));

    // Mutating the snapshot's typed arrays does not reach the metric.
    const s2 = m.state();
    const s2Copy = m.state();
    const arrays = typedArrays(s2);
    expect(arrays.length).toBeGreaterThan(0);
    for (const a of arrays) a.fill(12345);
    expect(m.state()).toEqual(s2Copy);
    m.update(b3);
    expectTensorClose(m.compute(), c.expected([b1, b2, b3]));
  });

  it('loadState(state()) and loadState(encodeState()) round-trip', () => {
    const m = c.make();
    m.update(b1);
    m.update(b2);

    const viaState = c.make();
    viaState.loadState(m.state());
    expect(viaState.state()).toEqual(m.state());
    expectTensorSame(viaState.compute(), m.compute());
    expect(viaState.updateCount).toBe(0); // the update count is kept

    const viaText = c.make();
    viaText.update(b3);
    viaText.loadState(m.encodeState());
    expect(viaText.updateCount).toBe(1);
    expect(viaText.state()).toEqual(m.state());
    expect(viaText.encodeState()).toBe(m.encodeState());
    expectTensorSame(viaText.compute(), m.compute());

    // Both keep working as m would.
    m.update(b3);
    viaState.update(b3);
    viaText.update(b3);
    expectTensorSame(viaState.compute(), m.compute());
    expectTensorSame(viaText.compute(), m.compute());
    expectTensorClose(m.compute(), c.expected([b1, b2, b3]));
  });

  it('mergeState with another class or configuration throws StateMergeError and changes nothing', () => {
    const m = c.make();
    m.update(b1);
    const before = m.state();
    const value = m.compute();
    const foreigners: TensorMetric[] = [c.name === 'L0NormMetric' ? new L1AbsoluteLoss() : new L0NormMetric()];
    if (c.other !== undefined) foreigners.push(c.other());
    for (const f of foreigners) {
      expect(() => m.mergeState(f)).toThrow(StateMergeError);
      expect(() => m.mergeState(f.state())).toThrow(StateMergeError);
      expect(() => m.loadState(f.state())).toThrow(StateMergeError);
      expect(() => m.loadState(f.encodeState())).toThrow(StateMergeError);
      const e = thrown(() => m.mergeState(f));
      expect(e.message.startsWith(`${c.name}: `)).toBe(true);
    }
    expect(m.state()).toEqual(before);
    expect(m.updateCount).toBe(1);
    expectTensorSame(m.compute(), value);
    m.update(b2);
    expectTensorClose(m.compute(), c.expected([b1, b2]));
  });

  it('mergeState with the same class and configuration adds the update counts', () => {
    const a = c.make();
    a.update(b1);
    const b = c.make();
    b.update(b2);
    b.update(b3);
    a.mergeState(b);
    expect(a.updateCount).toBe(3);
    expect(b.updateCount).toBe(2);
    expectTensorClose(a.compute(), c.expected([b1, b2, b3]));
    expectTensorClose(b.compute(), c.expected([b2, b3]));
    a.mergeState(b.state()); // a bare state carries no update count
    expect(a.updateCount).toBe(3);
    expectTensorClose(a.compute(), c.expected([b1, b2, b3, b2, b3]));
  });
});

// ---------------------------------------------------------------------------------------------

describe.each(named.filter(([, c]) => c.ordered))('%s keeps values in arrival order', (_, c) => {
  const [b1, b2, b3] = [11, 12, 13].map((s) => c.batch(s)) as [Batch, Batch, Batch];

  it('concatenates batches in arrival order', () => {
    const m = c.make();
    m.update(b1);
    m.update(b2);
    m.update(b3);
    expectTensorClose(m.compute(), c.expected([b1, b2, b3]));
    const reversed = c.make();
    reversed.update(b3);
    reversed.update(b2);
    reversed.update(b1);
    expectTensorClose(reversed.compute(), c.expected([b3, b2, b1]));
    // The order is visible: the two results differ.
    expect(Array.from(reversed.compute().data)).not.toEqual(Array.from(m.compute().data));
  });

  it('mergeState concatenates receiver first, then incoming', () => {
    const a = c.make();
    a.update(b1);
    a.update(b2);
    const b = c.make();
    b.update(b3);
    const aCopy = a.clone();
    const bCopy = b.clone();

    a.mergeState(b);
    expectTensorClose(a.compute(), c.expected([b1, b2, b3]));
    b.mergeState(aCopy);
    expectTensorClose(b.compute(), c.expected([b3, b1, b2]));
    bCopy.mergeState(aCopy.state());
    expectTensorClose(bCopy.compute(), c.expected([b3, b1, b2]));
    expect(bCopy.updateCount).toBe(1);
  });
});

// ---------------------------------------------------------------------------------------------

interface LossCase {
  readonly name: string;
  make(keepBatchDim: boolean): (L1AbsoluteLoss | L2ReconstructionLoss | SparseAutoencoderLoss) & TensorMetric;
  batch(seed: number): Batch;
  expected(keepBatchDim: boolean): (bs: Batch[]) => RefArray;
}

const lossCases: LossCase[] = [
  {
    name: 'L1AbsoluteLoss',
    make: (keepBatchDim) => new L1AbsoluteLoss({ numComponents: C, keepBatchDim }),
    batch: (s) => learned(s, true),
    expected: (k) => l1Ref(k),
  },
  {
    name: 'L2ReconstructionLoss',
    make: (keepBatchDim) => new L2ReconstructionLoss({ keepBatchDim }),
    batch: (s) => reconstruction(s, false),
    expected: (k) => l2Ref(k),
  },
  {
    name: 'SparseAutoencoderLoss',
    make: (keepBatchDim) => new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: 0.25, keepBatchDim }),
    batch: (s) => saeBatch(s, true),
    expected: (k) => saeRef(k, 0.25),
  },
];

describe.each(lossCases.map((c) => [c.name, c] as const))('%s keepBatchDim setter', (_, c) => {
  const [b1, b2] = [21, 22].map((s) => c.batch(s)) as [Batch, Batch];

  it('resets the metric and switches mode', () => {
    const m = c.make(false);
    expect(m.keepBatchDim).toBe(false);
    m.update(b1);
    m.update(b2);
    expectTensorClose(m.compute(), c.expected(false)([b1, b2]));

    m.keepBatchDim = true;
    expect(m.keepBatchDim).toBe(true);
    expect(m.updateCount).toBe(0);
    expect(m.definition.config).toEqual(c.make(true).definition.config);
    expect(m.state()).toEqual(c.make(true).state());
    expectTensorClose(m.compute(), EMPTY);
    m.update(b1);
    m.update(b2);
    expectTensorClose(m.compute(), c.expected(true)([b1, b2]));
    expect(m.compute().shape[0]).toBe(rowsOf(21) + rowsOf(22));

    // A clone keeps the new mode; states merge only with the same mode.
    const copy = m.clone();
    expect(copy.keepBatchDim).toBe(true);
    expectTensorSame(copy.compute(), m.compute());
    expect(() => m.mergeState(c.make(false))).toThrow(StateMergeError);
    m.mergeState(c.make(true));

    m.keepBatchDim = false;
    expect(m.keepBatchDim).toBe(false);
    expect(m.updateCount).toBe(0);
    expect(m.state()).toEqual(c.make(false).state());
    m.update(b2);
    expectTensorClose(m.compute(), c.expected(false)([b2]));
    expect(copy.keepBatchDim).toBe(true);
  });

  it('keeps the other options', () => {
    const m = c.make(false);
    const before = m.definition.config;
    m.keepBatchDim = true;
    expect({ ...m.definition.config, keepBatchDim: false }).toEqual(before);
    expect(m.numComponents).toBe(before.numComponents);
    if (m instanceof SparseAutoencoderLoss) expect(m.l1Coefficient).toBe(0.25);
  });

  it('rejects a non-boolean and leaves the metric unchanged', () => {
    const m = c.make(false);
    m.update(b1);
    const before = m.state();
    const e = thrown(() => {
      m.keepBatchDim = 'yes' as unknown as boolean;
    });
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe(`${c.name}: options.keepBatchDim must be a boolean, got "yes"`);
    expect(m.keepBatchDim).toBe(false);
    expect(m.updateCount).toBe(1);
    expect(m.state()).toEqual(before);
  });
});
