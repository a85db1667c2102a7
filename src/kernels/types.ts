/**
 * The contract between state parts and kernels: parts say which per-shard statistics they need,
 * a kernel computes all of them in one pass over the shard's memory.
 *
 * @module
 */
import type { TensorLike } from '../tensor.js';

/** A half-open range of rows `[start, end)` along a batch's first axis. */
export interface RowRange {
  readonly start: number;
  readonly end: number;
}

/** The batch fields a fused pass reads (a metric's batch holds these among others). */
export interface KernelBatch {
  readonly learnedActivations?: TensorLike;
  readonly sourceActivations?: TensorLike;
  readonly decodedActivations?: TensorLike;
}

/** Which statistics a shard pass must compute. */
export interface ShardNeeds {
  /** Per vector: `sum_f |learned|`. */
  readonly abs?: boolean;
  /** Per component: number of `learned != 0`. */
  readonly nonZero?: boolean;
  /** Per component and feature: number of vectors with `learned > 0`. */
  readonly fired?: boolean;
  /** Per vector: `mean_f (decoded - source)^2`. */
  readonly mse?: boolean;
  /** The positive entries of the learned activations, vector by vector (see {@link PositiveEntries}). */
  readonly positives?: boolean;
  /** Per vector: `‖x‖²`, `‖x̂‖²`, `⟨x, x̂⟩` and `‖x − x̂‖²` of source `x` and decoded `x̂` (see {@link VectorNorms}). */
  readonly norms?: boolean;
  /** Per component and dimension: mean and sum of squared deviations of the source activations. */
  readonly sourceMoments?: boolean;
  /** Per component and dimension: mean and sum of squared deviations of the residual `x − x̂`. */
  readonly residualMoments?: boolean;
  /**
   * Per-feature statistics of the fired entries (see {@link FeatureNeeds}): a kernel gives them as
   * `features` ({@link FeatureStats}), or gives `positives`, from which the parts compute them.
   */
  readonly features?: FeatureNeeds;
}

/** The statistics of {@link ShardNeeds} that are a flag. */
export type ShardFlag = Exclude<keyof ShardNeeds, 'features'>;

/** A histogram of fired values per feature: slot `j` counts values with `j` edges at or below them. */
export interface HistogramRequest {
  /** Names the bins: a result carries it, and only a part asking for the same key uses it. */
  readonly key: string;
  /** The float32 bit patterns of the increasing edges (positive float32 values order as their bits). */
  readonly edgeBits: Uint32Array;
}

/**
 * What the per-feature parts ask of a shard's fired entries, each feature's in row order (two
 * parts that ask for different `top` get the larger; for a second `histogram` key, `positives`).
 */
export interface FeatureNeeds {
  /** Count, mean, sum of squared deviations (two passes) and maximum. */
  readonly moments?: boolean;
  /** The last row that fired. */
  readonly lastFired?: boolean;
  /** The best `top` entries (value descending, then row ascending). */
  readonly top?: number;
  /** The histogram's touched cells. */
  readonly histogram?: HistogramRequest;
}

/** Per feature `g = component * features + feature` of a shard, `[components * features]` each. */
export interface FeatureStats {
  /** Fired count, mean, M2 and maximum of the fired values (all 0 where none fired). */
  readonly moments?: { readonly count: Float64Array; readonly mean: Float64Array; readonly m2: Float64Array; readonly max: Float64Array };
  /** The last row (relative to the shard's first) each fired on, -1 where none. */
  readonly lastFired?: Float64Array;
  /** Per feature its best `min(k, fired)` entries, best first, features in order; rows relative to the shard's first. */
  readonly top?: { readonly k: number; readonly counts: Float64Array; readonly values: Float32Array; readonly rows: Float64Array };
  /** The cells `g * (edges + 1) + slot` the entries touched, ascending, and their counts. */
  readonly histogram?: { readonly key: string; readonly cells: Uint32Array; readonly cellCounts: Float64Array };
}

/** Per-vector sums over the feature axis of source `x` and decoded `x̂`, each `[rows * components]`. */
export interface VectorNorms {
  /** `‖x‖²`. */
  readonly source: Float64Array;
  /** `‖x̂‖²`. */
  readonly decoded: Float64Array;
  /** `⟨x, x̂⟩`. */
  readonly dot: Float64Array;
  /** `‖x − x̂‖²`. */
  readonly error: Float64Array;
}

/**
 * Moments of a shard's vectors per `(component, dimension)`, `[components * features]` row-major:
 * the mean and the sum of squared deviations from it (`M2`), over the shard's rows (each component
 * has one vector per row). What Chan et al.'s parallel rule merges.
 */
export interface Moments {
  readonly mean: Float64Array;
  readonly m2: Float64Array;
}

/**
 * The positive (fired) entries of a shard's learned activations in compressed-row form: the
 * entries of the shard's vector `v` (vectors in row-major `(row, component)` order, `v = 0` the
 * shard's first) are `features[i]`, `values[i]` for `i` in `[offsets[v], offsets[v + 1])`, in
 * increasing feature order. What the per-feature statistics of fired activations are made from
 * without a second pass over the learned activations (they are sparse: a few percent fire).
 */
export interface PositiveEntries {
  /** `[vectors + 1]` offsets into `features` and `values`. */
  readonly offsets: Float64Array;
  /** The feature of each entry. */
  readonly features: Uint32Array;
  /** The value of each entry (float32, as read). */
  readonly values: Float32Array;
}

/**
 * Statistics of a shard (rows `[start, end)` of a batch). Vectors are `(row, component)` pairs in
 * row-major order; without a component axis there is one component. Counts are exact integers.
 */
export interface ShardStats {
  /** `[rows * components]` per-vector absolute sums of the learned activations. */
  readonly abs?: Float64Array;
  /** `[components]` non-zero counts of the learned activations. */
  readonly nonZero?: Float64Array;
  /** `[components * features]` fired counts of the learned activations. */
  readonly fired?: Float64Array;
  /** `[rows * components]` per-vector mean squared errors of decoded against source. */
  readonly mse?: Float64Array;
  /** The positive entries of the learned activations. */
  readonly positives?: PositiveEntries;
  /** Per-vector norms and products of source and decoded activations. */
  readonly norms?: VectorNorms;
  /** Moments of the source activations. */
  readonly sourceMoments?: Moments;
  /** Moments of the residual `source − decoded`. */
  readonly residualMoments?: Moments;
  /** Per-feature statistics of the fired entries. */
  readonly features?: FeatureStats;
}

/** A fused kernel: every needed statistic of a shard in one pass over its memory. */
export type FusedKernel = (batch: KernelBatch, rows: RowRange, needs: ShardNeeds) => ShardStats;
