/**
 * The command's canonical merge tree, the reason a run cut into shards (`--shard I/N`, then
 * `merge`) gives the same bits as one run, whatever N and whatever the workers.
 *
 * - **Leaves.** Each FILE's rows are cut into blocks of {@link LEAF_ROWS} from its first row (a
 *   block never spans two files; a file's last block may be shorter). The leaves of all FILEs in
 *   order are numbered 0, 1, ... (the *leaf grid*). A leaf's partial state is computed as one
 *   shard of the pool (or, when a batch holds fewer rows, folded from its batches in order).
 * - **The tree.** Leaf `j` at level 0; the node of level `k` and index `j` covers leaves
 *   `[j 2^k, (j + 1) 2^k)` and is the merge of its two children. The nodes that are complete
 *   (inside `[0, leaves)`) and maximal are the *roots* (the binary digits of the leaf count, largest
 *   first), merged left to right into the result.
 * - **Shards.** Shard I of N is leaves `[floor(I L / N), floor((I + 1) L / N))` and stores the
 *   maximal aligned nodes inside that range (at most 2 log2 L of them); merging the parts pushes
 *   every stored node through the same counter, so each node, and the result, is rebuilt with the
 *   single run's bits.
 *
 * Parts whose merge is exact in any grouping (counts, maxima and the indexed selections) need no
 * tree: one running state each, folded in order (a part file stores one state of each).
 *
 * @module
 */
import type { StatePart } from '../functional/core.js';
import { DEFAULT_SHARD_ROWS } from '../pool/plan.js';

/** Rows of a leaf of the grid: the pool's shard size. */
export const LEAF_ROWS = DEFAULT_SHARD_ROWS;

/**
 * Part kinds whose merge is exact and the same bits in any grouping (integer counts, maxima, a
 * selection by one total order, with integer index shifts): folded left to right, outside the tree.
 */
export const EXACT_KINDS: ReadonlySet<string> = new Set(['firedCount', 'nonZeroCount', 'activationHistogram', 'lastFired', 'topActivations']);

/** Whether a part is folded outside the tree (see {@link EXACT_KINDS}). */
export function isExactPart(part: StatePart<unknown>): boolean {
  return EXACT_KINDS.has(part.recipe.kind);
}

/** A range of leaves, `[start, end)`. */
export interface LeafRange {
  readonly start: number;
  readonly end: number;
}

/** The leaf grid of some files: where each file's leaves start. */
export interface LeafGrid {
  /** The first leaf of each file, then the leaf count (one more entry than files). */
  readonly firstLeaf: readonly number[];
  /** The first row (across all files) of each file, then the row count. */
  readonly firstRow: readonly number[];
  /** Leaves in all. */
  readonly leaves: number;
}

/** The leaf grid of files with these row counts. */
export function leafGrid(fileRows: readonly number[]): LeafGrid {
  const firstLeaf = [0];
  const firstRow = [0];
  for (const rows of fileRows) {
    firstLeaf.push((firstLeaf[firstLeaf.length - 1] as number) + Math.ceil(rows / LEAF_ROWS));
    firstRow.push((firstRow[firstRow.length - 1] as number) + rows);
  }
  return { firstLeaf, firstRow, leaves: firstLeaf[firstLeaf.length - 1] as number };
}

/** The file a leaf is in (the last file whose first leaf is at most `leaf`; files with no rows have none). */
function fileOf(grid: LeafGrid, leaf: number): number {
  let lo = 0;
  let hi = grid.firstLeaf.length - 2;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if ((grid.firstLeaf[mid] as number) <= leaf) lo = mid;
    else hi = mid - 1;
  }
  return lo;
}

/** The global rows `[start, end)` of leaves `[a, b)` (an empty range at the row where leaf `a` would start). */
export function leafRowRange(grid: LeafGrid, range: LeafRange): { start: number; end: number } {
  const rowAt = (leaf: number): number => {
    if (leaf >= grid.leaves) return grid.firstRow[grid.firstRow.length - 1] as number;
    const f = fileOf(grid, leaf);
    return (grid.firstRow[f] as number) + (leaf - (grid.firstLeaf[f] as number)) * LEAF_ROWS;
  };
  return { start: rowAt(range.start), end: rowAt(range.end) };
}

/**
 * The leaves of shard `index` of `count`: `[floor(index L / count), floor((index + 1) L / count))`,
 * empty when there are more shards than leaves.
 *
 * @throws {RangeError} when `index` is not in `[0, count)`.
 */
export function shardLeaves(leaves: number, index: number, count: number): LeafRange {
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`shardLeaves: count must be a positive integer, got ${count}`);
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) throw new RangeError(`shardLeaves: index must be an integer in [0, ${count}), got ${index}`);
  // BigInt: index * leaves may pass 2^53.
  const at = (i: number): number => Number((BigInt(i) * BigInt(leaves)) / BigInt(count));
  return { start: at(index), end: at(index + 1) };
}

/** A run of leaves read as one batch: `size` leaves from `start`, in one file. */
export interface LeafRun {
  /** The file (its index in the grid). */
  readonly file: number;
  readonly start: number;
  readonly size: number;
}

/**
 * Cuts leaves `[a, b)` into aligned power-of-two runs (`start % size == 0`) of at most
 * `maxLeaves` (a power of two) leaves, none across two files, in order. A run of `2^k` leaves is a
 * node of the tree, which the pool's balanced merge of its shards computes with the tree's bits.
 */
export function* leafRuns(grid: LeafGrid, range: LeafRange, maxLeaves: number): Generator<LeafRun> {
  if (!Number.isSafeInteger(maxLeaves) || maxLeaves < 1 || (maxLeaves & (maxLeaves - 1)) !== 0) {
    throw new RangeError(`leafRuns: maxLeaves must be a power of two, got ${maxLeaves}`);
  }
  let at = range.start;
  while (at < range.end) {
    const file = fileOf(grid, at);
    const end = Math.min(range.end, grid.firstLeaf[file + 1] as number);
    while (at < end) {
      let size = maxLeaves;
      while (size > 1 && (at % size !== 0 || at + size > end)) size /= 2;
      yield { file, start: at, size };
      at += size;
    }
  }
}

/** The largest power of two at most `n` (`n` >= 1). */
export function floorPowerOfTwo(n: number): number {
  let p = 1;
  while (p * 2 <= n) p *= 2;
  return p;
}

/** A node of the tree: `size` (a power of two) leaves from `start` (a multiple of `size`), and its state. */
export interface TreeNode<S> {
  readonly start: number;
  readonly size: number;
  readonly state: S;
}

/**
 * A binary counter over the leaves: nodes come in leaf order, and two siblings merge as soon as
 * both are there, so at any time it holds the maximal aligned nodes of the leaves pushed (at most
 * two per level). {@link fold} merges them left to right: the result of the canonical tree.
 */
export class MergeCounter<S> {
  readonly #merge: (a: S, b: S) => S;
  readonly #nodes: TreeNode<S>[] = [];

  constructor(merge: (a: S, b: S) => S) {
    this.#merge = merge;
  }

  /**
   * Adds the next node (right after the last one, unless it is the first).
   *
   * @throws {RangeError} when the node is not aligned, not a power of two, or not contiguous.
   */
  push(node: TreeNode<S>): void {
    const { start, size } = node;
    if (!Number.isSafeInteger(size) || size < 1 || (size & (size - 1)) !== 0 || !Number.isSafeInteger(start) || start < 0 || start % size !== 0) {
      throw new RangeError(`MergeCounter: a node must be 2^k leaves from a multiple of 2^k, got ${size} from ${start}`);
    }
    const last = this.#nodes[this.#nodes.length - 1];
    if (last !== undefined && last.start + last.size !== start) {
      throw new RangeError(`MergeCounter: nodes must come in order, without gaps: leaves from ${start} after leaves [${last.start}, ${last.start + last.size})`);
    }
    let top = node;
    for (;;) {
      const prev = this.#nodes[this.#nodes.length - 1];
      if (prev === undefined || prev.size !== top.size || prev.start % (2 * prev.size) !== 0) break;
      this.#nodes.pop();
      top = { start: prev.start, size: 2 * prev.size, state: this.#merge(prev.state, top.state) };
    }
    this.#nodes.push(top);
  }

  /** The nodes held, in leaf order. */
  nodes(): readonly TreeNode<S>[] {
    return this.#nodes;
  }

  /** The nodes merged left to right; `undefined` when there are none. */
  fold(): S | undefined {
    const [first, ...rest] = this.#nodes;
    if (first === undefined) return undefined;
    let out = first.state;
    for (const n of rest) out = this.#merge(out, n.state);
    return out;
  }
}
