/**
 * What `NeuronActivityMetric`, `NeuronFiredCountMetric` and `FeatureDensityMetric` share: their
 * shape options, their batch check, and the fired-count state part.
 *
 * @module
 */
import { checkActivations, checkBatch, checkOptions, defineMetric, positiveInteger } from './core.js';
import type { Batch, MetricConfig, MetricDefinition, MetricState } from './core.js';
import { firedCountPart, type FiredCountState } from './parts/fired-count.js';

/** The shape options of the fired-count family. */
export interface FiredCountOptions {
  /** Number of learned features (required). */
  readonly numLearnedFeatures: number;
  /** Number of components; leave unset for inputs without a component axis. */
  readonly numComponents?: number;
}

/** The state of a fired-count metric. */
export type FiredCountMetricState = MetricState<{ readonly firedCount: FiredCountState }>;

/** The checked shape of a fired-count metric. */
export interface FiredCountShape {
  readonly numLearnedFeatures: number;
  readonly numComponents: number | undefined;
}

/**
 * Defines a metric of the fired-count family: checks the shape options (and allows `extra` option
 * names, which the caller checks), then builds a definition whose state is the fired-count part.
 */
export function defineFiredCountMetric<O extends FiredCountOptions, R>(
  metric: string,
  options: O | undefined,
  spec: {
    readonly extraOptions?: readonly string[];
    readonly config?: MetricConfig;
    readonly compute: (state: FiredCountState, shape: FiredCountShape) => R;
  },
): MetricDefinition<FiredCountMetricState, R> {
  const shape = checkFeatureCells(metric, firedCountShape(metric, options, spec.extraOptions));
  const { numLearnedFeatures, numComponents } = shape;
  return defineMetric({
    metric,
    config: { numLearnedFeatures, numComponents: numComponents ?? null, ...spec.config },
    parts: { firedCount: firedCountPart(numLearnedFeatures, numComponents) },
    validate: learnedValidator(metric, shape),
    compute: (parts) => spec.compute(parts.firedCount, shape),
  });
}

/** Checks the shape options of a metric over learned features (and allows `extra` option names, which the caller checks). */
export function firedCountShape(metric: string, options: FiredCountOptions | undefined, extra: readonly string[] = []): FiredCountShape {
  if (options === undefined) {
    throw new TypeError(`${metric}: options.numLearnedFeatures must be a positive integer, got undefined`);
  }
  const o = checkOptions(metric, options, ['numLearnedFeatures', 'numComponents', ...extra]);
  return {
    numLearnedFeatures: positiveInteger(metric, 'numLearnedFeatures', o.numLearnedFeatures),
    numComponents: o.numComponents === undefined ? undefined : positiveInteger(metric, 'numComponents', o.numComponents),
  };
}

/** Per-feature cells (numComponents × numLearnedFeatures) the feature statistics allow: their arrays are allocated up front. */
export const MAX_FEATURE_CELLS = 2 ** 28;

/** Refuses a shape with more than {@link MAX_FEATURE_CELLS} cells with a message naming the metric (before any allocation). */
export function checkFeatureCells(metric: string, shape: FiredCountShape): FiredCountShape {
  const cells = (shape.numComponents ?? 1) * shape.numLearnedFeatures;
  if (cells > MAX_FEATURE_CELLS) {
    throw new RangeError(
      `${metric}: options.numLearnedFeatures must leave at most ${MAX_FEATURE_CELLS} per-feature values (numComponents × numLearnedFeatures), got ${shape.numComponents ?? 1} × ${shape.numLearnedFeatures} = ${cells}`,
    );
  }
  return shape;
}

/** The batch check of a metric over learned activations of `shape`: returns the rows. */
export function learnedValidator(metric: string, shape: FiredCountShape): (batch: Batch) => number {
  const { numLearnedFeatures, numComponents } = shape;
  return (batch: Batch) =>
    checkActivations(metric, checkBatch(metric, batch), 'learnedActivations', numComponents, {
      count: numLearnedFeatures,
      option: 'numLearnedFeatures',
    }).rows;
}

/** The result shape of a per-feature value: `[feature]`, or `[component, feature]` with numComponents. */
export function perFeatureShape(shape: FiredCountShape): number[] {
  return shape.numComponents === undefined ? [shape.numLearnedFeatures] : [shape.numComponents, shape.numLearnedFeatures];
}
