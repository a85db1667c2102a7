import type { OperatorFunction } from 'rxjs';
import type { BatchInput } from '../functional/core.js';
import { describeValue } from '../errors.js';
import { checkTarget, metricOperator, type MetricOperatorOptions, type MetricTarget, type TargetResult } from './internal/run-metric.js';

/** The window of {@link computeEvery}: a number of batches, or of activation vectors. */
export type ComputeWindow = { readonly batches: number } | { readonly vectors: number };

/** Options of {@link computeEvery}. */
export interface ComputeEveryOptions extends MetricOperatorOptions {
  /** Also emit the value of an unfinished last window when the source completes (default false). */
  readonly emitPartial?: boolean;
}

/**
 * Emits the metric's value every `batches` batches, or as soon as at least `vectors` activation
 * vectors have arrived since the last emission, and then resets: the training-loop logging
 * cadence, and the window over which dead features are counted (as SAE trainers count dead
 * features over a window of tokens). A batch is never split: a window closes after the batch that
 * fills it.
 *
 * @throws {TypeError | RangeError} at creation, for a bad target, window or options.
 * @example
 * ```ts
 * const out = [];
 * of(
 *   { learnedActivations: tensor([[1, 0]]) },
 *   { learnedActivations: tensor([[0, 0]]) },
 *   { learnedActivations: tensor([[0, 1]]) },
 *   { learnedActivations: tensor([[0, 0]]) },
 * )
 *   .pipe(computeEvery(new NeuronActivityMetric({ numLearnedFeatures: 2 }), { vectors: 2 }))
 *   .subscribe((v) => out.push(v.item()));
 * out; // [1, 1]
 * ```
 */
export function computeEvery<T extends MetricTarget>(
  metric: T,
  window: ComputeWindow,
  options?: ComputeEveryOptions,
): OperatorFunction<BatchInput, TargetResult<T>> {
  const name = 'computeEvery';
  checkTarget(name, metric, options);
  const { emitPartial = false, ...rest } = options ?? {};
  if (typeof emitPartial !== 'boolean') {
    throw new TypeError(`${name}: options.emitPartial must be a boolean, got ${describeValue(emitPartial)}`);
  }
  if (typeof window !== 'object' || window === null || ('batches' in window) === ('vectors' in window)) {
    throw new TypeError(`${name}: window must be { batches: n } or { vectors: n }, got ${describeValue(window)}`);
  }
  const [unit, size] = 'batches' in window ? (['batches', window.batches] as const) : (['vectors', window.vectors] as const);
  if (typeof size !== 'number' || !Number.isSafeInteger(size) || size <= 0) {
    throw new RangeError(`${name}: window.${unit} must be a positive integer, got ${describeValue(size)}`);
  }
  return metricOperator<TargetResult<T>, TargetResult<T>>(metric, rest, () => {
    let seen = 0;
    return {
      batch(runner, byId, rows, emit) {
        runner.applyPartialsById(byId, false);
        seen += unit === 'batches' ? 1 : rows;
        if (seen >= size) {
          // Reset before emitting: a subscriber may push the next batch from inside `next`.
          const value = runner.compute();
          runner.reset();
          seen = 0;
          emit(value);
        }
      },
      complete(runner, emit) {
        if (emitPartial && seen > 0) emit(runner.compute());
      },
    };
  });
}
