/**
 * The streaming core of `sae-metrics`: reads the inputs batch by batch into the pool's shared
 * memory and folds every batch into a metric collection, with a bounded number of batches alive.
 *
 * @module
 */
import { accumulateMetric } from '../operators/accumulate-metric.js';
import { fromBatches } from '../operators/from-batches.js';
import type { AnyMetric, CollectionResult, MetricCollection } from '../collection.js';
import type { Batch } from '../functional/core.js';
import type { MetricPool } from '../pool/metric-pool.js';
import type { Tensor } from '../tensor.js';
import type { TensorRef } from './formats.js';
import type { Inputs } from './inputs.js';
import { RowReader } from './reader.js';

/** Options of {@link streamMetrics}. */
export interface StreamOptions {
  /** The pool that evaluates batches and allocates their memory. */
  readonly pool: MetricPool;
  /** Rows per batch (a FILE's last batch may be shorter; a batch never spans two files). */
  readonly batchRows: number;
  /** Batches alive at once, read and not yet folded in (default `pool.maxInFlight + 1`). */
  readonly maxLiveBatches?: number;
  /** Called after each batch is folded in, with the vectors and file bytes done so far. */
  readonly onProgress?: (vectors: number, bytes: number) => void;
}

/** What {@link streamMetrics} returns. */
export interface StreamResult<R> {
  /** The collection's value over every batch. */
  readonly value: R;
  /** Batches read. */
  readonly batches: number;
  /** The most batches alive at once. */
  readonly peakLiveBatches: number;
}

interface LiveBatch {
  readonly tensors: Tensor<'float32'>[];
  readonly rows: number;
  readonly bytes: number;
}

/**
 * Reads every segment of `inputs` in order, `batchRows` rows at a time, into tensors from
 * `pool.allocate` (float32 data is read from the file straight into them), and folds the batches
 * into `collection` on the pool through `fromBatches` and `accumulateMetric`. As soon as a batch's
 * value is emitted, its tensors are free: full-size ones are reused for the next batches, others
 * go back to the pool (`pool.release`); no new batch is read while `maxLiveBatches` are alive. So
 * memory stays bounded whatever the file sizes, whichever the backend (the pool's js and gpujs
 * backends allocate plain SharedArrayBuffers, which only the garbage collector frees).
 *
 * @throws {CliError} when a file ends early; whatever the pool throws.
 */
export async function streamMetrics<M extends Record<string, AnyMetric>>(
  inputs: Inputs,
  collection: MetricCollection<M>,
  options: StreamOptions,
): Promise<StreamResult<CollectionResult<M>>> {
  const { pool, batchRows } = options;
  const limit = options.maxLiveBatches ?? pool.maxInFlight + 1;
  const live: LiveBatch[] = [];
  // Full-size tensors are reused once their batch is folded in (a shorter last batch of a file gets
  // its own and gives it back to the pool): the pool allocates at most `limit` of each field.
  const spare = new Map<string, Tensor<'float32'>[]>();
  const fullKey = (ref: TensorRef): string => [batchRows, ...ref.shape.slice(1)].join(',');
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
  const fullKeys = new Set(
    inputs.segments.flatMap((s) => [s.learned, s.source, s.decoded].filter((r): r is TensorRef => r !== undefined).map(fullKey)),
  );
  let peak = 0;
  let count = 0;
  let wake: (() => void) | undefined;

  async function* batches(): AsyncGenerator<Batch> {
    const readers = new Map<TensorRef, RowReader>();
    const reader = (ref: TensorRef): RowReader => {
      let r = readers.get(ref);
      if (r === undefined) readers.set(ref, (r = new RowReader(ref)));
      return r;
    };
    for (const segment of inputs.segments) {
      const fields = [
        ['learnedActivations', segment.learned],
        ['sourceActivations', segment.source],
        ['decodedActivations', segment.decoded],
      ] as const;
      for (let start = 0; start < segment.rows; start += batchRows) {
        while (live.length >= limit) await new Promise<void>((resolve) => (wake = resolve));
        const rows = Math.min(batchRows, segment.rows - start);
        const batch: Record<string, Tensor<'float32'>> = {};
        const tensors: Tensor<'float32'>[] = [];
        let bytes = 0;
        try {
          for (const [field, ref] of fields) {
            if (ref === undefined) continue;
            const t = take(ref, rows);
            tensors.push(t);
            bytes += await reader(ref).read(start, rows, t.data);
            batch[field] = t;
          }
        } catch (error) {
          for (const t of tensors) giveBack(t);
          throw error;
        }
        live.push({ tensors, rows, bytes });
        peak = Math.max(peak, live.length);
        count++;
        yield batch as Batch;
      }
    }
  }

  let vectors = 0;
  let bytes = 0;
  const value = await new Promise<CollectionResult<M> | undefined>((resolve, reject) => {
    let last: CollectionResult<M> | undefined;
    fromBatches(batches(), { pool })
      .pipe(accumulateMetric(collection, { pool }))
      .subscribe({
        next(v) {
          last = v;
          // Emissions come once per batch, in order: this one's tensors are read by no one now.
          const done = live.shift();
          if (done !== undefined) {
            for (const t of done.tensors) giveBack(t);
            vectors += done.rows;
            bytes += done.bytes;
          }
          const w = wake;
          wake = undefined;
          w?.();
          options.onProgress?.(vectors, bytes);
        },
        error: reject,
        complete: () => resolve(last),
      });
  }).finally(() => {
    for (const list of spare.values()) for (const t of list) pool.release(t);
    spare.clear();
  });
  if (value === undefined) throw new Error('no batches were read');
  return { value, batches: count, peakLiveBatches: peak };
}
