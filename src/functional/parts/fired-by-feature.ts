/**
 * A shard's fired entries regrouped by feature: the per-feature parts (activation moments,
 * histogram, top activations) each walk one feature's entries at a time, in cache, instead of
 * scattering every entry over per-feature arrays (a cache miss an entry, once per part).
 *
 * The entries of `(component, feature)` `g` are `[starts[g], starts[g + 1])`, in row order (a
 * stable counting sort of the row-major `positives`), so anything summed over a feature's entries
 * in this order adds them in the order a walk over `positives` does: the same bits.
 *
 * Built once per shard and shared: the first part that asks builds it, the others of the same
 * shard (the same `positives` object) get it back.
 *
 * @module
 */
import type { PositiveEntries } from '../../kernels/types.js';

/** Fired entries grouped by `g = component * features + feature`, each group in row order. */
export interface FiredByFeature {
  /** `[components * features + 1]`: group `g` is `[starts[g], starts[g + 1])`. */
  readonly starts: Uint32Array;
  /** The row of each entry, relative to the shard's first row. */
  readonly rows: Uint32Array;
  /** The float32 bit pattern of each entry's value (positive values order as their bits). */
  readonly bits: Int32Array;
  /** The same values as float32 (a view of `bits`' memory). */
  readonly values: Float32Array;
}

interface Cached {
  readonly components: number;
  readonly features: number;
  readonly value: FiredByFeature;
}

const built = new WeakMap<PositiveEntries, Cached>();

/**
 * The entries of `p` (vectors in `(row, component)` order, `components` a row, `features`
 * features each) grouped by feature, built on the first call for `p` and then shared.
 */
export function firedByFeature(p: PositiveEntries, components: number, features: number): FiredByFeature {
  const known = built.get(p);
  if (known !== undefined && known.components === components && known.features === features) return known.value;
  const value = group(p, components, features);
  built.set(p, { components, features, value });
  return value;
}

/** Whether the grouping of `p` (for `components` and `features`) is built already. */
export function builtByFeature(p: PositiveEntries, components: number, features: number): boolean {
  const known = built.get(p);
  return known !== undefined && known.components === components && known.features === features;
}

function group(p: PositiveEntries, components: number, features: number): FiredByFeature {
  const { offsets, features: feature } = p;
  const n = p.values.length;
  const size = components * features;
  const source = new Int32Array(p.values.buffer, p.values.byteOffset, n);
  const starts = new Uint32Array(size + 1);
  const vectors = offsets.length - 1;
  // Counts, shifted by one: starts[g + 1] counts group g.
  if (components === 1) {
    for (let i = 0; i < n; i++) {
      const g = (feature[i] as number) + 1;
      starts[g] = (starts[g] as number) + 1;
    }
  } else {
    for (let v = 0; v < vectors; v++) {
      const base = (v % components) * features + 1;
      for (let i = offsets[v] as number, end = offsets[v + 1] as number; i < end; i++) {
        const g = base + (feature[i] as number);
        starts[g] = (starts[g] as number) + 1;
      }
    }
  }
  for (let g = 1; g <= size; g++) starts[g] = (starts[g] as number) + (starts[g - 1] as number);
  const next = starts.slice(0, size);
  const rows = new Uint32Array(n);
  const bits = new Int32Array(n);
  let row = 0;
  let c = 0;
  for (let v = 0; v < vectors; v++) {
    const base = c * features;
    for (let i = offsets[v] as number, end = offsets[v + 1] as number; i < end; i++) {
      const g = base + (feature[i] as number);
      const q = next[g] as number;
      next[g] = q + 1;
      rows[q] = row;
      bits[q] = source[i] as number;
    }
    if (++c === components) {
      c = 0;
      row++;
    }
  }
  return { starts, rows, bits, values: new Float32Array(bits.buffer) };
}
