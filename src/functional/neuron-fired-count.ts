/**
 * Neuron fired count: for each learned feature (per component), the number of activation vectors
 * it fired for (`x > 0`), as exact integers.
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
import { countResult } from './results.js';

/** Options of {@link neuronFiredCount} and `NeuronFiredCountMetric`. */
export type NeuronFiredCountOptions = FiredCountOptions;

/** The state of {@link neuronFiredCount}. */
export type NeuronFiredCountState = FiredCountMetricState;

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
  return defineFiredCountMetric('NeuronFiredCountMetric', options, {
    compute: ({ fired }, shape) => countResult(fired.slice(), perFeatureShape(shape)),
  });
}
