/**
 * How a batch becomes partial states: cut into shards by a fixed plan, each shard's partial state
 * of every part computed by one fused pass, then merged in shard order through a fixed tree. The
 * in-thread executor and the worker pool follow the same plan, so they give the same bits.
 *
 * @module
 */
import type { Batch, StatePart } from '../functional/core.js';
import { computePartials } from '../functional/core.js';
import type { FusedKernel } from '../kernels/types.js';
import { checkBackendOption, chooseBackend, type BackendName, type BackendOption, type GpujsMode } from './backend.js';
import { createKernelHost } from './kernel-host.js';
import { createChunkedWasmKernel } from '../kernels/wasm/chunked.js';
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

/** The batch fields a set of parts reads, each once. */
export function fieldsRead(parts: Iterable<StatePart<unknown>>): Set<string> {
  const reads = new Set<string>();
  for (const part of parts) for (const field of part.reads) reads.add(field);
  return reads;
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

let chunkedWasm: FusedKernel | undefined;

/**
 * The in-thread executor: the same shard plan, merge tree and backend choice as the pool (so the
 * same bits as a pool of the same backend), in the calling thread. With the wasm backend, each
 * shard's rows are copied into this thread's WebAssembly memory a cache-sized chunk at a time
 * (see `createChunkedWasmKernel`), never the whole batch at once.
 *
 * @throws {RangeError} when `shardRows` is not a positive integer or the backend is unknown.
 * @throws {Error} when an explicitly requested backend cannot run here.
 */
export function inThreadExecutor(
  shardRows: number = DEFAULT_SHARD_ROWS,
  backend: BackendOption = 'auto',
  gpujsMode?: GpujsMode,
): InThreadExecutor {
  if (!Number.isSafeInteger(shardRows) || shardRows <= 0) {
    throw new RangeError(`inThreadExecutor: shardRows must be a positive integer, got ${String(shardRows)}`);
  }
  const choice = chooseBackend('inThreadExecutor', checkBackendOption('inThreadExecutor', backend), gpujsMode);
  const kernel =
    choice.backend === 'wasm'
      ? (chunkedWasm ??= createChunkedWasmKernel())
      : createKernelHost({ backend: choice.backend, ...(choice.gpujsMode ? { gpujsMode: choice.gpujsMode } : {}) }).kernel;
  return {
    shardRows,
    backend: choice.backend,
    evaluate(parts, batch, rows) {
      const distinct = distinctParts(parts);
      const shards = planShards(rows, shardRows).map((range) => computePartials(distinct.values(), batch, range, kernel));
      return mergeShards(distinct, shards);
    },
  };
}

/** An executor that answers in the calling thread, synchronously. */
export interface InThreadExecutor extends ShardExecutor {
  readonly backend: BackendName;
  evaluate(parts: readonly StatePart<unknown>[], batch: Batch, rows: number, options?: EvaluateOptions): ReadonlyMap<string, unknown>;
}

let defaultInThread: InThreadExecutor | undefined;

/**
 * The executor of the class path (`metric.update`, `collection.forward`, ...): the in-thread
 * executor with the operators' defaults (`shardRows` 1024, backend `'auto'`), chosen once per
 * thread. So a class, an operator without options and a default pool of the same backend give
 * the same bits.
 */
export function defaultExecutor(): InThreadExecutor {
  return (defaultInThread ??= inThreadExecutor());
}
