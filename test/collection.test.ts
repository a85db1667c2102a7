/**
 * MetricCollection: the same values as each metric alone, flattened classwise results, compute
 * groups by state declaration, each shared part computed once per batch, all-or-nothing batch
 * validation, reset, clone and constructor errors.
 *
 * Expected values: each metric run alone on the same batches (bit for bit), anchored against the
 * float64 reference implementations (relative tolerance 1e-12).
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import fc from 'fast-check';
import {
  CapacityMetric,
  ClasswiseWrapperWithMean,
  FeatureDensityMetric,
  InvalidBatchError,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  ReconstructionScoreMetric,
  SparseAutoencoderLoss,
  StateDecodeError,
  StateMergeError,
  Tensor,
  tensor,
} from '../src/index.js';
import type { AnyMetric, Batch, Metric, MetricState } from '../src/index.js';
import { type RefArray, refL1AbsoluteLoss, refNeuronActivity, refReconstructionScore } from './reference/index.js';
import { C, F, fullBatch as batch, randomTensor } from './support/batches.js';
import { ref, thrown } from './support/compare.js';

const REL = 1e-12;

function expectTensorClose(actual: Tensor | undefined, expected: RefArray, rel = REL): void {
  expect(actual).toBeInstanceOf(Tensor);
  const a = actual as Tensor;
  expect(a.shape).toEqual(expected.shape);
  expected.data.forEach((e, i) => {
    const v = a.data[i] as number;
    if (Number.isNaN(e)) expect(v).toBeNaN();
    else expect(Math.abs(v - e), `element ${i}: got ${v}, expected ${e}`).toBeLessThanOrEqual(rel * Math.max(1, Math.abs(e)));
  });
}

function expectTensorSame(actual: Tensor | undefined, expected: Tensor | undefined): void {
  expect(actual).toBeInstanceOf(Tensor);
  expect(expected).toBeInstanceOf(Tensor);
  const a = actual as Tensor;
  const e = expected as Tensor;
  expect(a.dtype).toBe(e.dtype);
  expect(a.shape).toEqual(e.shape);
  expect(Array.from(a.data)).toEqual(Array.from(e.data));
}

/** Same keys, and each value the same tensor bit for bit. */
function expectRecordSame(actual: Readonly<Record<string, Tensor>>, expected: Readonly<Record<string, Tensor>>): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const k of Object.keys(expected)) expectTensorSame(actual[k], expected[k]);
}

/** One of each metric class (and a keepBatchDim loss), in a fixed key order. */
function allMetrics() {
  return {
    l1: new L1AbsoluteLoss({ numComponents: C }),
    l2: new L2ReconstructionLoss({ numComponents: C }),
    sae: new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: 0.25 }),
    l1Items: new L1AbsoluteLoss({ numComponents: C, keepBatchDim: true }),
    l0: new L0NormMetric({ numComponents: C }),
    fired: new NeuronFiredCountMetric({ numLearnedFeatures: F, numComponents: C }),
    density: new FeatureDensityMetric({ numLearnedFeatures: F, numComponents: C }),
    capacity: new CapacityMetric(),
    dead: new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: C, thresholdIsDeadPortionFires: 0.25 }),
    score: new ReconstructionScoreMetric({ numComponents: C }),
  };
}

beforeEach(() => {
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('values', () => {
  const [b1, b2] = [1, 2].map(batch) as [ReturnType<typeof batch>, ReturnType<typeof batch>];

  it('update, forward and compute give the same values as each metric alone', () => {
    const collection = new MetricCollection(allMetrics());
    const alone: Record<string, AnyMetric> = allMetrics();
    const keys = Object.keys(alone);
    expect(collection.keys()).toEqual(keys);

    collection.update(b1);
    for (const k of keys) alone[k]?.update(b1);

    const forwarded = collection.forward(b2);
    const expectedForward: Record<string, Tensor> = {};
    for (const k of keys) expectedForward[k] = alone[k]?.forward(b2) as Tensor;
    expect(Object.keys(forwarded)).toEqual(keys);
    expectRecordSame(forwarded, expectedForward);

    const computed = collection.compute();
    expect(Object.keys(computed)).toEqual(keys);
    const expectedCompute: Record<string, Tensor> = {};
    for (const k of keys) expectedCompute[k] = alone[k]?.compute() as Tensor;
    expectRecordSame(computed, expectedCompute);

    for (const k of keys) expect(collection.metrics[k as keyof typeof collection.metrics].updateCount).toBe(2);
  });

  it('agrees with the reference implementations', () => {
    const collection = new MetricCollection(allMetrics());
    collection.update(b1);
    const forwarded = collection.forward(b2);
    const computed = collection.compute();
    const learned = [b1, b2].map((b) => ref(b.learnedActivations));
    const losses = [b1, b2].map((b) => ({
      sourceModelLoss: ref(b.sourceModelLoss),
      sourceModelLossWithReconstruction: ref(b.sourceModelLossWithReconstruction),
      sourceModelLossWithZeroAblation: ref(b.sourceModelLossWithZeroAblation),
      componentIdx: b.componentIdx as number,
    }));
    const deadOptions = { numLearnedFeatures: F, numComponents: C, thresholdIsDeadPortionFires: 0.25 };

    expectTensorClose(forwarded.l1, refL1AbsoluteLoss(learned.slice(1), { keepBatchDim: false }));
    expectTensorClose(computed.l1, refL1AbsoluteLoss(learned, { keepBatchDim: false }));
    expectTensorClose(forwarded.l1Items, refL1AbsoluteLoss(learned.slice(1), { keepBatchDim: true }));
    expectTensorClose(computed.l1Items, refL1AbsoluteLoss(learned, { keepBatchDim: true }));
    expectTensorClose(forwarded.dead, refNeuronActivity(learned.slice(1), deadOptions));
    expectTensorClose(computed.dead, refNeuronActivity(learned, deadOptions));
    expectTensorClose(computed.score, refReconstructionScore(losses, { numComponents: C }));
  });

  it('flattens the keys of a ClasswiseWrapperWithMean into the top level', () => {
    const make = () => ({
      l1: new L1AbsoluteLoss({ numComponents: C }),
      l0: new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: C }), { componentNames: ['a', 'b'], prefix: 'l0' }),
      dead: new ClasswiseWrapperWithMean(new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: C })),
    });
    const collection = new MetricCollection(make());
    const alone = make();
    const expectedKeys = [
      'l1',
      'l0/a',
      'l0/b',
      'l0/mean',
      'neuronactivitymetric/0',
      'neuronactivitymetric/1',
      'neuronactivitymetric/mean',
    ];

    const forwarded = collection.forward(b1);
    expect(Object.keys(forwarded)).toEqual(expectedKeys);
    expectRecordSame(forwarded, { l1: alone.l1.forward(b1), ...alone.l0.forward(b1), ...alone.dead.forward(b1) });

    collection.update(b2);
    alone.l1.update(b2);
    alone.l0.update(b2);
    alone.dead.update(b2);
    const computed = collection.compute();
    expect(Object.keys(computed)).toEqual(expectedKeys);
    expectRecordSame(computed, { l1: alone.l1.compute(), ...alone.l0.compute(), ...alone.dead.compute() });
  });

  // Issue 11: as torchmetrics' MetricCollection (_compute_and_reduce with _flatten_dict): as soon as
  // any flattened key would be duplicated, EVERY key of EVERY record result becomes
  // `<collectionKey>_<key>`; plain results keep their collection key. Values by hand for
  // [[[1, 0, 2], [0, 0, 1]]]: component a has L1 3 and L0 2, component b L1 1 and L0 1.
  const clashBatch = { learnedActivations: tensor([[[1, 0, 2], [0, 0, 1]]]) };
  const wrapper = <S extends MetricState<object>>(metric: Metric<S, Tensor>, prefix = 'm') =>
    new ClasswiseWrapperWithMean(metric, { componentNames: ['a', 'b'], prefix });
  const items = (r: Readonly<Record<string, Tensor>>) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v.toArray()]));

  it('two wrappers with the same keys: every key of both is prefixed with its collection key (as Python)', () => {
    const collection = new MetricCollection({
      l1: wrapper(new L1AbsoluteLoss({ numComponents: 2 })),
      l0: wrapper(new L0NormMetric({ numComponents: 2 })),
    });
    const expected = { 'l0_m/a': 2, 'l0_m/b': 1, 'l0_m/mean': 1.5, 'l1_m/a': 3, 'l1_m/b': 1, 'l1_m/mean': 2 };
    expect(items(collection.forward(clashBatch))).toEqual(expected);
    expect(items(collection.compute())).toEqual(expected);
  });

  it('a wrapper key equal to a plain metric key: the plain one keeps its key, every wrapper key is prefixed (as Python)', () => {
    const collection = new MetricCollection({
      'm/mean': new L1AbsoluteLoss({ numComponents: 2 }),
      w: wrapper(new L0NormMetric({ numComponents: 2 })),
    });
    expect(items(collection.forward(clashBatch))).toEqual({ 'm/mean': [3, 1], 'w_m/a': 2, 'w_m/b': 1, 'w_m/mean': 1.5 });
  });

  it('without a clash no key is prefixed, and one clash prefixes the keys of every record result', () => {
    const clean = new MetricCollection({ l1: wrapper(new L1AbsoluteLoss({ numComponents: 2 }), 'x'), l0: wrapper(new L0NormMetric({ numComponents: 2 })) });
    expect(Object.keys(clean.forward(clashBatch))).toEqual(['x/a', 'x/b', 'x/mean', 'm/a', 'm/b', 'm/mean']);
    const three = new MetricCollection({
      x: wrapper(new L1AbsoluteLoss({ numComponents: 2 }), 'x'),
      l1: wrapper(new L1AbsoluteLoss({ numComponents: 2 })),
      l0: wrapper(new L0NormMetric({ numComponents: 2 })),
      plain: new L0NormMetric({ numComponents: 2 }),
    });
    expect(Object.keys(three.forward(clashBatch)).sort()).toEqual(
      ['x_x/a', 'x_x/b', 'x_x/mean', 'l1_m/a', 'l1_m/b', 'l1_m/mean', 'l0_m/a', 'l0_m/b', 'l0_m/mean', 'plain'].sort(),
    );
  });
});

describe('computeGroups', () => {
  it('groups L1, L2 and SAE losses of the same numComponents and keepBatchDim', () => {
    const collection = new MetricCollection({
      l1: new L1AbsoluteLoss({ numComponents: C }),
      l2: new L2ReconstructionLoss({ numComponents: C }),
      sae: new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: 0.5 }),
      l1Items: new L1AbsoluteLoss({ numComponents: C, keepBatchDim: true }),
      saeItems: new SparseAutoencoderLoss({ numComponents: C, keepBatchDim: true }),
      l2One: new L2ReconstructionLoss(),
      saeOne: new SparseAutoencoderLoss({ numComponents: 1 }),
    });
    expect(collection.computeGroups).toEqual([['l1', 'l2', 'sae'], ['l1Items', 'saeItems'], ['l2One', 'saeOne']]);
  });

  it('groups the fired-count family of one shape, whatever the threshold', () => {
    const collection = new MetricCollection({
      dead: new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: C }),
      fired: new NeuronFiredCountMetric({ numLearnedFeatures: F, numComponents: C }),
      wider: new NeuronFiredCountMetric({ numLearnedFeatures: F + 1, numComponents: C }),
      density: new FeatureDensityMetric({ numLearnedFeatures: F, numComponents: C }),
      dead50: new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: C, thresholdIsDeadPortionFires: 0.5 }),
      flat: new FeatureDensityMetric({ numLearnedFeatures: F }),
      flatDead: new NeuronActivityMetric({ numLearnedFeatures: F, thresholdIsDeadPortionFires: 1 }),
    });
    expect(collection.computeGroups).toEqual([
      ['dead', 'fired', 'density', 'dead50'],
      ['wider'],
      ['flat', 'flatDead'],
    ]);
  });

  it('a group whose metrics hold different states (one updated, merged or reset alone) folds each its own, bit for bit as alone', () => {
    const make = () => ({
      fired: new NeuronFiredCountMetric({ numLearnedFeatures: F, numComponents: C }),
      density: new FeatureDensityMetric({ numLearnedFeatures: F, numComponents: C }),
      dead: new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: C, thresholdIsDeadPortionFires: 0.5 }),
      l1: new L1AbsoluteLoss({ numComponents: C }),
      sae: new SparseAutoencoderLoss({ numComponents: C }),
    });
    const members = make();
    const alone = make();
    const collection = new MetricCollection(members);
    const both = (f: (m: Record<string, AnyMetric>) => void) => [members, alone].forEach(f);
    const donor = new FeatureDensityMetric({ numLearnedFeatures: F, numComponents: C });
    donor.update(batch(13));
    // Each step leaves the group's states shared, equal, or different; the oracle updates each metric alone.
    const steps: ((i: number) => void)[] = [
      () => both((m) => m.fired?.update(batch(11))),
      () => both((m) => m.density?.mergeState(donor)),
      () => both((m) => m.dead?.reset()),
      () => both((m) => m.l1?.update(batch(12))),
      () => {
        collection.reset();
        for (const m of Object.values(alone)) m.reset();
      },
    ];
    for (let i = 0; i < 12; i++) {
      if (i % 2 === 1) (steps[(i >> 1) % steps.length] as (i: number) => void)(i);
      const b = batch(20 + i);
      const got = i % 3 === 0 ? collection.forward(b) : (collection.update(b), undefined);
      const want: Record<string, unknown> = {};
      for (const [k, m] of Object.entries(alone)) want[k] = i % 3 === 0 ? m.forward(b) : m.update(b);
      if (got !== undefined) expectRecordSame(got, want as Record<string, Tensor>);
      for (const [k, m] of Object.entries(members)) expect(m.encodeState(), `${k} after step ${i}`).toBe((alone as Record<string, AnyMetric>)[k]?.encodeState());
    }
  });

  it('keeps metrics of other state declarations apart', () => {
    const collection = new MetricCollection(allMetrics());
    expect(collection.computeGroups).toEqual([
      ['l1', 'l2', 'sae'],
      ['l1Items'],
      ['l0'],
      ['fired', 'density', 'dead'],
      ['capacity'],
      ['score'],
    ]);
  });
});

describe('shared state parts', () => {
  it('computes each shared part once per batch', () => {
    // The definitions and their `parts` records are frozen, but the part objects they hold are
    // not, so each part's producers (`fromBatch`, and `fromStats` for parts made from the fused
    // pass) can be spied on. A call counts when no producer of the same declaration id is already
    // running (`fromBatch` may delegate to `fromStats`), and calls are summed by declaration id
    // over every metric's part objects: this counts how often each shared part was computed,
    // whichever metric's copy of the declaration the collection happens to use.
    const collection = new MetricCollection({
      l1: new L1AbsoluteLoss({ numComponents: C }),
      l2: new L2ReconstructionLoss({ numComponents: C }),
      sae: new SparseAutoencoderLoss({ numComponents: C }),
      sae2: new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: 0.5 }),
      dead: new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: C }),
      dead50: new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: C, thresholdIsDeadPortionFires: 0.5 }),
      fired: new NeuronFiredCountMetric({ numLearnedFeatures: F, numComponents: C }),
      density: new FeatureDensityMetric({ numLearnedFeatures: F, numComponents: C }),
      l0: new L0NormMetric({ numComponents: C }),
      score: new ReconstructionScoreMetric({ numComponents: C }),
      score2: new ReconstructionScoreMetric({ numComponents: C }),
    });
    const computed = new Map<string, number>();
    const running = new Map<string, number>();
    const seen = new Set<object>();
    let copies = 0;
    for (const metric of Object.values(collection.metrics)) {
      for (const part of Object.values(metric.definition.parts)) {
        if (seen.has(part)) continue;
        seen.add(part);
        copies++;
        expect(Object.isFrozen(part), `part ${part.id} must not be frozen for this test`).toBe(false);
        computed.set(part.id, 0);
        for (const method of ['fromBatch', 'fromStats'] as const) {
          const original = part[method];
          if (original === undefined) continue;
          const call = original.bind(part) as (...args: unknown[]) => unknown;
          type Producers = Record<typeof method, (...args: unknown[]) => unknown>;
          vi.spyOn(part as unknown as Producers, method).mockImplementation((...args: unknown[]) => {
            const depth = running.get(part.id) ?? 0;
            if (depth === 0) computed.set(part.id, (computed.get(part.id) ?? 0) + 1);
            running.set(part.id, depth + 1);
            try {
              return call(...args);
            } finally {
              running.set(part.id, depth);
            }
          });
        }
      }
    }
    const ids = [...computed.keys()];
    // abs and mse sums, fired counts, non-zero counts, loss sums; several metrics per declaration.
    expect(ids).toHaveLength(5);
    expect(copies).toBeGreaterThan(ids.length);

    const b1 = batch(1);
    const b2 = batch(2);
    collection.update(b1);
    expect(computed).toEqual(new Map(ids.map((id) => [id, 1])));
    collection.forward(b2);
    expect(computed).toEqual(new Map(ids.map((id) => [id, 2])));
    collection.compute();
    expect(computed).toEqual(new Map(ids.map((id) => [id, 2])));

    // The spied parts still computed the right values.
    vi.restoreAllMocks();
    const alone = new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: 0.5 });
    alone.update(b1);
    alone.update(b2);
    expectTensorSame(collection.compute().sae2, alone.compute());
    const fired = new NeuronFiredCountMetric({ numLearnedFeatures: F, numComponents: C });
    fired.update(b1);
    fired.update(b2);
    expectTensorSame(collection.compute().fired, fired.compute());
  });
});

describe('rejected batches', () => {
  const good = batch(1);
  const { sourceModelLoss: _unused, ...withoutLoss } = batch(2);
  const cases: [string, unknown, string][] = [
    // Only the last metric (the reconstruction score) rejects these two.
    ['a batch without sourceModelLoss', withoutLoss, 'ReconstructionScoreMetric'],
    ['a componentIdx out of range', { ...batch(2), componentIdx: C }, 'ReconstructionScoreMetric'],
    // Rejected by several metrics.
    ['learned activations with another feature count', { ...batch(2), learnedActivations: randomTensor([2, C, F + 1], 9) }, ''],
    ['activations without a component axis', { ...batch(2), learnedActivations: randomTensor([3, F], 9) }, ''],
    ['null', null, 'MetricCollection'],
  ];

  it.each(cases)('%s throws InvalidBatchError and leaves every metric unchanged', (_, bad, metric) => {
    const collection = new MetricCollection(allMetrics());
    collection.update(good);
    const metrics = Object.entries(collection.metrics);
    const states = metrics.map(([, m]) => m.state());
    const values = collection.compute();
    for (const op of ['update', 'forward'] as const) {
      const e = thrown(() => collection[op](bad as never));
      expect(e).toBeInstanceOf(InvalidBatchError);
      if (metric !== '') expect((e as InvalidBatchError).metric).toBe(metric);
      metrics.forEach(([key, m], i) => {
        expect(m.updateCount, key).toBe(1);
        expect(m.state(), key).toEqual(states[i]);
      });
    }
    expectRecordSame(collection.compute(), values);
    collection.update(batch(3));
    for (const [, m] of metrics) expect(m.updateCount).toBe(2);
  });
});

describe('atomic: update, forward and mergeState apply to every metric or to none (issue 10, item 7)', () => {
  const BIG = 2 ** 53 - 1;
  const LF = 3; // features
  /** Metrics that read [rows, 3] learned activations; the fired-count family shares one part. */
  const MAKERS = {
    l0: () => new L0NormMetric(),
    dens: () => new FeatureDensityMetric({ numLearnedFeatures: LF }),
    fired: () => new NeuronFiredCountMetric({ numLearnedFeatures: LF }),
    dead: () => new NeuronActivityMetric({ numLearnedFeatures: LF }),
    l1: () => new L1AbsoluteLoss(),
    l1Items: () => new L1AbsoluteLoss({ keepBatchDim: true }),
    capacity: () => new CapacityMetric(),
  } as const;
  type Key = keyof typeof MAKERS;
  /** The vector count of a metric's state, or undefined for states without one. */
  const vectorsOf = (m: AnyMetric): number | undefined => {
    const part = Object.values(m.state().parts as Record<string, { vectors?: number }>)[0];
    return part?.vectors;
  };
  /** A metric whose vector count is BIG - headroom (and whose fired / non-zero counts are 0). */
  function preloaded(key: Key, headroom: number | undefined): AnyMetric {
    const m = MAKERS[key]() as AnyMetric;
    if (headroom === undefined || vectorsOf(m) === undefined) {
      m.update({ learnedActivations: randomTensor([2, LF], 7) });
      return m;
    }
    const s = m.state();
    const parts = Object.fromEntries(
      Object.entries(s.parts as Record<string, Record<string, unknown>>).map(([k, p]) => [k, { ...p, vectors: BIG - headroom }]),
    );
    m.loadState({ ...s, parts } as never);
    return m;
  }
  const snapshot = (c: MetricCollection) => Object.values(c.metrics).map((m) => [m.encodeState(), m.updateCount] as const);

  const arbitrary = fc.record({
    keys: fc.subarray(Object.keys(MAKERS) as Key[], { minLength: 2 }),
    headrooms: fc.array(fc.option(fc.integer({ min: 0, max: 4 }), { nil: undefined }), { minLength: 7, maxLength: 7 }),
    rows: fc.integer({ min: 1, max: 4 }),
    features: fc.constantFrom(LF, LF, LF, LF + 1),
    op: fc.constantFrom('update', 'forward', 'mergeState', 'mergeStates'),
    seed: fc.nat(1000),
  });

  it('a metric that refuses (a count past 2^53 - 1, a batch it rejects) leaves every metric as it was; else all change as each would alone', () => {
    let refusals = 0;
    let applied = 0;
    fc.assert(
      fc.property(arbitrary, ({ keys, headrooms, rows, features, op, seed }) => {
        const make = (headroom: (i: number) => number | undefined) =>
          new MetricCollection(Object.fromEntries(keys.map((k, i) => [k, preloaded(k, headroom(i))])));
        const collection = make((i) => headrooms[i]);
        const before = snapshot(collection);
        const batch = { learnedActivations: randomTensor([rows, features], seed) };
        const other = make(() => undefined);
        for (const m of Object.values(other.metrics)) m.reset();
        other.update({ learnedActivations: randomTensor([rows, LF], seed) });
        // Expected by hand: a metric with a vector count refuses when rows more vectors pass 2^53 - 1;
        // the fired-count family and capacity (rows of 3 so far) reject a batch of another feature
        // count (merges carry no batch).
        const refuses = keys.some((k, i) => {
          const headroom = headrooms[i];
          const count = headroom !== undefined && vectorsOf(MAKERS[k]() as AnyMetric) !== undefined && headroom < rows;
          const shape = op.startsWith('merge') ? false : features !== LF && ['dens', 'fired', 'dead', 'capacity'].includes(k);
          return count || shape;
        });
        // Each metric alone (clones), the oracle for the values.
        const alone = Object.entries(collection.metrics).map(([k, m]) => {
          const c = m.clone();
          try {
            if (op === 'update' || op === 'forward') c[op](batch);
            else c.mergeState(other.metrics[k] as AnyMetric);
            return c;
          } catch {
            return undefined;
          }
        });
        expect(alone.some((c) => c === undefined)).toBe(refuses);

        const run = (): unknown => {
          if (op === 'update') return collection.update(batch);
          if (op === 'forward') return collection.forward(batch);
          if (op === 'mergeState') return collection.mergeState(other);
          return collection.mergeState(structuredClone(other.state()));
        };
        if (refuses) {
          refusals++;
          const e = thrown(run);
          expect(e instanceof StateMergeError || e instanceof InvalidBatchError, String(e)).toBe(true);
          expect(snapshot(collection)).toEqual(before);
          return;
        }
        applied++;
        run();
        Object.values(collection.metrics).forEach((m, i) => {
          const [text, count] = before[i] as readonly [string, number];
          expect(m.encodeState()).toBe((alone[i] as AnyMetric).encodeState());
          expect(m.encodeState()).not.toBe(text);
          expect(m.updateCount).toBe(op === 'mergeStates' ? count : count + 1);
          const v = vectorsOf(m);
          if (v !== undefined) expect(v).toBe((vectorsOf(MAKERS[keys[i] as Key]() as AnyMetric) ?? 0) + (headrooms[i] === undefined ? 2 : BIG - (headrooms[i] as number)) + rows);
        });
      }),
      { numRuns: 300, seed: 107 },
    );
    expect(refusals).toBeGreaterThan(50);
    expect(applied).toBeGreaterThan(50);
  });

  it("the issue's case: { l0, dens } where dens's count would pass 2^53 changes neither", () => {
    const l0 = new L0NormMetric();
    const dens = preloaded('dens', 1);
    const collection = new MetricCollection({ l0, dens });
    const batch = { learnedActivations: randomTensor([2, LF], 3) };
    for (const op of ['update', 'forward'] as const) {
      expect(thrown(() => collection[op](batch))).toBeInstanceOf(StateMergeError);
      expect(l0.updateCount).toBe(0);
      expect(dens.updateCount).toBe(0);
      expect(vectorsOf(l0)).toBe(0);
      expect(vectorsOf(dens)).toBe(BIG - 1);
    }
  });

  it('mergeState refuses other keys, and names the key and field of a refused state; nothing changes', () => {
    const collection = new MetricCollection({ l0: new L0NormMetric(), l1: new L1AbsoluteLoss() });
    collection.update({ learnedActivations: randomTensor([2, LF], 4) });
    const before = snapshot(collection);
    const states = collection.state();
    const bad = { ...states, l1: { ...states.l1, parts: { absolute: { sum: Float64Array.of(-1), vectors: 2 } } } };
    const e = thrown(() => collection.mergeState(bad));
    expect(e).toBeInstanceOf(StateMergeError);
    expect(e.message).toMatch(/^MetricCollection: l1: L1AbsoluteLoss: the incoming state\.parts\.absolute\.sum cannot be negative/);
    expect((e as StateMergeError).field).toBe('l1.parts.absolute.sum');
    expect(thrown(() => collection.mergeState({ l0: states.l0 }))).toBeInstanceOf(StateMergeError);
    expect(thrown(() => collection.mergeState({ ...states, extra: states.l0 }))).toBeInstanceOf(StateMergeError);
    expect(thrown(() => collection.mergeState({ ...states, l1: '{"format":' }))).toBeInstanceOf(StateDecodeError);
    expect(snapshot(collection)).toEqual(before);
  });
});

describe('reset and clone', () => {
  const [b1, b2, b3] = [1, 2, 3].map(batch) as [ReturnType<typeof batch>, ReturnType<typeof batch>, ReturnType<typeof batch>];

  it('reset() resets every metric', () => {
    const collection = new MetricCollection(allMetrics());
    collection.update(b1);
    collection.forward(b2);
    collection.reset();
    const fresh = allMetrics();
    for (const [key, m] of Object.entries(collection.metrics)) {
      expect(m.updateCount, key).toBe(0);
      expect(m.state(), key).toEqual(fresh[key as keyof typeof fresh].state());
    }
    collection.update(b3);
    const alone = new MetricCollection(allMetrics());
    alone.update(b3);
    expectRecordSame(collection.compute(), alone.compute());
  });

  it('clone() copies every metric, independently', () => {
    const collection = new MetricCollection(allMetrics());
    collection.update(b1);
    const copy = collection.clone();
    expect(copy).toBeInstanceOf(MetricCollection);
    expect(copy.keys()).toEqual(collection.keys());
    for (const key of collection.keys()) {
      const k = key as keyof typeof collection.metrics;
      expect(copy.metrics[k]).not.toBe(collection.metrics[k]);
      expect(copy.metrics[k].constructor).toBe(collection.metrics[k].constructor);
      expect(copy.metrics[k].updateCount).toBe(1);
    }
    expectRecordSame(copy.compute(), collection.compute());
    expect(copy.computeGroups).toEqual(collection.computeGroups);

    const before = collection.compute();
    copy.update(b2);
    expectRecordSame(collection.compute(), before);
    collection.update(b3);
    const expectedCopy = new MetricCollection(allMetrics());
    expectedCopy.update(b1);
    expectedCopy.update(b2);
    expectRecordSame(copy.compute(), expectedCopy.compute());
    const expectedOriginal = new MetricCollection(allMetrics());
    expectedOriginal.update(b1);
    expectedOriginal.update(b3);
    expectRecordSame(collection.compute(), expectedOriginal.compute());
  });
});

describe('constructor errors', () => {
  const error = (fn: () => unknown, message: string): void => {
    const e = thrown(fn);
    expect(e).toBeInstanceOf(TypeError);
    expect(e.message).toBe(message);
  };

  it('rejects an empty record', () => {
    error(() => new MetricCollection({}), 'MetricCollection: metrics must hold at least one metric, got an empty record');
  });

  it('rejects a value that is not a metric', () => {
    error(
      () => new MetricCollection({ l1: new L1AbsoluteLoss(), other: {} as AnyMetric }),
      'MetricCollection: metrics.other must be a sae-metrics Metric, got an object',
    );
    error(
      () => new MetricCollection({ n: 3 as unknown as AnyMetric }),
      'MetricCollection: metrics.n must be a sae-metrics Metric, got 3',
    );
  });

  it('rejects the same metric instance twice', () => {
    const l1 = new L1AbsoluteLoss();
    error(
      () => new MetricCollection({ a: l1, b: l1 }),
      'MetricCollection: each metric may appear once; clone() a metric to use it under two keys',
    );
    // A clone is another instance.
    expect(new MetricCollection({ a: l1, b: l1.clone() }).keys()).toEqual(['a', 'b']);
  });

  it('rejects something that is not a record', () => {
    error(
      () => new MetricCollection(null as unknown as Record<string, AnyMetric>),
      'MetricCollection: metrics must be a record of metrics by name, got null',
    );
    error(
      () => new MetricCollection([new L1AbsoluteLoss()] as unknown as Record<string, AnyMetric>),
      'MetricCollection: metrics must be a record of metrics by name, got an array of length 1',
    );
  });
});

describe('a collection key that is also a name on Object.prototype', () => {
  // JSON.parse (a collection built from a config file) makes __proto__ an own key. Values by hand:
  // [[1, 0, 2]] gives L0 2 and L1 3.
  it.each(['__proto__', 'constructor', 'toString'])('%s is a key like any other in compute, forward, state, mergeState and clone', (key) => {
    const make = () => {
      const metrics = JSON.parse(`{"${key}": 0, "l1": 0}`) as Record<string, AnyMetric>;
      Object.defineProperty(metrics, key, { value: new L0NormMetric(), enumerable: true });
      metrics.l1 = new L1AbsoluteLoss();
      return new MetricCollection(metrics);
    };
    const c = make();
    const b = { learnedActivations: tensor([[1, 0, 2]]) };
    const forwarded = c.forward(b);
    const value = (r: Readonly<Record<string, { item(): number }>>) => [Object.keys(r), Object.hasOwn(r, key) ? r[key]?.item() : undefined, r.l1?.item()];
    expect(value(forwarded)).toEqual([[key, 'l1'], 2, 3]);
    expect(value(c.compute())).toEqual([[key, 'l1'], 2, 3]);
    expect(Object.keys(c.state())).toEqual([key, 'l1']);
    const other = make();
    other.mergeState(c.state());
    other.mergeState(c);
    expect(value(other.compute())).toEqual([[key, 'l1'], 2, 3]);
    expect(other.metrics[key]?.updateCount).toBe(1);
    expect(value(c.clone().compute())).toEqual([[key, 'l1'], 2, 3]);
  });
});
