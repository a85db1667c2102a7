import type { ReconstructionScoreBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import {
  reconstructionScore,
  type ReconstructionScoreOptions,
  type ReconstructionScoreState,
} from '../functional/reconstruction-score.js';
import type { Tensor } from '../tensor.js';

/**
 * Reconstruction score of the source model with the SAE spliced in, per component:
 * `(sum zeroAblation - sum reconstruction) / (sum zeroAblation - sum source)` over all items.
 * A batch holds `sourceModelLoss`, `sourceModelLossWithReconstruction` and
 * `sourceModelLossWithZeroAblation` (float32 tensors of one shape) and optionally `componentIdx`.
 *
 * State: float64 sums of the three losses per component; merges by addition.
 *
 * @throws {TypeError | RangeError} on a bad option: `numComponents` a positive integer (default 1).
 * @example
 * ```ts
 * const score = new ReconstructionScoreMetric();
 * score.forward({
 *   sourceModelLoss: tensor([2, 2, 2]),
 *   sourceModelLossWithReconstruction: tensor([3, 3, 3]),
 *   sourceModelLossWithZeroAblation: tensor([5, 5, 5]),
 * }).item(); // 0.6667
 * ```
 */
export class ReconstructionScoreMetric extends Metric<ReconstructionScoreState, Tensor<'float64'>, ReconstructionScoreBatch> {
  constructor(options: ReconstructionScoreOptions = {}) {
    super(reconstructionScore(options), [{ ...options }]);
  }
}
