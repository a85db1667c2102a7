/**
 * Neuron fired count: for each learned feature (per component), the number of activation vectors
 * it fired for (`x > 0`), as exact integers.
 *
 * State: the shared fired-count part, merged by addition.
 *
 * @module
 */
import { defineMetric } from './core.js';
import type { Batch, MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { firedCountPart, type FiredCountState } from './parts/fired-count.js';
import { countResult } from './results.js';
import { checkFiredBatch, firedCountConfig } from './neuron-activity.js';

/** Options of {@link neuronFiredCount} and `NeuronFiredCountMetric`. */
export interface NeuronFiredCountOptions {
  /** Number of learned features (required). */
  readonly numLearnedFeatures: number;
  /** Number of components; leave unset for inputs without a component axis. */
  readonly numComponents?: number;
}

/** The state of {@link neuronFiredCount}. */
export type NeuronFiredCountState = MetricState<{ readonly firedCount: FiredCountState }>;

const METRIC = 'NeuronFiredCountMetric';

/**
 * The pure definition of `NeuronFiredCountMetric`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const fired = neuronFiredCount({ numLearnedFeatures: 3 });
 * const s = fired.update(fired.init(), { learnedActivations: tensor([[1, 0, 1], [0, 0, 0]]) });
 * fired.compute(s).toArray(); // [1, 0, 1]
 * ```
 */
export function neuronFiredCount(options: NeuronFiredCountOptions): MetricDefinition<NeuronFiredCountState, Tensor<'int64'>> {
  const { numLearnedFeatures, numComponents } = firedCountConfig(METRIC, options);
  return defineMetric({
    metric: METRIC,
    config: { numLearnedFeatures, numComponents: numComponents ?? null },
    parts: { firedCount: firedCountPart(numLearnedFeatures, numComponents) },
    validate: (batch: Batch) => checkFiredBatch(METRIC, batch, numLearnedFeatures, numComponents),
    compute: (parts) =>
      countResult(
        parts.firedCount.fired.slice(),
        numComponents === undefined ? [numLearnedFeatures] : [numComponents, numLearnedFeatures],
      ),
  });
}
