/**
 * Type-level tests of the indexed metrics (checked by `tsc --noEmit`, which `npm test` runs; the
 * `@ts-expect-error` lines of `rejectedAtCompileTime` must each be a compile error), and their
 * runtime counterparts for callers without types.
 */
import { describe, expect, expectTypeOf, it } from 'vitest';
import { DeadFeaturesOverWindow, MetricCollection, TopActivations, tensor } from '../src/index.js';
import type { CollectionResult, Tensor } from '../src/index.js';

describe('indexed metric types', () => {
  it('results are records of tensors (a collection takes them), batches may carry firstVectorIndex', () => {
    const top = new TopActivations({ numLearnedFeatures: 2, k: 1 });
    const dead = new DeadFeaturesOverWindow({ numLearnedFeatures: 2, windowVectors: 3 });
    top.update({ learnedActivations: tensor([[1, 0]]), firstVectorIndex: 4 });
    expectTypeOf(top.compute().indices).toEqualTypeOf<Tensor<'int64'>>();
    expectTypeOf(top.compute().values).toEqualTypeOf<Tensor<'float64'>>();
    expectTypeOf(dead.compute().vectorsSinceFired).toEqualTypeOf<Tensor<'int64'>>();
    const both = new MetricCollection({ top, dead });
    both.update({ learnedActivations: tensor([[0, 1]]) });
    expectTypeOf(both.compute()).toEqualTypeOf<CollectionResult<{ top: TopActivations; dead: DeadFeaturesOverWindow }>>();
    // Record results are flattened (torchmetrics' rule): two records share `vectors`, so every
    // key is `<collectionKey>_<key>`; one record alone keeps its keys. Both are typed.
    const r = both.compute();
    expectTypeOf(r.top_indices).toEqualTypeOf<Tensor | undefined>();
    expect(r.top_indices?.toArray()).toEqual([[4], [5]]);
    expect(r.dead_lastFired?.toArray()).toEqual([-1, 0]);
    const alone = new MetricCollection({ top: new TopActivations({ numLearnedFeatures: 2, k: 1 }) });
    alone.update({ learnedActivations: tensor([[0, 3]]) });
    expect(alone.compute().indices?.toArray()).toEqual([[-1], [0]]);
  });

  it('what the types reject is refused at run time too', () => {
    expect(() => new TopActivations({ numLearnedFeatures: 2 } as never)).toThrow(/^TopActivations: options\.k must be a positive integer, got undefined$/);
    const top = new TopActivations({ numLearnedFeatures: 2, k: 1 });
    expect(() => top.update({ learnedActivations: tensor([[1, 0]]), firstVectorIndex: '4' } as never)).toThrow(/firstVectorIndex must be a non-negative integer/);
  });
});

/** Never called: every marked line must be a compile error. */
export function rejectedAtCompileTime(): void {
  // @ts-expect-error k is required
  new TopActivations({ numLearnedFeatures: 2 });
  // @ts-expect-error windowVectors is required
  new DeadFeaturesOverWindow({ numLearnedFeatures: 2 });
  // @ts-expect-error unknown option
  new DeadFeaturesOverWindow({ numLearnedFeatures: 2, windowVectors: 3, window: 3 });
  const top = new TopActivations({ numLearnedFeatures: 2, k: 1 });
  // @ts-expect-error firstVectorIndex is a number
  top.update({ learnedActivations: tensor([[1, 0]]), firstVectorIndex: '4' });
  // @ts-expect-error the learned activations are required
  top.update({ firstVectorIndex: 4 });
  // @ts-expect-error a misspelled flattened key
  void new MetricCollection({ top }).compute().indexes;
}
