/**
 * Attack on the limits of issue 13's metrics (and of the fired-count family they build on): feature counts, k and bins too large to allocate are
 * refused at construction with a RangeError naming the metric and the option (not V8's "Invalid
 * typed array length"); vector indices at 2^53 - 1 are exact and one more vector is refused,
 * leaving the state as it was.
 */
import { describe, expect, it } from 'vitest';
import {
  DeadFeaturesOverWindow,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureDensityMetric,
  FeatureFrequencyStats,
  InvalidBatchError,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  StateMergeError,
  tensor,
  TopActivations,
} from '../../src/index.js';

describe('issue 13 metrics: sizes too large to allocate', () => {
  const huge: [string, () => unknown, RegExp][] = [
    ['FeatureFrequencyStats', () => new FeatureFrequencyStats({ numLearnedFeatures: 2 ** 40 }), /^FeatureFrequencyStats: options\.numLearnedFeatures must leave at most 268435456 .* got 1 × 1099511627776/],
    ['FeatureActivationStats', () => new FeatureActivationStats({ numLearnedFeatures: 2 ** 20, numComponents: 2 ** 20 }), /^FeatureActivationStats: options\.numLearnedFeatures must leave at most 268435456 .* got 1048576 × 1048576/],
    ['FeatureActivationStats (2^29)', () => new FeatureActivationStats({ numLearnedFeatures: 2 ** 29 }), /^FeatureActivationStats: options\.numLearnedFeatures/],
    ['DeadFeaturesOverWindow', () => new DeadFeaturesOverWindow({ numLearnedFeatures: 2 ** 40, windowVectors: 1 }), /^DeadFeaturesOverWindow: options\.numLearnedFeatures must leave at most 268435456/],
    ['DeadFeaturesOverWindow (2^29)', () => new DeadFeaturesOverWindow({ numLearnedFeatures: 2 ** 29, windowVectors: 1 }), /^DeadFeaturesOverWindow: options\.numLearnedFeatures/],
    ['TopActivations k', () => new TopActivations({ numLearnedFeatures: 2, k: 2 ** 53 }), /^TopActivations: options\.k/],
    ['TopActivations features', () => new TopActivations({ numLearnedFeatures: 2 ** 40, k: 1 }), /^TopActivations: options\.(k|numLearnedFeatures) must leave at most 268435456/],
    ['NeuronFiredCountMetric', () => new NeuronFiredCountMetric({ numLearnedFeatures: 2 ** 40 }), /^NeuronFiredCountMetric: options\.numLearnedFeatures must leave at most 268435456 .* got 1 × 1099511627776/],
    ['NeuronActivityMetric', () => new NeuronActivityMetric({ numLearnedFeatures: 2 ** 20, numComponents: 2 ** 20 }), /^NeuronActivityMetric: options\.numLearnedFeatures must leave at most 268435456 .* got 1048576 × 1048576/],
    ['FeatureDensityMetric (2^29)', () => new FeatureDensityMetric({ numLearnedFeatures: 2 ** 29 }), /^FeatureDensityMetric: options\.numLearnedFeatures must leave at most 268435456/],
    ['FeatureActivationHistogram', () => new FeatureActivationHistogram({ numLearnedFeatures: 2 ** 40 }), /^FeatureActivationHistogram: .*more than the limit of 268435456/],
  ];
  for (const [name, make, message] of huge) {
    it(`${name}: a RangeError naming the metric, at once`, () => {
      const t0 = Date.now();
      expect(make).toThrow(RangeError);
      expect(make).toThrow(message);
      expect(Date.now() - t0).toBeLessThan(5000);
    });
  }
});

describe('issue 13 metrics: vector indices at 2^53 - 1', () => {
  it('TopActivations: the last exact index is kept; one more vector is refused and changes nothing', () => {
    const top = new TopActivations({ numLearnedFeatures: 1, k: 2 });
    top.update({ learnedActivations: tensor([[1], [2]]), firstVectorIndex: 2 ** 53 - 4 });
    expect(Array.from(top.compute().indices.data)).toEqual([2 ** 53 - 3, 2 ** 53 - 4]);
    // The last vector an exact count can number: index 2^53 - 2, count 2^53 - 1.
    top.update({ learnedActivations: tensor([[3]]) });
    expect(Array.from(top.compute().indices.data)).toEqual([2 ** 53 - 2, 2 ** 53 - 3]);
    expect(top.compute().vectors.item()).toBe(2 ** 53 - 1);
    const before = top.encodeState();
    expect(() => top.update({ learnedActivations: tensor([[4]]) })).toThrow(InvalidBatchError);
    expect(() => top.update({ learnedActivations: tensor([[4]]), firstVectorIndex: 2 ** 53 - 1 })).toThrow(/passes 2\^53 - 1/);
    expect(top.encodeState()).toBe(before);
  });

  it('merging past 2^53 - 1 is refused and leaves the receiver as it was', () => {
    for (const make of [() => new TopActivations({ numLearnedFeatures: 1, k: 1 }), () => new DeadFeaturesOverWindow({ numLearnedFeatures: 1, windowVectors: 5 })]) {
      const a = make();
      a.update({ learnedActivations: tensor([[1]]), firstVectorIndex: 2 ** 53 - 3 });
      const b = make();
      b.update({ learnedActivations: tensor([[1], [0], [1]]) });
      const before = a.encodeState();
      expect(() => a.mergeState(b.encodeState())).toThrow(StateMergeError);
      expect(a.encodeState()).toBe(before);
    }
  });

  it('DeadFeaturesOverWindow: a state at 2^53 - 1 computes exactly; 2^53 is refused', () => {
    const d = new DeadFeaturesOverWindow({ numLearnedFeatures: 2, windowVectors: 2 ** 53 - 1 });
    const config = { numLearnedFeatures: 2, numComponents: null, windowVectors: 2 ** 53 - 1 };
    d.loadState({ metric: 'DeadFeaturesOverWindow', config, parts: { lastFired: { vectors: 2 ** 53 - 1, last: Float64Array.of(2 ** 53 - 2, -1) } } } as never);
    const c = d.compute();
    expect(Array.from(c.vectorsSinceFired.data)).toEqual([0, 2 ** 53 - 1]);
    expect(c.dead.item()).toBe(1);
    expect(() => d.loadState({ metric: 'DeadFeaturesOverWindow', config, parts: { lastFired: { vectors: 2 ** 53, last: Float64Array.of(-1, -1) } } } as never)).toThrow(/below 2\^53/);
  });
});
