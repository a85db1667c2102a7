/** A shard's fired entries drawn cell by cell, as the kernels list them (`positives`). */
import type { PositiveEntries } from '../../src/kernels/types.js';

/** A shard of fired values: per vector `(row, component)`, per feature, the value or undefined. */
export interface FiredShard {
  readonly features: number;
  readonly components: number;
  readonly rows: number;
  readonly cells: (number | undefined)[];
  /** Floats stored before the values in their buffer. */
  readonly pad: number;
}

/** The shard's fired entries as the kernels give them: row-major vectors, features ascending, values at an offset of `pad` floats. */
export function positivesOf(s: FiredShard): PositiveEntries {
  const vectors = s.rows * s.components;
  const offsets = new Float64Array(vectors + 1);
  const features: number[] = [];
  const values: number[] = [];
  for (let v = 0; v < vectors; v++) {
    offsets[v] = features.length;
    for (let f = 0; f < s.features; f++) {
      const x = s.cells[v * s.features + f];
      if (x !== undefined) {
        features.push(f);
        values.push(x);
      }
    }
  }
  offsets[vectors] = features.length;
  const stored = new Float32Array(s.pad + values.length);
  stored.set(values, s.pad);
  return { offsets, features: Uint32Array.from(features), values: stored.subarray(s.pad) };
}
