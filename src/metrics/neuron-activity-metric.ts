import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { neuronActivity, type NeuronActivityOptions, type NeuronActivityState } from '../functional/neuron-activity.js';
import type { Tensor } from '../tensor.js';

/**
 * Neuron activity: the number of dead learned features per component. A neuron is dead when the
 * portion of activation vectors it fired for (`x > 0`) is at most `thresholdIsDeadPortionFires`
 * (compared exactly: `fired <= threshold * N` in float64). Without `numComponents` the result is
 * 0-d; with it, `[numComponents]` (0-d for one component).
 *
 * State: exact integer fired counts per component and feature, and the vector count; merges by
 * addition. Shared in a `MetricCollection` with `NeuronFiredCountMetric` and `FeatureDensityMetric`
 * of the same shape, whatever the threshold.
 *
 * @throws {TypeError | RangeError} on a bad option: `numLearnedFeatures` (required) and
 *   `numComponents` positive integers, `thresholdIsDeadPortionFires` a number in [0, 1] (default 0).
 * @example
 * ```ts
 * const dead = new NeuronActivityMetric({ numLearnedFeatures: 3 });
 * dead.forward({ learnedActivations: tensor([[1, 0, 1], [0, 0, 0]]) }).item(); // 1
 * ```
 */
export class NeuronActivityMetric extends Metric<NeuronActivityState, Tensor<'int64'>, LearnedBatch> {
  constructor(options: NeuronActivityOptions) {
    super(neuronActivity(options), [{ ...options }]);
  }

  /** The dead-neuron threshold, a portion of vectors in [0, 1]. */
  get thresholdIsDeadPortionFires(): number {
    return this.definition.config.thresholdIsDeadPortionFires as number;
  }
}
