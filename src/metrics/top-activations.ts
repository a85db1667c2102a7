import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import {
  topActivations,
  type TopActivationsMetricState,
  type TopActivationsOptions,
  type TopActivationsResult,
} from '../functional/top-activations.js';

/**
 * Top activations: per learned feature, its `k` largest fired activations (`x > 0`) with the
 * global index of the vector (row) each came from, ties to the lower index, so the result is the
 * same bit for bit whatever the batching, sharding or worker count. Vectors are numbered in
 * arrival order from 0 (a row's components share its number); a batch may carry
 * `firstVectorIndex`, the absolute index of its first row: beyond the vectors seen it leaves a
 * gap, below them it is refused. A feature that fired fewer than `k` times has `counts < k`, its
 * row of `values` padded with NaN and of `indices` with -1.
 *
 * State: per feature its best `k` entries and the vector count; merges in order, shifting the
 * incoming state's indices by the receiver's count (`mergeState` appends the other state's
 * vectors after this one's); indices numbered from a declared `firstVectorIndex` are absolute and
 * do not shift, and a state whose vectors overlap them is refused (`StateMergeError`).
 *
 * @throws {TypeError | RangeError} on a bad option: `numLearnedFeatures` and `k` (required),
 *   `numComponents`, positive integers (`k` up to 2^20).
 * @example
 * ```ts
 * const top = new TopActivations({ numLearnedFeatures: 2, k: 2 });
 * top.update({ learnedActivations: tensor([[1, 0], [3, 0]]) });
 * top.update({ learnedActivations: tensor([[3, 2]]) });
 * top.compute().values.toArray(); // [[3, 3], [2, NaN]]
 * top.compute().indices.toArray(); // [[1, 2], [2, -1]]
 * ```
 */
export class TopActivations extends Metric<TopActivationsMetricState, TopActivationsResult, LearnedBatch> {
  constructor(options: TopActivationsOptions) {
    super(topActivations(options), [{ ...options }]);
  }
}
