/**
 * Neuron activity: the number of dead learned features (neurons) per component. A neuron is dead
 * when the portion of activation vectors it fired for (`x > 0`) is at most
 * `thresholdIsDeadPortionFires`: `fired[c, f] <= threshold * N`, compared in float64.
 *
 * State: the shared fired-count part (exact integer counts per component and feature, and the
 * number of vectors), merged by addition.
 *
 * @module
 */
import { numberInRange, orDefault } from './core.js';
import type { MetricDefinition } from './core.js';
import type { Tensor } from '../tensor.js';
import { defineFiredCountMetric, type FiredCountMetricState, type FiredCountOptions } from './fired-count-family.js';
import { countResult } from './results.js';

/** Options of {@link neuronActivity} and `NeuronActivityMetric`. */
export interface NeuronActivityOptions extends FiredCountOptions {
  /** A neuron is dead when it fired for at most this portion of vectors, in [0, 1] (default 0). */
  readonly thresholdIsDeadPortionFires?: number;
}

/** The state of {@link neuronActivity}. */
export type NeuronActivityState = FiredCountMetricState;

const METRIC = 'NeuronActivityMetric';

/**
 * The pure definition of `NeuronActivityMetric`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const dead = neuronActivity({ numLearnedFeatures: 3 });
 * const s = dead.update(dead.init(), { learnedActivations: tensor([[1, 0, 1], [0, 0, 0]]) });
 * dead.compute(s).item(); // 1
 * ```
 */
export function neuronActivity(options: NeuronActivityOptions): MetricDefinition<NeuronActivityState, Tensor<'int64'>> {
  const threshold = numberInRange(METRIC, 'thresholdIsDeadPortionFires', orDefault(options?.thresholdIsDeadPortionFires, 0), {
    min: 0,
    max: 1,
    expected: 'a number in [0, 1]',
  });
  return defineFiredCountMetric(METRIC, options, {
    extraOptions: ['thresholdIsDeadPortionFires'],
    config: { thresholdIsDeadPortionFires: threshold },
    compute({ fired, vectors }, { numLearnedFeatures, numComponents }) {
      const components = numComponents ?? 1;
      const limit = threshold * vectors;
      const dead = new Float64Array(components);
      for (let c = 0; c < components; c++) {
        let n = 0;
        for (let f = 0; f < numLearnedFeatures; f++) if ((fired[c * numLearnedFeatures + f] as number) <= limit) n++;
        dead[c] = n;
      }
      return countResult(dead, numComponents === undefined ? [] : [components]);
    },
  });
}
