/**
 * How many activation vectors each learned feature fired for (`x > 0`), per component, and the
 * number of vectors: the state shared by `NeuronActivityMetric`, `NeuronFiredCountMetric` and
 * `FeatureDensityMetric`. Counts are exact integers.
 *
 * @module
 */
import type { StatePart } from '../core.js';
import type { TensorLike } from '../../tensor.js';
import { addF64, notCount, notCounts, notRecord } from './arrays.js';

/** Fired counts `[component, feature]` (row-major; one component without a component axis). */
export interface FiredCountState {
  readonly fired: Float64Array;
  readonly vectors: number;
}

/** The fired-count part for `numFeatures` features and `numComponents` components (or none). */
export function firedCountPart(numFeatures: number, numComponents: number | undefined): StatePart<FiredCountState> {
  const size = (numComponents ?? 1) * numFeatures;
  return {
    id: `firedCount(components=${numComponents ?? 'none'},features=${numFeatures})`,
    init: () => ({ fired: new Float64Array(size), vectors: 0 }),
    fromBatch(batch, rows) {
      const x = (batch.learnedActivations as TensorLike).data;
      const counts = new Uint32Array(size);
      const end = rows.end * size;
      for (let o = rows.start * size; o < end; o += size) {
        for (let j = 0; j < size; j++) if ((x[o + j] as number) > 0) counts[j] = (counts[j] as number) + 1;
      }
      return { fired: Float64Array.from(counts), vectors: rows.end - rows.start };
    },
    merge: (a, b) => ({ fired: addF64(a.fired, b.fired), vectors: a.vectors + b.vectors }),
    invalid: (v) =>
      notRecord(v, ['fired', 'vectors']) ??
      notCounts((v as FiredCountState).fired, size, 'fired') ??
      notCount((v as FiredCountState).vectors, 'vectors'),
  };
}
