import type { ReconstructionBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { normalizedMse, normalizedMseZeroNorms, type NormalizedMseOptions, type NormalizedMseState } from '../functional/normalized-mse.js';
import type { Tensor } from '../tensor.js';

/**
 * Normalized MSE: `‖x − x̂‖² / ‖x‖²` averaged over the vectors with `‖x‖ > 0`, per component;
 * zero-norm source vectors are left out and counted apart ({@link NormalizedMse.zeroNormVectors}).
 *
 * State: the sum of per-vector ratios and the count of zero-norm vectors, with vector counts
 * (merge by addition).
 *
 * @throws {TypeError | RangeError} on a bad option: `numComponents` (default 1) a positive integer.
 * @example
 * ```ts
 * const nmse = new NormalizedMse();
 * nmse.forward({ sourceActivations: tensor([[2, 0], [0, 0], [1, 1]]), decodedActivations: tensor([[1, 0], [1, 0], [1, 1]]) }).item(); // 0.125
 * nmse.zeroNormVectors().item(); // 1
 * ```
 */
export class NormalizedMse extends Metric<NormalizedMseState, Tensor<'float64'>, ReconstructionBatch> {
  constructor(options?: NormalizedMseOptions) {
    super(normalizedMse(options), [options === undefined ? undefined : { ...options }]);
  }

  /** How many zero-norm source vectors were left out, per component (`[numComponents]`, exact; 0-d for one component). */
  zeroNormVectors(): Tensor<'int64'> {
    return normalizedMseZeroNorms(this.state());
  }
}
