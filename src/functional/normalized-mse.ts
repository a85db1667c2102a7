/**
 * Normalized MSE: the squared error of a vector over its squared norm, averaged over vectors
 * (OpenAI's `normalized_mse`).
 *
 * `nmse = (1 / N') Σ_n ‖x_n − x̂_n‖² / ‖x_n‖²` per component, over the `N'` vectors with
 * `‖x_n‖ > 0`: a zero-norm source vector has no normalized error; it is left out and counted apart
 * (`zeroNorm`; see {@link normalizedMseZeroNorms}).
 *
 * State: `nmse` sums the per-vector ratios (0 for a zero-norm vector) and `zeroNorm` counts the
 * zero-norm vectors, each with a vector count (merge by addition).
 *
 * @module
 */
import type { MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { defineReconstructionMetric, perComponent, reconstructionShape, sameVectors, type ReconstructionOptions } from './reconstruction-family.js';
import { vectorSumPart, type VectorSumState } from './parts/reconstruction.js';
import { countResult } from './results.js';

/** Options of {@link normalizedMse} and `NormalizedMse`. */
export type NormalizedMseOptions = ReconstructionOptions;

/** The state of {@link normalizedMse}. */
export type NormalizedMseState = MetricState<{ readonly nmse: VectorSumState; readonly zeroNorm: VectorSumState }>;

const METRIC = 'NormalizedMse';

/**
 * The pure definition of `NormalizedMse`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const nmse = normalizedMse();
 * const s = nmse.update(nmse.init(), {
 *   sourceActivations: tensor([[2, 0], [0, 0], [1, 1]]),
 *   decodedActivations: tensor([[1, 0], [1, 0], [1, 1]]),
 * });
 * nmse.compute(s).item(); // 0.125
 * normalizedMseZeroNorms(s).item(); // 1
 * ```
 */
export function normalizedMse(options?: NormalizedMseOptions): MetricDefinition<NormalizedMseState, Tensor<'float64'>> {
  const shape = reconstructionShape(METRIC, options, false);
  const { numComponents } = shape;
  return defineReconstructionMetric(
    METRIC,
    shape,
    { nmse: vectorSumPart('nmse', numComponents), zeroNorm: vectorSumPart('zeroNorm', numComponents) },
    (p) => perComponent(numComponents, (c) => (p.nmse.sum[c] as number) / (p.nmse.vectors - (p.zeroNorm.sum[c] as number))),
    (p) => sameVectors(p.nmse, 'nmse', p.zeroNorm, 'zeroNorm') ?? notErrorWithoutNorms(p.nmse, p.zeroNorm),
  );
}

/** The reason a component whose vectors all had zero norm holds a normalized error (it adds 0 for each), or undefined. */
function notErrorWithoutNorms(nmse: VectorSumState, zeroNorm: VectorSumState): string | undefined {
  for (let c = 0; c < nmse.sum.length; c++) {
    const s = nmse.sum[c] as number;
    if (nmse.vectors > 0 && zeroNorm.sum[c] === nmse.vectors && s !== 0) {
      return `nmse.sum must be 0 where every vector had zero norm (zeroNorm.sum = vectors = ${nmse.vectors}), got ${s} at index ${c}`;
    }
  }
  return undefined;
}

/** How many zero-norm source vectors `NormalizedMse` left out, per component (`[numComponents]`, exact; 0-d for one component). */
export function normalizedMseZeroNorms(state: NormalizedMseState): Tensor<'int64'> {
  return countResult(state.parts.zeroNorm.sum.slice(), [state.parts.zeroNorm.sum.length]);
}
