/**
 * What the three loss metrics (`L1AbsoluteLoss`, `L2ReconstructionLoss`, `SparseAutoencoderLoss`)
 * share: the `numComponents` / `keepBatchDim` options and the check that kept per-vector values
 * keep one shape.
 *
 * @module
 */
import { booleanOption, checkOptions, orDefault, positiveInteger } from './core.js';
import { batchError, formatShape } from '../errors.js';
import type { RowLossItemsState, RowLossSumState } from './parts/row-losses.js';

/** Options of the loss metrics. */
export interface LossOptions {
  /** Number of components (default 1). */
  readonly numComponents?: number;
  /** Keep one value per activation vector instead of the mean (default false). */
  readonly keepBatchDim?: boolean;
}

/** Checks the options of a loss metric (allowing `extra` option names); returns them with the Python defaults. */
export function lossConfig<O extends LossOptions>(
  metric: string,
  options: O | undefined,
  extra: readonly string[] = [],
): { numComponents: number; keepBatchDim: boolean; options: Partial<O> } {
  const o = checkOptions(metric, options, ['numComponents', 'keepBatchDim', ...extra]);
  return {
    numComponents: positiveInteger(metric, 'numComponents', orDefault(o.numComponents, 1)),
    keepBatchDim: booleanOption(metric, 'keepBatchDim', orDefault(o.keepBatchDim, false)),
    options: o,
  };
}

/** Checks that a batch's rank agrees with the per-vector values kept so far. */
export function checkKeptAxis(
  metric: string,
  field: string,
  kept: RowLossItemsState | RowLossSumState | undefined,
  componentAxis: boolean,
  shape: readonly number[],
): void {
  if (kept === undefined || !('chunks' in kept) || kept.componentAxis === null || kept.componentAxis === componentAxis) return;
  throw batchError(
    metric,
    field,
    `${field} ${componentAxis ? 'has a' : 'has no'} component axis but earlier batches ${
      kept.componentAxis ? 'had one' : 'had none'
    } (keepBatchDim concatenates per-vector values of one shape), got shape ${formatShape(shape)}`,
  );
}

