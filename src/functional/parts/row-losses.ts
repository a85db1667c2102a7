/**
 * Per-vector losses: the absolute sum of learned activations (L1) and the mean squared error of
 * decoded against source activations (L2), reduced over the last (feature) axis.
 *
 * Two parts per loss: a running sum over vectors with a count (the mean's state), and the list of
 * per-vector values in arrival order (the state kept by `keepBatchDim`).
 *
 * @module
 */
import { fromFusedPass, type Batch, type RowRange, type StatePart } from '../core.js';
import type { TensorLike } from '../../tensor.js';
import { addCount, addF64, notCount, notF64, notNonNegative, notRecord, notZeroWithoutVectors } from './arrays.js';
import { describeValue } from '../../errors.js';
import { jsFusedKernel } from '../../kernels/js-fused.js';

/** Which per-vector loss. */
export type RowLoss = 'abs' | 'mse';

/** Running sum of a per-vector loss over vectors, per component, and the number of vectors. */
export interface RowLossSumState {
  readonly sum: Float64Array;
  readonly vectors: number;
}

/** Per-vector losses in arrival order: chunks of `[rows]` or `[rows, component]` values. */
export interface RowLossItemsState {
  readonly chunks: readonly Float64Array[];
  /** Whether the values have a component axis; `null` before the first batch. */
  readonly componentAxis: boolean | null;
}

function componentAxis(kind: RowLoss, batch: Batch): boolean {
  return ((kind === 'abs' ? batch.learnedActivations : batch.decodedActivations) as TensorLike).shape.length === 3;
}

/** The per-vector values of `rows` of a validated batch (`[rows]` or `[rows, component]`, row-major). */
export function rowLossValues(kind: RowLoss, batch: Batch, rows: RowRange): Float64Array {
  return jsFusedKernel(batch, rows, { [kind]: true })[kind] as Float64Array;
}

const SUM_OF: Record<RowLoss, string> = { abs: 'a sum of absolute values', mse: 'a sum of mean squared errors' };
const VALUE_OF: Record<RowLoss, string> = { abs: 'an absolute sum per vector', mse: 'a mean squared error per vector' };

const READS: Record<RowLoss, readonly string[]> = {
  abs: ['learnedActivations'],
  mse: ['decodedActivations', 'sourceActivations'],
};

/** The running-sum part of a per-vector loss with `numComponents` components. */
export function rowLossSumPart(kind: RowLoss, numComponents: number): StatePart<RowLossSumState> {
  const part: StatePart<RowLossSumState> = {
    id: `rowLossSum(loss=${kind},components=${numComponents})`,
    recipe: { kind: 'rowLossSum', args: [kind, numComponents] },
    reads: READS[kind],
    needs: { [kind]: true },
    init: () => ({ sum: new Float64Array(numComponents), vectors: 0 }),
    fromStats(stats, rows) {
      const values = stats[kind] as Float64Array;
      const vectors = rows.end - rows.start;
      const components = values.length / vectors;
      const sum = new Float64Array(numComponents);
      for (let i = 0; i < values.length; i++) sum[i % components] = (sum[i % components] as number) + (values[i] as number);
      return { sum, vectors };
    },
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: (a, b) => ({ sum: addF64(a.sum, b.sum), vectors: addCount(a.vectors, b.vectors) }),
    invalid(v) {
      const reason =
        notRecord(v, ['sum', 'vectors']) ??
        notCount((v as RowLossSumState).vectors, 'vectors') ??
        notF64((v as RowLossSumState).sum, numComponents, 'sum');
      if (reason !== undefined) return reason;
      const { sum, vectors } = v as RowLossSumState;
      return notNonNegative(sum, 'sum', SUM_OF[kind]) ?? notZeroWithoutVectors(sum, vectors, 'sum');
    },
  };
  return part;
}

/** The ordered per-vector part of a per-vector loss (`keepBatchDim: true`). */
export function rowLossItemsPart(kind: RowLoss, numComponents: number): StatePart<RowLossItemsState> {
  const part: StatePart<RowLossItemsState> = {
    id: `rowLossItems(loss=${kind},components=${numComponents})`,
    recipe: { kind: 'rowLossItems', args: [kind, numComponents] },
    reads: READS[kind],
    needs: { [kind]: true },
    init: () => ({ chunks: [], componentAxis: null }),
    fromStats: (stats, _rows, batch) => ({ chunks: [stats[kind] as Float64Array], componentAxis: componentAxis(kind, batch) }),
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge(a, b) {
      if (a.componentAxis === null) return b;
      if (b.componentAxis === null) return a;
      if (a.componentAxis !== b.componentAxis) {
        throw new TypeError('per-vector values with and without a component axis cannot be concatenated');
      }
      return { chunks: [...a.chunks, ...b.chunks], componentAxis: a.componentAxis };
    },
    invalid(v) {
      const reason = notRecord(v, ['chunks', 'componentAxis']);
      if (reason !== undefined) return reason;
      const s = v as RowLossItemsState;
      if (s.componentAxis !== null && typeof s.componentAxis !== 'boolean') {
        return `.componentAxis must be a boolean or null, got ${describeValue(s.componentAxis)}`;
      }
      if (!Array.isArray(s.chunks)) return `.chunks must be an array of Float64Arrays, got ${describeValue(s.chunks)}`;
      if (s.componentAxis === null) return s.chunks.length === 0 ? undefined : '.chunks must be empty while componentAxis is null';
      if (s.chunks.length === 0) return '.chunks must not be empty while componentAxis is set (it is set by the first batch)';
      if (!s.componentAxis && numComponents !== 1) {
        return `.componentAxis cannot be false with ${numComponents} components (only one component comes without a component axis)`;
      }
      const width = s.componentAxis ? numComponents : 1;
      for (let i = 0; i < s.chunks.length; i++) {
        const c = s.chunks[i];
        if (!(c instanceof Float64Array)) return `.chunks[${i}] must be a Float64Array, got ${describeValue(c)}`;
        if (c.length === 0 || c.length % width !== 0) {
          return `.chunks[${i}] must hold whole rows of ${width} value${width === 1 ? '' : 's'} (at least one), got ${c.length} values`;
        }
        const negative = notNonNegative(c, `chunks[${i}]`, VALUE_OF[kind]);
        if (negative !== undefined) return negative;
      }
      return undefined;
    },
  };
  return part;
}
