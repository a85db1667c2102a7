import type { ReconstructionBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { fractionOfVarianceUnexplained, type FractionOfVarianceUnexplainedOptions, type FractionOfVarianceUnexplainedState } from '../functional/fraction-of-variance-unexplained.js';
import type { Tensor } from '../tensor.js';

/**
 * Fraction of variance unexplained: `Σ_d Var(x − x̂)_d / Σ_d Var(x)_d` per component, population
 * variances over every vector seen.
 *
 * State: per-dimension moments of the source activations and of the residual (count, mean,
 * `M2`; merge by Chan et al.'s parallel rule).
 *
 * @throws {TypeError | RangeError} on a bad option: `numFeatures` (required, the width of the activations) and `numComponents` (default 1)
 *   positive integers.
 * @example
 * ```ts
 * const fvu = new FractionOfVarianceUnexplained({ numFeatures: 2 });
 * fvu.forward({ sourceActivations: tensor([[1, 0], [3, 0]]), decodedActivations: tensor([[1, 0], [2, 0]]) }).item(); // 0.25
 * ```
 */
export class FractionOfVarianceUnexplained extends Metric<FractionOfVarianceUnexplainedState, Tensor<'float64'>, ReconstructionBatch> {
  constructor(options: FractionOfVarianceUnexplainedOptions) {
    super(fractionOfVarianceUnexplained(options), [{ ...options }]);
  }
}
