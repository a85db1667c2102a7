import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import {
  featureActivationStats,
  type FeatureActivationStatsOptions,
  type FeatureActivationStatsResult,
  type FeatureActivationStatsState,
} from '../functional/feature-activation-stats.js';

/**
 * Feature activation statistics: per learned feature, over the vectors where it fired (`x > 0`),
 * its `max`, `mean` and population `std` activation (NaN for a feature that never fired), and its
 * `meanOverAll` activation over every vector (0 where it did not fire); each `[feature]` (or
 * `[component, feature]`).
 *
 * State: per feature the count, mean, sum of squared deviations and maximum of its fired
 * activations, merged with Chan et al.'s parallel rule, and the shared fired-count part.
 *
 * @throws {TypeError | RangeError} on a bad option: `numLearnedFeatures` (required) and
 *   `numComponents` positive integers.
 * @example
 * ```ts
 * const stats = new FeatureActivationStats({ numLearnedFeatures: 2 });
 * const r = stats.forward({ learnedActivations: tensor([[1, 0], [3, 4]]) });
 * r.mean.toArray(); // [2, 4]
 * r.std.toArray(); // [1, 0]
 * r.meanOverAll.toArray(); // [2, 2]
 * ```
 */
export class FeatureActivationStats extends Metric<FeatureActivationStatsState, FeatureActivationStatsResult, LearnedBatch> {
  constructor(options: FeatureActivationStatsOptions) {
    super(featureActivationStats(options), [{ ...options }]);
  }
}
