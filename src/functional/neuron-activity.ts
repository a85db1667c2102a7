/**
 * Neuron activity: the number of dead learned features (neurons) per component. A neuron is dead
 * when the portion of activation vectors it fired for (`x > 0`) is at most
 * `thresholdIsDeadPortionFires`: `fired[c, f] <= threshold * N`.
 *
 * State: the shared fired-count part (exact integer counts per component and feature, and the
 * number of vectors), merged by addition.
 *
 * @module
 */
import { checkActivations, checkBatch, checkOptions, defineMetric, numberInRange, positiveInteger } from './core.js';
import type { Batch, MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { firedCountPart, type FiredCountState } from './parts/fired-count.js';
import { countResult } from './results.js';

/** Options of {@link neuronActivity} and `NeuronActivityMetric`. */
export interface NeuronActivityOptions {
  /** Number of learned features (required). */
  readonly numLearnedFeatures: number;
  /** Number of components; leave unset for inputs without a component axis. */
  readonly numComponents?: number;
  /** A neuron is dead when it fired for at most this portion of vectors, in [0, 1] (default 0). */
  readonly thresholdIsDeadPortionFires?: number;
}

/** The state of {@link neuronActivity}. */
export type NeuronActivityState = MetricState<{ readonly firedCount: FiredCountState }>;

const METRIC = 'NeuronActivityMetric';

/** Resolves and checks the `numLearnedFeatures` / `numComponents` options of the fired-count family. */
export function firedCountConfig(
  metric: string,
  options: { numLearnedFeatures: number; numComponents?: number } | undefined,
  extra: readonly string[] = [],
): { numLearnedFeatures: number; numComponents: number | undefined } {
  if (options === undefined) {
    throw new TypeError(`${metric}: options.numLearnedFeatures must be a positive integer, got undefined`);
  }
  const o = checkOptions(metric, options, ['numLearnedFeatures', 'numComponents', ...extra]);
  return {
    numLearnedFeatures: positiveInteger(metric, 'numLearnedFeatures', o.numLearnedFeatures),
    numComponents: o.numComponents === undefined ? undefined : positiveInteger(metric, 'numComponents', o.numComponents),
  };
}

/** Validates the learned activations of a fired-count metric; returns the rows. */
export function checkFiredBatch(metric: string, batch: Batch, numLearnedFeatures: number, numComponents: number | undefined): number {
  return checkActivations(metric, checkBatch(metric, batch), 'learnedActivations', numComponents, {
    count: numLearnedFeatures,
    option: 'numLearnedFeatures',
  }).rows;
}

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
  const { numLearnedFeatures, numComponents } = firedCountConfig(METRIC, options, ['thresholdIsDeadPortionFires']);
  const threshold = numberInRange(METRIC, 'thresholdIsDeadPortionFires', options.thresholdIsDeadPortionFires ?? 0, {
    min: 0,
    max: 1,
    expected: 'a number in [0, 1]',
  });
  const components = numComponents ?? 1;
  return defineMetric({
    metric: METRIC,
    config: { numLearnedFeatures, numComponents: numComponents ?? null, thresholdIsDeadPortionFires: threshold },
    parts: { firedCount: firedCountPart(numLearnedFeatures, numComponents) },
    validate: (batch: Batch) => checkFiredBatch(METRIC, batch, numLearnedFeatures, numComponents),
    compute(parts) {
      const { fired, vectors } = parts.firedCount;
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
