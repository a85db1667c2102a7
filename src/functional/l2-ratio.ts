/**
 * L2 ratio: the norm of the decoded activations over the norm of the source activations,
 * averaged over vectors.
 *
 * `L2Ratio = (1 / N) Σ_n ‖x̂_n‖ / ‖x_n‖` per component; a vector with `‖x_n‖ < 1e-4` is divided by
 * 1 instead (as SAEBench's core evaluation does).
 *
 * State: `ratio` sums the per-vector ratios with a vector count (merges by addition).
 *
 * @module
 */
import type { MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { defineReconstructionMetric, perComponent, reconstructionShape, type ReconstructionOptions } from './reconstruction-family.js';
import { vectorSumPart, type VectorSumState } from './parts/reconstruction.js';

/** Options of {@link l2Ratio} and `L2Ratio`. */
export type L2RatioOptions = ReconstructionOptions;

/** The state of {@link l2Ratio}. */
export type L2RatioState = MetricState<{ readonly ratio: VectorSumState }>;

const METRIC = 'L2Ratio';

/**
 * The pure definition of `L2Ratio`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const ratio = l2Ratio();
 * const s = ratio.update(ratio.init(), {
 *   sourceActivations: tensor([[3, 4], [0, 0]]),
 *   decodedActivations: tensor([[0, 2], [1, 0]]),
 * });
 * ratio.compute(s).item(); // 0.7
 * ```
 */
export function l2Ratio(options?: L2RatioOptions): MetricDefinition<L2RatioState, Tensor<'float64'>> {
  const shape = reconstructionShape(METRIC, options, false);
  const { numComponents } = shape;
  return defineReconstructionMetric(
    METRIC,
    shape,
    { ratio: vectorSumPart('l2Ratio', numComponents) },
    (p) => perComponent(numComponents, (c) => (p.ratio.sum[c] as number) / p.ratio.vectors),
  );
}
