/**
 * Relative reconstruction bias (shrinkage): how much the reconstruction shrinks the source
 * activations, as a ratio of global sums (the Gated SAE paper's measure).
 *
 * `bias = Σ_n ‖x̂_n‖² / Σ_n ⟨x_n, x̂_n⟩` per component, over every vector seen (not a mean of
 * per-batch ratios); below 1 the reconstruction shrinks.
 *
 * State: `decodedSq` sums `‖x̂‖²` and `dot` sums `⟨x, x̂⟩` over vectors (merge by addition).
 *
 * @module
 */
import type { MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { defineReconstructionMetric, perComponent, reconstructionShape, sameVectors, type ReconstructionOptions } from './reconstruction-family.js';
import { vectorSumPart, type VectorSumState } from './parts/reconstruction.js';

/** Options of {@link relativeReconstructionBias} and `RelativeReconstructionBias`. */
export type RelativeReconstructionBiasOptions = ReconstructionOptions;

/** The state of {@link relativeReconstructionBias}. */
export type RelativeReconstructionBiasState = MetricState<{ readonly decodedSq: VectorSumState; readonly dot: VectorSumState }>;

const METRIC = 'RelativeReconstructionBias';

/**
 * The pure definition of `RelativeReconstructionBias`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const bias = relativeReconstructionBias();
 * const s = bias.update(bias.init(), {
 *   sourceActivations: tensor([[2, 0], [0, 1]]),
 *   decodedActivations: tensor([[1, 0], [0, 1]]),
 * });
 * bias.compute(s).item(); // 0.6667
 * ```
 */
export function relativeReconstructionBias(options?: RelativeReconstructionBiasOptions): MetricDefinition<RelativeReconstructionBiasState, Tensor<'float64'>> {
  const shape = reconstructionShape(METRIC, options, false);
  const { numComponents } = shape;
  return defineReconstructionMetric(
    METRIC,
    shape,
    { decodedSq: vectorSumPart('decodedSq', numComponents), dot: vectorSumPart('dot', numComponents) },
    (p) => perComponent(numComponents, (c) => (p.decodedSq.sum[c] as number) / (p.dot.sum[c] as number)),
    (p) => sameVectors(p.decodedSq, 'decodedSq', p.dot, 'dot'),
  );
}
