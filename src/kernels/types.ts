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
}

/** A fused kernel: every needed statistic of a shard in one pass over its memory. */
export type FusedKernel = (batch: KernelBatch, rows: RowRange, needs: ShardNeeds) => ShardStats;
