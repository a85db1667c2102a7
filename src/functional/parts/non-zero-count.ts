/**
 * How many non-zero learned activations there were (negatives and NaN count, as
 * `torch.count_nonzero`), summed over vectors, per component, and the number of vectors: the
 * state of `L0NormMetric`. Counts are exact integers.
 *
 * @module
 */
import { fromFusedPass, type StatePart } from '../core.js';
import { addCount, addCounts, notCount, notCounts, notRecord, notZeroWithoutVectors } from './arrays.js';

/** Non-zero counts per component (one entry without a component axis). */
export interface NonZeroCountState {
  readonly nonZero: Float64Array;
  readonly vectors: number;
}

/** The non-zero-count part for `numComponents` components (or none). */
export function nonZeroCountPart(numComponents: number | undefined): StatePart<NonZeroCountState> {
  const components = numComponents ?? 1;
  const part: StatePart<NonZeroCountState> = {
    id: `nonZeroCount(components=${numComponents ?? 'none'})`,
    recipe: { kind: 'nonZeroCount', args: [numComponents ?? null] },
    reads: ['learnedActivations'],
    needs: { nonZero: true },
    init: () => ({ nonZero: new Float64Array(components), vectors: 0 }),
    fromStats: (stats, rows) => ({ nonZero: stats.nonZero as Float64Array, vectors: rows.end - rows.start }),
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: (a, b) => ({ nonZero: addCounts(a.nonZero, b.nonZero), vectors: addCount(a.vectors, b.vectors) }),
    invalid: (v) =>
      notRecord(v, ['nonZero', 'vectors']) ??
      notCount((v as NonZeroCountState).vectors, 'vectors') ??
      notCounts((v as NonZeroCountState).nonZero, components, 'nonZero') ??
      notZeroWithoutVectors((v as NonZeroCountState).nonZero, (v as NonZeroCountState).vectors, 'nonZero'),
  };
  return part;
}
