import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import {
  featureFrequencyStats,
  type FeatureFrequencyStatsOptions,
  type FeatureFrequencyStatsResult,
  type FeatureFrequencyStatsState,
} from '../functional/feature-frequency-stats.js';

/**
 * Feature frequency statistics (SAEBench's `frac_alive`, `freq_over_1_percent`,
 * `freq_over_10_percent` and their normalized forms; SAELens' `sparsity/below_1e-5`,
 * `sparsity/below_1e-6` and `metrics/mean_log10_feature_sparsity`) from the exact fired counts
 * over every vector seen: `aliveFraction`, `deadCount`, `freqOver1Percent`, `freqOver10Percent`,
 * `normalizedFreqOver1Percent`, `normalizedFreqOver10Percent`, `below1e5`, `below1e6`,
 * `meanLog10Density`, each 0-d (or `[numComponents]`).
 *
 * State: the fired-count part shared with `NeuronActivityMetric`, `FeatureDensityMetric` and
 * `NeuronFiredCountMetric` of the same shape; merges by addition (exact).
 *
 * @throws {TypeError | RangeError} on a bad option: `numLearnedFeatures` (required) and
 *   `numComponents` positive integers.
 * @example
 * ```ts
 * const freq = new FeatureFrequencyStats({ numLearnedFeatures: 4 });
 * const r = freq.forward({ learnedActivations: tensor([[1, 0, 2, 0], [3, 0, 0, 0]]) });
 * r.aliveFraction.item(); // 0.5
 * r.freqOver10Percent.item(); // 0.5
 * r.normalizedFreqOver1Percent.item(); // 1
 * ```
 */
export class FeatureFrequencyStats extends Metric<FeatureFrequencyStatsState, FeatureFrequencyStatsResult, LearnedBatch> {
  constructor(options: FeatureFrequencyStatsOptions) {
    super(featureFrequencyStats(options), [{ ...options }]);
  }
}
