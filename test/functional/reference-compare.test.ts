/**
 * Every metric against the float64 reference implementations in test/reference/, on seeded
 * random data of many shapes (with and without a component axis, 1 to 4 components, odd batch and
 * feature sizes, several batches per stream), through both the class and the functional
 * definition:
 *
 * - batch by batch: `forward(batch)` (class) and `compute(update(init(), batch))` (functional)
 *   equal the reference on that batch alone;
 * - accumulated: `compute()` after k batches equals the reference on the first k batches, for
 *   every k (class via `forward` and via `update`, functional via a folded state);
 * - row ranges: `update(init(), batch, {start, end})` equals the reference on the sliced batch, and
 *   folding consecutive ranges equals the whole batch (and the whole stream).
 *
 * Tolerance: shapes exactly; int64 counts exactly; NaN where the reference gives NaN; float64 values
 * of the functional definitions within |actual - expected| <= 1e-12 + 1e-12 * |expected| (both
 * sides work in float64 from the same float32 inputs), of the classes within 1e-12 + 1e-6 *
 * |expected| (the class path runs the default backend, here the WebAssembly pass, which adds
 * blocks of float32 values before carrying them into float64).
 */
import { describe, it, expect } from 'vitest';
import {
  tensor,
  Tensor,
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
} from '../../src/index.js';
import type { Batch, LearnedBatch, RowRange } from '../../src/index.js';
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
import {
  type RefArray,
  refL1AbsoluteLoss,
  refL2ReconstructionLoss,
  refSparseAutoencoderLoss,
  refL0Norm,
  refNeuronActivity,
  refNeuronFiredCount,
  refFeatureDensity,
  refCapacityMetric,
  refCapacities,
  refReconstructionScore,
  refCalculateAbsSum,
  refCalculateMse,
  refClasswiseWithMean,
} from '../reference/index.js';
import { mulberry32 } from '../support/random.js';

// ---------------------------------------------------------------------------------------------
// Comparison

const REL_TOL = 1e-12;
const ABS_TOL = 1e-12;
/** The class path's bound: the WebAssembly pass's (blocks of at most 16 float32 terms per lane, 15u). */
const CLASS_REL_TOL = 1e-6;

type ResultDType = 'float64' | 'int64';

/** Asserts dtype, exact shape, and values (tolerance for float64, exact for int64, NaN = NaN). */
function expectMatches(actual: Tensor, expected: RefArray, dtype: ResultDType, label: string, relTol = REL_TOL): void {
  expect(actual.dtype, `${label}: dtype`).toBe(dtype);
  expect([...actual.shape], `${label}: shape`).toEqual(expected.shape);
  expect(actual.data.length, `${label}: size`).toBe(expected.data.length);
  const mismatches: string[] = [];
  for (let i = 0; i < expected.data.length; i++) {
    const a = actual.data[i] as number;
    const e = expected.data[i] as number;
    let ok: boolean;
    if (Number.isNaN(e)) ok = Number.isNaN(a);
    else if (dtype === 'int64') ok = a === e && Number.isInteger(a);
    else ok = Math.abs(a - e) <= ABS_TOL + relTol * Math.abs(e);
    if (!ok && mismatches.length < 5) mismatches.push(`[${i}] expected ${e}, got ${a}`);
  }
  expect(mismatches, `${label}: values`).toEqual([]);
}

// ---------------------------------------------------------------------------------------------
// Seeded data


type Rng = () => number;

function size(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** A float32 tensor and the same values as a float64 reference array. */
interface Pair {
  readonly t: Tensor<'float32'>;
  readonly ref: RefArray;
}

function pairOf(data: Float32Array, shape: readonly number[]): Pair {
  return { t: tensor(data, shape), ref: { shape: [...shape], data: Array.from(data) } };
}

/**
 * ReLU-like sparse activations: a `zeros` share exactly 0 (a few of them -0), of the rest a
 * `negatives` share negative, magnitudes up to `scale`.
 */
function sparse(rng: Rng, shape: readonly number[], zeros: number, negatives: number, scale: number): Pair {
  const data = new Float32Array(size(shape));
  for (let i = 0; i < data.length; i++) {
    if (rng() < zeros) {
      data[i] = rng() < 0.05 ? -0 : 0;
    } else {
      const magnitude = rng() * scale + 1e-3;
      data[i] = rng() < negatives ? -magnitude : magnitude;
    }
  }
  return pairOf(data, shape);
}

/** `source` plus noise, exactly equal to it at a `same` share of the elements. */
function noisy(rng: Rng, source: Pair, same: number): Pair {
  const s = source.t.data;
  const data = new Float32Array(s.length);
  for (let i = 0; i < s.length; i++) data[i] = rng() < same ? (s[i] as number) : (s[i] as number) + (rng() - 0.5) * 2;
  return pairOf(data, source.t.shape);
}

/** Rows [start, end) of a rank >= 1 pair. */
function slicePair(p: Pair, start: number, end: number): Pair {
  const rows = p.t.shape[0] as number;
  const width = p.t.data.length / rows;
  return pairOf(p.t.data.slice(start * width, end * width), [end - start, ...p.t.shape.slice(1)]);
}

// ---------------------------------------------------------------------------------------------
// Samples and cases

/** A batch, the same data for the reference, its number of rows, and how to slice it. */
interface Sample<T> {
  readonly batch: Batch;
  readonly ref: T;
  readonly rows: number;
  slice(start: number, end: number): Sample<T>;
}

interface ActivationRef {
  readonly learned: RefArray;
  readonly source: RefArray;
  readonly decoded: RefArray;
}

function activationSample(learned: Pair, source: Pair, decoded: Pair): Sample<ActivationRef> {
  return {
    batch: { learnedActivations: learned.t, sourceActivations: source.t, decodedActivations: decoded.t },
    ref: { learned: learned.ref, source: source.ref, decoded: decoded.ref },
    rows: learned.t.shape[0] as number,
    slice: (start, end) =>
      activationSample(slicePair(learned, start, end), slicePair(source, start, end), slicePair(decoded, start, end)),
  };
}

interface ReconRef {
  readonly sourceModelLoss: RefArray;
  readonly sourceModelLossWithReconstruction: RefArray;
  readonly sourceModelLossWithZeroAblation: RefArray;
  readonly componentIdx?: number;
}

function reconSample(source: Pair, recon: Pair, zero: Pair, componentIdx: number | undefined): Sample<ReconRef> {
  const batch: Batch =
    componentIdx === undefined
      ? { sourceModelLoss: source.t, sourceModelLossWithReconstruction: recon.t, sourceModelLossWithZeroAblation: zero.t }
      : {
          sourceModelLoss: source.t,
          sourceModelLossWithReconstruction: recon.t,
          sourceModelLossWithZeroAblation: zero.t,
          componentIdx,
        };
  const base = {
    sourceModelLoss: source.ref,
    sourceModelLossWithReconstruction: recon.ref,
    sourceModelLossWithZeroAblation: zero.ref,
  };
  return {
    batch,
    ref: componentIdx === undefined ? base : { ...base, componentIdx },
    rows: source.t.shape[0] as number,
    slice: (start, end) =>
      reconSample(slicePair(source, start, end), slicePair(recon, start, end), slicePair(zero, start, end), componentIdx),
  };
}

/** The class API used here. */
interface ClassLike {
  forward(batch: Batch): Tensor;
  update(batch: Batch): void;
  compute(): Tensor;
}

/** The functional API used here, with the state type erased. */
interface FunctionalLike {
  init(): unknown;
  update(state: unknown, batch: Batch, rows?: RowRange): unknown;
  compute(state: unknown): Tensor;
}

/** Erases the state type of a functional definition (every state it gets came from itself). */
function erase<S>(d: {
  init(): S;
  update(state: S, batch: Batch, rows?: RowRange): S;
  compute(state: S): Tensor;
}): FunctionalLike {
  return {
    init: () => d.init(),
    update: (state, batch, rows) => d.update(state as S, batch, rows),
    compute: (state) => d.compute(state as S),
  };
}

interface Case<T> {
  readonly name: string;
  readonly dtype: ResultDType;
  readonly make: () => ClassLike;
  readonly definition: FunctionalLike;
  readonly samples: readonly Sample<T>[];
  readonly reference: (refs: T[]) => RefArray;
}

/** (a) batch by batch and (b) accumulated, through the class (forward, update) and the functional definition. */
function checkStream<T>(c: Case<T>): void {
  const refs = c.samples.map((s) => s.ref);
  const viaForward = c.make();
  const viaUpdate = c.make();
  const d = c.definition;
  let state = d.init();
  c.samples.forEach((s, k) => {
    const alone = c.reference([s.ref]);
    const upToK = c.reference(refs.slice(0, k + 1));
    expectMatches(viaForward.forward(s.batch), alone, c.dtype, `class forward(batch ${k})`, CLASS_REL_TOL);
    expectMatches(viaForward.compute(), upToK, c.dtype, `class compute() after forward of ${k + 1} batches`, CLASS_REL_TOL);
    viaUpdate.update(s.batch);
    expectMatches(viaUpdate.compute(), upToK, c.dtype, `class compute() after update of ${k + 1} batches`, CLASS_REL_TOL);
    expectMatches(d.compute(d.update(d.init(), s.batch)), alone, c.dtype, `functional on batch ${k} alone`);
    state = d.update(state, s.batch);
    expectMatches(d.compute(state), upToK, c.dtype, `functional compute after ${k + 1} batches`);
  });
}

/** Splits [0, rows) into consecutive non-empty ranges at random cut points. */
function randomCuts(rng: Rng, rows: number): RowRange[] {
  const cuts = [0];
  for (let i = 1; i < rows; i++) if (rng() < 0.3) cuts.push(i);
  cuts.push(rows);
  const out: RowRange[] = [];
  for (let i = 0; i + 1 < cuts.length; i++) out.push({ start: cuts[i] as number, end: cuts[i + 1] as number });
  return out;
}

/** Row ranges: single ranges against the sliced batch, and consecutive ranges against the whole. */
function checkRowRanges<T>(c: Case<T>, seed: number): void {
  const rng = mulberry32(seed);
  const d = c.definition;
  const refs = c.samples.map((s) => s.ref);
  let streamState = d.init();
  c.samples.forEach((s, k) => {
    const n = s.rows;
    const a = Math.floor(rng() * n);
    const b = a + 1 + Math.floor(rng() * (n - a));
    const ranges: RowRange[] = [
      { start: 0, end: n },
      { start: 0, end: 1 },
      { start: n - 1, end: n },
      { start: a, end: b },
    ];
    for (const r of ranges) {
      expectMatches(
        d.compute(d.update(d.init(), s.batch, r)),
        c.reference([s.slice(r.start, r.end).ref]),
        c.dtype,
        `batch ${k} rows [${r.start}, ${r.end})`,
      );
    }
    const cuts = randomCuts(rng, n);
    let state = d.init();
    for (const r of cuts) {
      state = d.update(state, s.batch, r);
      streamState = d.update(streamState, s.batch, r);
    }
    const label = cuts.map((r) => `[${r.start}, ${r.end})`).join(' ');
    expectMatches(d.compute(state), c.reference([s.ref]), c.dtype, `batch ${k} folded as ${label}`);
    expectMatches(d.compute(streamState), c.reference(refs.slice(0, k + 1)), c.dtype, `stream up to batch ${k} by ranges`);
  });
}

function registerCase<T>(c: Case<T>, seed: number): void {
  it(`${c.name}: batch by batch and accumulated (class and functional)`, () => checkStream(c));
  it(`${c.name}: row ranges`, () => checkRowRanges(c, seed));
}

// ---------------------------------------------------------------------------------------------
// Layouts of activation streams

interface Layout {
  /** Whether batches have a component axis ([B, C, F]) or not ([B, F]). */
  readonly axis: boolean;
  readonly components: number;
  /** Learned features. */
  readonly features: number;
  /** Source / decoded features (may differ from the learned features). */
  readonly inputFeatures: number;
  readonly batchSizes: readonly number[];
  /** Share of learned activations that are exactly zero. */
  readonly zeros: number;
}

const LAYOUTS: readonly Layout[] = [
  { axis: false, components: 1, features: 1, inputFeatures: 2, batchSizes: [1, 3, 7], zeros: 0.6 },
  { axis: false, components: 1, features: 17, inputFeatures: 5, batchSizes: [33, 1, 7, 3], zeros: 0.6 },
  { axis: false, components: 1, features: 64, inputFeatures: 64, batchSizes: [7, 3, 33], zeros: 0.95 },
  { axis: true, components: 1, features: 5, inputFeatures: 3, batchSizes: [3, 7, 1], zeros: 0.6 },
  { axis: true, components: 2, features: 64, inputFeatures: 17, batchSizes: [7, 33, 3], zeros: 0.6 },
  { axis: true, components: 3, features: 17, inputFeatures: 1, batchSizes: [1, 1, 33], zeros: 0.9 },
  { axis: true, components: 4, features: 5, inputFeatures: 9, batchSizes: [33, 7, 3, 1], zeros: 0.6 },
  { axis: true, components: 4, features: 1, inputFeatures: 4, batchSizes: [3, 1, 7], zeros: 0.3 },
];

function describeLayout(l: Layout): string {
  const shape = l.axis ? `[B, ${l.components}, ${l.features}]` : `[B, ${l.features}]`;
  return `${shape}, B = ${l.batchSizes.join('/')}, ${Math.round(l.zeros * 100)}% zeros`;
}

function makeSamples(l: Layout, seed: number): Sample<ActivationRef>[] {
  const rng = mulberry32(seed);
  return l.batchSizes.map((b) => {
    const lead = l.axis ? [b, l.components] : [b];
    const learned = sparse(rng, [...lead, l.features], l.zeros, 0.2, 3);
    const source = sparse(rng, [...lead, l.inputFeatures], 0.3, 0.5, 2);
    const decoded = noisy(rng, source, 0.2);
    return activationSample(learned, source, decoded);
  });
}

/**
 * numComponents: C with a component axis; unset without one (the loss metrics then default to 1,
 * the others have no component axis).
 */
function componentOptions(l: Layout): { numComponents?: number } {
  return l.axis ? { numComponents: l.components } : {};
}

const learnedOf = (refs: ActivationRef[]): RefArray[] => refs.map((r) => r.learned);

LAYOUTS.forEach((layout, li) => {
  const seed = 0x5ae0 + li * 7919;
  const samples = makeSamples(layout, seed);
  const lossOpts = componentOptions(layout);
  const optOpts = componentOptions(layout);

  describe(`activation metrics on ${describeLayout(layout)}`, () => {
    for (const keepBatchDim of [false, true]) {
      registerCase<ActivationRef>(
        {
          name: `L1AbsoluteLoss keepBatchDim=${keepBatchDim}`,
          dtype: 'float64',
          make: () => new L1AbsoluteLoss({ ...lossOpts, keepBatchDim }),
          definition: erase(l1AbsoluteLoss({ ...lossOpts, keepBatchDim })),
          samples,
          reference: (refs) => refL1AbsoluteLoss(learnedOf(refs), { keepBatchDim }),
        },
        seed + 1,
      );
      registerCase<ActivationRef>(
        {
          name: `L2ReconstructionLoss keepBatchDim=${keepBatchDim}`,
          dtype: 'float64',
          make: () => new L2ReconstructionLoss({ ...lossOpts, keepBatchDim }),
          definition: erase(l2ReconstructionLoss({ ...lossOpts, keepBatchDim })),
          samples,
          reference: (refs) =>
            refL2ReconstructionLoss(
              refs.map((r) => ({ decoded: r.decoded, source: r.source })),
              { keepBatchDim },
            ),
        },
        seed + 2,
      );
      const coefficients = li % 2 === 0 ? [0.001, 1] : [0.5, 3.7];
      for (const l1Coefficient of coefficients) {
        registerCase<ActivationRef>(
          {
            name: `SparseAutoencoderLoss l1Coefficient=${l1Coefficient} keepBatchDim=${keepBatchDim}`,
            dtype: 'float64',
            make: () => new SparseAutoencoderLoss({ ...lossOpts, l1Coefficient, keepBatchDim }),
            definition: erase(sparseAutoencoderLoss({ ...lossOpts, l1Coefficient, keepBatchDim })),
            samples,
            reference: (refs) =>
              refSparseAutoencoderLoss(
                refs.map((r) => ({ learned: r.learned, decoded: r.decoded, source: r.source })),
                { l1Coefficient, keepBatchDim },
              ),
          },
          seed + 3,
        );
      }
    }

    registerCase<ActivationRef>(
      {
        name: 'L0NormMetric',
        dtype: 'float64',
        make: () => new L0NormMetric(optOpts),
        definition: erase(l0Norm(optOpts)),
        samples,
        reference: (refs) => refL0Norm(learnedOf(refs), optOpts),
      },
      seed + 4,
    );

    for (const thresholdIsDeadPortionFires of [0, 1e-5, 0.25, 0.5, 1]) {
      const options = { numLearnedFeatures: layout.features, ...optOpts, thresholdIsDeadPortionFires };
      registerCase<ActivationRef>(
        {
          name: `NeuronActivityMetric threshold=${thresholdIsDeadPortionFires}`,
          dtype: 'int64',
          make: () => new NeuronActivityMetric(options),
          definition: erase(neuronActivity(options)),
          samples,
          reference: (refs) => refNeuronActivity(learnedOf(refs), options),
        },
        seed + 5,
      );
    }

    const firedOptions = { numLearnedFeatures: layout.features, ...optOpts };
    registerCase<ActivationRef>(
      {
        name: 'NeuronFiredCountMetric',
        dtype: 'int64',
        make: () => new NeuronFiredCountMetric(firedOptions),
        definition: erase(neuronFiredCount(firedOptions)),
        samples,
        reference: (refs) => refNeuronFiredCount(learnedOf(refs)),
      },
      seed + 6,
    );
    registerCase<ActivationRef>(
      {
        name: 'FeatureDensityMetric',
        dtype: 'float64',
        make: () => new FeatureDensityMetric(firedOptions),
        definition: erase(featureDensity(firedOptions)),
        samples,
        reference: (refs) => refFeatureDensity(learnedOf(refs)),
      },
      seed + 7,
    );

    it('static helpers calculateAbsSum and calculateMse (per batch)', () => {
      samples.forEach((s, k) => {
        const b = s.batch;
        expectMatches(
          L1AbsoluteLoss.calculateAbsSum(b.learnedActivations as Tensor<'float32'>),
          refCalculateAbsSum(s.ref.learned),
          'float64',
          `calculateAbsSum(batch ${k})`,
        );
        expectMatches(
          L2ReconstructionLoss.calculateMse(b.decodedActivations as Tensor<'float32'>, b.sourceActivations as Tensor<'float32'>),
          refCalculateMse(s.ref.decoded, s.ref.source),
          'float64',
          `calculateMse(batch ${k})`,
        );
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Capacity (the reference is O(N^2): small streams)

const CAPACITY_LAYOUTS: readonly Layout[] = [
  { axis: false, components: 1, features: 1, inputFeatures: 1, batchSizes: [1, 3, 7], zeros: 0.6 },
  { axis: false, components: 1, features: 17, inputFeatures: 1, batchSizes: [7, 1, 3], zeros: 0.6 },
  { axis: true, components: 1, features: 5, inputFeatures: 1, batchSizes: [3, 7, 1], zeros: 0.6 },
  { axis: true, components: 2, features: 17, inputFeatures: 1, batchSizes: [1, 7, 3], zeros: 0.6 },
  { axis: true, components: 3, features: 5, inputFeatures: 1, batchSizes: [7, 3], zeros: 0.3 },
  { axis: true, components: 4, features: 64, inputFeatures: 1, batchSizes: [3, 1, 7, 3], zeros: 0.9 },
  { axis: true, components: 4, features: 1, inputFeatures: 1, batchSizes: [33], zeros: 0.6 },
];

CAPACITY_LAYOUTS.forEach((layout, li) => {
  const seed = 0xca9 + li * 104729;
  const samples = makeSamples(layout, seed);
  describe(`CapacityMetric on ${describeLayout(layout)}`, () => {
    registerCase<ActivationRef>(
      {
        name: 'CapacityMetric',
        dtype: 'float64',
        make: () => new CapacityMetric(),
        definition: erase(capacity()),
        samples,
        reference: (refs) => refCapacityMetric(learnedOf(refs)),
      },
      seed + 1,
    );
    it('CapacityMetric.capacities (per batch)', () => {
      samples.forEach((s, k) => {
        expectMatches(
          CapacityMetric.capacities(s.batch.learnedActivations as Tensor<'float32'>),
          refCapacities(s.ref.learned),
          'float64',
          `capacities(batch ${k})`,
        );
      });
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Reconstruction score

interface ReconLayout {
  readonly numComponents: number;
  readonly batchSizes: readonly number[];
  /** Trailing shape of each loss tensor after the item axis ([] for [B], [2] for [B, 2]). */
  readonly trailing: readonly number[];
  /** componentIdx of each batch (undefined: not passed, default 0). */
  readonly componentIdx: readonly (number | undefined)[];
}

const RECON_LAYOUTS: readonly ReconLayout[] = [
  { numComponents: 1, batchSizes: [3, 1, 7, 33], trailing: [], componentIdx: [undefined, 0, undefined, 0] },
  { numComponents: 2, batchSizes: [7, 3, 1, 33], trailing: [], componentIdx: [1, 0, 1, undefined] },
  { numComponents: 3, batchSizes: [1, 33, 7, 3, 7], trailing: [2], componentIdx: [2, 2, 0, undefined, 2] },
  { numComponents: 4, batchSizes: [33, 7, 3, 1, 3, 7], trailing: [], componentIdx: [3, 1, 0, 1, 3, 2] },
  { numComponents: 4, batchSizes: [3, 7, 1], trailing: [3], componentIdx: [1, 1, 3] },
];

function reconSamples(l: ReconLayout, seed: number): Sample<ReconRef>[] {
  const rng = mulberry32(seed);
  return l.batchSizes.map((b, k) => {
    const shape = [b, ...l.trailing];
    const n = size(shape);
    const source = new Float32Array(n);
    const recon = new Float32Array(n);
    const zero = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      source[i] = 1 + rng() * 2;
      recon[i] = (source[i] as number) + rng() * 2;
      zero[i] = (recon[i] as number) + 0.5 + rng() * 3;
    }
    return reconSample(pairOf(source, shape), pairOf(recon, shape), pairOf(zero, shape), l.componentIdx[k]);
  });
}

RECON_LAYOUTS.forEach((layout, li) => {
  const seed = 0x7ec0 + li * 31337;
  const samples = reconSamples(layout, seed);
  const { numComponents } = layout;
  describe(`ReconstructionScoreMetric numComponents=${numComponents}, items ${layout.batchSizes.join('/')} x [${layout.trailing.join(', ')}], componentIdx ${layout.componentIdx.map(String).join('/')}`, () => {
    registerCase<ReconRef>(
      {
        name: 'ReconstructionScoreMetric',
        dtype: 'float64',
        make: () => new ReconstructionScoreMetric({ numComponents }),
        definition: erase(reconstructionScore({ numComponents })),
        samples,
        reference: (refs) => refReconstructionScore(refs, { numComponents }),
      },
      seed + 1,
    );
  });
});

// ---------------------------------------------------------------------------------------------
// ClasswiseWrapperWithMean

/** Asserts a wrapper result against refClasswiseWithMean (same keys, each entry matched as float64). */
function expectClasswise(actual: Record<string, Tensor>, expected: Record<string, RefArray>, label: string): void {
  expect(Object.keys(actual).sort(), `${label}: keys`).toEqual(Object.keys(expected).sort());
  for (const [key, value] of Object.entries(expected)) {
    const got = actual[key];
    expect(got, `${label}: ${key}`).toBeDefined();
    if (got === undefined) return;
    // The entries are float64 here: either the wrapped result is float64, or it is the mean.
    expectMatches(got, value, 'float64', `${label}: ${key}`, CLASS_REL_TOL);
  }
}

interface WrapperCase {
  readonly name: string;
  readonly make: () => ClasswiseWrapperWithMean;
  readonly names: string[];
  readonly prefix: string;
  readonly reference: (refs: ActivationRef[]) => RefArray;
}

describe('ClasswiseWrapperWithMean against refClasswiseWithMean', () => {
  const wrapperLayouts: readonly Layout[] = [
    { axis: true, components: 1, features: 5, inputFeatures: 3, batchSizes: [3, 7, 1], zeros: 0.6 },
    { axis: true, components: 2, features: 17, inputFeatures: 5, batchSizes: [7, 1, 33], zeros: 0.6 },
    { axis: true, components: 4, features: 5, inputFeatures: 2, batchSizes: [1, 3, 7, 3], zeros: 0.9 },
  ];
  wrapperLayouts.forEach((layout, li) => {
    const samples = makeSamples(layout, 0xc1a55 + li);
    const C = layout.components;
    const named = Array.from({ length: C }, (_, i) => `mlp_${i}`);
    const defaultNames = Array.from({ length: C }, (_, i) => String(i));
    const cases: WrapperCase[] = [
      {
        name: 'L0NormMetric, named, prefix l0',
        make: () => new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: C }), { componentNames: named, prefix: 'l0' }),
        names: named,
        prefix: 'l0',
        reference: (refs) => refL0Norm(learnedOf(refs), { numComponents: C }),
      },
      {
        name: 'FeatureDensityMetric, named, prefix feature_density',
        make: () =>
          new ClasswiseWrapperWithMean(new FeatureDensityMetric({ numLearnedFeatures: layout.features, numComponents: C }), {
            componentNames: named,
            prefix: 'feature_density',
          }),
        names: named,
        prefix: 'feature_density',
        reference: (refs) => refFeatureDensity(learnedOf(refs)),
      },
      {
        name: 'L1AbsoluteLoss, default names and prefix',
        make: () => new ClasswiseWrapperWithMean(new L1AbsoluteLoss({ numComponents: C })),
        names: defaultNames,
        prefix: 'l1absoluteloss',
        reference: (refs) => refL1AbsoluteLoss(learnedOf(refs), { keepBatchDim: false }),
      },
      {
        name: 'SparseAutoencoderLoss, named, prefix loss',
        make: () =>
          new ClasswiseWrapperWithMean(new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: 0.25 }), {
            componentNames: named,
            prefix: 'loss',
          }),
        names: named,
        prefix: 'loss',
        reference: (refs) =>
          refSparseAutoencoderLoss(
            refs.map((r) => ({ learned: r.learned, decoded: r.decoded, source: r.source })),
            { l1Coefficient: 0.25, keepBatchDim: false },
          ),
      },
    ];
    for (const wc of cases) {
      it(`${wc.name} on ${describeLayout(layout)}`, () => {
        const refs = samples.map((s) => s.ref);
        const viaForward = wc.make();
        const viaUpdate = wc.make();
        samples.forEach((s, k) => {
          expectClasswise(
            viaForward.forward(s.batch),
            refClasswiseWithMean(wc.reference([s.ref]), wc.names, wc.prefix),
            `forward(batch ${k})`,
          );
          const upToK = refClasswiseWithMean(wc.reference(refs.slice(0, k + 1)), wc.names, wc.prefix);
          expectClasswise(viaForward.compute(), upToK, `compute() after forward of ${k + 1} batches`);
          viaUpdate.update(s.batch);
          expectClasswise(viaUpdate.compute(), upToK, `compute() after update of ${k + 1} batches`);
        });
      });
    }

    it(`NeuronActivityMetric counts per component and their mean on ${describeLayout(layout)}`, () => {
      const options = { numLearnedFeatures: layout.features, numComponents: C, thresholdIsDeadPortionFires: 0.25 };
      const wrapper = new ClasswiseWrapperWithMean(new NeuronActivityMetric(options), {
        componentNames: named,
        prefix: 'dead',
      });
      const refs = samples.map((s) => s.ref);
      samples.forEach((s, k) => {
        wrapper.update(s.batch as LearnedBatch);
        const result = wrapper.compute();
        const expected = refClasswiseWithMean(refNeuronActivity(learnedOf(refs.slice(0, k + 1)), options), named, 'dead');
        expect(Object.keys(result).sort()).toEqual(Object.keys(expected).sort());
        for (const name of named) {
          const key = `dead/${name}`;
          const got = result[key];
          const want = expected[key];
          if (got === undefined || want === undefined) throw new Error(`missing ${key}`);
          expect([...got.shape], key).toEqual(want.shape);
          expect(Array.from(got.data), key).toEqual(want.data);
        }
        const mean = result['dead/mean'];
        const wantMean = expected['dead/mean'];
        if (mean === undefined || wantMean === undefined) throw new Error('missing dead/mean');
        expectMatches(mean, wantMean, 'float64', `dead/mean after ${k + 1} batches`, CLASS_REL_TOL);
      });
    });
  });

  it('keeps the int64 dtype of a count metric in its per-component entries (torch slices keep their dtype)', () => {
    const wrapper = new ClasswiseWrapperWithMean(new NeuronActivityMetric({ numLearnedFeatures: 3, numComponents: 2 }), {
      componentNames: ['a', 'b'],
      prefix: 'dead',
    });
    const result = wrapper.forward({
      learnedActivations: tensor([
        [
          [1, 0, 1],
          [1, 0, 1],
        ],
        [
          [0, 1, 0],
          [1, 0, 1],
        ],
      ]),
    });
    expect(result['dead/a']?.dtype).toBe('int64');
    expect(result['dead/b']?.dtype).toBe('int64');
    expect(result['dead/a']?.item()).toBe(0);
    expect(result['dead/b']?.item()).toBe(1);
    expect(result['dead/mean']?.item()).toBe(0.5);
  });
});
