/**
 * Per-dimension moments from one pass: sums of deviations from a shift (the shard's first vector),
 * accumulated in float64, turned into a mean and a sum of squared deviations (`M2`). With a shift
 * that is one of the data, the deviations are of the size of the spread, not of the mean, so
 * `s2 − s1² / n` loses no more than a few ulps of `M2` where `Σx² − (Σx)² / n` would lose
 * everything (data with mean 1e4 and spread 1: see test/metrics/reconstruction.test.ts).
 *
 * @module
 */
import type { Moments } from './types.js';

/**
 * The moments of `n` vectors from `shift` and the sums `s1 = Σ (x − shift)`, `s2 = Σ (x − shift)²`
 * per dimension; `s1` and `s2` are overwritten with the mean and `M2` (negative rounding of `M2`
 * is clamped to 0; NaN stays NaN). With `n = 0`, the mean and `M2` are 0.
 */
export function shiftedMoments(shift: Float64Array, s1: Float64Array, s2: Float64Array, n: number): Moments {
  if (n === 0) {
    s1.fill(0);
    s2.fill(0);
    return { mean: s1, m2: s2 };
  }
  for (let i = 0; i < s1.length; i++) {
    const d = s1[i] as number;
    const m2 = (s2[i] as number) - (d * d) / n;
    s1[i] = (shift[i] as number) + d / n;
    s2[i] = m2 < 0 ? 0 : m2;
  }
  return { mean: s1, m2: s2 };
}
