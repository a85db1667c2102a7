import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { neuronFiredCount, type NeuronFiredCountOptions, type NeuronFiredCountState } from '../functional/neuron-fired-count.js';
import type { Tensor } from '../tensor.js';

/**
 * Neuron fired count: for each learned feature, the number of activation vectors it fired for
 * (`x > 0`), as exact integers: `[feature]`, or `[component, feature]` with `numComponents`.
 *
 * State: the shared fired-count part; merges by addition.
 *
 * @throws {TypeError | RangeError} on a bad option: `numLearnedFeatures` (required) and
 *   `numComponents` positive integers.
 * @example
 * ```ts
 * const fired = new NeuronFiredCountMetric({ numLearnedFeatures: 3 });
 * fired.forward({ learnedActivations: tensor([[1, 0, 1], [0, 0, 0]]) }).toArray(); // [1, 0, 1]
 * ```
 */
export class NeuronFiredCountMetric extends Metric<NeuronFiredCountState, Tensor<'int64'>, LearnedBatch> {
  constructor(options: NeuronFiredCountOptions) {
    super(neuronFiredCount(options), [{ ...options }]);
  }
}
