/**
 * Explained variance: the share of the source activations' variance about their mean vector that
 * the reconstruction explains.
 *
 * `EV = 1 − Σ_n ‖x_n − x̂_n‖² / Σ_n ‖x_n − x̄‖²` per component, `x̄` the mean vector over every
 * vector seen (SAELens' streaming form, about the mean, not about zero).
 *
 * State: `error` sums `‖x − x̂‖²` over vectors (merges by addition); `source` holds per-dimension
 * counts, means and sums of squared deviations `M2` of `x` (merges by Chan et al.'s parallel rule,
 * numerically sound for large means, unlike `Σx² − (Σx)² / n`).
 *
 * @module
 */
import type { MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { defineReconstructionMetric, perComponent, reconstructionShape, sameVectors, type VarianceOptions } from './reconstruction-family.js';
import { momentsPart, totalM2, vectorSumPart, type MomentsState, type VectorSumState } from './parts/reconstruction.js';

/** Options of {@link explainedVariance} and `ExplainedVariance`. */
export type ExplainedVarianceOptions = VarianceOptions;

/** The state of {@link explainedVariance}. */
export type ExplainedVarianceState = MetricState<{ readonly error: VectorSumState; readonly source: MomentsState }>;

const METRIC = 'ExplainedVariance';

/**
 * The pure definition of `ExplainedVariance`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const ev = explainedVariance({ numFeatures: 2 });
 * const s = ev.update(ev.init(), {
 *   sourceActivations: tensor([[1, 0], [3, 0]]),
 *   decodedActivations: tensor([[1, 0], [2, 0]]),
 * });
 * ev.compute(s).item(); // 0.5
 * ```
 */
export function explainedVariance(options: ExplainedVarianceOptions): MetricDefinition<ExplainedVarianceState, Tensor<'float64'>> {
  const shape = reconstructionShape(METRIC, options, true);
  const { numComponents } = shape;
  return defineReconstructionMetric(
    METRIC,
    shape,
    { error: vectorSumPart('error', numComponents), source: momentsPart('source', numComponents, shape.numFeatures as number) },
    (p) => {
      const total = totalM2(p.source, numComponents);
      return perComponent(numComponents, (c) => 1 - (p.error.sum[c] as number) / (total[c] as number));
    },
    (p) => sameVectors(p.error, 'error', p.source, 'source'),
  );
}
