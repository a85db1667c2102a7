/**
 * Per feature (and component), the moments of its fired activations (`x > 0`): how many, their
 * mean, the sum of squared deviations from the mean (M2) and their maximum. The state of
 * `FeatureActivationStats`, made from the `positives` statistic (no second pass over the learned
 * activations).
 *
 * A shard's moments are exact two-pass ones (the sum, then the squared deviations from the shard's
 * mean), over each feature's entries grouped by `fired-by-feature.ts`; shards merge with Chan et al.'s parallel rule
 * (`mean = ma + d nb / n`, `M2 = M2a + M2b + d^2 na nb / n`, `d = mb - ma`), which is associative
 * up to rounding (about 1e-16 relative a merge) and exact for the counts and the maximum. A fixed
 * shard plan and merge tree (the pool's) give the same bits whatever the worker count.
 *
 * @module
 */
import { fromFusedPass, type StatePart } from '../core.js';
import type { PositiveEntries } from '../../kernels/types.js';
import { addCount, notCounts, notF64, notRecord } from './arrays.js';
import { firedByFeature } from './fired-by-feature.js';

/** Moments of each feature's fired activations, `[component, feature]` row-major. */
export interface ActivationMomentsState {
  /** Fired activations counted (exact integers). */
  readonly count: Float64Array;
  /** Their mean (0 where none). */
  readonly mean: Float64Array;
  /** Their sum of squared deviations from the mean (0 where none). */
  readonly m2: Float64Array;
  /** Their maximum (0 where none). */
  readonly max: Float64Array;
}

/** Relative slack for the bounds a state from elsewhere is checked against (rounding of merges). */
const SLACK = 1e-9;

/**
 * The moments of the positive entries of a shard, `components` vectors a row: per feature, from
 * its entries in row order (see `fired-by-feature.ts`), the sum and maximum, then the squared
 * deviations from the mean (the order a walk over the vectors adds them in).
 */
export function momentsOf(p: PositiveEntries, components: number, features: number): ActivationMomentsState {
  const size = components * features;
  const count = new Float64Array(size);
  const mean = new Float64Array(size);
  const m2 = new Float64Array(size);
  const max = new Float64Array(size);
  const { starts, values } = firedByFeature(p, components, features);
  for (let k = 0; k < size; k++) {
    const s = starts[k] as number;
    const e = starts[k + 1] as number;
    if (s === e) continue;
    let sum = 0;
    let top = 0;
    for (let i = s; i < e; i++) {
      const x = values[i] as number;
      sum += x;
      if (x > top) top = x;
    }
    const n = e - s;
    const m = sum / n;
    let d2 = 0;
    for (let i = s; i < e; i++) {
      const d = (values[i] as number) - m;
      d2 += d * d;
    }
    count[k] = n;
    mean[k] = m;
    m2[k] = d2;
    max[k] = top;
  }
  return { count, mean, m2, max };
}

/** Chan et al.'s merge of two moment states (`a` first). */
export function mergeMoments(a: ActivationMomentsState, b: ActivationMomentsState): ActivationMomentsState {
  const size = a.count.length;
  const count = new Float64Array(size);
  const mean = new Float64Array(size);
  const m2 = new Float64Array(size);
  const max = new Float64Array(size);
  for (let k = 0; k < size; k++) {
    const na = a.count[k] as number;
    const nb = b.count[k] as number;
    if (na === 0 || nb === 0) {
      const from = nb === 0 ? a : b;
      count[k] = from.count[k] as number;
      mean[k] = from.mean[k] as number;
      m2[k] = from.m2[k] as number;
      max[k] = from.max[k] as number;
      continue;
    }
    const n = addCount(na, nb);
    const ma = a.mean[k] as number;
    const mb = b.mean[k] as number;
    const d = mb - ma;
    count[k] = n;
    // A side that fired +Infinity has mean +Infinity, and so has the union (as one shard's
    // two-pass mean gives it); the rule's Infinity - Infinity would make it NaN.
    mean[k] = ma === Infinity || mb === Infinity ? Infinity : ma + (d * nb) / n;
    m2[k] = (a.m2[k] as number) + (b.m2[k] as number) + ((d * d * na) / n) * nb;
    max[k] = Math.max(a.max[k] as number, b.max[k] as number);
  }
  return { count, mean, m2, max };
}

/** The reason a moment state of `size` entries is impossible, or undefined. */
function impossible(s: ActivationMomentsState): string | undefined {
  for (let k = 0; k < s.count.length; k++) {
    const n = s.count[k] as number;
    const mean = s.mean[k] as number;
    const m2 = s.m2[k] as number;
    const max = s.max[k] as number;
    if (n === 0) {
      if (mean !== 0 || m2 !== 0 || max !== 0) {
        return `.count is 0 at index ${k} (nothing fired), so mean, m2 and max must be 0 there, got mean ${mean}, m2 ${m2}, max ${max}`;
      }
      continue;
    }
    if (!(max > 0)) return `.max must be positive where count is positive (fired activations are > 0), got ${max} at index ${k}`;
    // An infinite activation makes the mean infinite and M2 NaN (Infinity - Infinity), in a shard
    // and through merges: nothing more to check.
    if (max === Infinity) {
      if (mean !== Infinity || !Number.isNaN(m2)) {
        return `.mean must be Infinity and m2 NaN where max is Infinity (a fired +Infinity makes both), got mean ${mean}, m2 ${m2} at index ${k}`;
      }
      continue;
    }
    if (!(mean > 0 && mean <= max * (1 + SLACK))) {
      return `.mean must lie in (0, max] (a mean of values in (0, max]), got mean ${mean} with max ${max} at index ${k}`;
    }
    // Bhatia-Davis: the variance of values in [0, max] with mean m is at most (max - m) m, i.e.
    // Σx² <= max Σx: sums add and max only grows, so states that pass merge into states that pass
    // (the looser count * max^2 / 4 let two accepted states merge into a refused one).
    if (!(m2 >= 0 && m2 <= n * (mean * (max - mean) + SLACK * max * max))) {
      return `.m2 must lie in [0, count * mean * (max - mean)] (the spread of ${n} values in (0, ${max}] with mean ${mean}), got ${m2} at index ${k}`;
    }
    if (n === 1 && (m2 !== 0 || mean !== max)) {
      return `.count is 1 at index ${k}, so m2 must be 0 and mean equal max, got m2 ${m2}, mean ${mean}, max ${max}`;
    }
  }
  return undefined;
}

/** The activation-moments part for `numFeatures` features and `numComponents` components (or none). */
export function activationMomentsPart(numFeatures: number, numComponents: number | undefined): StatePart<ActivationMomentsState> {
  const components = numComponents ?? 1;
  const size = components * numFeatures;
  const part: StatePart<ActivationMomentsState> = {
    id: `activationMoments(components=${numComponents ?? 'none'},features=${numFeatures})`,
    recipe: { kind: 'activationMoments', args: [numFeatures, numComponents ?? null] },
    reads: ['learnedActivations'],
    needs: { features: { moments: true } },
    init: () => ({ count: new Float64Array(size), mean: new Float64Array(size), m2: new Float64Array(size), max: new Float64Array(size) }),
    // The kernel's (the WebAssembly pass computes them, the same bits), else from the entries.
    fromStats: (stats) => stats.features?.moments ?? momentsOf(stats.positives as PositiveEntries, components, numFeatures),
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: mergeMoments,
    invalid(v) {
      const s = v as ActivationMomentsState;
      return (
        notRecord(v, ['count', 'mean', 'm2', 'max']) ??
        notCounts(s.count, size, 'count') ??
        notF64(s.mean, size, 'mean') ??
        notF64(s.m2, size, 'm2') ??
        notF64(s.max, size, 'max') ??
        impossible(s)
      );
    },
  };
  return part;
}
