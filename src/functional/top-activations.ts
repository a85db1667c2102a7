/**
 * Top activations: per learned feature (per component), its `k` largest fired activations
 * (`x > 0`) with the global index of the vector each came from (what "max activating examples"
 * need). Vectors are numbered in arrival order across the whole stream, from 0; with a component
 * axis a row's components share the row's number. A batch may declare the index of its first
 * vector (`firstVectorIndex`): beyond the vectors seen it leaves a gap, below them it is refused.
 *
 * Order: value descending, a tie going to the lower index, so the result is one set, the same
 * bit for bit whatever the batching, sharding or worker count. Only fired activations are
 * candidates (0, negatives and NaN never are): a feature that fired on fewer than `k` vectors has
 * fewer entries (`counts`), its row padded with NaN values and index -1.
 *
 * State: per feature its best `k` entries with indices relative to the state's first vector, and
 * the vector count; merge (ordered, `a` then `b`) shifts `b`'s indices by `a`'s count and keeps
 * the best `k` of both. A state that folded a batch declaring `firstVectorIndex` numbers
 * absolutely from it: those indices do not shift, and a merge whose vectors overlap is refused
 * (see `parts/vector-index.ts`).
 *
 * @module
 */
import { defineMetric, type Batch, type MetricDefinition, type MetricState } from './core.js';
import { optionRangeError } from '../errors.js';
import { float64, int64, type Tensor } from '../tensor.js';
import { checkIndexedBatch, indexedShape, type IndexedOptions } from './indexed-family.js';
import { topActivationsPart, type TopActivationsState } from './parts/top-activations.js';
import { positiveInteger } from './core.js';

/** The largest `k` (entries kept per feature). */
export const MAX_TOP_K = 2 ** 20;

/** The most values a result tensor may hold (`numComponents × numLearnedFeatures × k`): 2^28, 2 GiB of float64. */
export const MAX_TOP_VALUES = 2 ** 28;

/** Options of {@link topActivations} and `TopActivations`. */
export interface TopActivationsOptions extends IndexedOptions {
  /** Entries kept per feature: a positive integer up to 2^20, and up to 2^28 with every feature's (required). */
  readonly k: number;
}

/** The state of {@link topActivations}. */
export type TopActivationsMetricState = MetricState<{ readonly top: TopActivationsState }>;

/** The value of {@link topActivations}. */
export type TopActivationsResult = {
  /** `[feature, k]` (`[component, feature, k]`): each feature's activations, largest first; NaN past `counts`. */
  readonly values: Tensor<'float64'>;
  /** The global index of the vector (row) of each value; -1 past `counts`. */
  readonly indices: Tensor<'int64'>;
  /** `[feature]` (`[component, feature]`): entries held, `min(k, vectors the feature fired on)`. */
  readonly counts: Tensor<'int64'>;
  /** Vectors numbered (0-d): the next vector's index, gaps included. */
  readonly vectors: Tensor<'int64'>;
};

const METRIC = 'TopActivations';

/**
 * The pure definition of `TopActivations`.
 *
 * `firstVectorIndex` numbers the batch's row 0: `update(state, batch, rows)` with a row range
 * checks it against the vectors the state numbers as for the whole batch (a batch folded row
 * range by row range carries it on its first range only).
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const top = topActivations({ numLearnedFeatures: 2, k: 2 });
 * const s = top.update(top.init(), { learnedActivations: tensor([[1, 0], [3, 0], [3, 2]]) });
 * top.compute(s).indices.toArray(); // [[1, 2], [2, -1]]
 * ```
 */
export function topActivations(options: TopActivationsOptions): MetricDefinition<TopActivationsMetricState, TopActivationsResult> {
  const { shape, options: o } = indexedShape(METRIC, options, ['k']);
  const k = positiveInteger(METRIC, 'k', o.k);
  if (k > MAX_TOP_K) throw optionRangeError(METRIC, 'k', `a positive integer up to ${MAX_TOP_K}`, k);
  const { numLearnedFeatures, numComponents } = shape;
  const slots = (numComponents ?? 1) * numLearnedFeatures * k;
  if (slots > MAX_TOP_VALUES) {
    throw new RangeError(
      `${METRIC}: options.k must leave at most ${MAX_TOP_VALUES} values in the result (numComponents × numLearnedFeatures × k), got ${numComponents ?? 1} × ${numLearnedFeatures} × ${k} = ${slots}`,
    );
  }
  const perFeature = numComponents === undefined ? [numLearnedFeatures] : [numComponents, numLearnedFeatures];
  return defineMetric({
    metric: METRIC,
    config: { numLearnedFeatures, numComponents: numComponents ?? null, k },
    parts: { top: topActivationsPart(numLearnedFeatures, numComponents, k) },
    validate: (batch: Batch, state?: TopActivationsMetricState) => checkIndexedBatch(METRIC, batch, shape, state?.parts.top.vectors),
    compute({ top }) {
      // A batch's partial alone (forward) numbers from its declared first vector.
      const origin = top.start ?? 0;
      const size = top.counts.length;
      const values = new Float64Array(size * k).fill(NaN);
      const indices = new Float64Array(size * k).fill(-1);
      let o = 0;
      for (let g = 0; g < size; g++) {
        const n = top.counts[g] as number;
        for (let i = 0; i < n; i++) {
          values[g * k + i] = top.values[o + i] as number;
          indices[g * k + i] = (top.indices[o + i] as number) + origin;
        }
        o += n;
      }
      return {
        values: float64(values, [...perFeature, k]),
        indices: int64(indices, [...perFeature, k]),
        counts: int64(top.counts.slice(), perFeature),
        vectors: int64(Float64Array.of(origin + top.vectors), []),
      };
    },
  });
}
