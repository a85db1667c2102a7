/**
 * What `TopActivations` and `DeadFeaturesOverWindow` share: their shape options and their batch
 * check, which reads the optional `firstVectorIndex` (see `parts/vector-index.ts`).
 *
 * @module
 */
import { batchError, describeValue } from '../errors.js';
import { checkActivations, checkBatch } from './core.js';
import { checkFeatureCells, firedCountShape } from './fired-count-family.js';
import type { Batch } from './core.js';

/** The shape options of the indexed metrics. */
export interface IndexedOptions {
  /** Number of learned features (required). */
  readonly numLearnedFeatures: number;
  /** Number of components; leave unset for inputs without a component axis. */
  readonly numComponents?: number;
}

/** The checked shape options. */
export interface IndexedShape {
  readonly numLearnedFeatures: number;
  readonly numComponents: number | undefined;
}

/** Checks the options object (known keys: the shape options and `extra`) and the shape options. */
export function indexedShape<O extends IndexedOptions>(
  metric: string,
  options: O | undefined,
  extra: readonly string[],
): { shape: IndexedShape; options: Partial<O> } {
  // The fired-count family's check, which refuses undefined options and unknown keys first: the
  // options object is checked once it returns.
  const shape = checkFeatureCells(metric, firedCountShape(metric, options, extra));
  return { shape, options: options as O };
}

/**
 * Checks a batch of an indexed metric: its learned activations, and its `firstVectorIndex` (a
 * non-negative integer, not below the `seen` vectors the state numbers, nor past 2^53 - 1 with the
 * batch's rows). Returns the batch's rows.
 *
 * @throws {InvalidBatchError} naming the metric, the field and the values.
 */
export function checkIndexedBatch(metric: string, input: Batch, shape: IndexedShape, seen: number | undefined): number {
  const batch = checkBatch(metric, input);
  const rows = checkActivations(metric, batch, 'learnedActivations', shape.numComponents, {
    count: shape.numLearnedFeatures,
    option: 'numLearnedFeatures',
  }).rows;
  const first: unknown = batch.firstVectorIndex;
  if (first === undefined) {
    if (seen !== undefined && seen + rows > Number.MAX_SAFE_INTEGER) {
      throw batchError(metric, 'learnedActivations', `the state numbers ${seen} vectors; ${rows} more would pass 2^53 - 1, where vector indices stop being exact`);
    }
    return rows;
  }
  if (typeof first !== 'number' || !Number.isSafeInteger(first) || first < 0) {
    throw batchError(
      metric,
      'firstVectorIndex',
      `firstVectorIndex must be a non-negative integer below 2^53 (the absolute index of the batch's first vector), got ${describeValue(first)}`,
    );
  }
  if (first + rows > Number.MAX_SAFE_INTEGER) {
    throw batchError(metric, 'firstVectorIndex', `firstVectorIndex ${first} with ${rows} rows passes 2^53 - 1, where vector indices stop being exact`);
  }
  if (seen !== undefined && first < seen) {
    throw batchError(
      metric,
      'firstVectorIndex',
      `firstVectorIndex ${first} is below the ${seen} vectors the state already numbers (vectors are numbered in arrival order; a batch may skip ahead, never back)`,
    );
  }
  return rows;
}
