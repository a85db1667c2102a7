/**
 * Dead features over a window: a learned feature (per component) is dead when it has not fired
 * (`x > 0`) on any of the last `windowVectors` vectors; also, per feature, the vectors since it
 * last fired. Vectors are numbered in arrival order across the whole stream (a row's components
 * share the row's number); a batch may declare the index of its first vector
 * (`firstVectorIndex`): beyond the vectors seen it leaves a gap in which nothing fired.
 *
 * `vectorsSinceFired = vectors - 1 - lastFired`; a feature that never fired counts from the start
 * of the stream (`lastFired` -1, so `vectorsSinceFired = vectors`), as SAELens, sparsify, OpenAI
 * and dictionary_learning start their counters at 0: while fewer than `windowVectors` vectors have
 * been seen no feature is dead. Dead: `vectorsSinceFired >= windowVectors`.
 *
 * State: per feature the index of the last vector it fired on (relative to the state's first
 * vector, -1 never) and the vector count; merge (ordered, `a` then `b`) shifts `b`'s indices by
 * `a`'s count and takes the later (the max); indices a state numbered from a declared
 * `firstVectorIndex` are absolute and do not shift, and overlapping states are refused (see
 * `parts/vector-index.ts`). So shards, workers and machines merge to the one
 * global answer (sparsify #119: per-rank counters disagree).
 *
 * @module
 */
import { defineMetric, positiveInteger, type Batch, type MetricDefinition, type MetricState } from './core.js';
import { int64, squeezeIfScalar, type Tensor } from '../tensor.js';
import { checkIndexedBatch, indexedShape, type IndexedOptions } from './indexed-family.js';
import { lastFiredPart, type LastFiredState } from './parts/last-fired.js';

/** Options of {@link deadFeaturesOverWindow} and `DeadFeaturesOverWindow`. */
export interface DeadFeaturesOverWindowOptions extends IndexedOptions {
  /** The window, in vectors (rows): a positive integer (required). */
  readonly windowVectors: number;
}

/** The state of {@link deadFeaturesOverWindow}. */
export type DeadFeaturesOverWindowState = MetricState<{ readonly lastFired: LastFiredState }>;

/** The value of {@link deadFeaturesOverWindow}. */
export type DeadFeaturesOverWindowResult = {
  /** Dead features: a count (`[component]` with `numComponents`). */
  readonly dead: Tensor<'int64'>;
  /** `[feature]` (`[component, feature]`): 1 where the feature is dead, else 0. */
  readonly deadMask: Tensor<'int64'>;
  /** `[feature]` (`[component, feature]`): vectors since the feature last fired (`vectors` if never). */
  readonly vectorsSinceFired: Tensor<'int64'>;
  /** `[feature]` (`[component, feature]`): the index of the last vector it fired on, -1 if never. */
  readonly lastFired: Tensor<'int64'>;
  /** Vectors numbered (0-d): the next vector's index, gaps included. */
  readonly vectors: Tensor<'int64'>;
};

const METRIC = 'DeadFeaturesOverWindow';

/**
 * The pure definition of `DeadFeaturesOverWindow`.
 *
 * `firstVectorIndex` numbers the batch's row 0: `update(state, batch, rows)` with a row range
 * checks it against the vectors the state numbers as for the whole batch (a batch folded row
 * range by row range carries it on its first range only).
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const d = deadFeaturesOverWindow({ numLearnedFeatures: 3, windowVectors: 2 });
 * const s = d.update(d.init(), { learnedActivations: tensor([[1, 0, 0], [0, 1, 0], [0, 0, 0]]) });
 * d.compute(s).vectorsSinceFired.toArray(); // [2, 1, 3]
 * ```
 */
export function deadFeaturesOverWindow(
  options: DeadFeaturesOverWindowOptions,
): MetricDefinition<DeadFeaturesOverWindowState, DeadFeaturesOverWindowResult> {
  const { shape, options: o } = indexedShape(METRIC, options, ['windowVectors']);
  const windowVectors = positiveInteger(METRIC, 'windowVectors', o.windowVectors);
  const { numLearnedFeatures, numComponents } = shape;
  const components = numComponents ?? 1;
  const perFeature = numComponents === undefined ? [numLearnedFeatures] : [components, numLearnedFeatures];
  return defineMetric({
    metric: METRIC,
    config: { numLearnedFeatures, numComponents: numComponents ?? null, windowVectors },
    parts: { lastFired: lastFiredPart(numLearnedFeatures, numComponents) },
    validate: (batch: Batch, state?: DeadFeaturesOverWindowState) =>
      checkIndexedBatch(METRIC, batch, shape, state?.parts.lastFired.vectors),
    compute({ lastFired }) {
      // A batch's partial alone (forward) numbers from its declared first vector.
      const origin = lastFired.start ?? 0;
      const vectors = origin + lastFired.vectors;
      const size = lastFired.last.length;
      const last = new Float64Array(size);
      const since = new Float64Array(size);
      const mask = new Float64Array(size);
      const dead = new Float64Array(components);
      for (let g = 0; g < size; g++) {
        const j = lastFired.last[g] as number;
        last[g] = j < 0 ? -1 : j + origin;
        since[g] = vectors - 1 - (last[g] as number);
        if ((since[g] as number) >= windowVectors) {
          mask[g] = 1;
          const c = Math.floor(g / numLearnedFeatures);
          dead[c] = (dead[c] as number) + 1;
        }
      }
      return {
        dead: squeezeIfScalar(int64(dead, numComponents === undefined ? [] : [components])),
        deadMask: int64(mask, perFeature),
        vectorsSinceFired: int64(since, perFeature),
        lastFired: int64(last, perFeature),
        vectors: int64(Float64Array.of(vectors), []),
      };
    },
  });
}
