/**
 * Feature frequency statistics: what SAE training and evaluation tools log about how often the
 * learned features fire, from the exact fired counts (the state `NeuronActivityMetric`,
 * `FeatureDensityMetric` and `NeuronFiredCountMetric` share, so a collection adds no pass). With
 * `d_f = fired_f / N` the density of feature `f` over the `N` vectors seen, per component:
 *
 * - `aliveFraction`: the portion of features with `fired_f > 0`; `deadCount`: those with 0;
 * - `freqOver1Percent`, `freqOver10Percent`: the portion of features with `d_f > 0.01`, `> 0.1`;
 * - `normalizedFreqOver1Percent`, `normalizedFreqOver10Percent`: the share of all firings those
 *   features account for, `sum(fired_f : d_f > t) / sum(fired_f)` (NaN when nothing fired);
 * - `below1e5`, `below1e6`: the number of features with `d_f < 1e-5`, `< 1e-6` (dead ones included);
 * - `meanLog10Density`: the mean over features of `log10(d_f + 1e-10)`.
 *
 * State: the shared fired-count part, merged by addition (exact).
 *
 * @module
 */
import type { MetricDefinition } from './core.js';
import { float64, int64, squeezeIfScalar, type Tensor } from '../tensor.js';
import { checkFeatureCells, defineFiredCountMetric, firedCountShape, type FiredCountMetricState, type FiredCountOptions } from './fired-count-family.js';

/** Options of {@link featureFrequencyStats} and `FeatureFrequencyStats`. */
export type FeatureFrequencyStatsOptions = FiredCountOptions;

/** The state of {@link featureFrequencyStats}. */
export type FeatureFrequencyStatsState = FiredCountMetricState;

/** The value of `FeatureFrequencyStats`: each 0-d, or `[numComponents]` with `numComponents`. */
// A type, not an interface: results are records of tensors (`Readonly<Record<string, Tensor>>`).
export type FeatureFrequencyStatsResult = {
  readonly aliveFraction: Tensor<'float64'>;
  readonly deadCount: Tensor<'int64'>;
  readonly freqOver1Percent: Tensor<'float64'>;
  readonly freqOver10Percent: Tensor<'float64'>;
  readonly normalizedFreqOver1Percent: Tensor<'float64'>;
  readonly normalizedFreqOver10Percent: Tensor<'float64'>;
  readonly below1e5: Tensor<'int64'>;
  readonly below1e6: Tensor<'int64'>;
  readonly meanLog10Density: Tensor<'float64'>;
};

/** The frequency summary of one set of features (one component). */
export interface FrequencySummary {
  /** Features that fired at least once. */
  readonly alive: number;
  /** Features that never fired. */
  readonly dead: number;
  /** Features with density above 0.01, and above 0.1. */
  readonly above1e2: number;
  readonly above1e1: number;
  /** Firings of the features above 0.01 (above 0.1), and of all features: exact integer sums. */
  readonly firingsAbove1e2: number;
  readonly firingsAbove1e1: number;
  readonly firings: number;
  /** Features with density below 1e-5, and below 1e-6 (dead ones included). */
  readonly below1e5: number;
  readonly below1e6: number;
  /** The mean over features of log10(density + 1e-10). */
  readonly meanLog10: number;
}

/**
 * The {@link FrequencySummary} of features `[from, to)` of `fired` (exact counts over `vectors`
 * vectors). Densities are `fired / vectors` in float64, as `FeatureDensityMetric` computes them,
 * compared with the thresholds as SAELens and SAEBench compare them (`<` below, `>` above).
 */
export function frequencySummary(fired: ArrayLike<number>, vectors: number, from = 0, to = fired.length): FrequencySummary {
  let alive = 0;
  let above1e2 = 0;
  let above1e1 = 0;
  let firingsAbove1e2 = 0;
  let firingsAbove1e1 = 0;
  let firings = 0;
  let below1e5 = 0;
  let below1e6 = 0;
  let logSum = 0;
  for (let i = from; i < to; i++) {
    const k = fired[i] as number;
    const d = k / vectors;
    if (k > 0) alive++;
    firings += k;
    if (d > 0.01) {
      above1e2++;
      firingsAbove1e2 += k;
    }
    if (d > 0.1) {
      above1e1++;
      firingsAbove1e1 += k;
    }
    if (d < 1e-5) below1e5++;
    if (d < 1e-6) below1e6++;
    logSum += Math.log10(d + 1e-10);
  }
  const n = to - from;
  return { alive, dead: n - alive, above1e2, above1e1, firingsAbove1e2, firingsAbove1e1, firings, below1e5, below1e6, meanLog10: logSum / n };
}

/**
 * The pure definition of `FeatureFrequencyStats`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const freq = featureFrequencyStats({ numLearnedFeatures: 4 });
 * const s = freq.update(freq.init(), { learnedActivations: tensor([[1, 0, 2, 0], [3, 0, 0, 0]]) });
 * const r = freq.compute(s);
 * r.aliveFraction.item(); // 0.5
 * r.deadCount.item(); // 2
 * r.normalizedFreqOver10Percent.item(); // 1
 * ```
 */
export function featureFrequencyStats(
  options: FeatureFrequencyStatsOptions,
): MetricDefinition<FeatureFrequencyStatsState, FeatureFrequencyStatsResult> {
  checkFeatureCells('FeatureFrequencyStats', firedCountShape('FeatureFrequencyStats', options));
  return defineFiredCountMetric('FeatureFrequencyStats', options, {
    compute({ fired, vectors }, { numLearnedFeatures: features, numComponents }) {
      const components = numComponents ?? 1;
      const columns = Array.from({ length: 9 }, () => new Float64Array(components));
      for (let c = 0; c < components; c++) {
        const s = frequencySummary(fired, vectors, c * features, (c + 1) * features);
        const values = [
          s.alive / features,
          s.dead,
          s.above1e2 / features,
          s.above1e1 / features,
          s.firingsAbove1e2 / s.firings,
          s.firingsAbove1e1 / s.firings,
          s.below1e5,
          s.below1e6,
          s.meanLog10,
        ];
        values.forEach((v, i) => ((columns[i] as Float64Array)[c] = v));
      }
      const shape = numComponents === undefined ? [] : [components];
      const f = (i: number) => squeezeIfScalar(float64(columns[i] as Float64Array, shape));
      const n = (i: number) => squeezeIfScalar(int64(columns[i] as Float64Array, shape));
      return {
        aliveFraction: f(0),
        deadCount: n(1),
        freqOver1Percent: f(2),
        freqOver10Percent: f(3),
        normalizedFreqOver1Percent: f(4),
        normalizedFreqOver10Percent: f(5),
        below1e5: n(6),
        below1e6: n(7),
        meanLog10Density: f(8),
      };
    },
  });
}
