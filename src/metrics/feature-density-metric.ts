import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { featureDensity, type FeatureDensityOptions, type FeatureDensityState } from '../functional/feature-density.js';
import type { Tensor } from '../tensor.js';

/**
 * Feature density: for each learned feature, the portion of activation vectors it fired for
 * (`x > 0`): `[feature]`, or `[component, feature]` with `numComponents`.
 *
 * State: the shared fired-count part; merges by addition.
 *
 * @throws {TypeError | RangeError} on a bad option: `numLearnedFeatures` (required) and
 *   `numComponents` positive integers.
 * @example
 * ```ts
 * const density = new FeatureDensityMetric({ numLearnedFeatures: 3, numComponents: 1 });
 * density.forward({ learnedActivations: tensor([[[1, 0, 1]], [[0, 0, 0]]]) }).toArray(); // [[0.5, 0, 0.5]]
 * ```
 */
export class FeatureDensityMetric extends Metric<FeatureDensityState, Tensor<'float64'>, LearnedBatch> {
  constructor(options: FeatureDensityOptions) {
    super(featureDensity(options), [{ ...options }]);
  }
}
