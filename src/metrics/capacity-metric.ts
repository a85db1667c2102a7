import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { calculateCapacities, capacity, type CapacityState } from '../functional/capacity.js';
import type { Tensor, TensorLike } from '../tensor.js';

/**
 * Capacity of each activation vector among all vectors seen (Scherlis et al. 2022):
 * `cap[c, i] = (x_i . x_i)^2 / sum_j (x_i . x_j)^2`; 1 for orthogonal vectors, 1/n for n equal
 * ones. `[component, N]` for `[batch, component, feature]` inputs, `[N]` for `[batch, feature]`.
 *
 * State: the activations themselves (copied) in arrival order; merges by concatenation, receiver
 * first. Memory grows with the stream, and compute costs O(N^2 * feature), as in Python.
 *
 * @example
 * ```ts
 * const cap = new CapacityMetric();
 * cap.forward({ learnedActivations: tensor([[[1, 1, 1]], [[1, 1, 1]]]) }).toArray(); // [[0.5, 0.5]]
 * ```
 */
export class CapacityMetric extends Metric<CapacityState, Tensor<'float64'>, LearnedBatch> {
  /** Takes no options (as in Python); a JavaScript caller that passes some gets a `TypeError`. */
  constructor(...noOptions: []) {
    super(capacity((noOptions as unknown[])[0] as Record<string, never> | undefined), []);
  }

  /** The capacity of each vector of `features`: `[component, batch]` or `[batch]`. */
  static capacities(features: TensorLike): Tensor<'float64'> {
    return calculateCapacities(features);
  }
}
