/**
 * L1 absolute loss: the absolute sum of the learned activations over the feature axis, averaged
 * over activation vectors (or kept per vector with `keepBatchDim`).
 *
 * `L1 = (1 / N) * sum_n sum_f |x[n, c, f]|` per component `c`.
 *
 * State: `absolute` is a running sum per component with a vector count (merges by addition), or,
 * with `keepBatchDim`, the per-vector sums in arrival order (merges by concatenation, receiver
 * first).
 *
 * @module
 */
import { checkActivations, checkBatch, defineMetric } from './core.js';
import { checkKeptAxis, lossConfig, type LossOptions } from './loss-options.js';
import type { Batch, MetricDefinition, MetricState } from './core.js';
import { float64, type Tensor, type TensorLike } from '../tensor.js';
import {
  rowLossItemsPart,
  rowLossSumPart,
  rowLossValues,
  type RowLossItemsState,
  type RowLossSumState,
} from './parts/row-losses.js';
import { rowLossResult } from './results.js';

/** Options of {@link l1AbsoluteLoss} and `L1AbsoluteLoss`. */
export type L1AbsoluteLossOptions = LossOptions;

/** The state of {@link l1AbsoluteLoss}. */
export type L1AbsoluteLossState = MetricState<{ readonly absolute: RowLossSumState | RowLossItemsState }>;

const METRIC = 'L1AbsoluteLoss';

/**
 * The pure definition of `L1AbsoluteLoss`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const l1 = l1AbsoluteLoss();
 * const s = l1.update(l1.init(), { learnedActivations: tensor([[[1, 0, 1]], [[0, 1, 0]]]) });
 * l1.compute(s).item(); // 1.5
 * ```
 */
export function l1AbsoluteLoss(options?: L1AbsoluteLossOptions): MetricDefinition<L1AbsoluteLossState, Tensor<'float64'>> {
  const { numComponents, keepBatchDim } = lossConfig(METRIC, options);
  return defineMetric({
    metric: METRIC,
    config: { numComponents, keepBatchDim },
    parts: { absolute: keepBatchDim ? rowLossItemsPart('abs', numComponents) : rowLossSumPart('abs', numComponents) },
    validate(batch: Batch, state?: L1AbsoluteLossState): number {
      const a = checkActivations(METRIC, checkBatch(METRIC, batch), 'learnedActivations', numComponents);
      checkKeptAxis(METRIC, 'learnedActivations', state?.parts.absolute, a.componentAxis, a.tensor.shape);
      return a.rows;
    },
    compute: (parts) => rowLossResult(parts.absolute, numComponents),
  });
}

/**
 * The absolute sum of learned activations over the feature axis (`[batch]` or `[batch, component]`),
 * as the Python `L1AbsoluteLoss.calculate_abs_sum`.
 *
 * @throws {InvalidBatchError} when `learnedActivations` is not a float32 tensor of rank 2 or 3.
 */
export function calculateAbsSum(learnedActivations: TensorLike): Tensor<'float64'> {
  const batch = { learnedActivations };
  const a = checkActivations('L1AbsoluteLoss.calculateAbsSum', batch, 'learnedActivations', 'any');
  const values = rowLossValues('abs', batch, { start: 0, end: a.rows });
  return float64(values, a.componentAxis ? [a.rows, a.components] : [a.rows]);
}
