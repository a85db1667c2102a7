/**
 * Type-level tests. `expectTypeOf` and the `// @ts-expect-error` lines are checked by
 * `tsc --noEmit` (which `npm test` runs); `rejectedAtCompileTime` is never called. The runtime
 * tests check that what the types reject is also rejected at run time, for callers without types.
 */
import { afterEach, beforeEach, describe, expect, expectTypeOf, it, vi } from 'vitest';
import {
  CapacityMetric,
  ClasswiseWrapperWithMean,
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  ReconstructionScoreMetric,
  SparseAutoencoderLoss,
  Tensor as TensorClass,
  accumulateMetric,
  reduceMetric,
  tensor,
} from '../src/index.js';
import { lastValueFrom, Subject } from 'rxjs';
import type {
  Batch,
  CollectionResult,
  LearnedBatch,
  ReconstructionBatch,
  ReconstructionScoreBatch,
  SparseAutoencoderBatch,
  L1AbsoluteLossOptions,
  MetricResult,
  MetricState,
  NeuronActivityOptions,
  Tensor,
} from '../src/index.js';

beforeEach(() => {
  // expectTypeOf(m.compute()) runs compute() before any update: silence that warning.
  vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
});
afterEach(() => {
  vi.restoreAllMocks();
});

/** The keys of a record type without its string index signature. */
type KnownKeys<T> = keyof { [K in keyof T as string extends K ? never : K]: T[K] };

describe('result types', () => {
  it('float64 metrics return Tensor<float64>', () => {
    expectTypeOf(new L1AbsoluteLoss().compute()).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(new L2ReconstructionLoss().compute()).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(new SparseAutoencoderLoss().compute()).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(new L0NormMetric().compute()).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(new FeatureDensityMetric({ numLearnedFeatures: 3 }).compute()).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(new CapacityMetric().compute()).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(new ReconstructionScoreMetric().compute()).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(new L1AbsoluteLoss().forward).returns.toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(new CapacityMetric().forward).returns.toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf<MetricResult<L0NormMetric>>().toEqualTypeOf<Tensor<'float64'>>();

    const value = new L1AbsoluteLoss().compute();
    expect(value.dtype).toBe('float64');
  });

  it('count metrics return Tensor<int64>', () => {
    expectTypeOf(new NeuronActivityMetric({ numLearnedFeatures: 3 }).compute()).toEqualTypeOf<Tensor<'int64'>>();
    expectTypeOf(new NeuronFiredCountMetric({ numLearnedFeatures: 3 }).compute()).toEqualTypeOf<Tensor<'int64'>>();
    expectTypeOf(new NeuronFiredCountMetric({ numLearnedFeatures: 3 }).forward).returns.toEqualTypeOf<Tensor<'int64'>>();
    expectTypeOf<MetricResult<NeuronActivityMetric>>().toEqualTypeOf<Tensor<'int64'>>();
    expectTypeOf(new NeuronActivityMetric({ numLearnedFeatures: 3 }).compute().dtype).toEqualTypeOf<'int64'>();
    expectTypeOf(new NeuronActivityMetric({ numLearnedFeatures: 3 }).compute().data).toEqualTypeOf<Float64Array>();
    expectTypeOf(tensor([1, 2]).data).toEqualTypeOf<Float32Array>();

    const dead = new NeuronActivityMetric({ numLearnedFeatures: 3 });
    expect(dead.forward({ learnedActivations: tensor([[1, 0, 1]]) }).dtype).toBe('int64');
  });

  it('the classwise wrapper returns Record<string, Tensor>', () => {
    const w = new ClasswiseWrapperWithMean(new NeuronActivityMetric({ numLearnedFeatures: 3, numComponents: 2 }));
    expectTypeOf(w.compute()).toEqualTypeOf<Record<string, Tensor>>();
    expectTypeOf(w.forward).returns.toEqualTypeOf<Record<string, Tensor>>();
    expectTypeOf<MetricResult<typeof w>>().toEqualTypeOf<Record<string, Tensor>>();
    expectTypeOf(w.prefix).toEqualTypeOf<string>();
    expectTypeOf(w.componentNames).toEqualTypeOf<readonly string[] | undefined>();
  });

  it('state, update count and definitions are typed', () => {
    const l1 = new L1AbsoluteLoss();
    expectTypeOf(l1.updateCount).toEqualTypeOf<number>();
    expectTypeOf(l1.state()).toMatchTypeOf<MetricState<object>>();
    expectTypeOf(l1.encodeState()).toEqualTypeOf<string>();
    expectTypeOf(l1.definition.compute).returns.toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(l1.update).parameter(0).toEqualTypeOf<LearnedBatch>();
    expectTypeOf(l1.clone()).toEqualTypeOf<L1AbsoluteLoss>();
    expectTypeOf(l1.keepBatchDim).toEqualTypeOf<boolean>();
  });
});

describe('collection result types', () => {
  const make = () =>
    new MetricCollection({
      l1: new L1AbsoluteLoss({ numComponents: 2 }),
      dead: new NeuronActivityMetric({ numLearnedFeatures: 3, numComponents: 2 }),
      classwise: new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 })),
    });

  it('tensor-valued metrics keep their key and type; record-valued metrics are flattened', () => {
    const collection = make();
    type Result = ReturnType<typeof collection.compute>;
    // The wrapper's flattened keys are known at run time only: `prefix/name`.
    expectTypeOf<KnownKeys<Result>>().toEqualTypeOf<'l1' | 'dead' | `${string}/${string}`>();
    expectTypeOf<Result['l1']>().toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf<Result['dead']>().toEqualTypeOf<Tensor<'int64'>>();
    expectTypeOf<ReturnType<typeof collection.forward>>().toEqualTypeOf<Result>();
    expectTypeOf<Result>().toMatchTypeOf<Readonly<Record<string, Tensor>>>();
    // Flattened keys are only known at run time (noUncheckedIndexedAccess adds undefined).
    const value = collection.compute();
    expectTypeOf(value['l0normmetric/mean']).toEqualTypeOf<Tensor | undefined>();
    expectTypeOf(value.l1).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf<CollectionResult<{ a: CapacityMetric }>['a']>().toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(collection.metrics.dead).toEqualTypeOf<NeuronActivityMetric>();

    collection.update({ learnedActivations: tensor([[[1, 0, 2], [0, 0, 1]]]) });
    expect(Object.keys(collection.compute())).toEqual([
      'l1',
      'dead',
      'l0normmetric/0',
      'l0normmetric/1',
      'l0normmetric/mean',
    ]);
  });
});

describe('batch and result types users write', () => {
  it('a batch typed { learnedActivations: Tensor } pipes into an operator; Batch is exported for the same use', async () => {
    const subject = new Subject<{ learnedActivations: Tensor }>();
    const out = lastValueFrom(subject.pipe(accumulateMetric(new L1AbsoluteLoss())));
    expectTypeOf(out).toEqualTypeOf<Promise<Tensor<'float64'>>>();
    const batch: Batch = { learnedActivations: tensor([[1, -2, 0]]) };
    const typed = new Subject<Batch>();
    const collected = lastValueFrom(typed.pipe(reduceMetric(new MetricCollection({ l0: new L0NormMetric() }))));
    subject.next({ learnedActivations: tensor([[1, -2, 0]]) });
    subject.complete();
    typed.next(batch);
    typed.complete();
    expect((await out).item()).toBe(3);
    expect((await collected).l0.item()).toBe(2);
  });

  it('each metric class takes a batch with the fields it reads', () => {
    const t = tensor([[1, 0]]);
    expectTypeOf(new L2ReconstructionLoss().update).parameter(0).toEqualTypeOf<ReconstructionBatch>();
    expectTypeOf(new SparseAutoencoderLoss().update).parameter(0).toEqualTypeOf<SparseAutoencoderBatch>();
    expectTypeOf(new NeuronActivityMetric({ numLearnedFeatures: 2 }).forward).parameter(0).toEqualTypeOf<LearnedBatch>();
    expectTypeOf(new ReconstructionScoreMetric().update).parameter(0).toEqualTypeOf<ReconstructionScoreBatch>();
    expectTypeOf(new ClasswiseWrapperWithMean(new L2ReconstructionLoss()).update).parameter(0).toEqualTypeOf<ReconstructionBatch>();
    const both = new MetricCollection({ l1: new L1AbsoluteLoss(), l2: new L2ReconstructionLoss() });
    expectTypeOf<{ learnedActivations: typeof t; sourceActivations: typeof t; decodedActivations: typeof t }>().toMatchTypeOf<Parameters<typeof both.update>[0]>();
    expectTypeOf<{ learnedActivations: typeof t }>().not.toMatchTypeOf<Parameters<typeof both.update>[0]>();
    // What compiles also runs.
    const l2 = new L2ReconstructionLoss();
    l2.update({ sourceActivations: t, decodedActivations: tensor([[0, 0]]) });
    expect(l2.compute().item()).toBe(0.5);
  });

  it('a collection result has exactly its keys', () => {
    const collection = new MetricCollection({ l1: new L1AbsoluteLoss(), dead: new NeuronActivityMetric({ numLearnedFeatures: 2 }) });
    expectTypeOf<KnownKeys<ReturnType<typeof collection.compute>>>().toEqualTypeOf<'l1' | 'dead'>();
    expectTypeOf<'l11'>().not.toMatchTypeOf<keyof ReturnType<typeof collection.compute>>();
  });

  it('what the types reject for a batch is refused at run time too', () => {
    const t = tensor([[1, 0]]);
    const l2 = new L2ReconstructionLoss();
    expect(() => l2.update({ sourceActivations: t } as unknown as ReconstructionBatch)).toThrow(
      /^L2ReconstructionLoss: the batch must have a decodedActivations field/,
    );
    expect(l2.updateCount).toBe(0);
  });

  it('a tensor that is not float32, which a stream may carry, errors the stream', async () => {
    const subject = new Subject<{ learnedActivations: Tensor }>();
    const out = lastValueFrom(subject.pipe(reduceMetric(new L1AbsoluteLoss())));
    subject.next({ learnedActivations: new TensorClass(new Float64Array([1]), [1, 1], 'float64') });
    await expect(out).rejects.toThrow(/^L1AbsoluteLoss: learnedActivations must hold float32 data \(a Float32Array\), got Float64Array$/);
  });
});

/**
 * Never called: every marked line must be a compile error, or `tsc --noEmit` fails with
 * "Unused '@ts-expect-error' directive".
 */
export function rejectedAtCompileTime(): void {
  // @ts-expect-error unknown option
  new L1AbsoluteLoss({ numComponent: 2 });
  // @ts-expect-error keepBatchDim is a boolean
  new L1AbsoluteLoss({ keepBatchDim: 'yes' });
  // @ts-expect-error numComponents is a number
  new L2ReconstructionLoss({ numComponents: '2' });
  // @ts-expect-error unknown option
  new SparseAutoencoderLoss({ l1_coefficient: 0.1 });
  // @ts-expect-error l1Coefficient is a number
  new SparseAutoencoderLoss({ l1Coefficient: null });
  // @ts-expect-error unknown option
  new L0NormMetric({ numLearnedFeatures: 3 });
  // @ts-expect-error numLearnedFeatures is required
  new NeuronActivityMetric({ numComponents: 2 });
  // @ts-expect-error the options are required
  new NeuronActivityMetric();
  // @ts-expect-error thresholdIsDeadPortionFires is a number
  new NeuronActivityMetric({ numLearnedFeatures: 3, thresholdIsDeadPortionFires: '0.1' });
  // @ts-expect-error unknown option
  new NeuronActivityMetric({ numLearnedFeatures: 3, threshold: 0.1 });
  // @ts-expect-error unknown option
  new NeuronFiredCountMetric({ numLearnedFeatures: 3, keepBatchDim: true });
  // @ts-expect-error numLearnedFeatures is required
  new FeatureDensityMetric({});
  // @ts-expect-error CapacityMetric takes no options
  new CapacityMetric({});
  // @ts-expect-error unknown option
  new ReconstructionScoreMetric({ numComponents: 2, componentIdx: 1 });
  // @ts-expect-error componentNames are strings
  new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 }), { componentNames: [0, 1] });
  // @ts-expect-error prefix is a string
  new ClasswiseWrapperWithMean(new L0NormMetric(), { prefix: 1 });
  // @ts-expect-error unknown option
  new ClasswiseWrapperWithMean(new L0NormMetric(), { labels: ['a'] });
  // @ts-expect-error a wrapper wraps a tensor-valued metric, not another wrapper
  new ClasswiseWrapperWithMean(new ClasswiseWrapperWithMean(new L0NormMetric()));
  // @ts-expect-error a collection holds metrics
  new MetricCollection({ l1: new L1AbsoluteLoss(), n: 3 });

  const t = tensor([[1, 0]]);
  // @ts-expect-error L2ReconstructionLoss reads decodedActivations
  new L2ReconstructionLoss().update({ sourceActivations: t });
  // @ts-expect-error SparseAutoencoderLoss reads learnedActivations too
  new SparseAutoencoderLoss().forward({ sourceActivations: t, decodedActivations: t });
  // @ts-expect-error a collection reads what each of its metrics reads
  new MetricCollection({ l1: new L1AbsoluteLoss(), l2: new L2ReconstructionLoss() }).update({ learnedActivations: t });
  // @ts-expect-error the reconstruction score reads the three losses
  new ReconstructionScoreMetric().update({ sourceModelLoss: t });
  const result = new MetricCollection({ l1: new L1AbsoluteLoss(), dead: new NeuronActivityMetric({ numLearnedFeatures: 2 }) }).compute();
  // @ts-expect-error a misspelled result key
  void result.l11;
  // @ts-expect-error a misspelled key is not a wrapper's key either (those have a /)
  void new MetricCollection({ l1: new L1AbsoluteLoss(), w: new ClasswiseWrapperWithMean(new L0NormMetric()) }).compute().dead;

  const l1 = new L1AbsoluteLoss();
  // @ts-expect-error keepBatchDim is a boolean
  l1.keepBatchDim = 1;
  // @ts-expect-error updateCount is read-only
  l1.updateCount = 3;
  // @ts-expect-error a batch is an object of tensors, not a number
  l1.update(3);
  // @ts-expect-error a L0NormMetric state is not a L1AbsoluteLoss state
  l1.loadState(new L0NormMetric().state());

  const options: L1AbsoluteLossOptions = { numComponents: 2 };
  // @ts-expect-error options are read-only
  options.numComponents = 3;
  // @ts-expect-error exactOptionalPropertyTypes: an optional option is not undefined
  const explicitUndefined: NeuronActivityOptions = { numLearnedFeatures: 3, numComponents: undefined };
  void explicitUndefined;
}

describe('what the types reject also throws at run time', () => {
  const throwsWith = (fn: () => unknown, kind: typeof TypeError | typeof RangeError, message: string): void => {
    let error: unknown;
    try {
      fn();
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(kind);
    expect((error as Error).message).toBe(message);
  };

  it('unknown option keys', () => {
    throwsWith(
      () => new L1AbsoluteLoss({ numComponent: 2 } as unknown as L1AbsoluteLossOptions),
      TypeError,
      'L1AbsoluteLoss: unknown option numComponent (known options: numComponents, keepBatchDim)',
    );
    throwsWith(
      () => new NeuronActivityMetric({ numLearnedFeatures: 3, threshold: 0.1 } as unknown as NeuronActivityOptions),
      TypeError,
      'NeuronActivityMetric: unknown option threshold (known options: numLearnedFeatures, numComponents, thresholdIsDeadPortionFires)',
    );
    throwsWith(
      () => new ReconstructionScoreMetric({ numComponents: 2, componentIdx: 1 } as never),
      TypeError,
      'ReconstructionScoreMetric: unknown option componentIdx (known options: numComponents)',
    );
  });

  it('options of the wrong type', () => {
    throwsWith(
      () => new L1AbsoluteLoss({ keepBatchDim: 'yes' } as unknown as L1AbsoluteLossOptions),
      TypeError,
      'L1AbsoluteLoss: options.keepBatchDim must be a boolean, got "yes"',
    );
    throwsWith(
      () => new L2ReconstructionLoss({ numComponents: '2' } as never),
      TypeError,
      'L2ReconstructionLoss: options.numComponents must be a positive integer, got "2"',
    );
    throwsWith(
      () => new NeuronActivityMetric(undefined as unknown as NeuronActivityOptions),
      TypeError,
      'NeuronActivityMetric: options.numLearnedFeatures must be a positive integer, got undefined',
    );
  });

  it('a batch that is not an object', () => {
    const l1 = new L1AbsoluteLoss();
    expect(() => l1.update(3 as unknown as LearnedBatch)).toThrow(/^L1AbsoluteLoss: a batch must be a plain object/);
    expect(l1.updateCount).toBe(0);
  });
});
