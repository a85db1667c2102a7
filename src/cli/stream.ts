/**
 * The streaming core of `sae-metrics`: reads the inputs batch by batch into the pool's shared
 * memory, evaluates each batch's state parts on the pool, and folds them, in batch order, into one
 * state per distinct part through the canonical merge tree (`merge-tree.ts`), with a bounded
 * number of batches alive.
 *
 * @module
 */
import type { Batch, MetricDefinition, StatePart } from '../functional/core.js';
import type { MetricPool } from '../pool/metric-pool.js';
import type { Tensor } from '../tensor.js';
import type { TensorRef } from './formats.js';
import type { Inputs, Segment } from './inputs.js';
import { floorPowerOfTwo, isExactPart, LEAF_ROWS, leafGrid, leafRowRange, leafRuns, MergeCounter, type LeafGrid, type LeafRange, type TreeNode } from './merge-tree.js';
import { RowReader } from './reader.js';

/** Options of {@link streamParts}. */
export interface StreamOptions {
  /** The pool that evaluates batches and allocates their memory. */
  readonly pool: MetricPool;
  /**
   * Rows per batch at most (a batch never spans two files; see {@link streamParts} for how the
   * leaves are cut into batches).
   */
  readonly batchRows: number;
  /** The leaves to read (see `merge-tree.ts`; default: all of them). */
  readonly leaves?: LeafRange;
  /** Batches alive at once: read, and not yet folded in (see {@link liveBatchLimit}). */
  readonly maxLiveBatches: number;
  /** Called after each batch is folded in. */
  readonly onProgress?: (progress: StreamProgress) => void;
  /**
   * Stops the stream: no batch is read after it aborts; the batches already read are folded in,
   * and the result says it was interrupted.
   */
  readonly signal?: AbortSignal;
}

/** Where a stream is, after a batch was folded in. */
export interface StreamProgress {
  /** Vectors folded in so far. */
  readonly vectors: number;
  /** File bytes of the batches folded in so far. */
  readonly bytes: number;
  /** The file the last batch folded in came from. */
  readonly file: string;
}

/** What {@link streamParts} returns. */
export interface StreamResult {
  /** The state of every distinct part (by id) over the first `vectors` vectors of the leaves read. */
  readonly parts: ReadonlyMap<string, unknown>;
  /** The states of the exact parts (see `merge-tree.ts`), by id. */
  readonly exact: ReadonlyMap<string, unknown>;
  /**
   * The maximal nodes of the tree over the leaves read, each with the state of every other part
   * (empty when interrupted inside a leaf).
   */
  readonly nodes: readonly TreeNode<ReadonlyMap<string, unknown>>[];
  /** The leaves asked for (`options.leaves`, or all of them). */
  readonly leaves: LeafRange;
  /** Vectors folded in: all of them, unless interrupted. */
  readonly vectors: number;
  /** File bytes of the vectors folded in. */
  readonly bytes: number;
  /** Batches folded in. */
  readonly batches: number;
  /** The most batches alive at once. */
  readonly peakLiveBatches: number;
  /** Whether `signal` stopped the stream before the end of the inputs. */
  readonly interrupted: boolean;
}

/** Bytes of batches and their per-feature partial states that {@link liveBatchLimit} aims to keep alive. */
export const LIVE_BYTES = 96 * 1024 * 1024;

/**
 * How many batches to keep alive at once: as many as fit in {@link LIVE_BYTES}, counting for each
 * its float32 data (`batchBytes`) and the per-feature partial state it comes back with
 * (`stateBytes`), at least 1 and at most `maxInFlight + 1` (one being read while the pool is
 * busy). So a file whose rows are wide gets one batch at a time, not `maxInFlight + 1` copies of
 * a huge batch and its state.
 */
export function liveBatchLimit(batchBytes: number, stateBytes: number, maxInFlight: number): number {
  return Math.max(1, Math.min(maxInFlight + 1, Math.floor(LIVE_BYTES / (batchBytes + stateBytes))));
}

/** The distinct state parts of some metric definitions, by id, in first-seen order. */
export function partsOf(definitions: Iterable<MetricDefinition>): StatePart<unknown>[] {
  const out = new Map<string, StatePart<unknown>>();
  for (const d of definitions) for (const part of Object.values(d.parts)) if (!out.has(part.id)) out.set(part.id, part);
  return [...out.values()];
}

/** The state of a definition, made of the streamed part states (no copy). */
export function stateOf(definition: MetricDefinition, parts: ReadonlyMap<string, unknown>): Parameters<MetricDefinition['compute']>[0] {
  const values: Record<string, unknown> = {};
  for (const [key, part] of Object.entries(definition.parts)) values[key] = parts.get(part.id);
  return { metric: definition.metric, config: definition.config, parts: values };
}

/** A fired-count part state (see `functional/parts/fired-count.ts`). */
interface FiredCounts {
  readonly fired: Float64Array;
  vectors: number;
}

/**
 * Folds a batch's partial state of a part into the running state. Fired counts, the one state that
 * grows with the width (8 bytes per feature), are added in place into the running state (which
 * this stream made, with `init`): exact integers, the same values the part's `merge` gives in a
 * new array, without a new array per batch. Every other part folds through its own `merge`.
 */
function foldPart(part: StatePart<unknown>, running: unknown, partial: unknown): unknown {
  if (part.recipe.kind !== 'firedCount') return part.merge(running, partial);
  const into = running as FiredCounts;
  const add = partial as FiredCounts;
  const vectors = into.vectors + add.vectors;
  // Each count is at most the number of vectors: when that is exact, so is every sum.
  if (!Number.isSafeInteger(vectors)) throw new RangeError(`counts past 2^53 - 1 (${into.vectors} + ${add.vectors}) would not be exact`);
  if (add.fired.length !== into.fired.length) throw new RangeError(`fired counts of ${add.fired.length} features cannot fold into ${into.fired.length}`);
  const fired = into.fired;
  const more = add.fired;
  for (let i = 0; i < fired.length; i++) fired[i] = (fired[i] as number) + (more[i] as number);
  into.vectors = vectors;
  return into;
}

interface LiveBatch {
  readonly tensors: Tensor<'float32'>[];
  readonly rows: number;
  readonly bytes: number;
  readonly file: string;
  readonly plan: BatchPlan;
  readonly result: Promise<ReadonlyMap<string, unknown>>;
}

/** A batch to read: rows of one file that are whole leaves (a node of the tree) or a piece of one leaf. */
interface BatchPlan {
  readonly segment: number;
  /** Its first row in the file. */
  readonly start: number;
  readonly rows: number;
  /** The first leaf, and how many (a power of two; 1 for a piece). */
  readonly leaf: number;
  readonly size: number;
  /** Whether the rows are a piece of a leaf (batches shorter than a leaf), and its last piece. */
  readonly piece: boolean;
  readonly lastPiece: boolean;
}

/** Rows of a full batch: whole leaves (the most a power of two fits in `batchRows`), or `batchRows` when fewer than a leaf. */
export function fullBatchRows(batchRows: number): number {
  return batchRows >= LEAF_ROWS ? floorPowerOfTwo(Math.floor(batchRows / LEAF_ROWS)) * LEAF_ROWS : batchRows;
}

/** The batches of leaves `range`, in order (see {@link streamParts}). */
function* batchPlans(inputs: Inputs, grid: LeafGrid, range: LeafRange, batchRows: number): Generator<BatchPlan> {
  const rowsOf = (file: number): number => (inputs.segments[file] as Segment).rows;
  const whole = batchRows >= LEAF_ROWS;
  for (const run of leafRuns(grid, range, whole ? fullBatchRows(batchRows) / LEAF_ROWS : 1)) {
    const first = (run.start - (grid.firstLeaf[run.file] as number)) * LEAF_ROWS;
    const end = Math.min(rowsOf(run.file), first + run.size * LEAF_ROWS);
    if (whole) {
      yield { segment: run.file, start: first, rows: end - first, leaf: run.start, size: run.size, piece: false, lastPiece: true };
      continue;
    }
    for (let at = first; at < end; at += batchRows) {
      const rows = Math.min(batchRows, end - at);
      yield { segment: run.file, start: at, rows, leaf: run.start, size: 1, piece: true, lastPiece: at + rows === end };
    }
  }
}

/** The state of every part of `parts`, by id, merged (`a` first) by each part's `merge`. */
export function mergeByPart(parts: readonly StatePart<unknown>[], a: ReadonlyMap<string, unknown>, b: ReadonlyMap<string, unknown>): Map<string, unknown> {
  return new Map(parts.map((p) => [p.id, p.merge(a.get(p.id), b.get(p.id))]));
}

/**
 * The states of the tree parts (see `merge-tree.ts`) over some leaves, from nodes that cover them
 * in order (a counter's, or several shards' one after the other): pushed through a counter, its
 * roots merged left to right, then `pending` (a leaf not finished); each part's `init()` when there
 * is nothing.
 */
export function foldTree(
  treeParts: readonly StatePart<unknown>[],
  nodes: readonly TreeNode<ReadonlyMap<string, unknown>>[],
  pending?: ReadonlyMap<string, unknown>,
): Map<string, unknown> {
  const counter = new MergeCounter<ReadonlyMap<string, unknown>>((a, b) => mergeByPart(treeParts, a, b));
  // Siblings merge as they come (nodes from several shards); then the roots merge left to right.
  for (const n of nodes) counter.push(n);
  let out = counter.fold();
  if (pending !== undefined) out = out === undefined ? pending : mergeByPart(treeParts, out, pending);
  return new Map(treeParts.map((p) => [p.id, out === undefined ? p.init() : out.get(p.id)]));
}

/**
 * Reads leaves `options.leaves` (default: all) of `inputs` in order, as batches of whole leaves
 * (aligned runs of a power of two of them, as many as fit in `batchRows`) or, when `batchRows` is
 * less than a leaf, pieces of `batchRows` rows of each leaf, into tensors from `pool.allocate`
 * (float32 data is read from the file straight into them), has the pool evaluate the distinct state
 * parts of `definitions` on each batch, and folds the results in batch order: the exact parts
 * (counts, maxima, selections) into one running state each, the others through the canonical
 * merge tree (see `merge-tree.ts`), so that the result does not depend on how the leaves were cut
 * into batches, shards or machines. At most `maxLiveBatches` batches are alive: the next is read
 * only when the oldest has been folded in; its full-size tensors are then reused, shorter ones go
 * back to the pool. One state per distinct part is kept, whatever the number of metrics that
 * share it (dead, density and fired share the fired counts).
 *
 * @throws {CliError} when a file ends early; an `InvalidBatchError` or whatever the pool throws.
 */
export async function streamParts(
  inputs: Inputs,
  definitions: readonly MetricDefinition[],
  options: StreamOptions,
): Promise<StreamResult> {
  const { pool, batchRows, signal } = options;
  const limit = options.maxLiveBatches;
  if (!Number.isSafeInteger(limit) || limit < 1) throw new RangeError(`streamParts: maxLiveBatches must be a positive integer, got ${limit}`);
  if (!Number.isSafeInteger(batchRows) || batchRows < 1) throw new RangeError(`streamParts: batchRows must be a positive integer, got ${batchRows}`);
  if (pool.shardRows !== LEAF_ROWS) throw new RangeError(`streamParts: the pool's shards must be leaves of ${LEAF_ROWS} rows, got ${pool.shardRows}`);
  const grid = leafGrid(inputs.segments.map((s) => s.rows));
  const range = options.leaves ?? { start: 0, end: grid.leaves };
  if (!(Number.isSafeInteger(range.start) && Number.isSafeInteger(range.end) && range.start >= 0 && range.start <= range.end && range.end <= grid.leaves)) {
    throw new RangeError(`streamParts: leaves must be a range within [0, ${grid.leaves}), got [${range.start}, ${range.end})`);
  }
  const rowRange = leafRowRange(grid, range);
  const parts = partsOf(definitions);
  const exactParts = parts.filter(isExactPart);
  const treeParts = parts.filter((p) => !isExactPart(p));
  // Running states this stream owns (fired counts are folded into them in place).
  const exact = new Map<string, unknown>(exactParts.map((p) => [p.id, { ...(p.init() as object) }]));
  const counter = new MergeCounter<ReadonlyMap<string, unknown>>((a, b) => mergeByPart(treeParts, a, b));
  // The pieces of the leaf being read, folded in order (batches shorter than a leaf).
  let pending: ReadonlyMap<string, unknown> | undefined;
  // Full-size tensors are reused once their batch is folded in (a shorter batch gets its own and
  // gives it back to the pool): the pool allocates at most `limit` of each field.
  const fullRows = fullBatchRows(batchRows);
  const spare = new Map<string, Tensor<'float32'>[]>();
  const fullKey = (ref: TensorRef): string => [fullRows, ...ref.shape.slice(1)].join(',');
  const fullKeys = new Set(
    inputs.segments.flatMap((s) => [s.learned, s.source, s.decoded].filter((r): r is TensorRef => r !== undefined).map(fullKey)),
  );
  const take = (ref: TensorRef, rows: number): Tensor<'float32'> => {
    const shape = [rows, ...ref.shape.slice(1)];
    return (rows === fullRows ? spare.get(shape.join(','))?.pop() : undefined) ?? pool.allocate(shape);
  };
  const giveBack = (t: Tensor<'float32'>): void => {
    const key = t.shape.join(',');
    if (t.shape[0] !== fullRows || !fullKeys.has(key)) {
      pool.release(t);
      return;
    }
    const list = spare.get(key) ?? [];
    list.push(t);
    spare.set(key, list);
  };
  const readers = new Map<TensorRef, RowReader>();
  const reader = (ref: TensorRef): RowReader => {
    let r = readers.get(ref);
    if (r === undefined) readers.set(ref, (r = new RowReader(ref)));
    return r;
  };

  const live: LiveBatch[] = [];
  let peak = 0;
  let read = 0;
  let batches = 0;
  let vectors = 0;
  let bytes = 0;
  const foldOldest = async (): Promise<void> => {
    const batch = live[0] as LiveBatch;
    const byId = await batch.result;
    live.shift();
    for (const part of exactParts) exact.set(part.id, foldPart(part, exact.get(part.id), byId.get(part.id)));
    // The nodes are kept even with no tree parts (empty maps): a shard's part lists them all the same.
    const { plan } = batch;
    const states = new Map(treeParts.map((p) => [p.id, byId.get(p.id)]));
    if (!plan.piece) counter.push({ start: plan.leaf, size: plan.size, state: states });
    else {
      pending = pending === undefined ? states : mergeByPart(treeParts, pending, states);
      if (plan.lastPiece) {
        counter.push({ start: plan.leaf, size: 1, state: pending });
        pending = undefined;
      }
    }
    for (const t of batch.tensors) giveBack(t);
    batches++;
    vectors += batch.rows;
    bytes += batch.bytes;
    options.onProgress?.({ vectors, bytes, file: batch.file });
  };

  try {
    for (const plan of batchPlans(inputs, grid, range, batchRows)) {
      while (live.length >= limit) await foldOldest();
      if (signal?.aborted) break;
      const segment = inputs.segments[plan.segment] as Segment;
      const fields = [
        ['learnedActivations', segment.learned],
        ['sourceActivations', segment.source],
        ['decodedActivations', segment.decoded],
      ] as const;
      const { rows, start } = plan;
      const batch: Record<string, Tensor<'float32'>> = {};
      const tensors: Tensor<'float32'>[] = [];
      let batchBytes = 0;
      try {
        for (const [field, ref] of fields) {
          if (ref === undefined) continue;
          const t = take(ref, rows);
          tensors.push(t);
          batchBytes += await reader(ref).read(start, rows, t.data);
          batch[field] = t;
        }
        for (const d of definitions) d.validate(batch as Batch);
      } catch (error) {
        for (const t of tensors) giveBack(t);
        throw error;
      }
      const result = pool.evaluate(parts, batch as Batch, rows, { batchIndex: read });
      // Observed when the batch is folded in; until then a failure must not be "unhandled".
      result.catch(() => undefined);
      live.push({ tensors, rows, bytes: batchBytes, file: segment.learned.path, plan, result });
      read++;
      peak = Math.max(peak, live.length);
    }
    // The batches already read are folded in, interrupted or not: they are moments away.
    while (live.length > 0) await foldOldest();
  } finally {
    // After a failure, batches still in flight may be read by workers: their tensors are left alone.
    for (const list of spare.values()) for (const t of list) pool.release(t);
    spare.clear();
  }
  const states = new Map<string, unknown>([...exact, ...foldTree(treeParts, counter.nodes(), pending)]);
  // Back in the order of the parts (exact ones first would change nothing but the order of keys).
  const ordered = new Map(parts.map((p) => [p.id, states.get(p.id)]));
  return {
    parts: ordered,
    exact,
    nodes: pending === undefined ? counter.nodes() : [],
    leaves: range,
    vectors,
    bytes,
    batches,
    peakLiveBatches: peak,
    interrupted: vectors < rowRange.end - rowRange.start,
  };
}

