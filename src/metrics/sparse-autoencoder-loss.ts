import type { SparseAutoencoderBatch } from '../functional/core.js';
import { LossMetric } from './loss-metric.js';
import {
  sparseAutoencoderLoss,
  type SparseAutoencoderLossOptions,
  type SparseAutoencoderLossState,
} from '../functional/sparse-autoencoder-loss.js';

/**
 * Sparse autoencoder loss: `L1AbsoluteLoss * l1Coefficient + L2ReconstructionLoss`, per component
 * (per vector with `keepBatchDim`). It declares the same state parts as those two metrics, so in a
 * `MetricCollection` all three share one pass over each batch.
 *
 * State merges by addition (sums and count), or with `keepBatchDim` by concatenation, receiver first.
 *
 * @throws {TypeError | RangeError} on a bad option: `numComponents` a positive integer (default 1),
 *   `l1Coefficient` a positive finite number (default 0.001), `keepBatchDim` a boolean (default false).
 * @example
 * ```ts
 * const loss = new SparseAutoencoderLoss({ l1Coefficient: 0.5 });
 * loss.forward({
 *   learnedActivations: tensor([[1, 0, 1]]),
 *   sourceActivations: tensor([[4, 2]]),
 *   decodedActivations: tensor([[2, 0]]),
 * }).item(); // 2 * 0.5 + 4 = 5
 * ```
 */
export class SparseAutoencoderLoss extends LossMetric<SparseAutoencoderLossOptions, SparseAutoencoderLossState, SparseAutoencoderBatch> {
  constructor(options: SparseAutoencoderLossOptions = {}) {
    super(sparseAutoencoderLoss, options);
  }

  /** Coefficient of the L1 term. */
  get l1Coefficient(): number {
    return this.definition.config.l1Coefficient as number;
  }
}
