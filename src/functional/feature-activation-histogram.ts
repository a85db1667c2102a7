/**
 * Feature activation histogram: per learned feature (and component), counts of its fired
 * activations (`x > 0`) in fixed log10 bins, `binsPerDecade` bins a decade from `10^lowLog10` to
 * `10^highLog10`, with an underflow bin below and an overflow bin at and above: the per-feature
 * activation histogram feature dashboards show. A value exactly on an edge belongs to the bin
 * above it. The edges are float32 numbers (see {@link histogramEdges}).
 *
 * State: per feature the counts of its `B + 2` slots (exact integers, merged by addition, so
 * exact and order-free), and the shared fired-count part (a feature's slots add up to its fired
 * count; a state where they do not is refused). Made from the `positives` statistic.
 *
 * Quantiles ({@link histogramQuantiles}) are read from the counts: the q-quantile of a feature's
 * `n` fired activations is the k-th smallest, `k = max(1, ceil(q n))`; its bin is known exactly,
 * and the bin's geometric midpoint is returned, within half a bin of it in log10: a relative error
 * of at most `10^(1 / (2 binsPerDecade)) - 1` (12.2% at 10 bins a decade), up to the float32
 * rounding of the edges (6e-8). A quantile in the underflow (overflow) bin is returned as the
 * lowest (highest) edge, a bound, not an estimate.
 *
 * @module
 */
import { defineMetric, type MetricDefinition, type MetricState } from './core.js';
import { optionRangeError, optionTypeError } from '../errors.js';
import { float64, int64, type Tensor } from '../tensor.js';
import { firedCountShape, learnedValidator, perFeatureShape, type FiredCountOptions } from './fired-count-family.js';
import { firedCountPart, type FiredCountState } from './parts/fired-count.js';
import {
  activationHistogramPart,
  binCount,
  denseHistogram,
  histogramEdges,
  type ActivationHistogramState,
  type HistogramBins,
} from './parts/activation-histogram.js';

export { histogramEdges, slotOf } from './parts/activation-histogram.js';

/** Options of {@link featureActivationHistogram} and `FeatureActivationHistogram`. */
export interface FeatureActivationHistogramOptions extends FiredCountOptions {
  /** log10 of the lowest edge, an integer in [-37, 38] (default -4; 1e-37 is a normal float32). */
  readonly lowLog10?: number;
  /** log10 of the highest edge, an integer in [-37, 38] above lowLog10 (default 4). */
  readonly highLog10?: number;
  /** Bins a decade, an integer in [1, 1000] (default 10). */
  readonly binsPerDecade?: number;
}

/** The state of {@link featureActivationHistogram}. */
export type FeatureActivationHistogramState = MetricState<{
  readonly firedCount: FiredCountState;
  readonly histogram: ActivationHistogramState;
}>;

/** The value of `FeatureActivationHistogram`. */
// A type, not an interface: results are records of tensors (`Readonly<Record<string, Tensor>>`).
export type FeatureActivationHistogramResult = {
  /**
   * `[feature, B + 2]` (or `[component, feature, B + 2]`) counts: slot 0 holds the activations
   * below `edges[0]`, slot `j` (1 to B) those in `[edges[j - 1], edges[j])`, slot `B + 1` those at
   * or above `edges[B]`.
   */
  readonly counts: Tensor<'int64'>;
  /** The `B + 1` bin edges (float32 values). */
  readonly edges: Tensor<'float64'>;
};

const METRIC = 'FeatureActivationHistogram';

/** The most counts a histogram state may hold (2 GiB of float64). */
export const MAX_HISTOGRAM_COUNTS = 2 ** 28;

function integerOption(option: string, value: unknown, min: number, max: number): number {
  const expected = `an integer in [${min}, ${max}]`;
  if (typeof value !== 'number') throw optionTypeError(METRIC, option, expected, value);
  if (!Number.isInteger(value) || value < min || value > max) throw optionRangeError(METRIC, option, expected, value);
  return value;
}

/**
 * The pure definition of `FeatureActivationHistogram`.
 *
 * @throws {TypeError | RangeError} on a bad option, or a histogram of more than 2^28 counts.
 * @example
 * ```ts
 * const hist = featureActivationHistogram({ numLearnedFeatures: 1, lowLog10: 0, highLog10: 2, binsPerDecade: 1 });
 * const s = hist.update(hist.init(), { learnedActivations: tensor([[0.5], [1], [20], [100], [0]]) });
 * const r = hist.compute(s);
 * r.edges.toArray(); // [1, 10, 100]
 * r.counts.toArray(); // [[1, 1, 1, 1]]
 * ```
 */
export function featureActivationHistogram(
  options: FeatureActivationHistogramOptions,
): MetricDefinition<FeatureActivationHistogramState, FeatureActivationHistogramResult> {
  const shape = firedCountShape(METRIC, options, ['lowLog10', 'highLog10', 'binsPerDecade']);
  const { numLearnedFeatures, numComponents } = shape;
  // firedCountShape checked the options object and its keys.
  const o: Partial<FeatureActivationHistogramOptions> = options;
  const lowLog10 = integerOption('lowLog10', o.lowLog10 ?? -4, -37, 38);
  const highLog10 = integerOption('highLog10', o.highLog10 ?? 4, -37, 38);
  const binsPerDecade = integerOption('binsPerDecade', o.binsPerDecade ?? 10, 1, 1000);
  if (highLog10 <= lowLog10) {
    throw new RangeError(`${METRIC}: options.highLog10 must be above options.lowLog10 (${lowLog10}), got ${highLog10}`);
  }
  const bins: HistogramBins = { lowLog10, highLog10, binsPerDecade };
  const slots = binCount(bins) + 2;
  const total = (numComponents ?? 1) * numLearnedFeatures * slots;
  if (total > MAX_HISTOGRAM_COUNTS) {
    throw new RangeError(
      `${METRIC}: ${numComponents ?? 1} component(s) x ${numLearnedFeatures} features x ${slots} slots is ${total} counts, more than the limit of ${MAX_HISTOGRAM_COUNTS}; use fewer bins (binsPerDecade, lowLog10, highLog10)`,
    );
  }
  const edges = histogramEdges(bins);
  return defineMetric({
    metric: METRIC,
    config: { numLearnedFeatures, numComponents: numComponents ?? null, lowLog10, highLog10, binsPerDecade },
    parts: {
      firedCount: firedCountPart(numLearnedFeatures, numComponents),
      histogram: activationHistogramPart(numLearnedFeatures, numComponents, bins),
    },
    validate: learnedValidator(METRIC, shape),
    invalid({ firedCount, histogram }) {
      const counts = histogram.counts;
      for (let k = 0; k < firedCount.fired.length; k++) {
        let sum = 0;
        for (let j = k * slots; j < (k + 1) * slots; j++) sum += counts[j] as number;
        if (sum !== firedCount.fired[k]) {
          return `histogram.counts of feature index ${k} must add up to its fired count firedCount.fired[${k}] (${firedCount.fired[k]}), got ${sum}`;
        }
      }
      return undefined;
    },
    compute({ histogram }) {
      // A batch's partial (forward) may be sparse: spread out, so a fresh array; a state's is copied.
      const counts = denseHistogram(histogram, total);
      return {
        counts: int64(counts === histogram.counts ? counts.slice() : counts, [...perFeatureShape(shape), slots]),
        edges: float64(edges.slice(), [edges.length]),
      };
    },
  });
}

/**
 * `max(1, ceil(q n))` for `q` as the decimal it was written as: the first rank `r` whose fraction
 * `r / n` (a correctly rounded division, so the float64 nearest the decimal `r / n`) reaches `q`.
 * Float64's `q * n` can pass an integer by an ulp (0.07 * 100 is 7.000000000000001), which `ceil`
 * alone would take to the next rank. Exact for decimals of up to 15 digits and `n` up to 2^30;
 * past that, off by one only where `q` and a fraction `r / n` round to the same float64.
 */
function quantileRank(q: number, n: number): number {
  let r = Math.max(1, Math.ceil(q * n));
  while (r > 1 && (r - 1) / n >= q) r--;
  while (r < n && r / n < q) r++;
  return r;
}

/**
 * Per feature, the `qs` quantiles of its fired activations read from a histogram (see the module
 * comment for the error bound): `[..., feature, qs.length]`; NaN for a feature that never fired.
 *
 * @throws {RangeError} for a quantile outside [0, 1], counts that do not fit the edges, or counts
 *   that are not non-negative integers adding up to at most 2^53 - 1 per feature.
 * @example
 * ```ts
 * const hist = featureActivationHistogram({ numLearnedFeatures: 1, lowLog10: 0, highLog10: 2, binsPerDecade: 1 });
 * const s = hist.update(hist.init(), { learnedActivations: tensor([[2], [50], [3]]) });
 * histogramQuantiles(hist.compute(s), [0.5]).toArray(); // [[3.1622776601683795]]
 * ```
 */
export function histogramQuantiles(result: FeatureActivationHistogramResult, qs: readonly number[]): Tensor<'float64'> {
  if (!Array.isArray(qs) || qs.length === 0) throw new RangeError('histogramQuantiles: qs must be a non-empty array of numbers in [0, 1]');
  for (const q of qs) {
    if (typeof q !== 'number' || !(q >= 0 && q <= 1)) throw new RangeError(`histogramQuantiles: each quantile must be a number in [0, 1], got ${String(q)}`);
  }
  const edges = result.edges.data;
  const slots = edges.length + 1;
  const counts = result.counts.data;
  const shape = result.counts.shape;
  if (shape[shape.length - 1] !== slots || counts.length % slots !== 0) {
    throw new RangeError(`histogramQuantiles: counts of shape [${shape.join(', ')}] do not have ${slots} slots (${edges.length} edges)`);
  }
  const features = counts.length / slots;
  const out = new Float64Array(features * qs.length);
  for (let k = 0; k < features; k++) {
    const at = k * slots;
    let n = 0;
    for (let j = 0; j < slots; j++) {
      const c = counts[at + j] as number;
      if (!(Number.isSafeInteger(c) && c >= 0)) throw new RangeError(`histogramQuantiles: counts must be non-negative integers below 2^53, got ${c} at index ${at + j}`);
      n += c;
    }
    if (!(n <= Number.MAX_SAFE_INTEGER)) throw new RangeError(`histogramQuantiles: the counts of feature index ${k} add up to ${n}, past 2^53 - 1`);
    qs.forEach((q, i) => {
      if (n === 0) {
        out[k * qs.length + i] = NaN;
        return;
      }
      const rank = quantileRank(q, n);
      let seen = 0;
      let s = 0;
      for (; s < slots; s++) {
        seen += counts[at + s] as number;
        if (seen >= rank) break;
      }
      out[k * qs.length + i] =
        s === 0 ? (edges[0] as number) : s === slots - 1 ? (edges[edges.length - 1] as number) : Math.sqrt((edges[s - 1] as number) * (edges[s] as number));
    });
  }
  return float64(out, [...shape.slice(0, -1), qs.length]);
}
