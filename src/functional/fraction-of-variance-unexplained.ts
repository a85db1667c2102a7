/**
 * Fraction of variance unexplained: the residual's variance over the source activations' variance,
 * summed over dimensions.
 *
 * `FVU = Σ_d Var(x − x̂)_d / Σ_d Var(x)_d` per component, population variances over every vector
 * seen (dictionary_learning's `frac_variance_explained` is `1 − FVU`).
 *
 * State: `source` and `residual` hold per-dimension counts, means and sums of squared deviations
 * `M2` of `x` and of `x − x̂` (merge by Chan et al.'s parallel rule).
 *
 * @module
 */
import type { MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { defineReconstructionMetric, perComponent, reconstructionShape, sameVectors, type VarianceOptions } from './reconstruction-family.js';
import { momentsPart, totalM2, type MomentsState } from './parts/reconstruction.js';

/** Options of {@link fractionOfVarianceUnexplained} and `FractionOfVarianceUnexplained`. */
export type FractionOfVarianceUnexplainedOptions = VarianceOptions;

/** The state of {@link fractionOfVarianceUnexplained}. */
export type FractionOfVarianceUnexplainedState = MetricState<{ readonly source: MomentsState; readonly residual: MomentsState }>;

const METRIC = 'FractionOfVarianceUnexplained';

/**
 * The pure definition of `FractionOfVarianceUnexplained`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const fvu = fractionOfVarianceUnexplained({ numFeatures: 2 });
 * const s = fvu.update(fvu.init(), {
 *   sourceActivations: tensor([[1, 0], [3, 0]]),
 *   decodedActivations: tensor([[1, 0], [2, 0]]),
 * });
 * fvu.compute(s).item(); // 0.25
 * ```
 */
export function fractionOfVarianceUnexplained(options: FractionOfVarianceUnexplainedOptions): MetricDefinition<FractionOfVarianceUnexplainedState, Tensor<'float64'>> {
  const shape = reconstructionShape(METRIC, options, true);
  const { numComponents } = shape;
  return defineReconstructionMetric(
    METRIC,
    shape,
    {
      source: momentsPart('source', numComponents, shape.numFeatures as number),
      residual: momentsPart('residual', numComponents, shape.numFeatures as number),
    },
    (p) => {
      const source = totalM2(p.source, numComponents);
      const residual = totalM2(p.residual, numComponents);
      return perComponent(numComponents, (c) => (residual[c] as number) / (source[c] as number));
    },
    (p) => sameVectors(p.source, 'source', p.residual, 'residual'),
  );
}
