/**
 * Feature activation statistics: per learned feature (and component), over the vectors where it
 * fired (`x > 0`), the maximum, the mean and the standard deviation of its activation, and its mean
 * activation over all vectors.
 *
 * - `max`, `mean`, `std`: of the fired activations; NaN for a feature that never fired. `std` is
 *   the population standard deviation `sqrt(M2 / n)`: the activations seen are the whole
 *   population described (not a sample of a larger one), it is defined for a feature that fired
 *   once (0), and it is the same choice as the population variances of
 *   `FractionOfVarianceUnexplained`.
 * - `meanOverAll`: `sum of fired activations / N` over all `N` vectors, a vector where the feature
 *   did not fire counting 0 (negative activations, which an SAE's ReLU, TopK or JumpReLU never
 *   gives, count as 0). NaN before any vector.
 *
 * State: per feature the count, mean, M2 (sum of squared deviations) and maximum of its fired
 * activations, merged with Chan et al.'s parallel rule (exact counts and maxima; the mean and M2
 * within a few 1e-15 relative whatever the batching), and the shared fired-count part (its counts
 * equal the moments' counts; a state where they differ is refused). Made from the `positives`
 * statistic, in the same pass as the fired counts.
 *
 * @module
 */
import { defineMetric, type MetricDefinition, type MetricState } from './core.js';
import { float64, type Tensor } from '../tensor.js';
import { checkFeatureCells, firedCountShape, learnedValidator, perFeatureShape, type FiredCountOptions } from './fired-count-family.js';
import { firedCountPart, type FiredCountState } from './parts/fired-count.js';
import { activationMomentsPart, type ActivationMomentsState } from './parts/activation-moments.js';

/** Options of {@link featureActivationStats} and `FeatureActivationStats`. */
export type FeatureActivationStatsOptions = FiredCountOptions;

/** The state of {@link featureActivationStats}. */
export type FeatureActivationStatsState = MetricState<{ readonly firedCount: FiredCountState; readonly moments: ActivationMomentsState }>;

/** The value of `FeatureActivationStats`: each `[feature]`, or `[component, feature]` with `numComponents`. */
// A type, not an interface: results are records of tensors (`Readonly<Record<string, Tensor>>`).
export type FeatureActivationStatsResult = {
  readonly max: Tensor<'float64'>;
  readonly mean: Tensor<'float64'>;
  readonly std: Tensor<'float64'>;
  readonly meanOverAll: Tensor<'float64'>;
};

const METRIC = 'FeatureActivationStats';

/** The first index where `a` and `b` differ, or -1. */
export function firstDifference(a: Float64Array, b: Float64Array): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return i;
  return -1;
}

/**
 * The pure definition of `FeatureActivationStats`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const stats = featureActivationStats({ numLearnedFeatures: 2 });
 * const s = stats.update(stats.init(), { learnedActivations: tensor([[1, 0], [3, 0], [0, 0], [2, -1]]) });
 * const r = stats.compute(s);
 * r.max.toArray(); // [3, NaN]
 * r.mean.toArray(); // [2, NaN]
 * r.meanOverAll.toArray(); // [1.5, 0]
 * ```
 */
export function featureActivationStats(
  options: FeatureActivationStatsOptions,
): MetricDefinition<FeatureActivationStatsState, FeatureActivationStatsResult> {
  const shape = checkFeatureCells(METRIC, firedCountShape(METRIC, options));
  const { numLearnedFeatures, numComponents } = shape;
  return defineMetric({
    metric: METRIC,
    config: { numLearnedFeatures, numComponents: numComponents ?? null },
    parts: { firedCount: firedCountPart(numLearnedFeatures, numComponents), moments: activationMomentsPart(numLearnedFeatures, numComponents) },
    validate: learnedValidator(METRIC, shape),
    invalid({ firedCount, moments }) {
      const i = firstDifference(firedCount.fired, moments.count);
      return i === -1
        ? undefined
        : `moments.count must equal firedCount.fired (both count the fired activations), got ${moments.count[i]} and ${firedCount.fired[i]} at index ${i}`;
    },
    compute({ firedCount, moments }) {
      const size = moments.count.length;
      const max = new Float64Array(size);
      const mean = new Float64Array(size);
      const std = new Float64Array(size);
      const meanOverAll = new Float64Array(size);
      const vectors = firedCount.vectors;
      for (let k = 0; k < size; k++) {
        const n = moments.count[k] as number;
        const m = moments.mean[k] as number;
        max[k] = n > 0 ? (moments.max[k] as number) : NaN;
        mean[k] = n > 0 ? m : NaN;
        std[k] = n > 0 ? Math.sqrt((moments.m2[k] as number) / n) : NaN;
        meanOverAll[k] = n > 0 ? (m * n) / vectors : 0 / vectors;
      }
      const dims = perFeatureShape(shape);
      return { max: float64(max, dims), mean: float64(mean, dims), std: float64(std, dims), meanOverAll: float64(meanOverAll, dims) };
    },
  });
}
