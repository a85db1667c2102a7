import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import {
  deadFeaturesOverWindow,
  type DeadFeaturesOverWindowOptions,
  type DeadFeaturesOverWindowResult,
  type DeadFeaturesOverWindowState,
} from '../functional/dead-features-over-window.js';

/**
 * Dead features over a window: a learned feature is dead when it has not fired (`x > 0`) on any
 * of the last `windowVectors` vectors (rows); also, per feature, the vectors since it last fired
 * (a feature that never fired counts from the start of the stream, so nothing is dead before a
 * full window has been seen). Vectors are numbered in arrival order from 0; a batch may carry
 * `firstVectorIndex` (a gap beyond the vectors seen: nothing fired in it).
 *
 * State: per feature the index of the last vector it fired on, and the vector count; merges in
 * order (the incoming state's indices shifted by the receiver's count), keeping the later index;
 * indices numbered from a declared `firstVectorIndex` are absolute and do not shift, and a state
 * whose vectors overlap them is refused (`StateMergeError`).
 *
 * @throws {TypeError | RangeError} on a bad option: `numLearnedFeatures` and `windowVectors`
 *   (required), `numComponents`, positive integers.
 * @example
 * ```ts
 * const d = new DeadFeaturesOverWindow({ numLearnedFeatures: 3, windowVectors: 2 });
 * d.update({ learnedActivations: tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0]]) });
 * d.compute().dead.item(); // 2
 * d.compute().vectorsSinceFired.toArray(); // [2, 1, 3]
 * ```
 */
export class DeadFeaturesOverWindow extends Metric<DeadFeaturesOverWindowState, DeadFeaturesOverWindowResult, LearnedBatch> {
  constructor(options: DeadFeaturesOverWindowOptions) {
    super(deadFeaturesOverWindow(options), [{ ...options }]);
  }
}
