/**
 * RxJS operators over metrics: pipeable, cold, one per file. Import from `sae-metrics/operators`
 * (or `sae-metrics`).
 *
 * @module
 */
export { accumulateMetric } from './accumulate-metric.js';
export { forwardMetric } from './forward-metric.js';
export { reduceMetric } from './reduce-metric.js';
export { computeEvery } from './compute-every.js';
export { fromBatches } from './from-batches.js';
export type { FromBatchesOptions } from './from-batches.js';
export type { ComputeEveryOptions, ComputeWindow } from './compute-every.js';
export type { MetricOperatorOptions, MetricTarget, TargetResult } from './internal/run-metric.js';
