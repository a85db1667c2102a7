import type { ReconstructionBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { relativeReconstructionBias, type RelativeReconstructionBiasOptions, type RelativeReconstructionBiasState } from '../functional/relative-reconstruction-bias.js';
import type { Tensor } from '../tensor.js';

/**
 * Relative reconstruction bias (shrinkage): `Σ‖x̂‖² / Σ⟨x, x̂⟩` over every vector seen, per component.
 *
 * State: the sums of `‖x̂‖²` and of `⟨x, x̂⟩` with vector counts (merge by addition).
 *
 * @throws {TypeError | RangeError} on a bad option: `numComponents` (default 1) a positive integer.
 * @example
 * ```ts
 * const bias = new RelativeReconstructionBias();
 * bias.forward({ sourceActivations: tensor([[2, 0], [0, 1]]), decodedActivations: tensor([[1, 0], [0, 1]]) }).item(); // 0.6667
 * ```
 */
export class RelativeReconstructionBias extends Metric<RelativeReconstructionBiasState, Tensor<'float64'>, ReconstructionBatch> {
  constructor(options?: RelativeReconstructionBiasOptions) {
    super(relativeReconstructionBias(options), [options === undefined ? undefined : { ...options }]);
  }
}
