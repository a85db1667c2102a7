import type { OperatorFunction } from 'rxjs';
import type { BatchInput } from '../functional/core.js';
import { checkTarget, metricOperator, type MetricOperatorOptions, type MetricTarget, type TargetResult } from './internal/run-metric.js';

/**
 * Emits the metric's value over all batches once, when the source completes, like `reduce`. A
 * source that completes with no batch emits the metric's value on no data (with the
 * compute-before-update warning), as `reduce` emits its seed.
 *
 * @throws {TypeError | RangeError} at creation, for a target that is not a metric or collection, or bad options.
 * @example
 * ```ts
 * let dead;
 * of({ learnedActivations: tensor([[1, 0, 1]]) }, { learnedActivations: tensor([[0, 0, 0]]) })
 *   .pipe(reduceMetric(new NeuronActivityMetric({ numLearnedFeatures: 3 })))
 *   .subscribe((v) => (dead = v.item()));
 * dead; // 1
 * ```
 */
export function reduceMetric<T extends MetricTarget>(
  metric: T,
  options?: MetricOperatorOptions,
): OperatorFunction<BatchInput, TargetResult<T>> {
  checkTarget('reduceMetric', metric, options);
  return metricOperator<TargetResult<T>, TargetResult<T>>(metric, options, () => ({
    batch(runner, byId) {
      runner.applyPartialsById(byId, false);
    },
    complete(runner, emit) {
      emit(runner.compute());
    },
  }));
}
