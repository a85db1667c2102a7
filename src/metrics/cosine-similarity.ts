import type { ReconstructionBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import { cosineSimilarity, type CosineSimilarityOptions, type CosineSimilarityState } from '../functional/cosine-similarity.js';
import type { Tensor } from '../tensor.js';

/**
 * Cosine similarity of source and decoded activations, averaged over vectors, per component; a
 * vector with one zero norm counts 0, with both zero 1.
 *
 * State: the sum of per-vector cosines and the vector count (merge by addition).
 *
 * @throws {TypeError | RangeError} on a bad option: `numComponents` (default 1) a positive integer.
 * @example
 * ```ts
 * const cos = new CosineSimilarity();
 * cos.forward({ sourceActivations: tensor([[1, 0], [0, 0]]), decodedActivations: tensor([[1, 1], [0, 0]]) }).item(); // 0.8536
 * ```
 */
export class CosineSimilarity extends Metric<CosineSimilarityState, Tensor<'float64'>, ReconstructionBatch> {
  constructor(options?: CosineSimilarityOptions) {
    super(cosineSimilarity(options), [options === undefined ? undefined : { ...options }]);
  }
}
