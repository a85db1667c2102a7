/**
 * How many activation vectors each learned feature fired for (`x > 0`), per component, and the
 * number of vectors: the state shared by `NeuronActivityMetric`, `NeuronFiredCountMetric` and
 * `FeatureDensityMetric`. Counts are exact integers.
 *
 * @module
 */
import { fromFusedPass, type StatePart } from '../core.js';
import { addCount, addCounts, notCount, notCounts, notRecord } from './arrays.js';

/** Fired counts `[component, feature]` (row-major; one component without a component axis). */
export interface FiredCountState {
  readonly fired: Float64Array;
  readonly vectors: number;
}

/** The fired-count part for `numFeatures` features and `numComponents` components (or none). */
export function firedCountPart(numFeatures: number, numComponents: number | undefined): StatePart<FiredCountState> {
  const size = (numComponents ?? 1) * numFeatures;
  const part: StatePart<FiredCountState> = {
    id: `firedCount(components=${numComponents ?? 'none'},features=${numFeatures})`,
    recipe: { kind: 'firedCount', args: [numFeatures, numComponents ?? null] },
    reads: ['learnedActivations'],
    needs: { fired: true },
    init: () => ({ fired: new Float64Array(size), vectors: 0 }),
    fromStats: (stats, rows) => ({ fired: stats.fired as Float64Array, vectors: rows.end - rows.start }),
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: (a, b) => ({ fired: addCounts(a.fired, b.fired), vectors: addCount(a.vectors, b.vectors) }),
    // The counts are the part's largest array (components x features): added into the partial's.
    mergeOwned: (a, b) => ({ fired: addCounts(a.fired, b.fired, b.fired), vectors: addCount(a.vectors, b.vectors) }),
    invalid(v) {
      const reason =
        notRecord(v, ['fired', 'vectors']) ??
        notCount((v as FiredCountState).vectors, 'vectors') ??
        notCounts((v as FiredCountState).fired, size, 'fired');
      if (reason !== undefined) return reason;
      const { fired, vectors } = v as FiredCountState;
      const over = fired.findIndex((n) => n > vectors);
      return over === -1 ? undefined : `.fired cannot exceed vectors (${vectors}), got ${fired[over]} at index ${over}`;
    },
  };
  return part;
}
