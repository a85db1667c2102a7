import type { LearnedBatch } from '../functional/core.js';
import { Metric } from './metric.js';
import {
  featureActivationHistogram,
  histogramQuantiles,
  type FeatureActivationHistogramOptions,
  type FeatureActivationHistogramResult,
  type FeatureActivationHistogramState,
} from '../functional/feature-activation-histogram.js';
import type { Tensor } from '../tensor.js';

/**
 * Feature activation histogram: per learned feature, counts of its fired activations (`x > 0`) in
 * `binsPerDecade` log10 bins a decade from `10^lowLog10` to `10^highLog10` (defaults -4, 4, 10),
 * plus an underflow and an overflow bin; `counts` is `[feature, B + 2]` (or `[component, feature,
 * B + 2]`), `edges` the `B + 1` float32 edges. A value on an edge belongs to the bin above.
 *
 * State: the counts, merged by addition (exact, order-free), and the shared fired-count part.
 *
 * @throws {TypeError | RangeError} on a bad option: `numLearnedFeatures` (required) and
 *   `numComponents` positive integers, `lowLog10` < `highLog10` integers in [-37, 38],
 *   `binsPerDecade` an integer in [1, 1000].
 * @example
 * ```ts
 * const hist = new FeatureActivationHistogram({ numLearnedFeatures: 1, lowLog10: 0, highLog10: 2, binsPerDecade: 1 });
 * hist.update({ learnedActivations: tensor([[2], [50], [3], [0]]) });
 * hist.compute().counts.toArray(); // [[0, 2, 1, 0]]
 * hist.quantiles([1]).toArray(); // [[31.622776601683793]]
 * ```
 */
export class FeatureActivationHistogram extends Metric<FeatureActivationHistogramState, FeatureActivationHistogramResult, LearnedBatch> {
  constructor(options: FeatureActivationHistogramOptions) {
    super(featureActivationHistogram(options), [{ ...options }]);
  }

  /**
   * Per feature, the `qs` quantiles of its fired activations so far, within half a bin in log10
   * (see `histogramQuantiles`): `[feature, qs.length]` (or `[component, feature, qs.length]`).
   *
   * @throws {RangeError} for a quantile outside [0, 1].
   */
  quantiles(qs: readonly number[]): Tensor<'float64'> {
    return histogramQuantiles(this.compute(), qs);
  }
}
