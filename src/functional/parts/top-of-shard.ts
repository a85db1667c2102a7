/**
 * The per-shard step of `TopActivations`: per feature, the best `k` of a shard's fired entries,
 * value descending, a tie going to the lower row.
 *
 * Why not one pass in arrival order: entries come row by row, so each lands on a random feature's
 * slots (a cache miss) and, its values arriving in random order, is inserted at an unpredictable
 * place (a mispredicted branch or two). Here the entries are first counting-sorted into descending
 * buckets of their float32 bit pattern (positive floats order as their bits), stable so that a
 * bucket keeps arrival (row) order. Taken in that order, a feature's entries come nearly best
 * first: most are appended after the feature's last or refused outright, both predictable, and
 * equal values (one bucket) still arrive row by row, so the insertion rule (after any equal value)
 * gives ties to the lower row. The result is the same, bit for bit, as inserting in arrival order
 * (that needs only equal values to arrive in row order: the bucket order is for speed).
 * Up to k = 4 the sort costs more than it saves: entries go in arrival order into k fixed slots a
 * feature (a state small enough to stay in cache, where an insertion moves little).
 * Where another part of the shard (activation moments, histogram) has grouped the entries by
 * feature already, they are taken feature by feature from that grouping instead (cheaper than
 * the sort; the grouping alone costs more than the sort saves), up to k = 64.
 *
 * @module
 */
import type { PositiveEntries } from '../../kernels/types.js';
import { builtByFeature, firedByFeature } from './fired-by-feature.js';

/** Buckets are the top 11 bits of a positive float32 (sign 0, exponent, 3 bits of mantissa). */
const BUCKET_SHIFT = 20;
const BUCKETS = 2 ** (31 - BUCKET_SHIFT);
/** Up to this `k`, arrival order into fixed slots is faster (bench/indexed.ts: k = 4 about even). */
const IN_ORDER_MAX_K = 4;
/** ...and its slots (12 bytes each) stay below 48 MiB. */
const IN_ORDER_MAX_SLOTS = 2 ** 22;
/**
 * Up to this `k`, entries already grouped by feature are taken from the grouping. Its insertion
 * walks up to `k` kept slots an entry: past this, where a feature fires often, the buckets' nearly
 * best-first order is far cheaper (bench/top-k.ts: 569 ms against 32 at k = 4096).
 */
const GROUPED_MAX_K = 64;

/** A shard's top entries: per feature `counts[g]` entries, best first, features in order. */
export interface ShardTop {
  readonly counts: Float64Array;
  readonly values: Float32Array;
  /** Rows relative to the shard's first row. */
  readonly rows: Float64Array;
}

/**
 * Per feature `g = component * numFeatures + feature` of the shard's fired entries `positives`
 * (vectors in `(row, component)` order, `components` per row; values > 0, as the kernels give
 * them), its best `min(k, fired)` entries: value descending, then row ascending. Small `k` (slots
 * under 48 MiB) in arrival order, else bucketed; both give the same bits.
 */
export function topOfShard(positives: PositiveEntries, numFeatures: number, components: number, k: number): ShardTop {
  if (k <= GROUPED_MAX_K && builtByFeature(positives, components, numFeatures)) return topByFeature(positives, numFeatures, components, k);
  const inOrder = k <= IN_ORDER_MAX_K && components * numFeatures * k <= IN_ORDER_MAX_SLOTS;
  return (inOrder ? topInArrivalOrder : topByBuckets)(positives, numFeatures, components, k);
}

/**
 * The best `k` entries of each feature of `top` (a shard's top for `top.k >= k`): each feature's
 * first `min(k, kept)`, as the order is total. `top` itself when `k` is its own.
 */
export function topPrefix(top: ShardTop & { readonly k: number }, k: number): ShardTop {
  if (top.k === k) return top;
  const size = top.counts.length;
  const counts = new Float64Array(size);
  let total = 0;
  for (let g = 0; g < size; g++) {
    const c = top.counts[g] as number;
    const kept = c < k ? c : k;
    counts[g] = kept;
    total += kept;
  }
  const values = new Float32Array(total);
  const rows = new Float64Array(total);
  let i = 0;
  let o = 0;
  for (let g = 0; g < size; g++) {
    const kept = counts[g] as number;
    values.set(top.values.subarray(i, i + kept), o);
    rows.set(top.rows.subarray(i, i + kept), o);
    i += top.counts[g] as number;
    o += kept;
  }
  return { counts, values, rows };
}

/** {@link topOfShard} by entries counting-sorted into descending value buckets, then inserted. */
export function topByBuckets(positives: PositiveEntries, numFeatures: number, components: number, k: number): ShardTop {
  const { offsets, features, values: entries } = positives;
  const size = components * numFeatures;
  const n = entries.length;
  const rows = (offsets.length - 1) / components;
  // Positive float32 values compare as their bit patterns, as integers below 2^31.
  const bits = new Int32Array(entries.buffer, entries.byteOffset, n);

  // Per feature: where its entries start in the result, how many it holds, how many it keeps
  // (interleaved: one cache line per feature touched). Per bucket (descending): its entries.
  const meta = new Uint32Array(3 * size);
  const next = new Uint32Array(BUCKETS + 1);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < components; c++) {
      const v = r * components + c;
      const base = 3 * c * numFeatures + 2;
      const end = offsets[v + 1] as number;
      for (let i = offsets[v] as number; i < end; i++) {
        const m = base + 3 * (features[i] as number);
        meta[m] = (meta[m] as number) + 1;
        const d = BUCKETS - ((bits[i] as number) >>> BUCKET_SHIFT);
        next[d] = (next[d] as number) + 1;
      }
    }
  }
  const counts = new Float64Array(size);
  let total = 0;
  for (let g = 0; g < size; g++) {
    const fired = meta[3 * g + 2] as number;
    const kept = fired < k ? fired : k;
    counts[g] = kept;
    meta[3 * g] = total;
    meta[3 * g + 2] = kept;
    total += kept;
  }
  for (let d = 1; d <= BUCKETS; d++) next[d] = (next[d] as number) + (next[d - 1] as number);

  // Stable counting sort by bucket, best bucket first.
  const sortedBits = new Int32Array(n);
  const sortedFeature = new Uint32Array(n);
  const sortedRow = new Uint32Array(n);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < components; c++) {
      const v = r * components + c;
      const base = c * numFeatures;
      const end = offsets[v + 1] as number;
      for (let i = offsets[v] as number; i < end; i++) {
        const x = bits[i] as number;
        const d = BUCKETS - 1 - (x >>> BUCKET_SHIFT);
        const q = next[d] as number;
        next[d] = q + 1;
        sortedBits[q] = x;
        sortedFeature[q] = base + (features[i] as number);
        sortedRow[q] = r;
      }
    }
  }

  // Insert in that order straight into the result (a feature's slots kept sorted, a new entry
  // after those of equal value, which came from lower rows).
  const values = new Float32Array(total);
  const valueBits = new Int32Array(values.buffer);
  const out = new Float64Array(total);
  for (let i = 0; i < n; i++) {
    const m = 3 * (sortedFeature[i] as number);
    const x = sortedBits[i] as number;
    const start = meta[m] as number;
    const have = meta[m + 1] as number;
    let q = start + have;
    if (have === (meta[m + 2] as number)) {
      q--;
      if ((valueBits[q] as number) >= x) continue;
    } else {
      meta[m + 1] = have + 1;
    }
    insert(valueBits, out, start, q, x, sortedRow[i] as number);
  }
  return { counts, values, rows: out };
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
 * {@link topOfShard} in one pass in arrival order into `k` slots a feature (for small `k`: a
 * state that stays in cache, where an insertion moves little), then the slots packed.
 */
export function topInArrivalOrder(positives: PositiveEntries, numFeatures: number, components: number, k: number): ShardTop {
  const { offsets, features, values: entries } = positives;
  const size = components * numFeatures;
  const rows = (offsets.length - 1) / components;
  const bits = new Int32Array(entries.buffer, entries.byteOffset, entries.length);
  const have = new Uint32Array(size);
  const slotBits = new Int32Array(size * k);
  const slotRows = new Float64Array(size * k);
  for (let r = 0; r < rows; r++) {
    for (let c = 0; c < components; c++) {
      const v = r * components + c;
      const base = c * numFeatures;
      const end = offsets[v + 1] as number;
      for (let i = offsets[v] as number; i < end; i++) {
        const g = base + (features[i] as number);
        const x = bits[i] as number;
        const start = g * k;
        const h = have[g] as number;
        let q = start + h;
        if (h === k) {
          q--;
          if ((slotBits[q] as number) >= x) continue;
        } else {
          have[g] = h + 1;
        }
        insert(slotBits, slotRows, start, q, x, r);
      }
    }
  }
  const counts = new Float64Array(size);
  let total = 0;
  for (let g = 0; g < size; g++) {
    const h = have[g] as number;
    counts[g] = h;
    total += h;
  }
  const values = new Float32Array(total);
  const valueBits = new Int32Array(values.buffer);
  const out = new Float64Array(total);
  let o = 0;
  for (let g = 0; g < size; g++) {
    const end = g * k + (have[g] as number);
    for (let q = g * k; q < end; q++) {
      valueBits[o] = slotBits[q] as number;
      out[o++] = slotRows[q] as number;
    }
  }
  return { counts, values, rows: out };
}

/**
 * {@link topOfShard} feature by feature, from the shard's entries grouped by feature
 * (`fired-by-feature.ts`; each feature's in row order, so the insertion rule gives ties to the
 * lower row): a feature's `min(k, fired)` slots, written in place in the result, stay in cache.
 */
export function topByFeature(positives: PositiveEntries, numFeatures: number, components: number, k: number): ShardTop {
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
