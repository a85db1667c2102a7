/**
 * Feature density: for each learned feature (per component), the portion of activation vectors it
 * fired for (`x > 0`): `fired[c, f] / N`.
 *
 * State: the shared fired-count part, merged by addition.
 *
 * @module
 */
import type { MetricDefinition } from './core.js';
import type { Tensor } from '../tensor.js';
import {
  defineFiredCountMetric,
  perFeatureShape,
  type FiredCountMetricState,
  type FiredCountOptions,
} from './fired-count-family.js';
import { meanResult } from './results.js';

/** Options of {@link featureDensity} and `FeatureDensityMetric`. */
export type FeatureDensityOptions = FiredCountOptions;

/** The state of {@link featureDensity}. */
export type FeatureDensityState = FiredCountMetricState;

/**
 * The pure definition of `FeatureDensityMetric`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const density = featureDensity({ numLearnedFeatures: 3, numComponents: 1 });
 * const s = density.update(density.init(), { learnedActivations: tensor([[[1, 0, 1]], [[0, 0, 0]]]) });
 * density.compute(s).toArray(); // [[0.5, 0, 0.5]]
 * ```
 */
export function featureDensity(options: FeatureDensityOptions): MetricDefinition<FeatureDensityState, Tensor<'float64'>> {
  return defineFiredCountMetric('FeatureDensityMetric', options, {
    compute: ({ fired, vectors }, shape) => meanResult(fired, vectors, perFeatureShape(shape)),
  });
}
