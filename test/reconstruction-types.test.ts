/**
 * Type-level tests of the reconstruction metrics (checked by `tsc --noEmit`, which `npm test`
 * runs; `rejectedAtCompileTime` is never called), with the runtime checks of what they reject.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import {
  CosineSimilarity,
  ExplainedVariance,
  FractionOfVarianceUnexplained,
  InvalidBatchError,
  L2Ratio,
  MetricCollection,
  NormalizedMse,
  RelativeReconstructionBias,
  tensor,
  type Tensor,
} from '../src/index.js';

function rejectedAtCompileTime(): void {
  // @ts-expect-error numFeatures is required
  new ExplainedVariance();
  // @ts-expect-error numFeatures is required
  new FractionOfVarianceUnexplained({ numComponents: 2 });
  // @ts-expect-error these metrics take no numFeatures
  new CosineSimilarity({ numFeatures: 3 });
  // @ts-expect-error numComponents is a number
  new L2Ratio({ numComponents: '2' });
  // @ts-expect-error the batch must have decodedActivations
  new NormalizedMse().update({ sourceActivations: tensor([[1, 2]]) });
  // @ts-expect-error learned activations alone are not a reconstruction batch
  new RelativeReconstructionBias().forward({ learnedActivations: tensor([[1, 2]]) });
}

describe('reconstruction metric types', () => {
  it('results are float64 tensors; a collection keys its results by name', () => {
    expectTypeOf(rejectedAtCompileTime).toBeFunction();
    const batch = { sourceActivations: tensor([[1, 2]]), decodedActivations: tensor([[1, 1]]) };
    const cos = new CosineSimilarity().forward(batch);
    expectTypeOf(cos).toEqualTypeOf<Tensor<'float64'>>();
    expect(cos.dtype).toBe('float64');
    const zeros = new NormalizedMse().zeroNormVectors();
    expectTypeOf(zeros).toEqualTypeOf<Tensor<'int64'>>();
    expect(zeros.dtype).toBe('int64');
    const r = new MetricCollection({ ev: new ExplainedVariance({ numFeatures: 2 }), l2ratio: new L2Ratio() }).forward(batch);
    expectTypeOf(r.ev).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(r.l2ratio).toEqualTypeOf<Tensor<'float64'>>();
    expect(Object.keys(r)).toEqual(['ev', 'l2ratio']);
  });

  it('what the types reject is rejected at run time too', () => {
    expect(() => new ExplainedVariance(undefined as never)).toThrow(TypeError);
    expect(() => new CosineSimilarity({ numFeatures: 3 } as never)).toThrow(/unknown option numFeatures/);
    expect(() => new NormalizedMse().update({ sourceActivations: tensor([[1, 2]]) } as never)).toThrow(InvalidBatchError);
  });
});
