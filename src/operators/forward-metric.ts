import type { OperatorFunction } from 'rxjs';
import type { BatchInput } from '../functional/core.js';
import { checkTarget, metricOperator, type MetricOperatorOptions, type MetricTarget, type TargetResult } from './internal/run-metric.js';

/**
 * Emits each batch's own value (torchmetrics' `forward`) while accumulating every batch into the
 * subscription's copy of the metric.
 *
 * @throws {TypeError | RangeError} at creation, for a target that is not a metric or collection, or bad options.
 * @example
 * ```ts
 * const out = [];
 * of({ learnedActivations: tensor([[1, 0, 1]]) }, { learnedActivations: tensor([[0, 1, 0]]) })
 *   .pipe(forwardMetric(new L1AbsoluteLoss()))
 *   .subscribe((v) => out.push(v.item()));
 * out; // [2, 1]
 * ```
 */
export function forwardMetric<T extends MetricTarget>(
  metric: T,
  options?: MetricOperatorOptions,
): OperatorFunction<BatchInput, TargetResult<T>> {
  checkTarget('forwardMetric', metric, options);
  return metricOperator<TargetResult<T>, TargetResult<T>>(metric, options, () => ({
    batch(runner, byId, _rows, emit) {
      emit(runner.applyPartialsById(byId, true) as TargetResult<T>);
    },
  }));
}
