/**
 * Vector numbering shared by the indexed parts (top activations, last fired): vectors are numbered
 * in arrival order across the whole stream, a row's components sharing the row's number. A part's
 * state holds its vector count and indices relative to its own first vector; merging `a` then `b`
 * shifts `b`'s indices by `a`'s count, so merging shards, batches, workers and machines in order
 * numbers them with no help from whoever merges.
 *
 * A batch may declare the absolute index of its first vector (`firstVectorIndex`): its partial
 * states then carry `start`, the absolute index of their first vector. Merged after a state (which
 * numbers from vector 0), a partial with `start` beyond the state's count leaves a gap (vectors
 * skipped, in which nothing fired); one below it is refused. States never hold `start`: it is
 * spent when a partial is folded into a state.
 *
 * @module
 */
import { addCount } from './arrays.js';
import type { Batch, RowRange } from '../core.js';

/** The numbering fields of an indexed part's value. */
export interface Numbered {
  /** Vectors (rows) numbered by this value: its indices are in `[0, vectors)`. */
  readonly vectors: number;
  /** Only on a batch's partial: the absolute index of its first vector (from `firstVectorIndex`). */
  readonly start?: number;
}

/**
 * Where `b`'s first vector lands among `a`'s (the shift of `b`'s indices) and the merged count.
 *
 * @throws {RangeError} when `b` declares a first vector below the vectors `a` already numbers, or
 *   when the count passes 2^53 - 1.
 */
export function placeAfter(a: Numbered, b: Numbered): { offset: number; vectors: number } {
  let offset = a.vectors;
  if (b.start !== undefined) {
    const origin = a.start ?? 0;
    const end = origin + a.vectors;
    if (b.start < end) {
      throw new RangeError(
        `firstVectorIndex ${b.start} is below the ${end} vectors already numbered (vectors are numbered in arrival order; a batch may skip ahead, never back)`,
      );
    }
    offset = b.start - origin;
  }
  return { offset, vectors: addCount(offset, b.vectors) };
}

/** `{ start }` of the partial of `rows` of a batch that declares `firstVectorIndex`, else `{}`. */
export function startOf(batch: Batch, rows: RowRange): { start?: number } {
  const first = batch.firstVectorIndex;
  return typeof first === 'number' ? { start: first + rows.start } : {};
}

/** `{ start }` when `start` is defined, else `{}` (an optional field, absent rather than undefined). */
export function keepStart(start: number | undefined): { start?: number } {
  return start === undefined ? {} : { start };
}
