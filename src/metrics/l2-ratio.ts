import type { ReconstructionBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { l2Ratio, type L2RatioOptions, type L2RatioState } from '../functional/l2-ratio.js';
import type { Tensor } from '../tensor.js';

/**
 * L2 ratio: `‖x̂‖ / ‖x‖` averaged over vectors, per component; `‖x‖ < 1e-4` divides by 1 (SAEBench).
 *
 * State: the sum of per-vector ratios and the vector count (merge by addition).
 *
 * @throws {TypeError | RangeError} on a bad option: `numComponents` (default 1) a positive integer.
 * @example
 * ```ts
 * const ratio = new L2Ratio();
 * ratio.forward({ sourceActivations: tensor([[3, 4], [0, 0]]), decodedActivations: tensor([[0, 2], [1, 0]]) }).item(); // 0.7
 * ```
 */
export class L2Ratio extends Metric<L2RatioState, Tensor<'float64'>, ReconstructionBatch> {
  constructor(options?: L2RatioOptions) {
    super(l2Ratio(options), [options === undefined ? undefined : { ...options }]);
  }
}
