import type { OperatorFunction } from 'rxjs';
import type { BatchInput } from '../functional/core.js';
import { checkTarget, metricOperator, type MetricOperatorOptions, type MetricTarget, type TargetResult } from './internal/run-metric.js';

/**
 * Emits the metric's running value (`compute()` over every batch so far) after each batch, like
 * `scan`. The metric you pass is a template: each subscription works on its own fresh copy.
 *
 * With `{ pool }`, batches are sharded across the pool's workers; without, they are evaluated in
 * the subscribing thread through the same shard plan (the same bits). Values come out in batch
 * order either way.
 *
 * @throws {TypeError | RangeError} at creation, for a target that is not a metric or collection, or bad options.
 * @example
 * ```ts
 * const out = [];
 * of({ learnedActivations: tensor([[1, 0, 1]]) }, { learnedActivations: tensor([[0, 1, 0]]) })
 *   .pipe(accumulateMetric(new L1AbsoluteLoss()))
 *   .subscribe((v) => out.push(v.item()));
 * out; // [2, 1.5]
 * ```
 */
export function accumulateMetric<T extends MetricTarget>(
  metric: T,
  options?: MetricOperatorOptions,
): OperatorFunction<BatchInput, TargetResult<T>> {
  checkTarget('accumulateMetric', metric, options);
  return metricOperator<TargetResult<T>, TargetResult<T>>(metric, options, () => ({
    batch(runner, byId, _rows, emit) {
      runner.applyPartialsById(byId, false);
      emit(runner.compute());
    },
  }));
}
