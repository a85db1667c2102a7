/**
 * Per-vector losses: the absolute sum of learned activations (L1) and the mean squared error of
 * decoded against source activations (L2), reduced over the last (feature) axis.
 *
 * Two parts per loss: a running sum over vectors with a count (the mean's state), and the list of
 * per-vector values in arrival order (the state kept by `keepBatchDim`).
 *
 * @module
 */
import type { Batch, RowRange, StatePart } from '../core.js';
import type { TensorLike } from '../../tensor.js';
import { addF64, notCount, notF64, notRecord } from './arrays.js';

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

/**
 * Calls `visit(index, value)` for every vector (row, component) of `rows`, in row-major order,
 * where value is that vector's loss over the feature axis.
 */
function eachRowLoss(kind: RowLoss, batch: Batch, rows: RowRange, visit: (index: number, value: number) => void): void {
  const t = (kind === 'abs' ? batch.learnedActivations : batch.decodedActivations) as TensorLike;
  const x = t.data;
  const src = kind === 'mse' ? (batch.sourceActivations as TensorLike).data : x;
  const features = t.shape[t.shape.length - 1] as number;
  const components = t.shape.length === 3 ? (t.shape[1] as number) : 1;
  const first = rows.start * components;
  const last = rows.end * components;
  for (let v = first; v < last; v++) {
    const o = v * features;
    let s = 0;
    if (kind === 'abs') {
      for (let f = 0; f < features; f++) s += Math.abs(x[o + f] as number);
    } else {
      for (let f = 0; f < features; f++) {
        const e = (x[o + f] as number) - (src[o + f] as number);
        s += e * e;
      }
      s /= features;
    }
    visit(v - first, s);
  }
}

function componentsOf(kind: RowLoss, batch: Batch): { components: number; axis: boolean } {
  const t = (kind === 'abs' ? batch.learnedActivations : batch.decodedActivations) as TensorLike;
  return { components: t.shape.length === 3 ? (t.shape[1] as number) : 1, axis: t.shape.length === 3 };
}

/** The per-vector values of `rows` of a batch (`[rows]` or `[rows, component]`, row-major). */
export function rowLossValues(kind: RowLoss, batch: Batch, rows: RowRange): Float64Array {
  const { components } = componentsOf(kind, batch);
  const out = new Float64Array((rows.end - rows.start) * components);
  eachRowLoss(kind, batch, rows, (i, value) => {
    out[i] = value;
  });
  return out;
}

/** The running-sum part of a per-vector loss with `numComponents` components. */
export function rowLossSumPart(kind: RowLoss, numComponents: number): StatePart<RowLossSumState> {
  return {
    id: `rowLossSum(loss=${kind},components=${numComponents})`,
    init: () => ({ sum: new Float64Array(numComponents), vectors: 0 }),
    fromBatch(batch, rows) {
      const { components } = componentsOf(kind, batch);
      const sum = new Float64Array(numComponents);
      eachRowLoss(kind, batch, rows, (i, value) => {
        sum[i % components] = (sum[i % components] as number) + value;
      });
      return { sum, vectors: rows.end - rows.start };
    },
    merge: (a, b) => ({ sum: addF64(a.sum, b.sum), vectors: a.vectors + b.vectors }),
    invalid: (v) =>
      notRecord(v, ['sum', 'vectors']) ??
      notF64((v as RowLossSumState).sum, numComponents, 'sum') ??
      notCount((v as RowLossSumState).vectors, 'vectors'),
  };
}

/** The ordered per-vector part of a per-vector loss (`keepBatchDim: true`). */
export function rowLossItemsPart(kind: RowLoss, numComponents: number): StatePart<RowLossItemsState> {
  return {
    id: `rowLossItems(loss=${kind},components=${numComponents})`,
    init: () => ({ chunks: [], componentAxis: null }),
    fromBatch: (batch, rows) => ({
      chunks: [rowLossValues(kind, batch, rows)],
      componentAxis: componentsOf(kind, batch).axis,
    }),
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
      if (s.componentAxis !== null && typeof s.componentAxis !== 'boolean') return 'componentAxis must be a boolean or null';
      if (!Array.isArray(s.chunks) || !s.chunks.every((c) => c instanceof Float64Array)) {
        return 'chunks must be an array of Float64Arrays';
      }
      if (s.componentAxis === null && s.chunks.length > 0) return 'chunks must be empty while componentAxis is null';
      const width = s.componentAxis ? numComponents : 1;
      if (!s.chunks.every((c) => c.length % width === 0)) return `chunks must hold whole rows of ${width} values`;
      return undefined;
    },
  };
}
