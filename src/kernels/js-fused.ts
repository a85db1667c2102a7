/**
 * The fused shard pass in plain JavaScript: one pass over the learned activations computes the
 * absolute sums, non-zero counts and fired counts together; one pass over decoded and source
 * activations computes the squared errors. Accumulates in float64 (JavaScript numbers); counts in
 * integers. This is the reference kernel: the others must match it.
 *
 * @module
 */
import type { TensorLike } from '../tensor.js';
import type { FusedKernel, PositiveEntries, ShardStats } from './types.js';

function axes(t: TensorLike): { components: number; features: number } {
  const shape = t.shape;
  return { components: shape.length === 3 ? (shape[1] as number) : 1, features: shape[shape.length - 1] as number };
}

/**
 * Computes the statistics of rows `[start, end)` of a validated batch.
 *
 * @example
 * ```ts
 * const stats = jsFusedKernel({ learnedActivations: tensor([[1, -2, 0], [0, 3, 0]]) }, { start: 0, end: 2 }, { abs: true, fired: true });
 * Array.from(stats.abs); // [3, 3]
 * Array.from(stats.fired); // [1, 1, 0]
 * ```
 */
export const jsFusedKernel: FusedKernel = (batch, rows, needs) => {
  const out: { abs?: Float64Array; nonZero?: Float64Array; fired?: Float64Array; mse?: Float64Array; positives?: PositiveEntries } = {};
  if (needs.abs || needs.nonZero || needs.fired) {
    const t = batch.learnedActivations as TensorLike;
    const x = t.data;
    const { components, features } = axes(t);
    const first = rows.start * components;
    const last = rows.end * components;
    const abs = new Float64Array(last - first);
    const nonZero = new Float64Array(components);
    const fired = new Uint32Array(components * features);
    for (let v = first; v < last; v++) {
      const c = v % components;
      const o = v * features;
      const fo = c * features;
      let s = 0;
      let nz = 0;
      for (let f = 0; f < features; f++) {
        const value = x[o + f] as number;
        s += Math.abs(value);
        nz += value !== 0 ? 1 : 0;
        if (value > 0) fired[fo + f] = (fired[fo + f] as number) + 1;
      }
      abs[v - first] = s;
      nonZero[c] = (nonZero[c] as number) + nz;
    }
    if (needs.abs) out.abs = abs;
    if (needs.nonZero) out.nonZero = nonZero;
    if (needs.fired) out.fired = Float64Array.from(fired);
  }
  if (needs.positives) out.positives = positiveEntries(batch.learnedActivations as TensorLike, rows.start, rows.end);
  if (needs.mse) {
    const d = batch.decodedActivations as TensorLike;
    const y = d.data;
    const s0 = (batch.sourceActivations as TensorLike).data;
    const { components, features } = axes(d);
    const first = rows.start * components;
    const last = rows.end * components;
    const mse = new Float64Array(last - first);
    for (let v = first; v < last; v++) {
      const o = v * features;
      let s = 0;
      for (let f = 0; f < features; f++) {
        const e = (y[o + f] as number) - (s0[o + f] as number);
        s += e * e;
      }
      mse[v - first] = s / features;
    }
    out.mse = mse;
  }
  return out as ShardStats;
};

/** The positive entries of rows `[start, end)` of the learned activations `t` (two passes: count, then fill). */
function positiveEntries(t: TensorLike, start: number, end: number): PositiveEntries {
  const x = t.data;
  const { components, features } = axes(t);
  const from = start * components * features;
  const to = end * components * features;
  let n = 0;
  for (let i = from; i < to; i++) if ((x[i] as number) > 0) n++;
  const vectors = (end - start) * components;
  const offsets = new Float64Array(vectors + 1);
  const feature = new Uint32Array(n);
  const values = new Float32Array(n);
  let k = 0;
  for (let v = 0; v < vectors; v++) {
    offsets[v] = k;
    const o = from + v * features;
    for (let f = 0; f < features; f++) {
      const value = x[o + f] as number;
      if (value > 0) {
        feature[k] = f;
        values[k] = value;
        k++;
      }
    }
  }
  offsets[vectors] = k;
  return { offsets, features: feature, values };
}
