/**
 * Sparse autoencoder loss: `L1 * l1Coefficient + L2`, the same as composing `L1AbsoluteLoss` and
 * `L2ReconstructionLoss`, and declared with the same state parts, so that in a `MetricCollection`
 * the three share one pass over each batch.
 *
 * State: `absolute` and `mse`, each a running sum per component with a vector count (or, with
 * `keepBatchDim`, the per-vector values in arrival order).
 *
 * @module
 */
import { checkActivations, checkBatch, defineMetric, numberInRange, orDefault } from './core.js';
import { checkKeptAxis, lossConfig, type LossOptions } from './loss-options.js';
import type { Batch, MetricDefinition, MetricState } from './core.js';
import { batchError, formatShape } from '../errors.js';
import { float64, squeezeIfScalar, type Tensor } from '../tensor.js';
import { rowLossItemsPart, rowLossSumPart, type RowLossItemsState, type RowLossSumState } from './parts/row-losses.js';
import { rowLossResult } from './results.js';
import { checkReconstruction } from './l2-reconstruction-loss.js';

/** Options of {@link sparseAutoencoderLoss} and `SparseAutoencoderLoss`. */
export interface SparseAutoencoderLossOptions extends LossOptions {
  /** Coefficient of the L1 term, a positive number (default 0.001). */
  readonly l1Coefficient?: number;
}

/** The state of {@link sparseAutoencoderLoss}. */
export type SparseAutoencoderLossState = MetricState<{
  readonly absolute: RowLossSumState | RowLossItemsState;
  readonly mse: RowLossSumState | RowLossItemsState;
}>;

const METRIC = 'SparseAutoencoderLoss';

/**
 * The pure definition of `SparseAutoencoderLoss`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const loss = sparseAutoencoderLoss({ l1Coefficient: 0.5 });
 * const s = loss.update(loss.init(), {
 *   learnedActivations: tensor([[1, 0, 1]]),
 *   sourceActivations: tensor([[4, 2]]),
 *   decodedActivations: tensor([[2, 0]]),
 * });
 * loss.compute(s).item(); // 2 * 0.5 + 4 = 5
 * ```
 */
export function sparseAutoencoderLoss(
  options?: SparseAutoencoderLossOptions,
): MetricDefinition<SparseAutoencoderLossState, Tensor<'float64'>> {
  const { numComponents, keepBatchDim, options: o } = lossConfig(METRIC, options, ['l1Coefficient']);
  const l1Coefficient = numberInRange(METRIC, 'l1Coefficient', orDefault(o.l1Coefficient, 0.001), {
    min: 0,
    max: Number.MAX_VALUE,
    exclusiveMin: true,
    expected: 'a positive finite number',
  });
  return defineMetric<SparseAutoencoderLossState['parts'], Tensor<'float64'>>({
    metric: METRIC,
    config: { numComponents, l1Coefficient, keepBatchDim },
    parts: keepBatchDim
      ? { absolute: rowLossItemsPart('abs', numComponents), mse: rowLossItemsPart('mse', numComponents) }
      : { absolute: rowLossSumPart('abs', numComponents), mse: rowLossSumPart('mse', numComponents) },
    validate(batch: Batch, state?: SparseAutoencoderLossState): number {
      const b = checkBatch(METRIC, batch);
      const learned = checkActivations(METRIC, b, 'learnedActivations', numComponents);
      const source = checkReconstruction(METRIC, b, numComponents);
      if (learned.rows !== source.rows || learned.componentAxis !== source.componentAxis) {
        throw batchError(
          METRIC,
          'learnedActivations',
          `learnedActivations and sourceActivations must have the same batch and component axes, got shapes ${formatShape(
            learned.tensor.shape,
          )} and ${formatShape(source.tensor.shape)}`,
        );
      }
      checkKeptAxis(METRIC, 'learnedActivations', state?.parts.absolute, learned.componentAxis, learned.tensor.shape);
      return learned.rows;
    },
    invalid: ({ absolute, mse }) => {
      // Both parts fold the same batches: a value of one without the other belongs to no stream.
      if ('sum' in absolute && 'sum' in mse) {
        return absolute.vectors === mse.vectors
          ? undefined
          : `absolute and mse must count the same vectors, got ${absolute.vectors} and ${mse.vectors}`;
      }
      if ('chunks' in absolute && 'chunks' in mse) {
        const rows = (s: RowLossItemsState) => s.chunks.reduce((n, c) => n + c.length, 0);
        if (absolute.componentAxis !== mse.componentAxis) {
          return `absolute and mse must agree on componentAxis, got ${String(absolute.componentAxis)} and ${String(mse.componentAxis)}`;
        }
        return rows(absolute) === rows(mse)
          ? undefined
          : `absolute and mse must hold as many per-vector values, got ${rows(absolute)} and ${rows(mse)}`;
      }
      return undefined;
    },
    compute(parts) {
      const l1 = rowLossResult(parts.absolute, numComponents);
      const l2 = rowLossResult(parts.mse, numComponents);
      const out = new Float64Array(l1.size);
      for (let i = 0; i < out.length; i++) out[i] = (l1.data[i] as number) * l1Coefficient + (l2.data[i] as number);
      return squeezeIfScalar(float64(out, l1.shape));
    },
  });
}
