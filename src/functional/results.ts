/**
 * Builders of result tensors shared by the metric definitions.
 *
 * @module
 */
import { float64, int64, squeezeIfScalar, type Tensor } from '../tensor.js';
import { concat } from './parts/arrays.js';
import type { RowLossItemsState, RowLossSumState } from './parts/row-losses.js';

/** `sum / vectors` per component, squeezed (NaN before any vector, as 0 / 0 in torch). */
export function meanResult(sum: Float64Array, vectors: number, shape: readonly number[]): Tensor<'float64'> {
  const out = new Float64Array(sum.length);
  for (let i = 0; i < sum.length; i++) out[i] = (sum[i] as number) / vectors;
  return squeezeIfScalar(float64(out, shape));
}

/** Exact integer counts, squeezed. */
export function countResult(counts: Float64Array, shape: readonly number[]): Tensor<'int64'> {
  return squeezeIfScalar(int64(counts, shape));
}

/** The shape of concatenated per-vector values: `[N]` or `[N, C]` (`[0]` before any batch). */
export function itemsShape(items: RowLossItemsState, numComponents: number, length: number): number[] {
  return items.componentAxis ? [length / numComponents, numComponents] : [length];
}

/** A running-sum loss as its mean per component, or kept per vector, squeezed. */
export function rowLossResult(state: RowLossSumState | RowLossItemsState, numComponents: number): Tensor<'float64'> {
  if ('sum' in state) return meanResult(state.sum, state.vectors, [numComponents]);
  const values = concat(state.chunks, (n) => new Float64Array(n));
  return squeezeIfScalar(float64(values, itemsShape(state, numComponents, values.length)));
}
