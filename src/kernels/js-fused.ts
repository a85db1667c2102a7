/**
 * The fused shard pass in plain JavaScript: one pass over the learned activations computes the
 * absolute sums, non-zero counts and fired counts together; one pass over decoded and source
 * activations computes the squared errors, the per-vector norms and the per-dimension moments.
 * Accumulates in float64 (JavaScript numbers); counts in integers. This is the reference kernel:
 * the others must match it.
 *
 * @module
 */
import type { TensorLike } from '../tensor.js';
import { shiftedMoments } from './moments.js';
import type { FusedKernel, KernelBatch, Moments, PositiveEntries, RowRange, ShardNeeds, ShardStats, VectorNorms } from './types.js';

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
  const out: Partial<Record<keyof ShardStats, unknown>> = {};
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
  // The per-feature statistics are made by the parts from the entries.
  if (needs.positives || needs.features) out.positives = positiveEntries(batch.learnedActivations as TensorLike, rows.start, rows.end);
  if (needs.mse || needs.norms || needs.sourceMoments || needs.residualMoments) pairStats(batch, rows, needs, out);
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

/**
 * One pass over rows `[start, end)` of the source and decoded activations: per-vector mean
 * squared errors and norms, and per-(component, dimension) moments of the source and of the
 * residual (sums of deviations from the shard's first vector; see `shiftedMoments`).
 */
function pairStats(batch: KernelBatch, rows: RowRange, needs: ShardNeeds, out: Partial<Record<keyof ShardStats, unknown>>): void {
  const d = batch.decodedActivations as TensorLike;
  const y = d.data;
  const s0 = (batch.sourceActivations as TensorLike).data;
  const { components, features } = axes(d);
  const first = rows.start * components;
  const last = rows.end * components;
  const vectors = last - first;
  const mse = new Float64Array(vectors);
  const doNorms = needs.norms === true;
  const doSource = needs.sourceMoments === true;
  const doResidual = needs.residualMoments === true;
  const norms = doNorms ? { source: new Float64Array(vectors), decoded: new Float64Array(vectors), dot: new Float64Array(vectors) } : undefined;
  const size = components * features;
  const xShift = new Float64Array(doSource ? size : 0);
  const x1 = new Float64Array(xShift.length);
  const x2 = new Float64Array(xShift.length);
  const rShift = new Float64Array(doResidual ? size : 0);
  const r1 = new Float64Array(rShift.length);
  const r2 = new Float64Array(rShift.length);
  if (vectors > 0) {
    const o = first * features;
    for (let i = 0; i < xShift.length; i++) xShift[i] = s0[o + i] as number;
    for (let i = 0; i < rShift.length; i++) rShift[i] = (s0[o + i] as number) - (y[o + i] as number);
  }
  // The norms are added as the WebAssembly pass adds them (the same bits: its products are exact
  // in float64, and a threshold such as L2Ratio's 1e-4 then falls the same way on either kernel):
  // lane f % 4 of the first features & ~3, lanes (0 + 2) + (1 + 3), then the rest in order.
  const f4 = features & ~3;
  const lanes = new Float64Array(12);
  for (let v = first; v < last; v++) {
    const o = v * features;
    const m = (v % components) * features;
    let s = 0;
    let ss = 0;
    let dd = 0;
    let dot = 0;
    if (doNorms) lanes.fill(0);
    for (let f = 0; f < features; f++) {
      const xd = y[o + f] as number;
      const xs = s0[o + f] as number;
      const e = xd - xs;
      s += e * e;
      if (doNorms) {
        if (f < f4) {
          const l = 3 * (f & 3);
          lanes[l] = (lanes[l] as number) + xs * xs;
          lanes[l + 1] = (lanes[l + 1] as number) + xd * xd;
          lanes[l + 2] = (lanes[l + 2] as number) + xs * xd;
        } else {
          ss += xs * xs;
          dd += xd * xd;
          dot += xs * xd;
        }
      }
      if (doSource) {
        const dx = xs - (xShift[m + f] as number);
        x1[m + f] = (x1[m + f] as number) + dx;
        x2[m + f] = (x2[m + f] as number) + dx * dx;
      }
      if (doResidual) {
        const dr = xs - xd - (rShift[m + f] as number);
        r1[m + f] = (r1[m + f] as number) + dr;
        r2[m + f] = (r2[m + f] as number) + dr * dr;
      }
    }
    mse[v - first] = s;
    if (norms !== undefined) {
      const lane = (k: number): number => ((lanes[k] as number) + (lanes[6 + k] as number)) + ((lanes[3 + k] as number) + (lanes[9 + k] as number));
      norms.source[v - first] = lane(0) + ss;
      norms.decoded[v - first] = lane(1) + dd;
      norms.dot[v - first] = lane(2) + dot;
    }
  }
  if (norms !== undefined) out.norms = { ...norms, error: mse.slice() } satisfies VectorNorms;
  if (needs.mse) {
    for (let i = 0; i < vectors; i++) mse[i] = (mse[i] as number) / features;
    out.mse = mse;
  }
  const rowsIn = rows.end - rows.start;
  if (doSource) out.sourceMoments = shiftedMoments(xShift, x1, x2, rowsIn) satisfies Moments;
  if (doResidual) out.residualMoments = shiftedMoments(rShift, r1, r2, rowsIn) satisfies Moments;
}
