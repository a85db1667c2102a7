/**
 * The state parts of the reconstruction-quality metrics (`ExplainedVariance`,
 * `FractionOfVarianceUnexplained`, `CosineSimilarity`, `L2Ratio`, `RelativeReconstructionBias`,
 * `NormalizedMse`), all made from one fused pass over source `x` and decoded `x̂`:
 *
 * - a sum over vectors of a per-vector quantity, per component, with the number of vectors (merges
 *   by addition);
 * - per-(component, dimension) moments of `x` or of the residual `x − x̂`: the number of vectors,
 *   the mean and the sum of squared deviations `M2` (merges by Chan et al.'s parallel rule).
 *
 * @module
 */
import { fromFusedPass, type StatePart } from '../core.js';
import { addCount, addF64, notCount, notF64, notNonNegative, notRecord, notZeroWithoutVectors } from './arrays.js';
import type { Moments, VectorNorms } from '../../kernels/types.js';
import type { TensorLike } from '../../tensor.js';

/**
 * A per-vector quantity of source `x` and decoded `x̂` (sums over the feature axis):
 * - `error`: `‖x − x̂‖²`; `decodedSq`: `‖x̂‖²`; `dot`: `⟨x, x̂⟩`;
 * - `cosine`: `⟨x, x̂⟩ / (‖x‖ ‖x̂‖)`, 0 when one norm is 0, 1 when both are;
 * - `l2Ratio`: `‖x̂‖ / ‖x‖`, over 1 instead when `‖x‖ < 1e-4` (SAEBench's rule);
 * - `nmse`: `‖x − x̂‖² / ‖x‖²`, 0 for `‖x‖ = 0` (such vectors are counted by `zeroNorm`);
 * - `zeroNorm`: 1 when `‖x‖ = 0`, else 0.
 */
export type VectorQuantity = 'error' | 'decodedSq' | 'dot' | 'cosine' | 'l2Ratio' | 'nmse' | 'zeroNorm';

/** A per-vector quantity summed over vectors, per component. */
export interface VectorSumState {
  readonly sum: Float64Array;
  readonly vectors: number;
}

/** `‖x‖` below which `L2Ratio` divides by 1 (SAEBench's core evaluation). */
export const L2_RATIO_MIN_NORM = 1e-4;

/** The quantity `kind` of vector `i` of `norms`. */
export function vectorQuantity(kind: VectorQuantity, norms: VectorNorms, i: number): number {
  const ss = norms.source[i] as number;
  switch (kind) {
    case 'error':
      return norms.error[i] as number;
    case 'decodedSq':
      return norms.decoded[i] as number;
    case 'dot':
      return norms.dot[i] as number;
    case 'cosine': {
      const dd = norms.decoded[i] as number;
      if (ss === 0 || dd === 0) return ss === 0 && dd === 0 ? 1 : 0;
      return (norms.dot[i] as number) / (Math.sqrt(ss) * Math.sqrt(dd));
    }
    case 'l2Ratio': {
      const n = Math.sqrt(ss);
      return Math.sqrt(norms.decoded[i] as number) / (n < L2_RATIO_MIN_NORM ? 1 : n);
    }
    case 'nmse':
      return ss === 0 ? 0 : (norms.error[i] as number) / ss;
    case 'zeroNorm':
      return ss === 0 ? 1 : 0;
  }
}

const QUANTITIES: readonly VectorQuantity[] = ['error', 'decodedSq', 'dot', 'cosine', 'l2Ratio', 'nmse', 'zeroNorm'];

/** Whether `kind` names a {@link VectorQuantity}. */
export function isVectorQuantity(kind: unknown): kind is VectorQuantity {
  return QUANTITIES.includes(kind as VectorQuantity);
}

const NON_NEGATIVE: Partial<Record<VectorQuantity, string>> = {
  error: 'a sum of squared errors',
  decodedSq: 'a sum of squared norms',
  l2Ratio: 'a sum of norm ratios',
  nmse: 'a sum of normalized squared errors',
};

const READS = ['sourceActivations', 'decodedActivations'] as const;

/** The sum over vectors of the per-vector quantity `kind`, with `numComponents` components. */
export function vectorSumPart(kind: VectorQuantity, numComponents: number): StatePart<VectorSumState> {
  const part: StatePart<VectorSumState> = {
    id: `vectorSum(quantity=${kind},components=${numComponents})`,
    recipe: { kind: 'vectorSum', args: [kind, numComponents] },
    reads: READS,
    // The squared errors alone come from the mean squared errors, which L2ReconstructionLoss
    // shares: ExplainedVariance then costs no norms.
    needs: kind === 'error' ? { mse: true } : { norms: true },
    init: () => ({ sum: new Float64Array(numComponents), vectors: 0 }),
    fromStats(stats, rows, batch) {
      const sum = new Float64Array(numComponents);
      if (kind === 'error') {
        const mse = stats.mse as Float64Array;
        const shape = (batch.decodedActivations as TensorLike).shape;
        const features = shape[shape.length - 1] as number;
        for (let i = 0; i < mse.length; i++) sum[i % numComponents] = (sum[i % numComponents] as number) + (mse[i] as number) * features;
      } else {
        const norms = stats.norms as VectorNorms;
        const n = norms.source.length;
        for (let i = 0; i < n; i++) sum[i % numComponents] = (sum[i % numComponents] as number) + vectorQuantity(kind, norms, i);
      }
      return { sum, vectors: rows.end - rows.start };
    },
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: (a, b) => ({ sum: addF64(a.sum, b.sum), vectors: addCount(a.vectors, b.vectors) }),
    invalid(v) {
      const reason =
        notRecord(v, ['sum', 'vectors']) ??
        notCount((v as VectorSumState).vectors, 'vectors') ??
        notF64((v as VectorSumState).sum, numComponents, 'sum');
      if (reason !== undefined) return reason;
      const { sum, vectors } = v as VectorSumState;
      const what = NON_NEGATIVE[kind];
      const negative = what === undefined ? undefined : notNonNegative(sum, 'sum', what);
      if (negative !== undefined) return negative;
      if (kind === 'zeroNorm' || kind === 'cosine') {
        // A count of vectors, or a sum of values within [-1, 1] (and rounding): at most the vectors.
        for (let i = 0; i < sum.length; i++) {
          const s = sum[i] as number;
          if (kind === 'zeroNorm' && !(Number.isSafeInteger(s) && s >= 0 && s <= vectors)) {
            return `.sum must hold counts of zero-norm vectors within [0, vectors = ${vectors}], got ${s} at index ${i}`;
          }
          if (kind === 'cosine' && Math.abs(s) > vectors * (1 + 1e-9)) {
            return `.sum must be within [-vectors, vectors] (a sum of cosines; vectors = ${vectors}), got ${s} at index ${i}`;
          }
        }
      }
      return notZeroWithoutVectors(sum, vectors, 'sum');
    },
  };
  return part;
}

/** Which vectors' moments: the source `x` or the residual `x − x̂`. */
export type MomentsOf = 'source' | 'residual';

/** Per-(component, dimension) moments: `[components * features]` row-major, over `vectors` vectors per component. */
export interface MomentsState {
  readonly vectors: number;
  readonly mean: Float64Array;
  readonly m2: Float64Array;
}

/**
 * Chan et al.'s parallel rule: the moments of the union of two sets of vectors. A side with no
 * vectors gives the other unchanged (so `init()` is an exact identity).
 */
export function mergeMoments(a: MomentsState, b: MomentsState): MomentsState {
  if (b.vectors === 0) return a;
  if (a.vectors === 0) return b;
  const n = addCount(a.vectors, b.vectors);
  const wb = b.vectors / n;
  const wab = (a.vectors / n) * b.vectors;
  const mean = new Float64Array(a.mean.length);
  const m2 = new Float64Array(a.mean.length);
  for (let i = 0; i < mean.length; i++) {
    const ma = a.mean[i] as number;
    const delta = (b.mean[i] as number) - ma;
    mean[i] = ma + delta * wb;
    m2[i] = (a.m2[i] as number) + (b.m2[i] as number) + delta * delta * wab;
  }
  return { vectors: n, mean, m2 };
}

/** The moments part of `of` for `numComponents` components of `numFeatures` dimensions. */
export function momentsPart(of: MomentsOf, numComponents: number, numFeatures: number): StatePart<MomentsState> {
  const size = numComponents * numFeatures;
  const need = of === 'source' ? 'sourceMoments' : 'residualMoments';
  const part: StatePart<MomentsState> = {
    id: `moments(of=${of},components=${numComponents},features=${numFeatures})`,
    recipe: { kind: 'moments', args: [of, numComponents, numFeatures] },
    reads: READS,
    needs: { [need]: true },
    init: () => ({ vectors: 0, mean: new Float64Array(size), m2: new Float64Array(size) }),
    fromStats(stats, rows) {
      const m = stats[need] as Moments;
      return { vectors: rows.end - rows.start, mean: m.mean, m2: m.m2 };
    },
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: mergeMoments,
    invalid(v) {
      const reason =
        notRecord(v, ['vectors', 'mean', 'm2']) ??
        notCount((v as MomentsState).vectors, 'vectors') ??
        notF64((v as MomentsState).mean, size, 'mean') ??
        notF64((v as MomentsState).m2, size, 'm2');
      if (reason !== undefined) return reason;
      const { vectors, mean, m2 } = v as MomentsState;
      return (
        notNonNegative(m2, 'm2', 'a sum of squared deviations') ??
        notSpreadInOne(m2, vectors) ??
        notZeroWithoutVectors(mean, vectors, 'mean') ??
        notZeroWithoutVectors(m2, vectors, 'm2')
      );
    },
  };
  return part;
}

/** The reason `m2` of one vector is not 0 (a vector has no spread; NaN from a NaN or infinite value), or undefined. */
function notSpreadInOne(m2: Float64Array, vectors: number): string | undefined {
  if (vectors !== 1) return undefined;
  for (let i = 0; i < m2.length; i++) {
    const x = m2[i] as number;
    if (x !== 0 && !Number.isNaN(x)) return `.m2 must be 0 with one vector (one vector has no spread), got ${x} at index ${i}`;
  }
  return undefined;
}

/** `Σ_d M2[c, d]` per component: the total squared deviation from the mean vector. */
export function totalM2(m: MomentsState, numComponents: number): Float64Array {
  const out = new Float64Array(numComponents);
  const features = m.m2.length / numComponents;
  for (let c = 0; c < numComponents; c++) {
    let s = 0;
    for (let f = 0; f < features; f++) s += m.m2[c * features + f] as number;
    out[c] = s;
  }
  return out;
}
