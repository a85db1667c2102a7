import type { ReconstructionBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { explainedVariance, type ExplainedVarianceOptions, type ExplainedVarianceState } from '../functional/explained-variance.js';
import type { Tensor } from '../tensor.js';

/**
 * Explained variance: `1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²` per component, `x̄` the mean vector over every
 * vector seen (about the mean, as SAELens' streaming form).
 *
 * State: summed squared errors (merge by addition) and per-dimension moments of the source
 * activations (count, mean, `M2`; merge by Chan et al.'s parallel rule, sound for large means).
 *
 * @throws {TypeError | RangeError} on a bad option: `numFeatures` (required, the width of the activations) and `numComponents` (default 1)
 *   positive integers.
 * @example
 * ```ts
 * const ev = new ExplainedVariance({ numFeatures: 2 });
 * ev.forward({ sourceActivations: tensor([[1, 0], [3, 0]]), decodedActivations: tensor([[1, 0], [2, 0]]) }).item(); // 0.5
 * ```
 */
export class ExplainedVariance extends Metric<ExplainedVarianceState, Tensor<'float64'>, ReconstructionBatch> {
  constructor(options: ExplainedVarianceOptions) {
    super(explainedVariance(options), [{ ...options }]);
  }
}
