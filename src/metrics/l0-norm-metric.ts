import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { l0Norm, type L0NormOptions, type L0NormState } from '../functional/l0-norm.js';
import type { Tensor } from '../tensor.js';

/**
 * L0 norm: the number of non-zero learned activations per vector (negatives count), averaged over
 * activation vectors. 0-d without `numComponents`; `[numComponents]` with it (0-d for one).
 *
 * State: exact integer non-zero counts per component and the vector count; merges by addition.
 *
 * @throws {TypeError | RangeError} on a bad option: `numComponents` a positive integer.
 * @example
 * ```ts
 * const l0 = new L0NormMetric({ numComponents: 2 });
 * l0.forward({
 *   learnedActivations: tensor([[[1, 0, 1], [1, 0, 1]], [[0, 1, 0], [1, 0, 1]]]),
 * }).toArray(); // [1.5, 2]
 * ```
 */
export class L0NormMetric extends Metric<L0NormState, Tensor<'float64'>, LearnedBatch> {
  constructor(options: L0NormOptions = {}) {
    super(l0Norm(options), [{ ...options }]);
  }
}
