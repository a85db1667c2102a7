import type { LearnedBatch } from '../functional/core.js';
import { LossMetric } from './loss-metric.js';
import {
  calculateAbsSum,
  l1AbsoluteLoss,
  type L1AbsoluteLossOptions,
  type L1AbsoluteLossState,
} from '../functional/l1-absolute-loss.js';
import type { Tensor, TensorLike } from '../tensor.js';

/**
 * L1 (absolute error) loss: the absolute sum of the learned activations over the feature axis,
 * averaged over the number of activation vectors; per component.
 *
 * `L1 = (1 / N) * sum_n sum_f |learned[n, c, f]|`. With `keepBatchDim`, one value per vector
 * (`[N]` or `[N, component]`) in arrival order. A one-element result is 0-d.
 *
 * State merges by addition (sums and count), or with `keepBatchDim` by concatenation, receiver first.
 *
 * @throws {TypeError | RangeError} on a bad option: `numComponents` a positive integer (default 1),
 *   `keepBatchDim` a boolean (default false).
 * @example
 * ```ts
 * const l1 = new L1AbsoluteLoss();
 * l1.forward({ learnedActivations: tensor([[[1, 0, 1]], [[0, 1, 0]]]) }).item(); // 1.5
 * ```
 */
export class L1AbsoluteLoss extends LossMetric<L1AbsoluteLossOptions, L1AbsoluteLossState, LearnedBatch> {
  constructor(options: L1AbsoluteLossOptions = {}) {
    super(l1AbsoluteLoss, options);
  }

  /** The absolute sum of `learnedActivations` over the feature axis: `[batch]` or `[batch, component]`. */
  static calculateAbsSum(learnedActivations: TensorLike): Tensor<'float64'> {
    return calculateAbsSum(learnedActivations);
  }
}
