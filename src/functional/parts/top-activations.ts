/**
 * Per learned feature (per component), its `k` largest fired activations (`x > 0`) with the index
 * of the vector each came from: the state of `TopActivations`. Entries are in one total order,
 * value descending then index ascending (a tie goes to the lower index), so the top `k` of a
 * stream is one set whatever the sharding, and merging is exact. Indices are relative to the
 * state's first vector and shift on merge (see `vector-index.ts`). Made from the fused pass's
 * `positives` (the fired entries; see `top-of-shard.ts`).
 *
 * @module
 */
import { describeValue } from '../../errors.js';
import { fromFusedPass, type StatePart } from '../core.js';
import type { PositiveEntries } from '../../kernels/types.js';
import { notCount, notCounts, notRecord } from './arrays.js';
import { topOfShard, topPrefix } from './top-of-shard.js';
import { notNumbering, numberedKeys, placeAfter, startOf, type Numbered } from './vector-index.js';

/**
 * Feature by feature (`[component, feature]` row-major), `counts[g]` entries (at most `k`) in
 * `values` and `indices`, each feature's entries after the previous feature's, best first.
 */
export interface TopActivationsState extends Numbered {
  readonly counts: Float64Array;
  readonly values: Float32Array;
  readonly indices: Float64Array;
}

/** `a` then `b`: per feature, the best `k` of `a`'s entries and `b`'s (shifted; `a`'s win ties, being earlier). */
function mergeTop(a: TopActivationsState, b: TopActivationsState, k: number): TopActivationsState {
  const p = placeAfter(a, b);
  // placed(p, j), inlined: this loop runs per batch over every kept entry, on the pool's thread.
  const { shift, below, absolute } = p;
  const ac = a.counts;
  const bc = b.counts;
  const av = a.values;
  const ai = a.indices;
  const bv = b.values;
  const bi = b.indices;
  const size = ac.length;
  const counts = new Float64Array(size);
  let total = 0;
  for (let g = 0; g < size; g++) {
    const sum = (ac[g] as number) + (bc[g] as number);
    const n = sum < k ? sum : k;
    counts[g] = n;
    total += n;
  }
  const values = new Float32Array(total);
  const indices = new Float64Array(total);
  let i = 0;
  let j = 0;
  let o = 0;
  for (let g = 0; g < size; g++) {
    const iEnd = i + (ac[g] as number);
    const jEnd = j + (bc[g] as number);
    const oEnd = o + (counts[g] as number);
    while (o < oEnd) {
      // Every index of b, placed, is above every index of a: on equal values a's entry comes first.
      if (j >= jEnd || (i < iEnd && (av[i] as number) >= (bv[j] as number))) {
        values[o] = av[i] as number;
        indices[o++] = ai[i++] as number;
      } else {
        const x = bi[j] as number;
        values[o] = bv[j++] as number;
        indices[o++] = x + (x < below ? shift : absolute);
      }
    }
    i = iEnd;
    j = jEnd;
  }
  return { vectors: p.vectors, counts, values, indices, ...p.numbering };
}

/** The top-activations part for `numFeatures` features, `numComponents` components (or none) and `k` entries. */
export function topActivationsPart(numFeatures: number, numComponents: number | undefined, k: number): StatePart<TopActivationsState> {
  const components = numComponents ?? 1;
  const size = components * numFeatures;
  const part: StatePart<TopActivationsState> = {
    id: `topActivations(components=${numComponents ?? 'none'},features=${numFeatures},k=${k})`,
    recipe: { kind: 'topActivations', args: [numFeatures, numComponents ?? null, k] },
    reads: ['learnedActivations'],
    needs: { features: { top: k } },
    init: () => ({ vectors: 0, counts: new Float64Array(size), values: new Float32Array(0), indices: new Float64Array(0) }),
    fromStats(stats, rows, batch) {
      // The kernel's (the WebAssembly pass gives them, for this k or a larger one), else from the entries.
      const given = stats.features?.top;
      const top =
        given !== undefined && given.k >= k
          ? topPrefix(given, k)
          : topOfShard(stats.positives as PositiveEntries, numFeatures, components, k);
      return { vectors: rows.end - rows.start, counts: top.counts, values: top.values, indices: top.rows, ...startOf(batch, rows) };
    },
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: (a, b) => mergeTop(a, b, k),
    invalid(v) {
      const keys = ['vectors', 'counts', 'values', 'indices'];
      const s = v as TopActivationsState;
      const reason = notRecord(v, numberedKeys(v, keys)) ?? notCount(s.vectors, 'vectors') ?? notCounts(s.counts, size, 'counts');
      if (reason !== undefined) return reason;
      let total = 0;
      for (let g = 0; g < size; g++) {
        const c = s.counts[g] as number;
        if (c > k) return `.counts cannot exceed k (${k}), got ${c} at index ${g}`;
        total += c;
      }
      if (!(s.values instanceof Float32Array)) return `.values must be a Float32Array, got ${describeValue(s.values)}`;
      if (!(s.indices instanceof Float64Array)) return `.indices must be a Float64Array, got ${describeValue(s.indices)}`;
      if (s.values.length !== total) return `.values must hold the ${total} entries counts declares, got ${s.values.length}`;
      if (s.indices.length !== total) return `.indices must hold the ${total} entries counts declares, got ${s.indices.length}`;
      let o = 0;
      for (let g = 0; g < size; g++) {
        const end = o + (s.counts[g] as number);
        for (let i = o; i < end; i++) {
          const x = s.values[i] as number;
          const j = s.indices[i] as number;
          if (!(x > 0)) return `.values must hold fired activations (> 0), got ${describeValue(x)} at index ${i}`;
          if (!Number.isInteger(j) || j < 0 || j >= s.vectors) {
            return `.indices must hold vector indices in [0, ${s.vectors}) (the vectors counted), got ${describeValue(j)} at index ${i}`;
          }
          if (i > o) {
            const px = s.values[i - 1] as number;
            const pj = s.indices[i - 1] as number;
            if (px < x || (px === x && pj >= j)) {
              return `.values and .indices must list each feature's entries best first (value descending, then index ascending), got (${px}, ${pj}) before (${x}, ${j}) at index ${i}`;
            }
          }
        }
        // A vector gives a feature one activation: an index twice in a feature is no possible state.
        if (end - o > 1) {
          const sorted = s.indices.slice(o, end).sort();
          for (let i = 1; i < sorted.length; i++) {
            if (sorted[i] === sorted[i - 1]) return `.indices holds vector ${sorted[i]} twice for feature ${g} (one activation per vector)`;
          }
        }
        o = end;
      }
      return notNumbering(s, s.indices);
    },
  };
  return part;
}
