/**
 * L0 norm: the number of non-zero learned activations per vector (negatives count), averaged over
 * activation vectors: `L0 = (1 / N) * sum_n #{f : x[n, c, f] != 0}` per component `c`.
 *
 * State: exact integer non-zero counts per component and the number of vectors, merged by addition.
 *
 * @module
 */
import { checkActivations, checkBatch, checkOptions, defineMetric, positiveInteger } from './core.js';
import type { Batch, MetricDefinition, MetricState } from './core.js';
import type { Tensor } from '../tensor.js';
import { nonZeroCountPart, type NonZeroCountState } from './parts/non-zero-count.js';
import { meanResult } from './results.js';

/** Options of {@link l0Norm} and `L0NormMetric`. */
export interface L0NormOptions {
  /** Number of components; leave unset for inputs without a component axis. */
  readonly numComponents?: number;
}

/** The state of {@link l0Norm}. */
export type L0NormState = MetricState<{ readonly nonZeroCount: NonZeroCountState }>;

const METRIC = 'L0NormMetric';

/**
 * The pure definition of `L0NormMetric`.
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const l0 = l0Norm();
 * const s = l0.update(l0.init(), { learnedActivations: tensor([[1, 0, 1], [0, 1, 0]]) });
 * l0.compute(s).item(); // 1.5
 * ```
 */
export function l0Norm(options?: L0NormOptions): MetricDefinition<L0NormState, Tensor<'float64'>> {
  const o = checkOptions(METRIC, options, ['numComponents']);
  const numComponents = o.numComponents === undefined ? undefined : positiveInteger(METRIC, 'numComponents', o.numComponents);
  return defineMetric({
    metric: METRIC,
    config: { numComponents: numComponents ?? null },
    parts: { nonZeroCount: nonZeroCountPart(numComponents) },
    validate: (batch: Batch) => checkActivations(METRIC, checkBatch(METRIC, batch), 'learnedActivations', numComponents).rows,
    compute: (parts) =>
      meanResult(parts.nonZeroCount.nonZero, parts.nonZeroCount.vectors, numComponents === undefined ? [] : [numComponents]),
  });
}
