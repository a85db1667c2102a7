/**
 * How a batch becomes partial states: cut into shards by a fixed plan, each shard's partial state
 * of every part computed by one fused pass, then merged in shard order through a fixed tree. The
 * in-thread executor and the worker pool follow the same plan, so they give the same bits.
 *
 * @module
 */
import type { Batch, StatePart } from '../functional/core.js';
import { computePartials } from '../kernels/partials.js';
import { DEFAULT_SHARD_ROWS, planShards, treeMerge } from './plan.js';

/** Options of one batch's evaluation. */
export interface EvaluateOptions {
  /** Index of the batch in its stream, for error messages. */
  readonly batchIndex: number;
  /** Aborts the batch's in-flight work. */
  readonly signal?: AbortSignal;
}

/** Turns a validated batch into the merged partial state of each part, by part id. */
export interface ShardExecutor {
  /** Rows per shard. */
  readonly shardRows: number;
  /**
   * The partial state of every distinct part over all `rows` of `batch`. In-thread executors
   * answer synchronously; a pool answers with a promise.
   */
  evaluate(
    parts: readonly StatePart<unknown>[],
    batch: Batch,
    rows: number,
    options: EvaluateOptions,
  ): ReadonlyMap<string, unknown> | Promise<ReadonlyMap<string, unknown>>;
}

/** The distinct parts of a list, by id, in first-seen order. */
export function distinctParts(parts: Iterable<StatePart<unknown>>): Map<string, StatePart<unknown>> {
  const out = new Map<string, StatePart<unknown>>();
  for (const part of parts) if (!out.has(part.id)) out.set(part.id, part);
  return out;
}

/** Merges per-shard partial states (in shard order) into one partial state per part. */
export function mergeShards(
  parts: ReadonlyMap<string, StatePart<unknown>>,
  shards: readonly ReadonlyMap<string, unknown>[],
): Map<string, unknown> {
  const out = new Map<string, unknown>();
  for (const [id, part] of parts) out.set(id, treeMerge(shards.map((s) => s.get(id)), (a, b) => part.merge(a, b)));
  return out;
}

/**
 * The in-thread executor: the same shard plan and merge tree as the pool, in the calling thread.
 *
 * @throws {RangeError} when `shardRows` is not a positive integer.
 */
export function inThreadExecutor(shardRows: number = DEFAULT_SHARD_ROWS): ShardExecutor {
  if (!Number.isSafeInteger(shardRows) || shardRows <= 0) {
    throw new RangeError(`inThreadExecutor: shardRows must be a positive integer, got ${String(shardRows)}`);
  }
  return {
    shardRows,
    evaluate(parts, batch, rows) {
      const distinct = distinctParts(parts);
      const shards = planShards(rows, shardRows).map((range) => computePartials(distinct.values(), batch, range));
      return mergeShards(distinct, shards);
    },
  };
}
