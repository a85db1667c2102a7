/**
 * Errors of sae-metrics, and the factories that build their messages.
 *
 * Every message starts with the name of the metric (or function) that raised it, then names the
 * argument and the value it got, e.g.
 * `NeuronActivityMetric: learnedActivations must have 3 features on its last axis, got shape [2, 4]`.
 *
 * Options are checked when a metric is created and raise the built-in `TypeError` (wrong kind of
 * value) or `RangeError` (right kind, out of range). A batch is checked before any state changes
 * and raises {@link InvalidBatchError}. Merging incompatible states raises {@link StateMergeError};
 * a state that cannot be decoded raises {@link StateDecodeError}.
 *
 * @module
 */

/** Formats a shape as `[2, 3, 4]`. */
export function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

/** Describes any value briefly for an error message: numbers and strings as themselves, objects by kind. */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'undefined';
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') {
    return String(value);
  }
  if (typeof value === 'function') return 'a function';
  if (Array.isArray(value)) return `an array of length ${value.length}`;
  if (ArrayBuffer.isView(value)) return `a ${value.constructor.name} of length ${(value as unknown as ArrayLike<unknown>).length}`;
  const name = (value as object).constructor?.name;
  return name && name !== 'Object' ? `a ${name}` : 'an object';
}

/**
 * A batch was rejected before it changed any state: a field is missing, has the wrong dtype, rank,
 * component count or feature count, disagrees with another field, or is empty.
 *
 * @example
 * ```ts
 * let field = '';
 * try { new L1AbsoluteLoss().update({}); } catch (e) { if (e instanceof InvalidBatchError) field = e.field; }
 * field; // 'learnedActivations'
 * 
 * ```
 */
export class InvalidBatchError extends TypeError {
  override readonly name = 'InvalidBatchError';
  /** The metric (class name) that rejected the batch. */
  readonly metric: string;
  /** The batch field at fault (`learnedActivations`, ...), or `batch` for the batch itself. */
  readonly field: string;

  constructor(metric: string, field: string, message: string) {
    super(`${metric}: ${message}`);
    this.metric = metric;
    this.field = field;
  }
}

/**
 * A state could not be merged or loaded: it belongs to another metric or configuration, or it is
 * not a possible state of the metric (a missing or unknown field, a negative count, a shape that
 * disagrees with its data or with the configuration, ...).
 */
export class StateMergeError extends TypeError {
  override readonly name = 'StateMergeError';
  /** The metric (class name) that refused the merge. */
  readonly metric: string;
  /** The state field at fault, as a path (`parts.firedCount.vectors`), when one is. */
  readonly field: string | undefined;

  constructor(metric: string, message: string, field?: string) {
    super(`${metric}: ${message}`);
    this.metric = metric;
    this.field = field;
  }
}

/**
 * An encoded state could not be decoded: not JSON, an unknown format or version, or a bad field
 * (an unknown, missing or prototype key, a bad typed-array or number encoding, nesting too deep).
 */
export class StateDecodeError extends TypeError {
  override readonly name = 'StateDecodeError';
  /** The field at fault, as a path (`parts.firedCount.fired`), when one is. */
  readonly field: string | undefined;

  constructor(message: string, options?: { cause?: unknown; field?: string; function?: string }) {
    super(`${options?.function ?? 'decodeState'}: ${message}`, options?.cause === undefined ? undefined : { cause: options.cause });
    this.field = options?.field;
  }
}

/** `Metric: options.name must be <expected>, got <value>` as a `TypeError`. */
export function optionTypeError(metric: string, option: string, expected: string, value: unknown): TypeError {
  return new TypeError(`${metric}: options.${option} must be ${expected}, got ${describeValue(value)}`);
}

/** `Metric: options.name must be <expected>, got <value>` as a `RangeError`. */
export function optionRangeError(metric: string, option: string, expected: string, value: unknown): RangeError {
  return new RangeError(`${metric}: options.${option} must be ${expected}, got ${describeValue(value)}`);
}

/** Builds an {@link InvalidBatchError} for `field` of `metric`. */
export function batchError(metric: string, field: string, message: string): InvalidBatchError {
  return new InvalidBatchError(metric, field, message);
}

/** Builds a {@link StateMergeError} for `metric` (and the state field at fault). */
export function mergeError(metric: string, message: string, field?: string): StateMergeError {
  return new StateMergeError(metric, message, field);
}

/**
 * A worker failed on a shard (it threw, or its thread exited). The batch it belonged to was not
 * applied, so nothing was counted twice or half-counted; `cause` is the original error.
 */
export class WorkerError extends Error {
  override readonly name = 'WorkerError';
  /** Index of the batch in its stream (0-based). */
  readonly batchIndex: number;
  /** Index of the shard in its batch (0-based). */
  readonly shardIndex: number;
  /** The shard's rows, `[start, end)`. */
  readonly rows: { readonly start: number; readonly end: number };

  constructor(batchIndex: number, shardIndex: number, rows: { start: number; end: number }, cause: unknown) {
    super(
      `worker failed on batch ${batchIndex}, shard ${shardIndex} (rows ${rows.start} to ${rows.end}): ${
        cause instanceof Error ? cause.message : String(cause)
      }`,
      { cause },
    );
    this.batchIndex = batchIndex;
    this.shardIndex = shardIndex;
    this.rows = rows;
  }
}

/**
 * A batch was handed to a worker pool that is closed, or was still waiting for (or running on) the
 * pool's threads when `pool.close()` was called. No worker failed; the batch was not applied.
 */
export class PoolClosedError extends Error {
  override readonly name = 'PoolClosedError';
  /** Index of the batch in its stream (0-based). */
  readonly batchIndex: number;

  constructor(batchIndex: number) {
    super(`MetricPool: the pool is closed (pool.close() was called), so batch ${batchIndex} was not computed`);
    this.batchIndex = batchIndex;
  }
}
