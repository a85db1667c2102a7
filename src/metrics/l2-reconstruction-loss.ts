import type { ReconstructionBatch } from '../functional/core.js';
import { LossMetric } from './loss-metric.js';
import {
  calculateMse,
  l2ReconstructionLoss,
  type L2ReconstructionLossOptions,
  type L2ReconstructionLossState,
} from '../functional/l2-reconstruction-loss.js';
import type { Tensor, TensorLike } from '../tensor.js';

/**
 * L2 reconstruction loss (MSE): the mean squared error of decoded against source activations
 * over the feature axis, averaged over activation vectors; per component.
 *
 * `L2 = (1 / N) * sum_n (1 / F) * sum_f (decoded[n, c, f] - source[n, c, f])^2`. With
 * `keepBatchDim`, one value per vector in arrival order. A one-element result is 0-d.
 *
 * State merges by addition (sums and count), or with `keepBatchDim` by concatenation, receiver first.
 *
 * @throws {TypeError | RangeError} on a bad option: `numComponents` a positive integer (default 1),
 *   `keepBatchDim` a boolean (default false).
 * @example
 * ```ts
 * const l2 = new L2ReconstructionLoss();
 * l2.forward({
 *   sourceActivations: tensor([[[4, 2]], [[2, 0]]]),
 *   decodedActivations: tensor([[[2, 0]], [[0, 0]]]),
 * }).item(); // 3
 * ```
 */
export class L2ReconstructionLoss extends LossMetric<L2ReconstructionLossOptions, L2ReconstructionLossState, ReconstructionBatch> {
  constructor(options: L2ReconstructionLossOptions = {}) {
    super(l2ReconstructionLoss, options);
  }

  /** The MSE of decoded against source activations over the feature axis: `[batch]` or `[batch, component]`. */
  static calculateMse(decodedActivations: TensorLike, sourceActivations: TensorLike): Tensor<'float64'> {
    return calculateMse(decodedActivations, sourceActivations);
  }
}
