/**
 * Feature density: for each learned feature (per component), the portion of activation vectors it
 * fired for (`x > 0`): `fired[c, f] / N`.
 *
 * State: the shared fired-count part, merged by addition.
 *
 * @module
 */
import { defineMetric } from './core.js';
import type { Batch, MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { firedCountPart, type FiredCountState } from './parts/fired-count.js';
import { meanResult } from './results.js';
import { checkFiredBatch, firedCountConfig } from './neuron-activity.js';

/** Options of {@link featureDensity} and `FeatureDensityMetric`. */
export interface FeatureDensityOptions {
  /** Number of learned features (required). */
  readonly numLearnedFeatures: number;
  /** Number of components; leave unset for inputs without a component axis. */
  readonly numComponents?: number;
}

/** The state of {@link featureDensity}. */
export type FeatureDensityState = MetricState<{ readonly firedCount: FiredCountState }>;

const METRIC = 'FeatureDensityMetric';

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
  const { numLearnedFeatures, numComponents } = firedCountConfig(METRIC, options);
  return defineMetric({
    metric: METRIC,
    config: { numLearnedFeatures, numComponents: numComponents ?? null },
    parts: { firedCount: firedCountPart(numLearnedFeatures, numComponents) },
    validate: (batch: Batch) => checkFiredBatch(METRIC, batch, numLearnedFeatures, numComponents),
    compute: (parts) =>
      meanResult(
        parts.firedCount.fired,
        parts.firedCount.vectors,
        numComponents === undefined ? [numLearnedFeatures] : [numComponents, numLearnedFeatures],
      ),
  });
}
