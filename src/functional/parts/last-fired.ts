/**
 * Per learned feature (per component), the index of the last vector it fired on (`x > 0`), and the
 * number of vectors: the state of `DeadFeaturesOverWindow`. Indices are relative to the state's
 * first vector and shift on merge (see `vector-index.ts`); merging takes the later index (`b`'s,
 * shifted, where `b`'s feature fired). Made from the fused pass's `positives` (the fired entries).
 *
 * @module
 */
import { describeValue } from '../../errors.js';
import { fromFusedPass, type StatePart } from '../core.js';
import type { PositiveEntries } from '../../kernels/types.js';
import { notCount, notF64, notRecord } from './arrays.js';
import { notNumbering, numberedKeys, placeAfter, placed, startOf, type Numbered } from './vector-index.js';

/** Last-fired indices `[component, feature]` (row-major), -1 where a feature never fired. */
export interface LastFiredState extends Numbered {
  readonly last: Float64Array;
}

/** `a` then `b`, into `out` (which may be `b.last`). */
function mergeInto(a: LastFiredState, b: LastFiredState, out: Float64Array): LastFiredState {
  const p = placeAfter(a, b);
  const x = a.last;
  const y = b.last;
  for (let i = 0; i < out.length; i++) {
    const j = y[i] as number;
    out[i] = j >= 0 ? placed(p, j) : (x[i] as number);
  }
  return { vectors: p.vectors, last: out, ...p.numbering };
}

/** The last-fired part for `numFeatures` features and `numComponents` components (or none). */
export function lastFiredPart(numFeatures: number, numComponents: number | undefined): StatePart<LastFiredState> {
  const components = numComponents ?? 1;
  const size = components * numFeatures;
  const part: StatePart<LastFiredState> = {
    id: `lastFired(components=${numComponents ?? 'none'},features=${numFeatures})`,
    recipe: { kind: 'lastFired', args: [numFeatures, numComponents ?? null] },
    reads: ['learnedActivations'],
    needs: { features: { lastFired: true } },
    init: () => ({ vectors: 0, last: new Float64Array(size).fill(-1) }),
    fromStats(stats, rows, batch) {
      // The kernel's (the WebAssembly pass gives them), else from the entries.
      const given = stats.features?.lastFired;
      if (given !== undefined) return { vectors: rows.end - rows.start, last: given, ...startOf(batch, rows) };
      const { offsets, features } = stats.positives as PositiveEntries;
      const last = new Float64Array(size).fill(-1);
      const n = offsets.length - 1;
      // Vectors in (row, component) order: later rows overwrite earlier ones, so the last stays.
      for (let v = 0; v < n; v++) {
        const row = Math.floor(v / components);
        const base = (v % components) * numFeatures;
        const end = offsets[v + 1] as number;
        for (let i = offsets[v] as number; i < end; i++) last[base + (features[i] as number)] = row;
      }
      return { vectors: rows.end - rows.start, last, ...startOf(batch, rows) };
    },
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: (a, b) => mergeInto(a, b, new Float64Array(size)),
    mergeOwned: (a, b) => mergeInto(a, b, b.last),
    invalid(v) {
      const reason = notRecord(v, numberedKeys(v, ['vectors', 'last'])) ?? notCount((v as LastFiredState).vectors, 'vectors');
      if (reason !== undefined) return reason;
      const { vectors, last } = v as LastFiredState;
      const shape = notF64(last, size, 'last');
      if (shape !== undefined) return shape;
      for (let i = 0; i < size; i++) {
        const j = last[i] as number;
        if (!Number.isInteger(j) || j < -1 || j >= vectors) {
          return `.last must hold vector indices in [0, ${vectors}) (the vectors counted) or -1 (never fired), got ${describeValue(j)} at index ${i}`;
        }
      }
      return notNumbering(v as LastFiredState, last);
    },
  };
  return part;
}
