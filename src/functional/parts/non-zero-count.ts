/**
 * How many non-zero learned activations there were (negatives and NaN count, as
 * `torch.count_nonzero`), summed over vectors, per component, and the number of vectors: the
 * state of `L0NormMetric`. Counts are exact integers.
 *
 * @module
 */
import type { StatePart } from '../core.js';
import type { TensorLike } from '../../tensor.js';
import { addF64, notCount, notCounts, notRecord } from './arrays.js';

/** Non-zero counts per component (one entry without a component axis). */
export interface NonZeroCountState {
  readonly nonZero: Float64Array;
  readonly vectors: number;
}

/** The non-zero-count part for `numComponents` components (or none). */
export function nonZeroCountPart(numComponents: number | undefined): StatePart<NonZeroCountState> {
  const components = numComponents ?? 1;
  return {
    id: `nonZeroCount(components=${numComponents ?? 'none'})`,
    init: () => ({ nonZero: new Float64Array(components), vectors: 0 }),
    fromBatch(batch, rows) {
      const t = batch.learnedActivations as TensorLike;
      const x = t.data;
      const features = t.shape[t.shape.length - 1] as number;
      const counts = new Float64Array(components);
      for (let r = rows.start; r < rows.end; r++) {
        for (let c = 0; c < components; c++) {
          const o = (r * components + c) * features;
          let n = 0;
          for (let f = 0; f < features; f++) if ((x[o + f] as number) !== 0) n++;
          counts[c] = (counts[c] as number) + n;
        }
      }
      return { nonZero: counts, vectors: rows.end - rows.start };
    },
    merge: (a, b) => ({ nonZero: addF64(a.nonZero, b.nonZero), vectors: a.vectors + b.vectors }),
    invalid: (v) =>
      notRecord(v, ['nonZero', 'vectors']) ??
      notCounts((v as NonZeroCountState).nonZero, components, 'nonZero') ??
      notCount((v as NonZeroCountState).vectors, 'vectors'),
  };
}
