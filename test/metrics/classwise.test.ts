/**
 * ClasswiseWrapperWithMean: keys `prefix/name` and `prefix/mean`, defaults, 0-d results, the mean
 * over the first axis, option errors, and how its state relates to the wrapped metric's.
 *
 * Expected values come from the reference implementations (`refClasswiseWithMean` over the
 * reference metric), compared with a relative tolerance of 1e-12, or are written out by hand.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import {
  ClasswiseWrapperWithMean,
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  NeuronActivityMetric,
  StateMergeError,
  Tensor,
  tensor,
} from '../../src/index.js';
import type { Batch, LearnedBatch } from '../../src/index.js';
import {
  type RefArray,
  refClasswiseWithMean,
  refFeatureDensity,
  refL0Norm,
  refL2ReconstructionLoss,
  refNeuronActivity,
} from '../reference/index.js';
import { randomTensor as randomValues } from '../support/batches.js';
import { ref, thrown } from '../support/compare.js';

const REL = 1e-12;

function randomTensor(shape: number[], seed: number, zeros = 0.4): Tensor<'float32'> {
  return randomValues(shape, seed, -2, 2, zeros);
}

function expectTensorClose(actual: Tensor | undefined, expected: RefArray | undefined, what: string): void {
  expect(actual, what).toBeInstanceOf(Tensor);
  expect(expected, what).toBeDefined();
  const a = actual as Tensor;
  const e = expected as RefArray;
  expect(a.shape, what).toEqual(e.shape);
  e.data.forEach((x, i) => {
    const v = a.data[i] as number;
    if (Number.isNaN(x)) expect(v, what).toBeNaN();
    else expect(Math.abs(v - x), `${what}[${i}]: got ${v}, expected ${x}`).toBeLessThanOrEqual(REL * Math.max(1, Math.abs(x)));
  });
}

/** Same keys in the same order, each value close to the reference. */
function expectRecordClose(actual: Readonly<Record<string, Tensor>>, expected: Record<string, RefArray>): void {
  expect(Object.keys(actual)).toEqual(Object.keys(expected));
  for (const k of Object.keys(expected)) expectTensorClose(actual[k], expected[k], k);
}

const learned = (shape: number[], seed: number): LearnedBatch => ({ learnedActivations: randomTensor(shape, seed) });
const l0Ref = (bs: Batch[], numComponents?: number): RefArray =>
  refL0Norm(
    bs.map((b) => ref(b.learnedActivations)),
    numComponents === undefined ? {} : { numComponents },
  );

beforeEach(() => {
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe('keys and values', () => {
  it('follows the documented example', () => {
    const l0 = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 }), {
      componentNames: ['mlp_0', 'mlp_1'],
      prefix: 'l0',
    });
    const value = l0.forward({ learnedActivations: tensor([[[1, 0, 1], [1, 1, 1]]]) });
    // One vector per component: 2 and 3 non-zero activations; mean 2.5.
    expect(Object.keys(value)).toEqual(['l0/mlp_0', 'l0/mlp_1', 'l0/mean']);
    expect(value['l0/mlp_0']?.shape).toEqual([]);
    expect(value['l0/mlp_0']?.item()).toBe(2);
    expect(value['l0/mlp_1']?.item()).toBe(3);
    expect(value['l0/mean']?.item()).toBe(2.5);
  });

  it('keys are prefix/name and prefix/mean', () => {
    const names = ['attn', 'mlp', 'resid'];
    const w = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 3 }), { componentNames: names, prefix: 'sparsity' });
    expect(w.prefix).toBe('sparsity');
    expect(w.componentNames).toEqual(names);
    const b1 = learned([4, 3, 5], 1);
    const b2 = learned([3, 3, 5], 2);
    expectRecordClose(w.forward(b1), refClasswiseWithMean(l0Ref([b1], 3), names, 'sparsity'));
    w.update(b2);
    expectRecordClose(w.compute(), refClasswiseWithMean(l0Ref([b1, b2], 3), names, 'sparsity'));
    expect(Object.keys(w.compute())).toEqual(['sparsity/attn', 'sparsity/mlp', 'sparsity/resid', 'sparsity/mean']);
  });

  it("defaults: the prefix is the wrapped metric's class name in lower case, names are '0', '1', ...", () => {
    const w = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 3 }));
    expect(w.prefix).toBe('l0normmetric');
    expect(w.componentNames).toBeUndefined();
    const b = learned([5, 3, 4], 3);
    const value = w.forward(b);
    expect(Object.keys(value)).toEqual(['l0normmetric/0', 'l0normmetric/1', 'l0normmetric/2', 'l0normmetric/mean']);
    expectRecordClose(value, refClasswiseWithMean(l0Ref([b], 3), ['0', '1', '2'], 'l0normmetric'));

    const named = new ClasswiseWrapperWithMean(new L1AbsoluteLoss({ numComponents: 2 }), { componentNames: ['a', 'b'] });
    expect(Object.keys(named.forward(learned([2, 2, 3], 4)))).toEqual(['l1absoluteloss/a', 'l1absoluteloss/b', 'l1absoluteloss/mean']);
    const prefixed = new ClasswiseWrapperWithMean(new L1AbsoluteLoss({ numComponents: 2 }), { prefix: 'train/l1' });
    expect(Object.keys(prefixed.forward(learned([2, 2, 3], 4)))).toEqual(['train/l1/0', 'train/l1/1', 'train/l1/mean']);
  });

  it("an empty prefix counts as unset, as in Python (`if not self._prefix`): the wrapped metric's class name (issue 11)", () => {
    const w = new ClasswiseWrapperWithMean(new L1AbsoluteLoss({ numComponents: 2 }), { componentNames: ['a', 'b'], prefix: '' });
    expect(w.prefix).toBe('l1absoluteloss');
    expect(Object.keys(w.forward(learned([2, 2, 3], 4)))).toEqual(['l1absoluteloss/a', 'l1absoluteloss/b', 'l1absoluteloss/mean']);
    const copy = w.clone();
    expect(Object.keys(copy.forward(learned([2, 2, 3], 5)))).toEqual(['l1absoluteloss/a', 'l1absoluteloss/b', 'l1absoluteloss/mean']);
  });

  it('a 0-d result counts as one component', () => {
    const b = {
      sourceActivations: randomTensor([4, 3], 5, 0),
      decodedActivations: randomTensor([4, 3], 6, 0.2),
    };
    const w = new ClasswiseWrapperWithMean(new L2ReconstructionLoss());
    const value = w.forward(b);
    const result = refL2ReconstructionLoss([{ decoded: ref(b.decodedActivations), source: ref(b.sourceActivations) }], {
      keepBatchDim: false,
    });
    expect(result.shape).toEqual([]);
    expect(Object.keys(value)).toEqual(['l2reconstructionloss/0', 'l2reconstructionloss/mean']);
    expectRecordClose(value, refClasswiseWithMean(result, ['0'], 'l2reconstructionloss'));
    // The single entry and the mean are that 0-d value.
    expect(value['l2reconstructionloss/0']?.item()).toBe(value['l2reconstructionloss/mean']?.item());

    const dead = new ClasswiseWrapperWithMean(new NeuronActivityMetric({ numLearnedFeatures: 3 }), { componentNames: ['only'] });
    const d = { learnedActivations: tensor([[1, 0, 1], [0, 0, 0]]) };
    const deadValue = dead.forward(d);
    // Feature 1 never fired: one dead neuron.
    expect(Object.keys(deadValue)).toEqual(['neuronactivitymetric/only', 'neuronactivitymetric/mean']);
    expect(deadValue['neuronactivitymetric/only']?.shape).toEqual([]);
    expect(deadValue['neuronactivitymetric/only']?.item()).toBe(1);
    expect(deadValue['neuronactivitymetric/mean']?.item()).toBe(1);
    expectRecordClose(
      deadValue,
      refClasswiseWithMean(
        refNeuronActivity([ref(d.learnedActivations)], { numLearnedFeatures: 3, thresholdIsDeadPortionFires: 0 }),
        ['only'],
        'neuronactivitymetric',
      ),
    );
  });

  it('the mean is over the first axis', () => {
    const w = new ClasswiseWrapperWithMean(new FeatureDensityMetric({ numLearnedFeatures: 4, numComponents: 2 }), {
      componentNames: ['enc', 'dec'],
      prefix: 'density',
    });
    const b1 = learned([5, 2, 4], 7);
    const b2 = learned([3, 2, 4], 8);
    w.update(b1);
    w.update(b2);
    const value = w.compute();
    expect(value['density/enc']?.shape).toEqual([4]);
    expect(value['density/mean']?.shape).toEqual([4]);
    expectRecordClose(
      value,
      refClasswiseWithMean(refFeatureDensity([b1, b2].map((b) => ref(b.learnedActivations))), ['enc', 'dec'], 'density'),
    );

    // By hand: component 0 fired [1, 0, 1, 0] of 2 vectors, component 1 [2, 1, 0, 0].
    const small = new ClasswiseWrapperWithMean(new FeatureDensityMetric({ numLearnedFeatures: 4, numComponents: 2 }));
    const v = small.forward({
      learnedActivations: tensor([
        [
          [1, 0, 0, 0],
          [1, 1, 0, 0],
        ],
        [
          [0, 0, 1, -1],
          [1, 0, 0, 0],
        ],
      ]),
    });
    expect(v['featuredensitymetric/0']?.toArray()).toEqual([0.5, 0, 0.5, 0]);
    expect(v['featuredensitymetric/1']?.toArray()).toEqual([1, 0.5, 0, 0]);
    expect(v['featuredensitymetric/mean']?.toArray()).toEqual([0.75, 0.25, 0.25, 0]);
  });
});

describe('option errors', () => {
  const NAME = 'ClasswiseWrapperWithMean';
  const error = (fn: () => unknown, kind: typeof TypeError | typeof RangeError, message: string): void => {
    const e = thrown(fn);
    expect(e).toBeInstanceOf(kind);
    expect(e.message).toBe(message);
  };
  const l0 = (): L0NormMetric => new L0NormMetric({ numComponents: 3 });

  it('componentNames must be strings', () => {
    error(
      () => new ClasswiseWrapperWithMean(l0(), { componentNames: ['a', 1, 'c'] as unknown as string[] }),
      TypeError,
      `${NAME}: options.componentNames must be an array of strings, got an array of length 3`,
    );
    error(
      () => new ClasswiseWrapperWithMean(l0(), { componentNames: 'abc' as unknown as string[] }),
      TypeError,
      `${NAME}: options.componentNames must be an array of strings, got "abc"`,
    );
  });

  it('componentNames must be distinct', () => {
    error(
      () => new ClasswiseWrapperWithMean(l0(), { componentNames: ['a', 'b', 'a'] }),
      RangeError,
      `${NAME}: options.componentNames must be distinct, got ["a","b","a"]`,
    );
  });

  it("componentNames must have the wrapped metric's numComponents names", () => {
    error(
      () => new ClasswiseWrapperWithMean(l0(), { componentNames: ['a', 'b'] }),
      RangeError,
      `${NAME}: options.componentNames must have 3 names (the L0NormMetric's numComponents), got 2`,
    );
    // numComponents defaults to 1 for the losses.
    const e = thrown(() => new ClasswiseWrapperWithMean(new L1AbsoluteLoss(), { componentNames: ['a', 'b'] }));
    expect(e).toBeInstanceOf(RangeError);
    expect(e.message).toMatch(/^ClasswiseWrapperWithMean: options\.componentNames must have 1 name.*numComponents.*got 2$/);
  });

  it('prefix must be a string', () => {
    error(
      () => new ClasswiseWrapperWithMean(l0(), { prefix: 3 as unknown as string }),
      TypeError,
      `${NAME}: options.prefix must be a string, got 3`,
    );
  });

  it('rejects unknown options and a non-metric', () => {
    error(
      () => new ClasswiseWrapperWithMean(l0(), { labels: ['a'] } as never),
      TypeError,
      `${NAME}: unknown option labels (known options: componentNames, prefix)`,
    );
    error(
      () => new ClasswiseWrapperWithMean({} as never),
      TypeError,
      `${NAME}: metric must be a sae-metrics Metric, got an object`,
    );
  });
});

describe('state', () => {
  const b1 = learned([3, 2, 4], 11);
  const b2 = learned([4, 2, 4], 12);
  const b3 = learned([2, 2, 4], 13);
  const names = ['x', 'y'];
  const expected = (bs: Batch[]): Record<string, RefArray> => refClasswiseWithMean(l0Ref(bs, 2), names, 'l0');

  it("starts from the wrapped metric's state, then keeps its own", () => {
    const inner = new L0NormMetric({ numComponents: 2 });
    inner.update(b1);
    const w = new ClasswiseWrapperWithMean(inner, { componentNames: names, prefix: 'l0' });
    expect(w.updateCount).toBe(1);
    expect(w.state()).toEqual(inner.state());
    expectRecordClose(w.compute(), expected([b1]));

    w.update(b2);
    expect(inner.updateCount).toBe(1);
    expectTensorClose(inner.compute(), l0Ref([b1], 2), 'inner');
    inner.update(b3);
    expectRecordClose(w.compute(), expected([b1, b2]));
    expectTensorClose(inner.compute(), l0Ref([b1, b3], 2), 'inner');
  });

  it('states merge between the wrapper and the wrapped metric', () => {
    const inner = new L0NormMetric({ numComponents: 2 });
    inner.update(b1);
    const w = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 }), { componentNames: names, prefix: 'l0' });
    w.update(b2);

    // A wrapper and the metric it wraps have different result types, so merging one metric into
    // the other needs a cast (mergeState takes a Metric<S, R>); their states merge without one.
    const w1 = w.clone();
    w1.mergeState(inner as never);
    expect(w1.updateCount).toBe(2);
    expectRecordClose(w1.compute(), expected([b2, b1]));
    const w2 = w.clone();
    w2.mergeState(inner.state());
    expectRecordClose(w2.compute(), expected([b2, b1]));
    const w3 = w.clone();
    w3.loadState(inner.encodeState());
    expectRecordClose(w3.compute(), expected([b1]));

    const i1 = inner.clone();
    i1.mergeState(w as never);
    expect(i1.updateCount).toBe(2);
    expectTensorClose(i1.compute(), l0Ref([b1, b2], 2), 'inner');
    const i2 = inner.clone();
    i2.mergeState(w.state());
    expectTensorClose(i2.compute(), l0Ref([b1, b2], 2), 'inner');
    const i3 = inner.clone();
    i3.loadState(w.encodeState());
    expectTensorClose(i3.compute(), l0Ref([b2], 2), 'inner');

    // Another configuration of the wrapped metric does not merge.
    const before = w.state();
    expect(() => w.mergeState(new L0NormMetric({ numComponents: 3 }) as never)).toThrow(StateMergeError);
    expect(() => w.mergeState(new L0NormMetric().state())).toThrow(StateMergeError);
    expect(() => w.mergeState(new L1AbsoluteLoss({ numComponents: 2 }) as never)).toThrow(StateMergeError);
    expect(w.state()).toEqual(before);
    expect(w.updateCount).toBe(1);
  });

  it('clone() keeps the options and is independent; reset() empties it', () => {
    const w = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 }), { componentNames: names, prefix: 'l0' });
    w.update(b1);
    const copy = w.clone();
    expect(copy).toBeInstanceOf(ClasswiseWrapperWithMean);
    expect(copy.prefix).toBe('l0');
    expect(copy.componentNames).toEqual(names);
    expect(copy.updateCount).toBe(1);
    copy.update(b2);
    expectRecordClose(copy.compute(), expected([b1, b2]));
    expectRecordClose(w.compute(), expected([b1]));

    w.reset();
    expect(w.updateCount).toBe(0);
    expect(w.state()).toEqual(new L0NormMetric({ numComponents: 2 }).state());
    w.update(b3);
    expectRecordClose(w.compute(), expected([b3]));
    expectRecordClose(copy.compute(), expected([b1, b2]));
  });
});
