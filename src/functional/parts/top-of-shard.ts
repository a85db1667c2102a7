/**
 * The per-shard step of `TopActivations`: per feature, the best `k` of a shard's fired entries,
 * value descending, a tie going to the lower row.
 *
 * Why not one pass in arrival order: entries come row by row, so each lands on a random feature's
 * slots (a cache miss). Here they are taken feature by feature, from the shard's entries grouped
 * by feature (`fired-by-feature.ts`, built once a shard and shared with the other per-feature
 * parts), each feature's in row order: its `min(k, fired)` slots, written in place in the result,
 * stay in cache, and the insertion rule (after any equal value, which came from a lower row) gives
 * ties to the lower row, so the result is the same, bit for bit, as inserting in arrival order.
 *
 * @module
 */
import type { PositiveEntries } from '../../kernels/types.js';
import { firedByFeature } from './fired-by-feature.js';

/** A shard's top entries: per feature `counts[g]` entries, best first, features in order. */
export interface ShardTop {
  readonly counts: Float64Array;
  readonly values: Float32Array;
  /** Rows relative to the shard's first row. */
  readonly rows: Float64Array;
}

/**
 * Puts `x` (from `row`) into a feature's sorted slots `[start, q]` (slot `q` free or the worst,
 * given up): after every value at least `x`, which came from lower rows.
 */
function insert(bits: Int32Array, rows: Float64Array, start: number, q: number, x: number, row: number): void {
  let p = q;
  while (p > start && (bits[p - 1] as number) < x) {
    bits[p] = bits[p - 1] as number;
    rows[p] = rows[p - 1] as number;
    p--;
  }
  bits[p] = x;
  rows[p] = row;
}

/**
 * Per feature `g = component * numFeatures + feature` of the shard's fired entries `positives`
 * (vectors in `(row, component)` order, `components` per row; values > 0, as the kernels give
 * them), its best `min(k, fired)` entries: value descending, then row ascending.
 */
export function topOfShard(positives: PositiveEntries, numFeatures: number, components: number, k: number): ShardTop {
  const { starts, rows: entryRows, bits } = firedByFeature(positives, components, numFeatures);
  const size = components * numFeatures;
  const counts = new Float64Array(size);
  let total = 0;
  for (let g = 0; g < size; g++) {
    const fired = (starts[g + 1] as number) - (starts[g] as number);
    const kept = fired < k ? fired : k;
    counts[g] = kept;
    total += kept;
  }
  const values = new Float32Array(total);
  const valueBits = new Int32Array(values.buffer);
  const out = new Float64Array(total);
  let o = 0;
  for (let g = 0; g < size; g++) {
    const kept = counts[g] as number;
    if (kept === 0) continue;
    const s = starts[g] as number;
    const e = starts[g + 1] as number;
    const last = o + kept - 1;
    let have = 0;
    for (let i = s; i < e; i++) {
      const x = bits[i] as number;
      let q = o + have;
      if (have === kept) {
        q = last;
        if ((valueBits[q] as number) >= x) continue;
      } else {
        have++;
      }
      insert(valueBits, out, o, q, x, entryRows[i] as number);
    }
    o += kept;
  }
  return { counts, values, rows: out };
}
