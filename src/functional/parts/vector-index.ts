/**
 * Vector numbering shared by the indexed parts (top activations, last fired): vectors are numbered
 * in arrival order across the whole stream, a row's components sharing the row's number. A part's
 * state holds its vector count and indices relative to its own first vector; merging `a` then `b`
 * shifts `b`'s indices by `a`'s count, so merging shards, batches, workers and machines in order
 * numbers them with no help from whoever merges.
 *
 * A batch may declare the absolute index of its first vector (`firstVectorIndex`): its partial
 * states then carry `start`, the absolute index of their first vector. Merged after a state, a
 * partial with `start` beyond the state's count leaves a gap (vectors skipped, in which nothing
 * fired); one below it is refused. States never hold `start`: it is spent when a partial is folded
 * into a state, which then records it as `anchor`, with `lead`, the vectors it numbered before
 * (relative, from batches without `firstVectorIndex`). From `anchor` on its indices are absolute:
 * merged after `a`, only its `lead` vectors shift by `a`'s count, and when `a`'s vectors and that
 * lead pass `anchor` (the two overlap) the merge is refused.
 *
 * @module
 */
import { describeValue } from '../../errors.js';
import { addCount } from './arrays.js';
import type { Batch, RowRange } from '../core.js';

/** The numbering fields of an indexed part's value. */
export interface Numbered {
  /** Vectors (rows) numbered by this value: its indices are in `[0, vectors)`. */
  readonly vectors: number;
  /** Only on a batch's partial: the absolute index of its first vector (from `firstVectorIndex`). */
  readonly start?: number;
  /** Only on a state that spent a `start`: the first it spent; its indices from here on are absolute. */
  readonly anchor?: number;
  /** With `anchor`: the vectors numbered before it (indices below `lead` are relative; none in `[lead, anchor)`). */
  readonly lead?: number;
}

/** How `b`'s indices land among `a`'s, and the numbering of `a` then `b`. */
export interface Placement {
  /** `b`'s index `j` becomes `j + (j < below ? shift : absolute)`. */
  readonly shift: number;
  readonly below: number;
  readonly absolute: number;
  /** The numbering fields of the merged value other than `vectors`. */
  readonly numbering: { start?: number; anchor?: number; lead?: number };
  readonly vectors: number;
}

/**
 * Where `b`'s indices land among `a`'s and the merged numbering.
 *
 * @throws {RangeError} when `b` declares a first vector below the vectors `a` already numbers, when
 *   `b`'s absolute numbering overlaps `a`'s vectors, or when the count passes 2^53 - 1.
 */
export function placeAfter(a: Numbered, b: Numbered): Placement {
  const origin = a.start ?? 0;
  const end = origin + a.vectors;
  const numbering =
    a.start !== undefined
      ? { start: a.start }
      : a.anchor !== undefined
        ? { anchor: a.anchor, lead: a.lead as number }
        : b.start !== undefined
          ? { anchor: b.start, lead: a.vectors }
          : b.anchor !== undefined
            ? { anchor: b.anchor, lead: addCount(a.vectors, b.lead as number) }
            : {};
  if (b.start !== undefined) {
    if (b.start < end) {
      throw new RangeError(
        `firstVectorIndex ${b.start} is below the ${end} vectors already numbered (vectors are numbered in arrival order; a batch may skip ahead, never back)`,
      );
    }
    const shift = b.start - origin;
    return { shift, below: Infinity, absolute: shift, numbering, vectors: addCount(shift, b.vectors) };
  }
  if (b.anchor !== undefined) {
    const lead = b.lead as number;
    // b numbers vectors [anchor, vectors) absolutely, after `lead` relative ones that follow a's.
    if (end + lead > b.anchor) {
      throw new RangeError(
        `the states overlap: the first numbers vectors [0, ${end})${lead > 0 ? `, the second ${lead} vectors after them, then` : ' and the second'} vectors [${b.anchor}, ${b.vectors}) from firstVectorIndex ${b.anchor} on (absolute indices, which a merge cannot move)`,
      );
    }
    return { shift: a.vectors, below: lead, absolute: -origin, numbering, vectors: b.vectors - origin };
  }
  return { shift: a.vectors, below: Infinity, absolute: a.vectors, numbering, vectors: addCount(a.vectors, b.vectors) };
}

/** `b`'s index `j` placed by `p`. */
export function placed(p: Placement, j: number): number {
  return j + (j < p.below ? p.shift : p.absolute);
}

/** `keys` of a part's value, with `anchor` and `lead` when `v` holds either (for `notRecord`). */
export function numberedKeys(v: unknown, keys: readonly string[]): readonly string[] {
  const anchored = typeof v === 'object' && v !== null && (Object.hasOwn(v, 'anchor') || Object.hasOwn(v, 'lead'));
  return anchored ? [...keys, 'anchor', 'lead'] : keys;
}

/**
 * The reason the numbering fields `anchor` and `lead` of `v` (a part's value of `vectors`) are
 * not possible, or undefined; `indices` are its vector indices (-1: none).
 */
export function notNumbering(v: Numbered, indices: Float64Array): string | undefined {
  const hasAnchor = Object.hasOwn(v, 'anchor');
  if (hasAnchor !== Object.hasOwn(v, 'lead')) return hasAnchor ? '.lead is missing (anchor and lead go together)' : '.anchor is missing (anchor and lead go together)';
  if (!hasAnchor) return undefined;
  const { anchor, lead, vectors } = v;
  if (typeof lead !== 'number' || !Number.isSafeInteger(lead) || lead < 0) return `.lead must be a non-negative safe integer, got ${describeValue(lead)}`;
  if (typeof anchor !== 'number' || !Number.isSafeInteger(anchor) || anchor < lead || anchor > vectors) {
    return `.anchor must be an integer in [lead, vectors] = [${lead}, ${vectors}], got ${describeValue(anchor)}`;
  }
  for (let i = 0; i < indices.length; i++) {
    const j = indices[i] as number;
    if (j >= lead && j < anchor) return `.anchor (${anchor}) and .lead (${lead}) leave a gap [${lead}, ${anchor}) in which nothing fired, got vector ${j} at index ${i}`;
  }
  return undefined;
}

/** `{ start }` of the partial of `rows` of a batch that declares `firstVectorIndex`, else `{}`. */
export function startOf(batch: Batch, rows: RowRange): { start?: number } {
  const first = batch.firstVectorIndex;
  return typeof first === 'number' ? { start: first + rows.start } : {};
}
