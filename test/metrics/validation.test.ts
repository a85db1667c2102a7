/**
 * One test per validation rule, per metric where it applies.
 *
 * - Options are checked when a metric is created: `TypeError` (wrong kind of value) or
 *   `RangeError` (right kind, out of range), with a message naming the metric, the option and the
 *   value.
 * - Batches are checked before any state changes: `InvalidBatchError` (a `TypeError`) with its
 *   `metric` and `field`, and a message naming the metric, the field and the shapes. For every
 *   batch rule the metric is first given one good batch, and after the rejected `update`, the
 *   rejected `forward` and the rejected functional `update`, its state, update count and value are
 *   what they were; a good batch afterwards gives the same state as if the bad one never came.
 * - Merging or loading a state of another metric or configuration, or a malformed state, throws
 *   `StateMergeError` and leaves the receiver unchanged.
 * - The static helpers reject bad tensors with messages that name the helper.
 *
 * Expected messages are written by hand from the rules (not produced by running the code).
 */
import { describe, it, expect } from 'vitest';
import {
  tensor,
  Tensor,
  InvalidBatchError,
  StateMergeError,
  StateDecodeError,
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
  MetricCollection,
} from '../../src/index.js';
import type {
  AnyMetric,
  Batch,
  MetricDefinition,
  MetricState,
  ReconstructionScoreBatch,
  RowRange,
  SparseAutoencoderBatch,
  TensorLike,
} from '../../src/index.js';
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
  calculateAbsSum,
  calculateMse,
  calculateCapacities,
} from '../../src/functional/index.js';

// ---------------------------------------------------------------------------------------------
// Helpers

type Expected = string | RegExp;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type AnyDefinition = MetricDefinition<any, unknown>;
type ErrorClass = typeof TypeError | typeof RangeError;

/** Escapes a literal for a RegExp. */
function esc(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Runs `fn`, which must throw, and returns what it threw. */
function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (error) {
    return error;
  }
  return expect.fail('expected the call to throw, but it returned normally');
}

function expectMessage(actual: string, expected: Expected): void {
  if (typeof expected === 'string') expect(actual).toBe(expected);
  else expect(actual).toMatch(expected);
}

/** Asserts `fn` throws an {@link InvalidBatchError} with this metric, field and message. */
function expectBatchError(fn: () => unknown, metric: string, field: string, message: Expected): void {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(InvalidBatchError);
  expect(e).toBeInstanceOf(TypeError);
  const err = e as InvalidBatchError;
  expect(err.name).toBe('InvalidBatchError');
  expect(err.metric).toBe(metric);
  expect(err.field).toBe(field);
  expectMessage(err.message, message);
}

/** Asserts `fn` throws exactly `cls` (a TypeError that is not a RangeError, or a RangeError) with `message`. */
function expectOptionError(fn: () => unknown, cls: ErrorClass, message: Expected): void {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(cls);
  expect((e as Error).constructor).toBe(cls);
  expectMessage((e as Error).message, message);
}

/** Asserts `fn` throws a {@link StateMergeError} of `metric` with `message`. */
function expectMergeError(fn: () => unknown, metric: string, message: Expected): void {
  const e = thrown(fn);
  expect(e).toBeInstanceOf(StateMergeError);
  expect(e).toBeInstanceOf(TypeError);
  expect((e as StateMergeError).name).toBe('StateMergeError');
  expect((e as StateMergeError).metric).toBe(metric);
  expectMessage((e as Error).message, message);
}

/** A tensor (or a record of them) as plain data, for deep equality. */
function plain(v: unknown): unknown {
  if (v instanceof Tensor) return { shape: [...v.shape], dtype: v.dtype, data: Array.from(v.data as ArrayLike<number>) };
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, plain(x)]));
  return v;
}

interface Snapshot {
  readonly state: unknown;
  readonly updateCount: number;
  readonly value: unknown;
}

function snapshot(m: AnyMetric): Snapshot {
  return { state: m.state(), updateCount: m.updateCount, value: plain(m.compute()) };
}

/** The metric's state, update count and value (cached and recomputed) are those of `before`. */
function expectUnchanged(m: AnyMetric, before: Snapshot): void {
  expect(m.state()).toStrictEqual(before.state);
  expect(m.updateCount).toBe(before.updateCount);
  expect(plain(m.compute())).toStrictEqual(before.value);
  expect(plain((m.definition as AnyDefinition).compute(m.state()))).toStrictEqual(before.value);
}

/** A float32 tensor of zeros of `shape`. */
function zeros(shape: number[]): Tensor<'float32'> {
  return tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
}

/** A tensor-like object that bypasses `tensor()`'s checks (as data arriving from elsewhere could). */
function like(data: unknown, shape: unknown): TensorLike {
  return { data, shape } as unknown as TensorLike;
}

function shapeOf(b: Batch, field: string): number[] {
  return [...(b[field] as TensorLike).shape];
}

function sizeOf(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function fmt(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function without(b: Batch, field: string): Record<string, unknown> {
  const o: Record<string, unknown> = { ...b };
  delete o[field];
  return o;
}

function withField(b: Batch, field: string, value: unknown): Record<string, unknown> {
  return { ...b, [field]: value };
}

/** `[title, case]` rows for `it.each(...)('%s', ...)`, so titles are printed in full. */
function named<T>(cases: readonly T[], key: keyof T): [string, T][] {
  return cases.map((c) => [String(c[key]), c]);
}

// ---------------------------------------------------------------------------------------------
// Good batches (each setup gets one good batch first, and a second one after the rejection)

/** Rank 2: learned `[2, 3]`, source and decoded `[2, 4]`. */
const B2: SparseAutoencoderBatch = {
  learnedActivations: tensor([
    [1, 0, -2],
    [0, 3, 0],
  ]),
  sourceActivations: tensor([
    [1, 2, 3, 4],
    [0, 1, 0, 1],
  ]),
  decodedActivations: tensor([
    [1, 1, 3, 3],
    [0, 0, 0, 2],
  ]),
};
const B2_NEXT: SparseAutoencoderBatch = {
  learnedActivations: tensor([[0.5, 0, 0]]),
  sourceActivations: tensor([[1, 1, 1, 1]]),
  decodedActivations: tensor([[0, 1, 0, 1]]),
};
/** Rank 3 with one component: learned `[2, 1, 3]`, source and decoded `[2, 1, 4]`. */
const B1C: SparseAutoencoderBatch = {
  learnedActivations: tensor([[[1, 0, -2]], [[0, 3, 0]]]),
  sourceActivations: tensor([[[1, 2, 3, 4]], [[0, 1, 0, 1]]]),
  decodedActivations: tensor([[[1, 1, 3, 3]], [[0, 0, 0, 2]]]),
};
const B1C_NEXT: SparseAutoencoderBatch = {
  learnedActivations: tensor([[[0.5, 0, 0]]]),
  sourceActivations: tensor([[[1, 1, 1, 1]]]),
  decodedActivations: tensor([[[0, 1, 0, 1]]]),
};
/** Rank 3 with two components: learned `[2, 2, 3]`, source and decoded `[2, 2, 4]`. */
const B3: SparseAutoencoderBatch = {
  learnedActivations: tensor([
    [
      [1, 0, -2],
      [0, 0, 1],
    ],
    [
      [0, 3, 0],
      [2, 2, 0],
    ],
  ]),
  sourceActivations: tensor([
    [
      [1, 2, 3, 4],
      [1, 1, 1, 1],
    ],
    [
      [0, 1, 0, 1],
      [2, 2, 2, 2],
    ],
  ]),
  decodedActivations: tensor([
    [
      [1, 1, 3, 3],
      [0, 1, 0, 1],
    ],
    [
      [0, 0, 0, 2],
      [2, 2, 2, 0],
    ],
  ]),
};
const B3_NEXT: SparseAutoencoderBatch = {
  learnedActivations: tensor([
    [
      [0.5, 0, 0],
      [0, 0, 1],
    ],
  ]),
  sourceActivations: tensor([
    [
      [1, 1, 1, 1],
      [0, 0, 0, 0],
    ],
  ]),
  decodedActivations: tensor([
    [
      [0, 1, 0, 1],
      [1, 0, 0, 0],
    ],
  ]),
};
const RS: ReconstructionScoreBatch = {
  sourceModelLoss: tensor([2, 2, 2]),
  sourceModelLossWithReconstruction: tensor([3, 3, 3]),
  sourceModelLossWithZeroAblation: tensor([5, 5, 5]),
};
const RS_NEXT: ReconstructionScoreBatch = {
  sourceModelLoss: tensor([1]),
  sourceModelLossWithReconstruction: tensor([2]),
  sourceModelLossWithZeroAblation: tensor([4]),
};

const L = 'learnedActivations';
const S = 'sourceActivations';
const D = 'decodedActivations';
const LOSSES = ['sourceModelLoss', 'sourceModelLossWithReconstruction', 'sourceModelLossWithZeroAblation'] as const;
const ACT_WHAT = 'a Tensor of shape [batch, feature] or [batch, component, feature]';
const LOSS_WHAT = 'a float32 Tensor of losses, one per item';

// ---------------------------------------------------------------------------------------------
// Setups: a metric, its name, a good batch and a next good batch

interface Setup {
  readonly label: string;
  readonly metric: string;
  readonly make: () => AnyMetric;
  readonly good: Batch;
  readonly next: Batch;
}

function setup(label: string, metric: string, make: () => AnyMetric, good: Batch, next: Batch): Setup {
  return { label, metric, make, good, next };
}

const SETUP = {
  l1: setup('L1AbsoluteLoss()', 'L1AbsoluteLoss', () => new L1AbsoluteLoss(), B2, B2_NEXT),
  l1c2: setup('L1AbsoluteLoss({ numComponents: 2 })', 'L1AbsoluteLoss', () => new L1AbsoluteLoss({ numComponents: 2 }), B3, B3_NEXT),
  l1k: setup('L1AbsoluteLoss({ keepBatchDim }) after [b, f]', 'L1AbsoluteLoss', () => new L1AbsoluteLoss({ keepBatchDim: true }), B2, B2_NEXT),
  l1k1c: setup('L1AbsoluteLoss({ keepBatchDim }) after [b, 1, f]', 'L1AbsoluteLoss', () => new L1AbsoluteLoss({ keepBatchDim: true }), B1C, B1C_NEXT),
  l2: setup('L2ReconstructionLoss()', 'L2ReconstructionLoss', () => new L2ReconstructionLoss(), B2, B2_NEXT),
  l2c2: setup('L2ReconstructionLoss({ numComponents: 2 })', 'L2ReconstructionLoss', () => new L2ReconstructionLoss({ numComponents: 2 }), B3, B3_NEXT),
  l2k: setup('L2ReconstructionLoss({ keepBatchDim }) after [b, f]', 'L2ReconstructionLoss', () => new L2ReconstructionLoss({ keepBatchDim: true }), B2, B2_NEXT),
  l2k1c: setup('L2ReconstructionLoss({ keepBatchDim }) after [b, 1, f]', 'L2ReconstructionLoss', () => new L2ReconstructionLoss({ keepBatchDim: true }), B1C, B1C_NEXT),
  sae: setup('SparseAutoencoderLoss()', 'SparseAutoencoderLoss', () => new SparseAutoencoderLoss(), B2, B2_NEXT),
  saec2: setup('SparseAutoencoderLoss({ numComponents: 2 })', 'SparseAutoencoderLoss', () => new SparseAutoencoderLoss({ numComponents: 2, l1Coefficient: 0.5 }), B3, B3_NEXT),
  saek: setup('SparseAutoencoderLoss({ keepBatchDim }) after [b, f]', 'SparseAutoencoderLoss', () => new SparseAutoencoderLoss({ keepBatchDim: true }), B2, B2_NEXT),
  saek1c: setup('SparseAutoencoderLoss({ keepBatchDim }) after [b, 1, f]', 'SparseAutoencoderLoss', () => new SparseAutoencoderLoss({ keepBatchDim: true }), B1C, B1C_NEXT),
  l0: setup('L0NormMetric()', 'L0NormMetric', () => new L0NormMetric(), B2, B2_NEXT),
  l0c2: setup('L0NormMetric({ numComponents: 2 })', 'L0NormMetric', () => new L0NormMetric({ numComponents: 2 }), B3, B3_NEXT),
  na: setup('NeuronActivityMetric({ numLearnedFeatures: 3 })', 'NeuronActivityMetric', () => new NeuronActivityMetric({ numLearnedFeatures: 3 }), B2, B2_NEXT),
  nac2: setup(
    'NeuronActivityMetric({ numLearnedFeatures: 3, numComponents: 2, threshold 0.5 })',
    'NeuronActivityMetric',
    () => new NeuronActivityMetric({ numLearnedFeatures: 3, numComponents: 2, thresholdIsDeadPortionFires: 0.5 }),
    B3,
    B3_NEXT,
  ),
  nfc: setup('NeuronFiredCountMetric({ numLearnedFeatures: 3 })', 'NeuronFiredCountMetric', () => new NeuronFiredCountMetric({ numLearnedFeatures: 3 }), B2, B2_NEXT),
  nfcc2: setup('NeuronFiredCountMetric({ numLearnedFeatures: 3, numComponents: 2 })', 'NeuronFiredCountMetric', () => new NeuronFiredCountMetric({ numLearnedFeatures: 3, numComponents: 2 }), B3, B3_NEXT),
  fd: setup('FeatureDensityMetric({ numLearnedFeatures: 3 })', 'FeatureDensityMetric', () => new FeatureDensityMetric({ numLearnedFeatures: 3 }), B2, B2_NEXT),
  fdc2: setup('FeatureDensityMetric({ numLearnedFeatures: 3, numComponents: 2 })', 'FeatureDensityMetric', () => new FeatureDensityMetric({ numLearnedFeatures: 3, numComponents: 2 }), B3, B3_NEXT),
  cap: setup('CapacityMetric() after [b, 3]', 'CapacityMetric', () => new CapacityMetric(), B2, B2_NEXT),
  cap3: setup('CapacityMetric() after [b, 2, 3]', 'CapacityMetric', () => new CapacityMetric(), B3, B3_NEXT),
  rs: setup('ReconstructionScoreMetric()', 'ReconstructionScoreMetric', () => new ReconstructionScoreMetric(), RS, RS_NEXT),
  rsc2: setup('ReconstructionScoreMetric({ numComponents: 2 })', 'ReconstructionScoreMetric', () => new ReconstructionScoreMetric({ numComponents: 2 }), { ...RS, componentIdx: 1 }, { ...RS_NEXT, componentIdx: 0 }),
} as const;

// ---------------------------------------------------------------------------------------------
// Batch rules

interface BatchCase {
  readonly name: string;
  readonly setup: Setup;
  readonly bad: unknown;
  readonly field: string;
  readonly message: Expected;
}

function bc(s: Setup, rule: string, bad: unknown, field: string, message: Expected): BatchCase {
  return { name: `${s.label}: ${rule}`, setup: s, bad, field, message };
}

/** The batch itself is not a plain object of tensors. */
function batchObjectRules(s: Setup): BatchCase[] {
  const M = esc(s.metric);
  const notObject = (got: string): RegExp =>
    new RegExp(`^${M}: a batch must be a plain object of tensors( \\(e\\.g\\. \\{ \\w+ \\}\\))?, got ${got}$`);
  const aTensor = new RegExp(`^${M}: a batch must be a plain object of tensors, got a tensor; pass \\{ \\w+: t \\}`);
  return [
    bc(s, 'batch is null', null, 'batch', notObject('null')),
    bc(s, 'batch is undefined', undefined, 'batch', notObject('undefined')),
    bc(s, 'batch is a number', 5, 'batch', notObject('5')),
    bc(s, 'batch is a string', 'learnedActivations', 'batch', notObject('"learnedActivations"')),
    bc(s, 'batch is a function', () => B2, 'batch', notObject('a function')),
    bc(s, 'batch is an array', [B2.learnedActivations], 'batch', notObject('an array of length 1')),
    bc(s, 'batch is a bare Tensor', tensor([[1, 0, 1]]), 'batch', aTensor),
    bc(s, 'batch is a bare tensor-like object', like(new Float32Array(3), [1, 3]), 'batch', aTensor),
  ];
}

/** The field the metric reads is missing, not a tensor, not float32, or inconsistent. */
function tensorFieldRules(s: Setup, field: string, what: string): BatchCase[] {
  const M = s.metric;
  const shape = shapeOf(s.good, field);
  const size = sizeOf(shape);
  const missing = without(s.good, field);
  const badShape = new RegExp(`^${esc(M)}: ${field}\\.shape must be an array of non-negative integers, got `);
  return [
    bc(s, `${field} missing`, missing, field, `${M}: the batch must have a ${field} field (${what}), got fields ${Object.keys(missing).join(', ')}`),
    bc(s, `${field} is a number`, withField(s.good, field, 5), field, `${M}: ${field} must be a Tensor (see tensor()), got 5`),
    bc(s, `${field} is a string`, withField(s.good, field, 'x'), field, `${M}: ${field} must be a Tensor (see tensor()), got "x"`),
    bc(s, `${field} is null`, withField(s.good, field, null), field, `${M}: ${field} must be a Tensor (see tensor()), got null`),
    bc(s, `${field} is an object without data`, withField(s.good, field, { shape }), field, `${M}: ${field} must be a Tensor (see tensor()), got an object`),
    bc(s, `${field} holds a Float64Array`, withField(s.good, field, like(new Float64Array(size), shape)), field, `${M}: ${field} must hold float32 data (a Float32Array), got Float64Array`),
    bc(s, `${field} holds an Int32Array`, withField(s.good, field, like(new Int32Array(size), shape)), field, `${M}: ${field} must hold float32 data (a Float32Array), got Int32Array`),
    bc(s, `${field} holds a plain array`, withField(s.good, field, like(new Array<number>(size).fill(0), shape)), field, `${M}: ${field} must hold float32 data (a Float32Array), got an Array`),
    bc(s, `${field} is a float64 result Tensor`, withField(s.good, field, new Tensor(new Float64Array(size), shape, 'float64')), field, `${M}: ${field} must hold float32 data (a Float32Array), got Float64Array`),
    bc(s, `${field} has fewer data elements than its shape`, withField(s.good, field, like(new Float32Array(size - 1), shape)), field, `${M}: ${field} has shape ${fmt(shape)} (${size} elements) but ${size - 1} data elements`),
    bc(s, `${field} has more data elements than its shape`, withField(s.good, field, like(new Float32Array(size + 1), shape)), field, `${M}: ${field} has shape ${fmt(shape)} (${size} elements) but ${size + 1} data elements`),
    bc(s, `${field} has a fractional dimension`, withField(s.good, field, like(new Float32Array(size), [...shape.slice(0, -1), 1.5])), field, badShape),
    bc(s, `${field} has a negative dimension`, withField(s.good, field, like(new Float32Array(size), [-1, ...shape.slice(1)])), field, badShape),
    bc(s, `${field} shape is not an array`, withField(s.good, field, like(new Float32Array(size), 'abc')), field, badShape),
  ];
}

type Mode = 'c1' | 'c2' | 'unset' | 'any';

/** Rank, component-axis, emptiness and feature-count rules of an activations field. */
function activationRules(s: Setup, field: string, mode: Mode, features: number, numLearnedFeatures?: number): BatchCase[] {
  const M = s.metric;
  const F = features;
  const bad = (shape: number[]): Record<string, unknown> => withField(s.good, field, zeros(shape));
  const rank = (shape: number[]): string =>
    `${M}: ${field} must have rank 2 [batch, feature] or rank 3 [batch, component, feature], got shape ${fmt(shape)}`;
  const cases: BatchCase[] = [
    bc(s, `${field} rank 0`, bad([]), field, rank([])),
    bc(s, `${field} rank 1`, bad([F]), field, rank([F])),
    bc(s, `${field} rank 4`, bad([2, 2, 1, F]), field, rank([2, 2, 1, F])),
  ];
  const rowShape = mode === 'c2' ? [2] : [];
  cases.push(
    bc(s, `${field} empty batch (0 rows)`, bad([0, ...rowShape, F]), field, `${M}: ${field} is an empty batch (no activation vectors), got shape ${fmt([0, ...rowShape, F])}`),
    bc(s, `${field} zero features`, bad([2, ...rowShape, 0]), field, `${M}: ${field} has no features on its last axis, got shape ${fmt([2, ...rowShape, 0])}`),
  );
  const components = (n: number, shape: number[]): string =>
    `${M}: ${field} must have ${n} component${n === 1 ? '' : 's'} on axis 1 (numComponents), got shape ${fmt(shape)}`;
  if (mode === 'c1') {
    cases.push(
      bc(s, `${field} rank 3 with 2 components (numComponents 1)`, bad([2, 2, F]), field, components(1, [2, 2, F])),
      bc(s, `${field} rank 3 with 0 components (numComponents 1)`, bad([2, 0, F]), field, components(1, [2, 0, F])),
    );
  } else if (mode === 'c2') {
    cases.push(
      bc(s, `${field} rank 3 with 3 components (numComponents 2)`, bad([2, 3, F]), field, components(2, [2, 3, F])),
      bc(s, `${field} rank 3 with 1 component (numComponents 2)`, bad([2, 1, F]), field, components(2, [2, 1, F])),
      bc(s, `${field} rank 3 with 0 components (numComponents 2)`, bad([2, 0, F]), field, components(2, [2, 0, F])),
      bc(
        s,
        `${field} rank 2 (numComponents 2)`,
        bad([2, F]),
        field,
        `${M}: ${field} has no component axis but numComponents is 2; expected shape [batch, 2, feature], got shape ${fmt([2, F])}`,
      ),
    );
  } else if (mode === 'unset') {
    for (const c of [2, 1]) {
      cases.push(
        bc(
          s,
          `${field} rank 3 with ${c} component(s) (numComponents unset)`,
          bad([2, c, F]),
          field,
          `${M}: ${field} has a component axis but numComponents is not set; pass numComponents: ${c} or a [batch, feature] tensor, got shape ${fmt([2, c, F])}`,
        ),
      );
    }
  } else {
    cases.push(bc(s, `${field} zero components`, bad([2, 0, F]), field, `${M}: ${field} has no components, got shape [2, 0, ${F}]`));
  }
  if (numLearnedFeatures !== undefined) {
    for (const n of [numLearnedFeatures + 1, numLearnedFeatures - 1]) {
      const shape = [2, ...rowShape, n];
      cases.push(
        bc(
          s,
          `${field} with ${n} features (numLearnedFeatures ${numLearnedFeatures})`,
          bad(shape),
          field,
          `${M}: ${field} must have ${numLearnedFeatures} features on its last axis (numLearnedFeatures), got shape ${fmt(shape)}`,
        ),
      );
    }
  }
  return cases;
}

/** Decoded and source activations of different shapes. */
function reconstructionPairRules(s: Setup, rowShape: number[]): BatchCase[] {
  const M = s.metric;
  const msg = (a: number[], b: number[]): string =>
    `${M}: decodedActivations and sourceActivations must have the same shape, got ${fmt(a)} and ${fmt(b)}`;
  const src = shapeOf(s.good, S);
  const cases = [
    bc(s, 'decoded has more features than source', withField(s.good, D, zeros([2, ...rowShape, 5])), D, msg([2, ...rowShape, 5], src)),
    bc(s, 'decoded has more rows than source', withField(s.good, D, zeros([3, ...rowShape, 4])), D, msg([3, ...rowShape, 4], src)),
    bc(s, 'source has fewer rows than decoded', withField(s.good, S, zeros([1, ...rowShape, 4])), D, msg(shapeOf(s.good, D), [1, ...rowShape, 4])),
  ];
  if (rowShape.length === 0) {
    cases.push(bc(s, 'decoded has a 1-component axis, source none', withField(s.good, D, zeros([2, 1, 4])), D, msg([2, 1, 4], src)));
  }
  return cases;
}

/** SAE: learned and source activations must agree on batch and component axes. */
function saeLearnedRules(s: Setup, rowShape: number[]): BatchCase[] {
  const M = s.metric;
  const msg = (a: number[]): string =>
    `${M}: learnedActivations and sourceActivations must have the same batch and component axes, got shapes ${fmt(a)} and ${fmt(shapeOf(s.good, S))}`;
  const cases = [
    bc(s, 'learned has more rows than source', withField(s.good, L, zeros([3, ...rowShape, 3])), L, msg([3, ...rowShape, 3])),
    bc(s, 'learned has fewer rows than source', withField(s.good, L, zeros([1, ...rowShape, 3])), L, msg([1, ...rowShape, 3])),
  ];
  if (rowShape.length === 0) {
    cases.push(bc(s, 'learned has a 1-component axis, source none', withField(s.good, L, zeros([2, 1, 3])), L, msg([2, 1, 3])));
  }
  return cases;
}

/** keepBatchDim: a batch whose component axis disagrees with earlier batches. */
function keptAxisRules(s: Setup, field: string, fieldsToChange: readonly string[], earlierHadAxis: boolean): BatchCase[] {
  const M = esc(s.metric);
  const bad: Record<string, unknown> = { ...s.good };
  for (const f of fieldsToChange) {
    const shape = shapeOf(s.good, f);
    const features = shape[shape.length - 1] as number;
    bad[f] = zeros(earlierHadAxis ? [2, features] : [2, 1, features]);
  }
  const shape = (bad[field] as TensorLike).shape;
  const message = earlierHadAxis
    ? new RegExp(`^${M}: ${field} has no component axis but earlier batches had one \\(keepBatchDim [^)]*\\), got shape ${esc(fmt(shape))}$`)
    : new RegExp(`^${M}: ${field} has (a )?component axis but earlier batches had none \\(keepBatchDim [^)]*\\), got shape ${esc(fmt(shape))}$`);
  return [bc(s, earlierHadAxis ? 'a [b, f] batch after [b, 1, f] batches' : 'a [b, 1, f] batch after [b, f] batches', bad, field, message)];
}

/** Capacity: every batch's rows must have the shape of earlier batches' rows. */
function capacityRowRules(s: Setup): BatchCase[] {
  const kept = shapeOf(s.good, L).slice(1);
  const msg = (shape: number[]): string =>
    `CapacityMetric: learnedActivations must have rows of shape ${fmt(kept)} like earlier batches, got shape ${fmt(shape)}`;
  const shapes = kept.length === 1 ? [[2, 4], [2, 2], [2, 1, 3], [2, 2, 3]] : [[2, 3, 3], [2, 2, 4], [2, 3], [2, 6]];
  return shapes.map((shape) => bc(s, `rows of shape ${fmt(shape.slice(1))} after rows of ${fmt(kept)}`, withField(s.good, L, zeros(shape)), L, msg(shape)));
}

/** ReconstructionScoreMetric: losses of one shape, not empty, and a valid componentIdx. */
function reconstructionScoreRules(s: Setup, numComponents: number): BatchCase[] {
  const M = s.metric;
  const [src, rec, zero] = LOSSES;
  const same = (f: string, a: number[], b: number[]): string => `${M}: ${src} and ${f} must have the same shape, got ${fmt(a)} and ${fmt(b)}`;
  const losses = (a: Tensor<'float32'>, b: Tensor<'float32'>, c: Tensor<'float32'>): Batch => ({ [src]: a, [rec]: b, [zero]: c });
  const component = (got: string): RegExp =>
    new RegExp(
      `^${esc(M)}: componentIdx must be an integer in \\[-${numComponents}, ${numComponents}\\) \\(numComponents is ${numComponents}[^)]*\\), got ${esc(got)}$`,
    );
  return [
    bc(s, 'reconstruction loss longer than source loss', losses(zeros([2]), zeros([3]), zeros([3])), rec, same(rec, [2], [3])),
    bc(s, 'zero-ablation loss has an extra axis', losses(zeros([3]), zeros([3]), zeros([3, 1])), zero, same(zero, [3], [3, 1])),
    bc(s, 'source loss 0-d, others [1]', losses(zeros([]), zeros([1]), zeros([1])), rec, same(rec, [], [1])),
    bc(s, 'empty losses [0]', losses(zeros([0]), zeros([0]), zeros([0])), src, `${M}: ${src} is an empty batch (no losses), got shape [0]`),
    bc(s, 'empty losses [2, 0]', losses(zeros([2, 0]), zeros([2, 0]), zeros([2, 0])), src, `${M}: ${src} is an empty batch (no losses), got shape [2, 0]`),
    bc(s, `componentIdx ${numComponents} (out of range)`, { ...RS, componentIdx: numComponents }, 'componentIdx', component(String(numComponents))),
    bc(s, `componentIdx ${-numComponents - 1} (out of range)`, { ...RS, componentIdx: -numComponents - 1 }, 'componentIdx', component(String(-numComponents - 1))),
    bc(s, 'componentIdx 0.5', { ...RS, componentIdx: 0.5 }, 'componentIdx', component('0.5')),
    bc(s, 'componentIdx NaN', { ...RS, componentIdx: Number.NaN }, 'componentIdx', component('NaN')),
    bc(s, 'componentIdx Infinity', { ...RS, componentIdx: Infinity }, 'componentIdx', component('Infinity')),
    bc(s, "componentIdx '0'", { ...RS, componentIdx: '0' }, 'componentIdx', component('"0"')),
    bc(s, 'componentIdx null', { ...RS, componentIdx: null }, 'componentIdx', component('null')),
  ];
}

function emptyObjectRule(s: Setup, field: string, what: string): BatchCase {
  return bc(s, 'empty batch object {}', {}, field, `${s.metric}: the batch must have a ${field} field (${what}), got an empty batch object`);
}

const BATCH_CASES: BatchCase[] = [
  // L1AbsoluteLoss
  ...batchObjectRules(SETUP.l1),
  emptyObjectRule(SETUP.l1, L, ACT_WHAT),
  ...tensorFieldRules(SETUP.l1, L, ACT_WHAT),
  ...activationRules(SETUP.l1, L, 'c1', 3),
  ...activationRules(SETUP.l1c2, L, 'c2', 3),
  ...keptAxisRules(SETUP.l1k, L, [L], false),
  ...keptAxisRules(SETUP.l1k1c, L, [L], true),
  // L2ReconstructionLoss
  ...batchObjectRules(SETUP.l2),
  emptyObjectRule(SETUP.l2, D, ACT_WHAT),
  ...tensorFieldRules(SETUP.l2, D, ACT_WHAT),
  ...tensorFieldRules(SETUP.l2, S, ACT_WHAT),
  ...activationRules(SETUP.l2, D, 'c1', 4),
  ...activationRules(SETUP.l2, S, 'c1', 4),
  ...activationRules(SETUP.l2c2, D, 'c2', 4),
  ...activationRules(SETUP.l2c2, S, 'c2', 4),
  ...reconstructionPairRules(SETUP.l2, []),
  ...reconstructionPairRules(SETUP.l2c2, [2]),
  ...keptAxisRules(SETUP.l2k, S, [S, D], false),
  ...keptAxisRules(SETUP.l2k1c, S, [S, D], true),
  // SparseAutoencoderLoss
  ...batchObjectRules(SETUP.sae),
  emptyObjectRule(SETUP.sae, L, ACT_WHAT),
  ...tensorFieldRules(SETUP.sae, L, ACT_WHAT),
  ...tensorFieldRules(SETUP.sae, D, ACT_WHAT),
  ...tensorFieldRules(SETUP.sae, S, ACT_WHAT),
  ...activationRules(SETUP.sae, L, 'c1', 3),
  ...activationRules(SETUP.sae, D, 'c1', 4),
  ...activationRules(SETUP.sae, S, 'c1', 4),
  ...activationRules(SETUP.saec2, L, 'c2', 3),
  ...activationRules(SETUP.saec2, D, 'c2', 4),
  ...activationRules(SETUP.saec2, S, 'c2', 4),
  ...reconstructionPairRules(SETUP.sae, []),
  ...reconstructionPairRules(SETUP.saec2, [2]),
  ...saeLearnedRules(SETUP.sae, []),
  ...saeLearnedRules(SETUP.saec2, [2]),
  ...keptAxisRules(SETUP.saek, L, [L, S, D], false),
  ...keptAxisRules(SETUP.saek1c, L, [L, S, D], true),
  // L0NormMetric
  ...batchObjectRules(SETUP.l0),
  emptyObjectRule(SETUP.l0, L, ACT_WHAT),
  ...tensorFieldRules(SETUP.l0, L, ACT_WHAT),
  ...activationRules(SETUP.l0, L, 'unset', 3),
  ...activationRules(SETUP.l0c2, L, 'c2', 3),
  // the fired-count family
  ...batchObjectRules(SETUP.na),
  emptyObjectRule(SETUP.na, L, ACT_WHAT),
  ...tensorFieldRules(SETUP.na, L, ACT_WHAT),
  ...activationRules(SETUP.na, L, 'unset', 3, 3),
  ...activationRules(SETUP.nac2, L, 'c2', 3, 3),
  ...batchObjectRules(SETUP.nfc),
  emptyObjectRule(SETUP.nfc, L, ACT_WHAT),
  ...tensorFieldRules(SETUP.nfc, L, ACT_WHAT),
  ...activationRules(SETUP.nfc, L, 'unset', 3, 3),
  ...activationRules(SETUP.nfcc2, L, 'c2', 3, 3),
  ...batchObjectRules(SETUP.fd),
  emptyObjectRule(SETUP.fd, L, ACT_WHAT),
  ...tensorFieldRules(SETUP.fd, L, ACT_WHAT),
  ...activationRules(SETUP.fd, L, 'unset', 3, 3),
  ...activationRules(SETUP.fdc2, L, 'c2', 3, 3),
  // CapacityMetric
  ...batchObjectRules(SETUP.cap),
  emptyObjectRule(SETUP.cap, L, ACT_WHAT),
  ...tensorFieldRules(SETUP.cap, L, ACT_WHAT),
  ...activationRules(SETUP.cap, L, 'any', 3),
  ...capacityRowRules(SETUP.cap),
  ...capacityRowRules(SETUP.cap3),
  // ReconstructionScoreMetric
  ...batchObjectRules(SETUP.rs),
  emptyObjectRule(SETUP.rs, LOSSES[0], LOSS_WHAT),
  ...LOSSES.flatMap((f) => tensorFieldRules(SETUP.rs, f, LOSS_WHAT)),
  ...reconstructionScoreRules(SETUP.rs, 1),
  ...reconstructionScoreRules(SETUP.rsc2, 2),
];

describe('batch rules: rejected before any state change', () => {
  it('every case names a distinct rule', () => {
    expect(new Set(BATCH_CASES.map((c) => c.name)).size).toBe(BATCH_CASES.length);
  });

  it.each(named(BATCH_CASES, 'name'))('%s', (_title, c) => {
    const { setup: s, bad, field, message } = c;
    const m = s.make();
    m.update(s.good);
    const before = snapshot(m);
    const M = s.metric;

    expectBatchError(() => m.update(bad as Batch), M, field, message);
    expectUnchanged(m, before);
    expectBatchError(() => m.forward(bad as Batch), M, field, message);
    expectUnchanged(m, before);

    // the pure definition refuses it too, against the same state, and leaves that state alone
    const state = m.state();
    expectBatchError(() => (m.definition as AnyDefinition).update(state, bad as Batch), M, field, message);
    expect(state).toStrictEqual(before.state);

    // what follows is as if the bad batch never came
    const control = s.make();
    control.update(s.good);
    control.update(s.next);
    m.update(s.next);
    expect(m.state()).toStrictEqual(control.state());
    expect(m.updateCount).toBe(2);
    expect(plain(m.compute())).toStrictEqual(plain(control.compute()));
  });
});

// ---------------------------------------------------------------------------------------------
// Functional update: row ranges

interface RowsDefinition {
  readonly name: string;
  readonly def: AnyDefinition;
  readonly batch: Batch;
  readonly rows: number;
}

const ROW_DEFINITIONS: RowsDefinition[] = [
  { name: 'L1AbsoluteLoss', def: l1AbsoluteLoss(), batch: B2, rows: 2 },
  { name: 'L1AbsoluteLoss', def: l1AbsoluteLoss({ keepBatchDim: true }), batch: B2, rows: 2 },
  { name: 'L2ReconstructionLoss', def: l2ReconstructionLoss({ numComponents: 2 }), batch: B3, rows: 2 },
  { name: 'SparseAutoencoderLoss', def: sparseAutoencoderLoss(), batch: B2, rows: 2 },
  { name: 'L0NormMetric', def: l0Norm(), batch: B2, rows: 2 },
  { name: 'NeuronActivityMetric', def: neuronActivity({ numLearnedFeatures: 3 }), batch: B2, rows: 2 },
  { name: 'NeuronFiredCountMetric', def: neuronFiredCount({ numLearnedFeatures: 3 }), batch: B2, rows: 2 },
  { name: 'FeatureDensityMetric', def: featureDensity({ numLearnedFeatures: 3, numComponents: 2 }), batch: B3, rows: 2 },
  { name: 'CapacityMetric', def: capacity(), batch: B2, rows: 2 },
  { name: 'ReconstructionScoreMetric', def: reconstructionScore(), batch: RS, rows: 3 },
];

const BAD_ROWS: [string, (n: number) => RowRange][] = [
  ['start == end', () => ({ start: 1, end: 1 })],
  ['start > end', () => ({ start: 2, end: 1 })],
  ['end > rows', (n) => ({ start: 0, end: n + 1 })],
  ['start == rows == end', (n) => ({ start: n, end: n })],
  ['negative start', () => ({ start: -1, end: 1 })],
  ['fractional end', () => ({ start: 0, end: 1.5 })],
  ['fractional start', () => ({ start: 0.5, end: 1 })],
  ['NaN start', () => ({ start: Number.NaN, end: 1 })],
  ['Infinity end', () => ({ start: 0, end: Infinity })],
];

const rowLabel = (d: RowsDefinition): string => `${d.name}(${JSON.stringify(d.def.config)})`;
const ROW_CASES = ROW_DEFINITIONS.flatMap((d) => BAD_ROWS.map(([rule, rows]) => ({ label: `${rowLabel(d)}: ${rule}`, d, range: rows(d.rows) })));
const ROW_BOUNDARY = ROW_DEFINITIONS.map((d) => ({ label: rowLabel(d), d }));

describe('functional update: bad row ranges', () => {
  it.each(named(ROW_CASES, 'label'))('%s', (_title, { d, range }) => {
    const state = d.def.update(d.def.init(), d.batch);
    const before = structuredClone(state);
    expectBatchError(
      () => d.def.update(state, d.batch, range),
      d.name,
      'rows',
      `${d.name}: rows must be a non-empty range of whole rows within [0, ${d.rows}), got [${range.start}, ${range.end})`,
    );
    expect(state).toStrictEqual(before);
  });

  it.each(named(ROW_BOUNDARY, 'label'))('%s: the boundary ranges [0, n) and [n - 1, n) are accepted', (_title, { d }) => {
    const init = d.def.init();
    const all = d.def.update(init, d.batch, { start: 0, end: d.rows });
    expect(all).toStrictEqual(d.def.update(init, d.batch));
    expect(() => d.def.update(init, d.batch, { start: d.rows - 1, end: d.rows })).not.toThrow();
  });

  it('a bad batch is reported before a bad row range', () => {
    const def = l1AbsoluteLoss();
    expectBatchError(
      () => def.update(def.init(), { learnedActivations: zeros([3]) }, { start: 2, end: 1 }),
      'L1AbsoluteLoss',
      L,
      'L1AbsoluteLoss: learnedActivations must have rank 2 [batch, feature] or rank 3 [batch, component, feature], got shape [3]',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// Collections and wrappers: a batch rejected by one metric changes none

describe('MetricCollection and ClasswiseWrapperWithMean: batch rules', () => {
  function collection() {
    return new MetricCollection({
      l1: new L1AbsoluteLoss(),
      sae: new SparseAutoencoderLoss(),
      dead: new NeuronActivityMetric({ numLearnedFeatures: 3 }),
      density: new FeatureDensityMetric({ numLearnedFeatures: 3 }),
      l2: new L2ReconstructionLoss(),
      cap: new CapacityMetric(),
    });
  }

  const cases: { name: string; bad: unknown; metric: string; field: string; message: Expected }[] = [
    {
      name: 'learned features disagree with the fired-count family (L1 and SAE would accept)',
      bad: withField(B2, L, zeros([2, 4])),
      metric: 'NeuronActivityMetric',
      field: L,
      message: 'NeuronActivityMetric: learnedActivations must have 3 features on its last axis (numLearnedFeatures), got shape [2, 4]',
    },
    {
      name: 'decoded activations missing (L1 and the fired-count family would accept)',
      bad: without(B2, D),
      metric: 'SparseAutoencoderLoss',
      field: D,
      message: `SparseAutoencoderLoss: the batch must have a decodedActivations field (${ACT_WHAT}), got fields learnedActivations, sourceActivations`,
    },
    {
      name: 'a [b, 1, f] batch where numComponents is unset for the fired-count family (L1, SAE and L2 would accept)',
      bad: B1C,
      metric: 'NeuronActivityMetric',
      field: L,
      message:
        'NeuronActivityMetric: learnedActivations has a component axis but numComponents is not set; pass numComponents: 1 or a [batch, feature] tensor, got shape [2, 1, 3]',
    },
    {
      name: 'batch is null',
      bad: null,
      metric: 'MetricCollection',
      field: 'batch',
      message: 'MetricCollection: a batch must be a plain object of tensors, got null',
    },
    {
      name: 'batch is a number',
      bad: 5,
      metric: 'MetricCollection',
      field: 'batch',
      message: 'MetricCollection: a batch must be a plain object of tensors, got 5',
    },
  ];

  it.each(named(cases, 'name'))('%s', (_title, { bad, metric, field, message }) => {
    const col = collection();
    col.update(B2);
    const before = Object.fromEntries(Object.entries(col.metrics).map(([k, m]) => [k, snapshot(m)]));
    expectBatchError(() => col.update(bad as never), metric, field, message);
    for (const [k, m] of Object.entries(col.metrics)) expectUnchanged(m, before[k] as Snapshot);
    expectBatchError(() => col.forward(bad as never), metric, field, message);
    for (const [k, m] of Object.entries(col.metrics)) expectUnchanged(m, before[k] as Snapshot);
  });

  it('capacity rejects rows of another shape inside a collection, and nothing changes', () => {
    const col = new MetricCollection({ l0: new L0NormMetric(), cap: new CapacityMetric() });
    col.update(B2);
    const before = Object.fromEntries(Object.entries(col.metrics).map(([k, m]) => [k, snapshot(m)]));
    expectBatchError(
      () => col.update({ learnedActivations: zeros([2, 5]) }),
      'CapacityMetric',
      L,
      'CapacityMetric: learnedActivations must have rows of shape [3] like earlier batches, got shape [2, 5]',
    );
    for (const [k, m] of Object.entries(col.metrics)) expectUnchanged(m, before[k] as Snapshot);
  });

  it('a wrapped metric rejects a batch under its own name, and the wrapper is unchanged', () => {
    const wrapped = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 }), { componentNames: ['a', 'b'] });
    wrapped.update(B3);
    const before = snapshot(wrapped);
    const message =
      'L0NormMetric: learnedActivations has no component axis but numComponents is 2; expected shape [batch, 2, feature], got shape [2, 3]';
    expectBatchError(() => wrapped.update(B2), 'L0NormMetric', L, message);
    expectUnchanged(wrapped, before);
    expectBatchError(() => wrapped.forward(B2), 'L0NormMetric', L, message);
    expectUnchanged(wrapped, before);
  });
});

// ---------------------------------------------------------------------------------------------
// Options at construction

interface OptionCase {
  readonly name: string;
  readonly make: () => unknown;
  readonly cls: ErrorClass;
  readonly message: Expected;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Ctor = new (options?: any) => unknown;
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Define = (options?: any) => unknown;

interface Family {
  readonly metric: string;
  readonly ctor: Ctor;
  readonly define: Define;
  /** Options that make a valid metric, to which the bad option is added. */
  readonly base: Record<string, unknown>;
  readonly known: string;
}

const FAMILIES: Family[] = [
  { metric: 'L1AbsoluteLoss', ctor: L1AbsoluteLoss, define: l1AbsoluteLoss, base: {}, known: 'numComponents, keepBatchDim' },
  { metric: 'L2ReconstructionLoss', ctor: L2ReconstructionLoss, define: l2ReconstructionLoss, base: {}, known: 'numComponents, keepBatchDim' },
  {
    metric: 'SparseAutoencoderLoss',
    ctor: SparseAutoencoderLoss,
    define: sparseAutoencoderLoss,
    base: {},
    known: 'numComponents, l1Coefficient, keepBatchDim',
  },
  { metric: 'L0NormMetric', ctor: L0NormMetric, define: l0Norm, base: {}, known: 'numComponents' },
  {
    metric: 'NeuronActivityMetric',
    ctor: NeuronActivityMetric,
    define: neuronActivity,
    base: { numLearnedFeatures: 3 },
    known: 'numLearnedFeatures, numComponents, thresholdIsDeadPortionFires',
  },
  {
    metric: 'NeuronFiredCountMetric',
    ctor: NeuronFiredCountMetric,
    define: neuronFiredCount,
    base: { numLearnedFeatures: 3 },
    known: 'numLearnedFeatures, numComponents',
  },
  {
    metric: 'FeatureDensityMetric',
    ctor: FeatureDensityMetric,
    define: featureDensity,
    base: { numLearnedFeatures: 3 },
    known: 'numLearnedFeatures, numComponents',
  },
  { metric: 'ReconstructionScoreMetric', ctor: ReconstructionScoreMetric, define: reconstructionScore, base: {}, known: 'numComponents' },
];

const FIRED = FAMILIES.filter((f) => 'numLearnedFeatures' in f.base);
const LOSS_FAMILIES = FAMILIES.filter((f) => ['L1AbsoluteLoss', 'L2ReconstructionLoss', 'SparseAutoencoderLoss'].includes(f.metric));

/** Bad values of a positive-integer option: [label, value, class, how the value is described]. */
const BAD_POSITIVE_INTEGERS: [string, unknown, ErrorClass, string][] = [
  ['0', 0, RangeError, '0'],
  ['-1', -1, RangeError, '-1'],
  ['1.5', 1.5, RangeError, '1.5'],
  ['NaN', Number.NaN, RangeError, 'NaN'],
  ['Infinity', Infinity, RangeError, 'Infinity'],
  ['2^53', 2 ** 53, RangeError, String(2 ** 53)],
  ["'2'", '2', TypeError, '"2"'],
  ['true', true, TypeError, 'true'],
  ['[2]', [2], TypeError, 'an array of length 1'],
];

function permutations(items: readonly string[]): string[][] {
  if (items.length <= 1) return [[...items]];
  return items.flatMap((x, i) => permutations([...items.slice(0, i), ...items.slice(i + 1)]).map((rest) => [x, ...rest]));
}

/** `<metric>: unknown option <key> (known options: <list in any order>)`. */
function unknownOption(metric: string, key: string, known: string): RegExp {
  const lists = permutations(known.split(', ')).map((p) => esc(p.join(', ')));
  return new RegExp(`^${esc(metric)}: unknown option ${esc(key)} \\(known options: (${lists.join('|')})\\)$`);
}

/** Each option case, once through the class and once through the pure definition. */
function bothWays(f: Family, rule: string, options: unknown, cls: ErrorClass, message: Expected): OptionCase[] {
  return [
    { name: `new ${f.metric}(): ${rule}`, make: () => new f.ctor(options), cls, message },
    { name: `functional ${f.metric}: ${rule}`, make: () => f.define(options), cls, message },
  ];
}

const OPTION_CASES: OptionCase[] = [
  ...FAMILIES.flatMap((f) =>
    BAD_POSITIVE_INTEGERS.flatMap(([label, value, cls, got]) =>
      bothWays(f, `numComponents ${label}`, { ...f.base, numComponents: value }, cls, `${f.metric}: options.numComponents must be a positive integer, got ${got}`),
    ),
  ),
  ...FIRED.flatMap((f) => [
    ...BAD_POSITIVE_INTEGERS.flatMap(([label, value, cls, got]) =>
      bothWays(f, `numLearnedFeatures ${label}`, { numLearnedFeatures: value }, cls, `${f.metric}: options.numLearnedFeatures must be a positive integer, got ${got}`),
    ),
    ...bothWays(f, 'numLearnedFeatures null', { numLearnedFeatures: null }, TypeError, `${f.metric}: options.numLearnedFeatures must be a positive integer, got null`),
    ...bothWays(f, 'numLearnedFeatures missing', {}, TypeError, `${f.metric}: options.numLearnedFeatures must be a positive integer, got undefined`),
    ...bothWays(f, 'numLearnedFeatures missing (numComponents given)', { numComponents: 2 }, TypeError, `${f.metric}: options.numLearnedFeatures must be a positive integer, got undefined`),
    ...bothWays(f, 'options missing', undefined, TypeError, `${f.metric}: options.numLearnedFeatures must be a positive integer, got undefined`),
  ]),
  ...(
    [
      ['-0.1', -0.1, RangeError, '-0.1'],
      ['1.1', 1.1, RangeError, '1.1'],
      ['NaN', Number.NaN, RangeError, 'NaN'],
      ['Infinity', Infinity, RangeError, 'Infinity'],
      ['-Infinity', -Infinity, RangeError, '-Infinity'],
      ["'0.5'", '0.5', TypeError, '"0.5"'],
      ['true', true, TypeError, 'true'],
    ] as [string, unknown, ErrorClass, string][]
  ).flatMap(([label, value, cls, got]) =>
    bothWays(
      FAMILIES[4] as Family,
      `thresholdIsDeadPortionFires ${label}`,
      { numLearnedFeatures: 3, thresholdIsDeadPortionFires: value },
      cls,
      `NeuronActivityMetric: options.thresholdIsDeadPortionFires must be a number in [0, 1], got ${got}`,
    ),
  ),
  ...(
    [
      ['0', 0, RangeError, '0'],
      ['-0', -0, RangeError, '0'],
      ['-1', -1, RangeError, '-1'],
      ['NaN', Number.NaN, RangeError, 'NaN'],
      ['Infinity', Infinity, RangeError, 'Infinity'],
      ['-Infinity', -Infinity, RangeError, '-Infinity'],
      ["'x'", 'x', TypeError, '"x"'],
      ["'0.5'", '0.5', TypeError, '"0.5"'],
    ] as [string, unknown, ErrorClass, string][]
  ).flatMap(([label, value, cls, got]) =>
    bothWays(
      FAMILIES[2] as Family,
      `l1Coefficient ${label}`,
      { l1Coefficient: value },
      cls,
      `SparseAutoencoderLoss: options.l1Coefficient must be a positive finite number, got ${got}`,
    ),
  ),
  ...LOSS_FAMILIES.flatMap((f) =>
    (
      [
        ["'true'", 'true', '"true"'],
        ['1', 1, '1'],
        ['0', 0, '0'],
      ] as [string, unknown, string][]
    ).flatMap(([label, value, got]) =>
      bothWays(f, `keepBatchDim ${label}`, { keepBatchDim: value }, TypeError, `${f.metric}: options.keepBatchDim must be a boolean, got ${got}`),
    ),
  ),
  // unknown keys (typos)
  ...FAMILIES.flatMap((f) =>
    bothWays(f, 'unknown option numComponent (typo)', { ...f.base, numComponent: 2 }, TypeError, unknownOption(f.metric, 'numComponent', f.known)),
  ),
  ...bothWays(FAMILIES[2] as Family, 'unknown option l1Coeficient (typo)', { l1Coeficient: 0.5 }, TypeError, unknownOption('SparseAutoencoderLoss', 'l1Coeficient', 'numComponents, l1Coefficient, keepBatchDim')),
  ...bothWays(
    FAMILIES[4] as Family,
    'unknown option threshold',
    { numLearnedFeatures: 3, threshold: 0.5 },
    TypeError,
    unknownOption('NeuronActivityMetric', 'threshold', 'numLearnedFeatures, numComponents, thresholdIsDeadPortionFires'),
  ),
  ...FIRED.flatMap((f) =>
    bothWays(f, 'unknown option keepBatchDim', { numLearnedFeatures: 3, keepBatchDim: true }, TypeError, unknownOption(f.metric, 'keepBatchDim', f.known)),
  ),
  ...bothWays(FAMILIES[5] as Family, 'unknown option thresholdIsDeadPortionFires', { numLearnedFeatures: 3, thresholdIsDeadPortionFires: 0.5 }, TypeError, unknownOption('NeuronFiredCountMetric', 'thresholdIsDeadPortionFires', 'numLearnedFeatures, numComponents')),
  ...bothWays(FAMILIES[0] as Family, 'unknown option l1Coefficient', { l1Coefficient: 0.5 }, TypeError, unknownOption('L1AbsoluteLoss', 'l1Coefficient', 'numComponents, keepBatchDim')),
  {
    name: 'functional CapacityMetric: unknown option',
    make: () => capacity({ numComponents: 2 } as unknown as Record<string, never>),
    cls: TypeError,
    message: /^CapacityMetric: unknown option numComponents\b/,
  },
  // options not an object
  ...FAMILIES.flatMap((f) => [
    ...bothWays(f, 'options is a number', 5, TypeError, `${f.metric}: options must be an object, got 5`),
    ...bothWays(f, 'options is a string', 'numComponents', TypeError, `${f.metric}: options must be an object, got "numComponents"`),
    ...bothWays(f, 'options is null', null, TypeError, `${f.metric}: options must be an object, got null`),
    ...bothWays(f, 'options is a function', () => ({}), TypeError, `${f.metric}: options must be an object, got a function`),
  ]),
  {
    name: 'functional CapacityMetric: options is a number',
    make: () => capacity(5 as unknown as Record<string, never>),
    cls: TypeError,
    message: 'CapacityMetric: options must be an object, got 5',
  },
];

describe('options at construction', () => {
  it('every case names a distinct rule', () => {
    expect(new Set(OPTION_CASES.map((c) => c.name)).size).toBe(OPTION_CASES.length);
  });

  it.each(named(OPTION_CASES, 'name'))('%s', (_title, { make, cls, message }) => {
    expectOptionError(make, cls, message);
  });

  it('boundary values are accepted: numComponents 1, threshold 0 and 1, a tiny l1Coefficient', () => {
    expect(new L1AbsoluteLoss({ numComponents: 1 }).numComponents).toBe(1);
    expect(new NeuronActivityMetric({ numLearnedFeatures: 1, thresholdIsDeadPortionFires: 0 }).thresholdIsDeadPortionFires).toBe(0);
    expect(new NeuronActivityMetric({ numLearnedFeatures: 1, thresholdIsDeadPortionFires: 1 }).thresholdIsDeadPortionFires).toBe(1);
    expect(new SparseAutoencoderLoss({ l1Coefficient: Number.MIN_VALUE }).l1Coefficient).toBe(Number.MIN_VALUE);
    expect(new SparseAutoencoderLoss({ l1Coefficient: Number.MAX_VALUE }).l1Coefficient).toBe(Number.MAX_VALUE);
  });

  it.each(named(LOSS_FAMILIES, 'metric'))('%s: setting keepBatchDim to a non-boolean throws and changes nothing', (_title, f) => {
    const m = new f.ctor({}) as AnyMetric & { keepBatchDim: boolean };
    m.update(B2);
    const before = snapshot(m);
    expectOptionError(
      () => {
        m.keepBatchDim = 'yes' as unknown as boolean;
      },
      TypeError,
      `${f.metric}: options.keepBatchDim must be a boolean, got "yes"`,
    );
    expect(m.keepBatchDim).toBe(false);
    expectUnchanged(m, before);
  });

  // `?? default` lets an explicit null through as the default for these options, while
  // L0NormMetric and the fired-count family reject `numComponents: null` (see the report).
  const byClass = (f: Family, rule: string, options: unknown, message: string): OptionCase => ({
    name: `new ${f.metric}(): ${rule}`,
    make: () => new f.ctor(options),
    cls: TypeError,
    message,
  });
  const NULL_CASES: OptionCase[] = [
    ...FAMILIES.map((f) =>
      byClass(f, 'numComponents null', { ...f.base, numComponents: null }, `${f.metric}: options.numComponents must be a positive integer, got null`),
    ),
    ...LOSS_FAMILIES.map((f) =>
      byClass(f, 'keepBatchDim null', { keepBatchDim: null }, `${f.metric}: options.keepBatchDim must be a boolean, got null`),
    ),
    byClass(FAMILIES[2] as Family, 'l1Coefficient null', { l1Coefficient: null }, 'SparseAutoencoderLoss: options.l1Coefficient must be a positive finite number, got null'),
    byClass(
      FAMILIES[4] as Family,
      'thresholdIsDeadPortionFires null',
      { numLearnedFeatures: 3, thresholdIsDeadPortionFires: null },
      'NeuronActivityMetric: options.thresholdIsDeadPortionFires must be a number in [0, 1], got null',
    ),
  ];

  it.each(named(NULL_CASES, 'name'))('an explicit null is not taken as the default: %s', (_title, { make, cls, message }) => {
    expectOptionError(make, cls, message);
  });

  it('new CapacityMetric() refuses options it does not have (as capacity() does)', () => {
    const Ctor = CapacityMetric as unknown as new (options: unknown) => CapacityMetric;
    expectOptionError(() => new Ctor({ numComponents: 2 }), TypeError, /^CapacityMetric: unknown option numComponents\b/);
  });
});

describe('ClasswiseWrapperWithMean options', () => {
  const l0c2 = (): L0NormMetric => new L0NormMetric({ numComponents: 2 });
  const W = ClasswiseWrapperWithMean as unknown as new (metric: unknown, options?: unknown) => ClasswiseWrapperWithMean;
  const cases: OptionCase[] = [
    { name: 'metric is undefined', make: () => new W(undefined), cls: TypeError, message: 'ClasswiseWrapperWithMean: metric must be a sae-metrics Metric, got undefined' },
    { name: 'metric is a plain object', make: () => new W({}), cls: TypeError, message: 'ClasswiseWrapperWithMean: metric must be a sae-metrics Metric, got an object' },
    { name: 'metric is a pure definition', make: () => new W(l0Norm()), cls: TypeError, message: 'ClasswiseWrapperWithMean: metric must be a sae-metrics Metric, got an object' },
    { name: 'metric is a MetricCollection', make: () => new W(new MetricCollection({ l0: l0c2() })), cls: TypeError, message: 'ClasswiseWrapperWithMean: metric must be a sae-metrics Metric, got a MetricCollection' },
    { name: 'options is a number', make: () => new W(l0c2(), 5), cls: TypeError, message: 'ClasswiseWrapperWithMean: options must be an object, got 5' },
    { name: 'options is null', make: () => new W(l0c2(), null), cls: TypeError, message: 'ClasswiseWrapperWithMean: options must be an object, got null' },
    { name: 'unknown option', make: () => new W(l0c2(), { prefx: 'l0' }), cls: TypeError, message: unknownOption('ClasswiseWrapperWithMean', 'prefx', 'componentNames, prefix') },
    { name: 'componentNames a string', make: () => new W(l0c2(), { componentNames: 'ab' }), cls: TypeError, message: 'ClasswiseWrapperWithMean: options.componentNames must be an array of strings, got "ab"' },
    { name: 'componentNames of numbers', make: () => new W(l0c2(), { componentNames: [1, 2] }), cls: TypeError, message: 'ClasswiseWrapperWithMean: options.componentNames must be an array of strings, got an array of length 2' },
    { name: 'componentNames repeated', make: () => new W(l0c2(), { componentNames: ['a', 'a'] }), cls: RangeError, message: 'ClasswiseWrapperWithMean: options.componentNames must be distinct, got ["a","a"]' },
    { name: 'componentNames too short', make: () => new W(l0c2(), { componentNames: ['a'] }), cls: RangeError, message: "ClasswiseWrapperWithMean: options.componentNames must have 2 names (the L0NormMetric's numComponents), got 1" },
    { name: 'componentNames too long', make: () => new W(new L1AbsoluteLoss(), { componentNames: ['a', 'b'] }), cls: RangeError, message: "ClasswiseWrapperWithMean: options.componentNames must have 1 names (the L1AbsoluteLoss's numComponents), got 2" },
    { name: 'prefix a number', make: () => new W(l0c2(), { prefix: 5 }), cls: TypeError, message: 'ClasswiseWrapperWithMean: options.prefix must be a string, got 5' },
    { name: 'prefix null', make: () => new W(l0c2(), { prefix: null }), cls: TypeError, message: 'ClasswiseWrapperWithMean: options.prefix must be a string, got null' },
  ];
  it.each(named(cases, 'name'))('%s', (_title, { make, cls, message }) => {
    expectOptionError(make, cls, message);
  });

  it('a rejected wrapper leaves the metric it was given unchanged', () => {
    const inner = l0c2();
    inner.update(B3);
    const before = snapshot(inner);
    expect(() => new W(inner, { componentNames: ['a'] })).toThrow(RangeError);
    expectUnchanged(inner, before);
  });

  it('componentNames that cannot be checked at construction (no numComponents) are refused by compute, naming both counts', () => {
    const w = new ClasswiseWrapperWithMean(new L0NormMetric(), { componentNames: ['a', 'b'] });
    w.update(B2);
    expectOptionError(
      () => w.compute(),
      RangeError,
      "ClasswiseWrapperWithMean: L0NormMetric's result has 1 entries on its first axis (shape []) but componentNames has 2",
    );
  });
});

describe('MetricCollection constructor', () => {
  const C = MetricCollection as unknown as new (metrics: unknown) => MetricCollection;
  const l1 = new L1AbsoluteLoss();
  const cases: OptionCase[] = [
    { name: 'metrics undefined', make: () => new C(undefined), cls: TypeError, message: 'MetricCollection: metrics must be a record of metrics by name, got undefined' },
    { name: 'metrics null', make: () => new C(null), cls: TypeError, message: 'MetricCollection: metrics must be a record of metrics by name, got null' },
    { name: 'metrics a number', make: () => new C(5), cls: TypeError, message: 'MetricCollection: metrics must be a record of metrics by name, got 5' },
    { name: 'metrics an array of metrics', make: () => new C([l1]), cls: TypeError, message: 'MetricCollection: metrics must be a record of metrics by name, got an array of length 1' },
    { name: 'metrics empty', make: () => new C({}), cls: TypeError, message: 'MetricCollection: metrics must hold at least one metric, got an empty record' },
    { name: 'a value that is a number', make: () => new C({ l1, x: 5 }), cls: TypeError, message: 'MetricCollection: metrics.x must be a sae-metrics Metric, got 5' },
    { name: 'a value that is a pure definition', make: () => new C({ l1: l1AbsoluteLoss() }), cls: TypeError, message: 'MetricCollection: metrics.l1 must be a sae-metrics Metric, got an object' },
    { name: 'a value that is a collection', make: () => new C({ inner: new MetricCollection({ l1: l1.clone() }) }), cls: TypeError, message: 'MetricCollection: metrics.inner must be a sae-metrics Metric, got a MetricCollection' },
    { name: 'the same metric under two keys', make: () => new C({ a: l1, b: l1 }), cls: TypeError, message: 'MetricCollection: each metric may appear once; clone() a metric to use it under two keys' },
  ];
  it.each(named(cases, 'name'))('%s', (_title, { make, cls, message }) => {
    expectOptionError(make, cls, message);
  });
});

// ---------------------------------------------------------------------------------------------
// Merging and loading states

interface MergeCase {
  readonly name: string;
  readonly receiver: () => AnyMetric;
  readonly good: Batch;
  readonly other: () => AnyMetric;
  readonly otherBatch: Batch;
  readonly metric: string;
  readonly message: RegExp;
}

const configs = (a: string, b: string): RegExp =>
  new RegExp(`cannot merge states of different configurations: \\{[^}]*${esc(a)}[^}]*\\} and \\{[^}]*${esc(b)}[^}]*\\}`);

const MERGE_CASES: MergeCase[] = [
  {
    name: 'L1AbsoluteLoss numComponents 1 <- 2',
    receiver: () => new L1AbsoluteLoss(),
    good: B2,
    other: () => new L1AbsoluteLoss({ numComponents: 2 }),
    otherBatch: B3,
    metric: 'L1AbsoluteLoss',
    message: configs('numComponents: 1', 'numComponents: 2'),
  },
  {
    name: 'L1AbsoluteLoss numComponents 2 <- 1',
    receiver: () => new L1AbsoluteLoss({ numComponents: 2 }),
    good: B3,
    other: () => new L1AbsoluteLoss(),
    otherBatch: B2,
    metric: 'L1AbsoluteLoss',
    message: configs('numComponents: 2', 'numComponents: 1'),
  },
  {
    name: 'L1AbsoluteLoss keepBatchDim false <- true',
    receiver: () => new L1AbsoluteLoss(),
    good: B2,
    other: () => new L1AbsoluteLoss({ keepBatchDim: true }),
    otherBatch: B2,
    metric: 'L1AbsoluteLoss',
    message: configs('keepBatchDim: false', 'keepBatchDim: true'),
  },
  {
    name: 'SparseAutoencoderLoss l1Coefficient 0.001 <- 0.5',
    receiver: () => new SparseAutoencoderLoss(),
    good: B2,
    other: () => new SparseAutoencoderLoss({ l1Coefficient: 0.5 }),
    otherBatch: B2,
    metric: 'SparseAutoencoderLoss',
    message: configs('l1Coefficient: 0.001', 'l1Coefficient: 0.5'),
  },
  {
    name: 'NeuronActivityMetric threshold 0 <- 0.5',
    receiver: () => new NeuronActivityMetric({ numLearnedFeatures: 3 }),
    good: B2,
    other: () => new NeuronActivityMetric({ numLearnedFeatures: 3, thresholdIsDeadPortionFires: 0.5 }),
    otherBatch: B2,
    metric: 'NeuronActivityMetric',
    message: configs('thresholdIsDeadPortionFires: 0', 'thresholdIsDeadPortionFires: 0.5'),
  },
  {
    name: 'FeatureDensityMetric numLearnedFeatures 3 <- 4',
    receiver: () => new FeatureDensityMetric({ numLearnedFeatures: 3 }),
    good: B2,
    other: () => new FeatureDensityMetric({ numLearnedFeatures: 4 }),
    otherBatch: { learnedActivations: zeros([1, 4]) },
    metric: 'FeatureDensityMetric',
    message: configs('numLearnedFeatures: 3', 'numLearnedFeatures: 4'),
  },
  {
    name: 'L0NormMetric numComponents 2 <- unset',
    receiver: () => new L0NormMetric({ numComponents: 2 }),
    good: B3,
    other: () => new L0NormMetric(),
    otherBatch: B2,
    metric: 'L0NormMetric',
    message: configs('numComponents: 2', 'numComponents: null'),
  },
  {
    name: 'ReconstructionScoreMetric numComponents 1 <- 2',
    receiver: () => new ReconstructionScoreMetric(),
    good: RS,
    other: () => new ReconstructionScoreMetric({ numComponents: 2 }),
    otherBatch: RS,
    metric: 'ReconstructionScoreMetric',
    message: configs('numComponents: 1', 'numComponents: 2'),
  },
  {
    name: 'L1AbsoluteLoss <- L0NormMetric',
    receiver: () => new L1AbsoluteLoss(),
    good: B2,
    other: () => new L0NormMetric(),
    otherBatch: B2,
    metric: 'L1AbsoluteLoss',
    message: /L0NormMetric.* into (a )?L1AbsoluteLoss/,
  },
  {
    name: 'L1AbsoluteLoss <- SparseAutoencoderLoss (which has an absolute part too)',
    receiver: () => new L1AbsoluteLoss(),
    good: B2,
    other: () => new SparseAutoencoderLoss(),
    otherBatch: B2,
    metric: 'L1AbsoluteLoss',
    message: /SparseAutoencoderLoss.* into (a )?L1AbsoluteLoss/,
  },
  {
    name: 'NeuronActivityMetric <- NeuronFiredCountMetric (same state part)',
    receiver: () => new NeuronActivityMetric({ numLearnedFeatures: 3 }),
    good: B2,
    other: () => new NeuronFiredCountMetric({ numLearnedFeatures: 3 }),
    otherBatch: B2,
    metric: 'NeuronActivityMetric',
    message: /NeuronFiredCountMetric.* into (a )?NeuronActivityMetric/,
  },
  {
    name: 'FeatureDensityMetric <- NeuronFiredCountMetric (same state part)',
    receiver: () => new FeatureDensityMetric({ numLearnedFeatures: 3 }),
    good: B2,
    other: () => new NeuronFiredCountMetric({ numLearnedFeatures: 3 }),
    otherBatch: B2,
    metric: 'FeatureDensityMetric',
    message: /NeuronFiredCountMetric.* into (a )?FeatureDensityMetric/,
  },
  {
    name: 'CapacityMetric <- L0NormMetric',
    receiver: () => new CapacityMetric(),
    good: B2,
    other: () => new L0NormMetric(),
    otherBatch: B2,
    metric: 'CapacityMetric',
    message: /L0NormMetric.* into (a )?CapacityMetric/,
  },
];

describe('merging or loading a state of another metric or configuration', () => {
  it.each(named(MERGE_CASES, 'name'))('%s: mergeState(metric), mergeState(state), loadState(state), loadState(text)', (_title, c) => {
    const m = c.receiver();
    m.update(c.good);
    const other = c.other();
    other.update(c.otherBatch);
    const otherBefore = snapshot(other);
    const before = snapshot(m);

    expectMergeError(() => m.mergeState(other), c.metric, c.message);
    expectUnchanged(m, before);
    expectUnchanged(other, otherBefore);
    expectMergeError(() => m.mergeState(other.state()), c.metric, c.message);
    expectUnchanged(m, before);
    expectMergeError(() => m.loadState(other.state()), c.metric, c.message);
    expectUnchanged(m, before);
    expectMergeError(() => m.loadState(other.encodeState()), c.metric, c.message);
    expectUnchanged(m, before);
  });

  it.each(named(MERGE_CASES, 'name'))('%s: functional merge refuses it in either order and leaves both states alone', (_title, c) => {
    const m = c.receiver();
    m.update(c.good);
    const other = c.other();
    other.update(c.otherBatch);
    const def = m.definition as AnyDefinition;
    const a = m.state();
    const b = other.state();
    const a0 = structuredClone(a);
    const b0 = structuredClone(b);
    expectMergeError(() => def.merge(a, b), c.metric, c.message);
    expectMergeError(() => def.merge(b, a), c.metric, /cannot merge/);
    expectMergeError(() => def.update(b, c.good), c.metric, /cannot merge/);
    expectMergeError(() => def.compute(b), c.metric, /cannot merge/);
    expect(a).toStrictEqual(a0);
    expect(b).toStrictEqual(b0);
  });

  it('keepBatchDim states with and without a component axis do not merge, and the receiver is unchanged', () => {
    const m = new L1AbsoluteLoss({ keepBatchDim: true });
    m.update(B2);
    const other = new L1AbsoluteLoss({ keepBatchDim: true });
    other.update(B1C);
    const before = snapshot(m);
    const message = /^L1AbsoluteLoss: cannot merge absolute: .*with and without a component axis/;
    expectMergeError(() => m.mergeState(other), 'L1AbsoluteLoss', message);
    expectUnchanged(m, before);
    expectMergeError(() => m.mergeState(other.state()), 'L1AbsoluteLoss', message);
    expectUnchanged(m, before);
    expectMergeError(() => m.definition.merge(other.state(), m.state()), 'L1AbsoluteLoss', message);
  });

  it('SparseAutoencoderLoss keepBatchDim states with and without a component axis do not merge', () => {
    const m = new SparseAutoencoderLoss({ keepBatchDim: true });
    m.update(B1C);
    const other = new SparseAutoencoderLoss({ keepBatchDim: true });
    other.update(B2);
    const before = snapshot(m);
    expectMergeError(() => m.mergeState(other), 'SparseAutoencoderLoss', /^SparseAutoencoderLoss: cannot merge (absolute|mse): .*component axis/);
    expectUnchanged(m, before);
  });

  it('CapacityMetric states with rows of different shapes do not merge, and the receiver is unchanged', () => {
    const m = new CapacityMetric();
    m.update(B2);
    const other = new CapacityMetric();
    other.update({ learnedActivations: zeros([2, 4]) });
    const before = snapshot(m);
    const message = 'CapacityMetric: cannot merge activations: rows of shape [3] and [4] cannot be concatenated';
    expectMergeError(() => m.mergeState(other), 'CapacityMetric', message);
    expectUnchanged(m, before);
    expectMergeError(() => m.mergeState(other.state()), 'CapacityMetric', message);
    expectUnchanged(m, before);
  });

  it('a wrapped metric refuses a state of another configuration under the wrapped name', () => {
    const w = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 }));
    w.update(B3);
    const other = new L0NormMetric({ numComponents: 3 });
    other.update({ learnedActivations: zeros([1, 3, 3]) });
    const before = snapshot(w);
    expectMergeError(() => w.mergeState(other.state()), 'L0NormMetric', configs('numComponents: 2', 'numComponents: 3'));
    expectUnchanged(w, before);
  });

  it('undecodable text is refused by loadState with StateDecodeError, and the metric is unchanged', () => {
    const m = new L1AbsoluteLoss();
    m.update(B2);
    const before = snapshot(m);
    expect(() => m.loadState('{not json')).toThrow(StateDecodeError);
    expect(() => m.loadState(JSON.stringify({ format: 'sae-metrics/state', version: 99 }))).toThrow(StateDecodeError);
    expectUnchanged(m, before);
  });
});

// ---------------------------------------------------------------------------------------------
// Malformed states

interface MalformedCase {
  readonly name: string;
  readonly make: () => AnyMetric;
  readonly good: Batch;
  /** Builds a malformed state from a good one. */
  readonly malform: (s: MetricState) => unknown;
  /** The message after `<metric>: <what>` (`state` for loadState, `the incoming state` for mergeState). */
  readonly tail: RegExp;
}

function withParts(s: MetricState, parts: Record<string, unknown>): unknown {
  return { metric: s.metric, config: s.config, parts };
}
function withPart(s: MetricState, key: string, value: unknown): unknown {
  return withParts(s, { ...(s.parts as Record<string, unknown>), [key]: value });
}
function part(s: MetricState, key: string): Record<string, unknown> {
  return (s.parts as Record<string, Record<string, unknown>>)[key] as Record<string, unknown>;
}

const l1 = (): AnyMetric => new L1AbsoluteLoss();
const l1k = (): AnyMetric => new L1AbsoluteLoss({ keepBatchDim: true });
const na3 = (): AnyMetric => new NeuronActivityMetric({ numLearnedFeatures: 3 });
const cap = (): AnyMetric => new CapacityMetric();
const rs = (): AnyMetric => new ReconstructionScoreMetric();

const MALFORMED: MalformedCase[] = [
  { name: 'not an object (null)', make: l1, good: B2, malform: () => null, tail: /^ must be a state object, got null$/ },
  { name: 'not an object (a number)', make: l1, good: B2, malform: () => 5, tail: /^ must be a state object, got number$/ },
  { name: 'metric missing', make: l1, good: B2, malform: (s) => ({ config: s.config, parts: s.parts }), tail: /cannot merge a state of undefined into L1AbsoluteLoss/ },
  { name: 'config missing', make: l1, good: B2, malform: (s) => ({ metric: s.metric, parts: s.parts }), tail: /different configurations: \{[^}]*\} and undefined/ },
  { name: 'config with an extra key', make: l1, good: B2, malform: (s) => ({ ...s, config: { ...s.config, extra: 1 } }), tail: /different configurations/ },
  { name: 'parts missing', make: l1, good: B2, malform: (s) => ({ metric: s.metric, config: s.config }), tail: /^\.parts must be an object$/ },
  { name: 'parts empty', make: l1, good: B2, malform: (s) => withParts(s, {}), tail: /^\.parts\.absolute is missing$/ },
  { name: 'sum missing', make: l1, good: B2, malform: (s) => withPart(s, 'absolute', { vectors: 2 }), tail: /^\.parts\.absolute\.sum is missing$/ },
  { name: 'vectors missing', make: l1, good: B2, malform: (s) => withPart(s, 'absolute', { sum: part(s, 'absolute').sum }), tail: /^\.parts\.absolute\.vectors is missing$/ },
  { name: 'sum of the wrong length', make: l1, good: B2, malform: (s) => withPart(s, 'absolute', { sum: new Float64Array(2), vectors: 2 }), tail: /^\.parts\.absolute\.sum must have 1 elements, got 2$/ },
  { name: 'sum a Float32Array', make: l1, good: B2, malform: (s) => withPart(s, 'absolute', { sum: new Float32Array(1), vectors: 2 }), tail: /^\.parts\.absolute\.sum must be a Float64Array, got a Float32Array of length 1$/ },
  { name: 'sum a plain array', make: l1, good: B2, malform: (s) => withPart(s, 'absolute', { sum: [6], vectors: 2 }), tail: /^\.parts\.absolute\.sum must be a Float64Array, got an array of length 1$/ },
  { name: 'negative vector count', make: l1, good: B2, malform: (s) => withPart(s, 'absolute', { ...part(s, 'absolute'), vectors: -1 }), tail: /^\.parts\.absolute\.vectors must be a non-negative integer below 2\^53, got -1$/ },
  { name: 'fractional vector count', make: l1, good: B2, malform: (s) => withPart(s, 'absolute', { ...part(s, 'absolute'), vectors: 1.5 }), tail: /^\.parts\.absolute\.vectors must be a non-negative integer below 2\^53, got 1\.5$/ },
  { name: 'NaN vector count', make: l1, good: B2, malform: (s) => withPart(s, 'absolute', { ...part(s, 'absolute'), vectors: Number.NaN }), tail: /^\.parts\.absolute\.vectors must be a non-negative integer below 2\^53, got NaN$/ },
  { name: 'keepBatchDim: componentAxis not a boolean', make: l1k, good: B2, malform: (s) => withPart(s, 'absolute', { ...part(s, 'absolute'), componentAxis: 'no' }), tail: /^\.parts\.absolute\.componentAxis must be a boolean or null, got \"no\"$/ },
  { name: 'keepBatchDim: chunks of Float32Array', make: l1k, good: B2, malform: (s) => withPart(s, 'absolute', { chunks: [new Float32Array(2)], componentAxis: false }), tail: /^\.parts\.absolute\.chunks\[0\] must be a Float64Array, got a Float32Array of length 2$/ },
  { name: 'keepBatchDim: chunks while componentAxis is null', make: l1k, good: B2, malform: (s) => withPart(s, 'absolute', { chunks: [new Float64Array(2)], componentAxis: null }), tail: /^\.parts\.absolute\.chunks must be empty while componentAxis is null$/ },
  { name: 'keepBatchDim: chunks missing', make: l1k, good: B2, malform: (s) => withPart(s, 'absolute', { componentAxis: false }), tail: /^\.parts\.absolute\.chunks is missing$/ },
  { name: 'fired counts of the wrong length', make: na3, good: B2, malform: (s) => withPart(s, 'firedCount', { fired: new Float64Array(2), vectors: 2 }), tail: /^\.parts\.firedCount\.fired must have 3 elements, got 2$/ },
  { name: 'negative fired count', make: na3, good: B2, malform: (s) => withPart(s, 'firedCount', { fired: Float64Array.from([-1, 0, 0]), vectors: 2 }), tail: /^\.parts\.firedCount\.fired must hold exact non-negative integer counts \(below 2\^53\), got -1 at index 0$/ },
  { name: 'fractional fired count', make: na3, good: B2, malform: (s) => withPart(s, 'firedCount', { fired: Float64Array.from([0.5, 0, 0]), vectors: 2 }), tail: /^\.parts\.firedCount\.fired must hold exact non-negative integer counts \(below 2\^53\), got 0\.5 at index 0$/ },
  { name: 'NaN fired count', make: na3, good: B2, malform: (s) => withPart(s, 'firedCount', { fired: Float64Array.from([Number.NaN, 0, 0]), vectors: 2 }), tail: /^\.parts\.firedCount\.fired must hold exact non-negative integer counts \(below 2\^53\), got NaN at index 0$/ },
  { name: 'fired vector count negative', make: na3, good: B2, malform: (s) => withPart(s, 'firedCount', { fired: new Float64Array(3), vectors: -2 }), tail: /^\.parts\.firedCount\.vectors must be a non-negative integer below 2\^53, got -2$/ },
  { name: 'L0 non-zero count fractional', make: () => new L0NormMetric(), good: B2, malform: (s) => withPart(s, 'nonZeroCount', { nonZero: Float64Array.from([1.5]), vectors: 2 }), tail: /^\.parts\.nonZeroCount\.nonZero must hold exact non-negative integer counts \(below 2\^53\), got 1\.5 at index 0$/ },
  { name: 'L0 non-zero counts of the wrong length', make: () => new L0NormMetric({ numComponents: 2 }), good: B3, malform: (s) => withPart(s, 'nonZeroCount', { nonZero: new Float64Array(1), vectors: 2 }), tail: /^\.parts\.nonZeroCount\.nonZero must have 2 elements, got 1$/ },
  { name: 'loss sums of the wrong length', make: rs, good: RS, malform: (s) => withPart(s, 'losses', { ...part(s, 'losses'), source: new Float64Array(2) }), tail: /^\.parts\.losses\.source must have 1 elements, got 2$/ },
  { name: 'zero-ablation loss sums missing', make: rs, good: RS, malform: (s) => withPart(s, 'losses', { source: new Float64Array(1), reconstruction: new Float64Array(1) }), tail: /^\.parts\.losses\.zeroAblation is missing$/ },
  { name: 'capacity: chunks of Float64Array', make: cap, good: B2, malform: (s) => withPart(s, 'activations', { chunks: [new Float64Array(3)], rowShape: [3] }), tail: /^\.parts\.activations\.chunks\[0\] must be a Float32Array, got a Float64Array of length 3$/ },
  { name: 'capacity: chunks while rowShape is null', make: cap, good: B2, malform: (s) => withPart(s, 'activations', { chunks: [new Float32Array(3)], rowShape: null }), tail: /^\.parts\.activations\.chunks must be empty while rowShape is null$/ },
  { name: 'capacity: a partial row', make: cap, good: B2, malform: (s) => withPart(s, 'activations', { chunks: [new Float32Array(4)], rowShape: [3] }), tail: /^\.parts\.activations\.chunks\[0\] must hold whole rows of 3 values \(rowShape \[3\]; at least one row\), got 4 values$/ },
  { name: 'capacity: a zero row dimension', make: cap, good: B2, malform: (s) => withPart(s, 'activations', { chunks: [], rowShape: [0] }), tail: /^\.parts\.activations\.rowShape must be \[feature\] or \[component, feature\] of positive integers, got \[0\]$/ },
  { name: 'capacity: a rank-3 row shape', make: cap, good: B2, malform: (s) => withPart(s, 'activations', { chunks: [], rowShape: [1, 1, 3] }), tail: /^\.parts\.activations\.rowShape must be \[feature\] or \[component, feature\] of positive integers, got \[1,1,3\]$/ },
];

describe('malformed states are refused by loadState, mergeState and functional merge', () => {
  it.each(named(MALFORMED, 'name'))('%s', (_title, c) => {
    const m = c.make();
    m.update(c.good);
    const M = m.definition.metric;
    const bad = c.malform(m.state() as MetricState);
    const before = snapshot(m);
    // a tail starting `^ ` or `^\.` follows `<what>` directly; other tails (about metric or config) may come anywhere
    const direct = c.tail.source.startsWith('^ ') || c.tail.source.startsWith('^\\.');
    const withWhat = (what: string): RegExp =>
      direct ? new RegExp(`^${esc(M)}: ${esc(what)}${c.tail.source.slice(1)}`) : new RegExp(`^${esc(M)}: .*${c.tail.source}`);
    expectMergeError(() => m.loadState(bad as MetricState), M, withWhat('state'));
    expectUnchanged(m, before);
    expectMergeError(() => m.mergeState(bad as MetricState), M, withWhat('the incoming state'));
    expectUnchanged(m, before);
    const def = m.definition as AnyDefinition;
    expectMergeError(() => def.merge(m.state(), bad), M, withWhat('the incoming state'));
    expectMergeError(() => def.merge(bad, m.state()), M, withWhat('the receiving state'));
  });

  it('a fired count larger than the vector count is refused (no feature fires more often than there are vectors)', () => {
    const m = new FeatureDensityMetric({ numLearnedFeatures: 3 });
    m.update(B2);
    const s = m.state();
    const before = snapshot(m);
    const bad = withPart(s, 'firedCount', { fired: Float64Array.from([5, 0, 0]), vectors: 1 });
    expectMergeError(() => m.loadState(bad as typeof s), 'FeatureDensityMetric', /fired/);
    expectUnchanged(m, before);
  });
});

// ---------------------------------------------------------------------------------------------
// Static helpers

interface HelperCase {
  readonly name: string;
  readonly call: () => unknown;
  readonly helper: string;
  readonly field: string;
  readonly message: Expected;
}

const RANK = 'must have rank 2 [batch, feature] or rank 3 [batch, component, feature], got shape';

const HELPER_CASES: HelperCase[] = [
  ...(
    [
      ['L1AbsoluteLoss.calculateAbsSum', (x: unknown) => L1AbsoluteLoss.calculateAbsSum(x as TensorLike)],
      ['functional calculateAbsSum', (x: unknown) => calculateAbsSum(x as TensorLike)],
    ] as [string, (x: unknown) => unknown][]
  ).flatMap(([name, fn]) => {
    const H = 'L1AbsoluteLoss.calculateAbsSum';
    return [
      { name: `${name}: rank 1`, call: () => fn(zeros([3])), helper: H, field: L, message: `${H}: learnedActivations ${RANK} [3]` },
      { name: `${name}: rank 4`, call: () => fn(zeros([1, 1, 1, 3])), helper: H, field: L, message: `${H}: learnedActivations ${RANK} [1, 1, 1, 3]` },
      { name: `${name}: float64 data`, call: () => fn(new Tensor(new Float64Array(6), [2, 3], 'float64')), helper: H, field: L, message: `${H}: learnedActivations must hold float32 data (a Float32Array), got Float64Array` },
      { name: `${name}: a number`, call: () => fn(5), helper: H, field: L, message: `${H}: learnedActivations must be a Tensor (see tensor()), got 5` },
      { name: `${name}: shape/data mismatch`, call: () => fn(like(new Float32Array(5), [2, 3])), helper: H, field: L, message: `${H}: learnedActivations has shape [2, 3] (6 elements) but 5 data elements` },
      { name: `${name}: zero features`, call: () => fn(zeros([2, 0])), helper: H, field: L, message: `${H}: learnedActivations has no features on its last axis, got shape [2, 0]` },
    ];
  }),
  ...(
    [
      ['L2ReconstructionLoss.calculateMse', (d: unknown, s: unknown) => L2ReconstructionLoss.calculateMse(d as TensorLike, s as TensorLike)],
      ['functional calculateMse', (d: unknown, s: unknown) => calculateMse(d as TensorLike, s as TensorLike)],
    ] as [string, (d: unknown, s: unknown) => unknown][]
  ).flatMap(([name, fn]) => {
    const H = 'L2ReconstructionLoss.calculateMse';
    return [
      { name: `${name}: shapes differ`, call: () => fn(zeros([2, 3]), zeros([2, 4])), helper: H, field: D, message: `${H}: decodedActivations and sourceActivations must have the same shape, got [2, 3] and [2, 4]` },
      { name: `${name}: component axis on one side only`, call: () => fn(zeros([2, 1, 4]), zeros([2, 4])), helper: H, field: D, message: `${H}: decodedActivations and sourceActivations must have the same shape, got [2, 1, 4] and [2, 4]` },
      { name: `${name}: decoded rank 1`, call: () => fn(zeros([4]), zeros([4])), helper: H, field: D, message: `${H}: decodedActivations ${RANK} [4]` },
      { name: `${name}: source rank 1`, call: () => fn(zeros([1, 4]), zeros([4])), helper: H, field: S, message: `${H}: sourceActivations ${RANK} [4]` },
      { name: `${name}: source float64`, call: () => fn(zeros([1, 4]), new Tensor(new Float64Array(4), [1, 4], 'float64')), helper: H, field: S, message: `${H}: sourceActivations must hold float32 data (a Float32Array), got Float64Array` },
      { name: `${name}: source empty`, call: () => fn(zeros([1, 4]), zeros([0, 4])), helper: H, field: S, message: `${H}: sourceActivations is an empty batch (no activation vectors), got shape [0, 4]` },
    ];
  }),
  ...(
    [
      ['CapacityMetric.capacities', (x: unknown) => CapacityMetric.capacities(x as TensorLike)],
      ['functional calculateCapacities', (x: unknown) => calculateCapacities(x as TensorLike)],
    ] as [string, (x: unknown) => unknown][]
  ).flatMap(([name, fn]) => {
    const H = 'CapacityMetric.capacities';
    return [
      { name: `${name}: rank 1`, call: () => fn(zeros([3])), helper: H, field: 'features', message: `${H}: features ${RANK} [3]` },
      { name: `${name}: zero components`, call: () => fn(zeros([2, 0, 3])), helper: H, field: 'features', message: `${H}: features has no components, got shape [2, 0, 3]` },
      { name: `${name}: Int32Array data`, call: () => fn(like(new Int32Array(6), [2, 3])), helper: H, field: 'features', message: `${H}: features must hold float32 data (a Float32Array), got Int32Array` },
      { name: `${name}: null`, call: () => fn(null), helper: H, field: 'features', message: `${H}: features must be a Tensor (see tensor()), got null` },
    ];
  }),
];

describe('static helpers reject bad tensors, naming the helper', () => {
  it.each(named(HELPER_CASES, 'name'))('%s', (_title, { call, helper, field, message }) => {
    expectBatchError(call, helper, field, message);
  });
});

// ---------------------------------------------------------------------------------------------
// Messages that should name the right thing (see the report for each)

describe('messages name what is actually wrong', () => {
  it('a field present but undefined is not reported as missing from a batch that lists it', () => {
    const m = new L1AbsoluteLoss();
    expectBatchError(() => m.update({ learnedActivations: undefined } as never), 'L1AbsoluteLoss', L, /^L1AbsoluteLoss: learnedActivations .*got undefined$/);
  });

  it('a helper given undefined says the argument is undefined, not that a batch lacks a field', () => {
    const e = thrown(() => L1AbsoluteLoss.calculateAbsSum(undefined as unknown as TensorLike)) as Error;
    expect(e).toBeInstanceOf(InvalidBatchError);
    expect(e.message).toMatch(/^L1AbsoluteLoss\.calculateAbsSum: learnedActivations .*got undefined$/);
    expect(e.message).not.toMatch(/batch/);
  });

  it('a field given as nested arrays is described as an array', () => {
    const m = new L1AbsoluteLoss();
    expectBatchError(() => m.update({ learnedActivations: [[1, 0, 1]] } as never), 'L1AbsoluteLoss', L, /^L1AbsoluteLoss: learnedActivations must be a Tensor \(see tensor\(\)\), got an array/);
  });

  it('a typed array passed as the batch is named', () => {
    const m = new L1AbsoluteLoss();
    expectBatchError(() => m.update(new Float32Array(3) as never), 'L1AbsoluteLoss', 'batch', /^L1AbsoluteLoss: a batch must be a plain object of tensors.*got a Float32Array/);
  });

  it('options given as an array are described as an array', () => {
    expectOptionError(() => new L1AbsoluteLoss([] as unknown as object), TypeError, /^L1AbsoluteLoss: options must be an object, got an array/);
  });

  it("ReconstructionScoreMetric's batch hint names a field it reads", () => {
    const e = thrown(() => new ReconstructionScoreMetric().update(null as never)) as Error;
    expect(e).toBeInstanceOf(InvalidBatchError);
    expect(e.message).toMatch(/^ReconstructionScoreMetric: a batch must be a plain object of tensors/);
    expect(e.message).not.toMatch(/learnedActivations/);
  });

  it('a vector count given as a string is quoted, so it is not mistaken for the number', () => {
    const m = new L1AbsoluteLoss();
    m.update(B2);
    const s = m.state();
    const bad = withPart(s, 'absolute', { ...part(s, 'absolute'), vectors: '2' });
    expectMergeError(() => m.loadState(bad as typeof s), 'L1AbsoluteLoss', /vectors must be a non-negative integer below 2\^53, got "2"$/);
  });
});

// The setups themselves are valid, so every rejection above is due to the bad input alone.
describe('setups', () => {
  it.each(named(Object.values(SETUP), 'label'))('%s builds a Metric that accepts its good batches', (_title, s) => {
    const m = s.make();
    expect(m).toBeInstanceOf(Metric);
    m.update(s.good);
    m.update(s.next);
    expect(m.updateCount).toBe(2);
  });
});
