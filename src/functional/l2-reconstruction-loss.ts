/**
 * L2 reconstruction loss: the mean squared error of decoded against source activations over the
 * feature axis, averaged over activation vectors (or kept per vector with `keepBatchDim`).
 *
 * `L2 = (1 / N) * sum_n (1 / F) * sum_f (decoded[n, c, f] - source[n, c, f])^2` per component `c`.
 *
 * State: `mse` is a running sum per component with a vector count (merges by addition), or, with
 * `keepBatchDim`, the per-vector values in arrival order (merges by concatenation, receiver first).
 *
 * @module
 */
import { checkActivations, checkBatch, defineMetric } from './core.js';
import { checkKeptAxis, lossConfig, type LossOptions } from './loss-options.js';
import type { Activations, Batch, MetricDefinition, MetricState } from './core.js';
import { batchError, formatShape } from '../errors.js';
import { float64, type Tensor, type TensorLike } from '../tensor.js';
import {
  rowLossItemsPart,
  rowLossSumPart,
  rowLossValues,
  type RowLossItemsState,
  type RowLossSumState,
} from './parts/row-losses.js';
import { rowLossResult } from './results.js';

/** Options of {@link l2ReconstructionLoss} and `L2ReconstructionLoss`. */
export type L2ReconstructionLossOptions = LossOptions;

/** The state of {@link l2ReconstructionLoss}. */
export type L2ReconstructionLossState = MetricState<{ readonly mse: RowLossSumState | RowLossItemsState }>;

const METRIC = 'L2ReconstructionLoss';

/** Checks `decodedActivations` and `sourceActivations`: each valid, and of the same shape. */
export function checkReconstruction(metric: string, batch: Batch, numComponents: number | 'any'): Activations {
  const decoded = checkActivations(metric, batch, 'decodedActivations', numComponents);
  const source = checkActivations(metric, batch, 'sourceActivations', numComponents);
  const [d, s] = [decoded.tensor.shape, source.tensor.shape];
  if (d.length !== s.length || d.some((n, i) => n !== s[i])) {
    throw batchError(
      metric,
      'decodedActivations',
      `decodedActivations and sourceActivations must have the same shape, got ${formatShape(decoded.tensor.shape)} and ${formatShape(source.tensor.shape)}`,
    );
  }
  return source;
}

/**
 * The pure definition of `L2ReconstructionLoss`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const l2 = l2ReconstructionLoss();
 * const s = l2.update(l2.init(), {
 *   sourceActivations: tensor([[[4, 2]], [[2, 0]]]),
 *   decodedActivations: tensor([[[2, 0]], [[0, 0]]]),
 * });
 * l2.compute(s).item(); // 3
 * ```
 */
export function l2ReconstructionLoss(
  options?: L2ReconstructionLossOptions,
): MetricDefinition<L2ReconstructionLossState, Tensor<'float64'>> {
  const { numComponents, keepBatchDim } = lossConfig(METRIC, options);
  return defineMetric({
    metric: METRIC,
    config: { numComponents, keepBatchDim },
    parts: { mse: keepBatchDim ? rowLossItemsPart('mse', numComponents) : rowLossSumPart('mse', numComponents) },
    validate(batch: Batch, state?: L2ReconstructionLossState): number {
      const a = checkReconstruction(METRIC, checkBatch(METRIC, batch), numComponents);
      checkKeptAxis(METRIC, 'sourceActivations', state?.parts.mse, a.componentAxis, a.tensor.shape);
      return a.rows;
    },
    compute: (parts) => rowLossResult(parts.mse, numComponents),
  });
}

/**
 * The mean squared error of decoded against source activations over the feature axis
 * (`[batch]` or `[batch, component]`), as the Python `L2ReconstructionLoss.calculate_mse`.
 *
 * @throws {InvalidBatchError} when the tensors are not float32 of rank 2 or 3 and the same shape.
 */
export function calculateMse(decodedActivations: TensorLike, sourceActivations: TensorLike): Tensor<'float64'> {
  const batch = { decodedActivations, sourceActivations };
  const a = checkReconstruction('L2ReconstructionLoss.calculateMse', batch, 'any');
  const values = rowLossValues('mse', batch, { start: 0, end: a.rows });
  return float64(values, a.componentAxis ? [a.rows, a.components] : [a.rows]);
}
