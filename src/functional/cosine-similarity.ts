/**
 * Cosine similarity of source and decoded activations, averaged over vectors.
 *
 * `cos = (1 / N) Σ_n ⟨x_n, x̂_n⟩ / (‖x_n‖ ‖x̂_n‖)` per component; a vector with one zero norm
 * counts as 0, with both norms zero as 1 (a zero vector reconstructed exactly).
 *
 * State: `cosine` sums the per-vector cosines with a vector count (merges by addition).
 *
 * @module
 */
import type { MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { defineReconstructionMetric, perComponent, reconstructionShape, type ReconstructionOptions } from './reconstruction-family.js';
import { vectorSumPart, type VectorSumState } from './parts/reconstruction.js';

/** Options of {@link cosineSimilarity} and `CosineSimilarity`. */
export type CosineSimilarityOptions = ReconstructionOptions;

/** The state of {@link cosineSimilarity}. */
export type CosineSimilarityState = MetricState<{ readonly cosine: VectorSumState }>;

const METRIC = 'CosineSimilarity';

/**
 * The pure definition of `CosineSimilarity`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const cos = cosineSimilarity();
 * const s = cos.update(cos.init(), {
 *   sourceActivations: tensor([[1, 0], [0, 0]]),
 *   decodedActivations: tensor([[1, 1], [0, 0]]),
 * });
 * cos.compute(s).item(); // 0.8536
 * ```
 */
export function cosineSimilarity(options?: CosineSimilarityOptions): MetricDefinition<CosineSimilarityState, Tensor<'float64'>> {
  const shape = reconstructionShape(METRIC, options, false);
  const { numComponents } = shape;
  return defineReconstructionMetric(
    METRIC,
    shape,
    { cosine: vectorSumPart('cosine', numComponents) },
    (p) => perComponent(numComponents, (c) => (p.cosine.sum[c] as number) / p.cosine.vectors),
  );
}
