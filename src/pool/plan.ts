/**
 * The shard plan and the merge tree: both fixed by the batch, never by the number of workers, so
 * a result is the same bit for bit whatever the worker count and the order workers finish in.
 *
 * @module
 */
import type { RowRange } from '../functional/core.js';

/** Default rows per shard: 1024 vectors. */
export const DEFAULT_SHARD_ROWS = 1024;

/**
 * Cuts `rows` rows into consecutive shards of `shardRows` rows (the last may be shorter).
 *
 * @example
 * ```ts
 * planShards(10, 4); // [{ start: 0, end: 4 }, { start: 4, end: 8 }, { start: 8, end: 10 }]
 * ```
 */
export function planShards(rows: number, shardRows: number): RowRange[] {
  const shards: RowRange[] = [];
  for (let start = 0; start < rows; start += shardRows) shards.push({ start, end: Math.min(rows, start + shardRows) });
  return shards;
}

/**
 * Merges `items` in index order through a fixed balanced tree: the first `ceil(n / 2)` items
 * merge into the left operand, the rest into the right.
 *
 * @throws {RangeError} on an empty list.
 * @example
 * ```ts
 * treeMerge(['a', 'b', 'c', 'd', 'e'], (x, y) => `(${x}${y})`); // '(((ab)c)(de))'
 * ```
 */
export function treeMerge<T>(items: readonly T[], merge: (a: T, b: T) => T): T {
  if (items.length === 0) throw new RangeError('treeMerge: nothing to merge');
  const go = (lo: number, hi: number): T => {
    if (hi - lo === 1) return items[lo] as T;
    const mid = lo + Math.ceil((hi - lo) / 2);
    return merge(go(lo, mid), go(mid, hi));
  };
  return go(0, items.length);
}
