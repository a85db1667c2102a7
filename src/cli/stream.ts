/**
 * The streaming core of `sae-metrics`: reads the inputs batch by batch into the pool's shared
 * memory, evaluates each batch's state parts on the pool, and folds them, in batch order, into one
 * state per distinct part, with a bounded number of batches alive.
 *
 * @module
 */
import type { Batch, MetricDefinition, StatePart } from '../functional/core.js';
import type { MetricPool } from '../pool/metric-pool.js';
import type { Tensor } from '../tensor.js';
import type { TensorRef } from './formats.js';
import type { Inputs } from './inputs.js';
import { RowReader } from './reader.js';

/** Options of {@link streamParts}. */
export interface StreamOptions {
  /** The pool that evaluates batches and allocates their memory. */
  readonly pool: MetricPool;
  /** Rows per batch (a FILE's last batch may be shorter; a batch never spans two files). */
  readonly batchRows: number;
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
  /** The state of every distinct part (by id) over the first `vectors` vectors. */
  readonly parts: ReadonlyMap<string, unknown>;
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
  readonly result: Promise<ReadonlyMap<string, unknown>>;
}

/**
 * Reads every segment of `inputs` in order, `batchRows` rows at a time, into tensors from
 * `pool.allocate` (float32 data is read from the file straight into them), has the pool evaluate
 * the distinct state parts of `definitions` on each batch, and folds each batch's partial states
 * into one state per part, in batch order (the order the metric classes and operators fold in, so
 * the same bits). At most `maxLiveBatches` batches are alive: the next is read only when the oldest
 * has been folded in; its full-size tensors are then reused, shorter ones go back to the pool. One
 * state per distinct part is kept, whatever the number of metrics that share it (dead, density
 * and fired share the fired counts).
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
  const parts = partsOf(definitions);
  // Running states this stream owns (fired counts are folded into them in place).
  const states = new Map<string, unknown>(parts.map((p) => [p.id, { ...(p.init() as object) }]));
  // Full-size tensors are reused once their batch is folded in (a shorter last batch of a file gets
  // its own and gives it back to the pool): the pool allocates at most `limit` of each field.
  const spare = new Map<string, Tensor<'float32'>[]>();
  const fullKey = (ref: TensorRef): string => [batchRows, ...ref.shape.slice(1)].join(',');
  const fullKeys = new Set(
    inputs.segments.flatMap((s) => [s.learned, s.source, s.decoded].filter((r): r is TensorRef => r !== undefined).map(fullKey)),
  );
  const take = (ref: TensorRef, rows: number): Tensor<'float32'> => {
    const shape = [rows, ...ref.shape.slice(1)];
    return (rows === batchRows ? spare.get(shape.join(','))?.pop() : undefined) ?? pool.allocate(shape);
  };
  const giveBack = (t: Tensor<'float32'>): void => {
    const key = t.shape.join(',');
    if (t.shape[0] !== batchRows || !fullKeys.has(key)) {
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
    for (const part of parts) states.set(part.id, foldPart(part, states.get(part.id), byId.get(part.id)));
    for (const t of batch.tensors) giveBack(t);
    batches++;
    vectors += batch.rows;
    bytes += batch.bytes;
    options.onProgress?.({ vectors, bytes, file: batch.file });
  };

  try {
    reading: for (const segment of inputs.segments) {
      const fields = [
        ['learnedActivations', segment.learned],
        ['sourceActivations', segment.source],
        ['decodedActivations', segment.decoded],
      ] as const;
      for (let start = 0; start < segment.rows; start += batchRows) {
        while (live.length >= limit) await foldOldest();
        if (signal?.aborted) break reading;
        const rows = Math.min(batchRows, segment.rows - start);
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
        live.push({ tensors, rows, bytes: batchBytes, file: segment.learned.path, result });
        read++;
        peak = Math.max(peak, live.length);
      }
    }
    // The batches already read are folded in, interrupted or not: they are moments away.
    while (live.length > 0) await foldOldest();
  } finally {
    // After a failure, batches still in flight may be read by workers: their tensors are left alone.
    for (const list of spare.values()) for (const t of list) pool.release(t);
    spare.clear();
  }
  return { parts: states, vectors, bytes, batches, peakLiveBatches: peak, interrupted: vectors < inputs.vectors };
}
