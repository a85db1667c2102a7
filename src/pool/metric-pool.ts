/**
 * A pool of worker threads (one Piscina pool) that computes partial states of shards.
 *
 * @module
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { describeValue, WorkerError } from '../errors.js';
import { orDefault, type Batch, type StatePart } from '../functional/core.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { distinctParts, mergeShards, type EvaluateOptions, type ShardExecutor } from './executor.js';
import { DEFAULT_SHARD_ROWS, planShards } from './plan.js';
import { allocateShared, toShared, type SharedTensor } from './shared-memory.js';
import type { ShardResult, ShardTask } from './task.js';

/** Options of {@link createMetricPool}. */
export interface MetricPoolOptions {
  /** Worker threads (default `os.availableParallelism()`). */
  readonly workers?: number;
  /** Rows per shard, fixed by the batch and not by the worker count (default 1024). */
  readonly shardRows?: number;
  /** Which kernel computes shards (default `'auto'`, which is `'js'` here). */
  readonly backend?: 'auto' | 'js';
  /** Batches dispatched at once, across all users of the pool (default 2 per worker). */
  readonly maxInFlight?: number;
  /** The worker module (default: this package's worker). For tests and custom workers. */
  readonly filename?: string;
}

const NAME = 'createMetricPool';

function positive(option: string, value: unknown): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value <= 0) {
    throw new (typeof value === 'number' ? RangeError : TypeError)(
      `${NAME}: options.${option} must be a positive integer, got ${describeValue(value)}`,
    );
  }
  return value;
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}

/**
 * A worker pool for metric shards. Create it with {@link createMetricPool}; `close()` it when
 * done (its threads keep the process alive until then).
 */
export class MetricPool implements ShardExecutor {
  /** Worker threads. */
  readonly workers: number;
  /** Rows per shard. */
  readonly shardRows: number;
  /** The kernel the workers run. */
  readonly backend: 'js';
  /** Batches dispatched at once. */
  readonly maxInFlight: number;
  readonly #piscina: Piscina<ShardTask, ShardResult>;
  #inFlight = 0;
  #peakInFlight = 0;
  #closed = false;
  readonly #waiting: { resolve: () => void; reject: (e: unknown) => void; signal: AbortSignal | undefined }[] = [];
  readonly #ready: (() => void)[] = [];
  /** Shared buffers that held copies of finished batches, by size, for the next copies. */
  readonly #spare = new Map<number, SharedArrayBuffer[]>();

  /** @internal Use {@link createMetricPool}. */
  constructor(options: MetricPoolOptions = {}) {
    if (typeof options !== 'object' || options === null) {
      throw new TypeError(`${NAME}: options must be an object, got ${describeValue(options)}`);
    }
    const known = ['workers', 'shardRows', 'backend', 'maxInFlight', 'filename'];
    for (const k of Object.keys(options)) {
      if (!known.includes(k)) throw new TypeError(`${NAME}: unknown option ${k} (known options: ${known.join(', ')})`);
    }
    this.workers = positive('workers', orDefault(options.workers, availableParallelism()));
    this.shardRows = positive('shardRows', orDefault(options.shardRows, DEFAULT_SHARD_ROWS));
    this.maxInFlight = positive('maxInFlight', orDefault(options.maxInFlight, 2 * this.workers));
    const backend = orDefault(options.backend, 'auto');
    if (backend !== 'auto' && backend !== 'js') {
      throw new RangeError(`${NAME}: options.backend must be 'auto' or 'js', got ${describeValue(backend)}`);
    }
    this.backend = 'js';
    if (options.filename !== undefined && typeof options.filename !== 'string') {
      throw new TypeError(`${NAME}: options.filename must be a path, got ${describeValue(options.filename)}`);
    }
    const filename = options.filename ?? defaultWorker();
    this.#piscina = new Piscina<ShardTask, ShardResult>({
      filename,
      minThreads: this.workers,
      maxThreads: this.workers,
      idleTimeout: 60_000,
      // A worker written in TypeScript (development, tests) runs through tsx.
      execArgv: filename.endsWith('.ts') ? ['--import', 'tsx'] : [],
    });
    // Piscina reports a result that arrives for a task it already aborted (its worker finished
    // the shard just as the abort came) as an 'error' event; unhandled, that would crash the
    // process. The aborted batch was never applied, so the late result is dropped. Anything else
    // reported this way is not tied to a task: it becomes a process warning.
    this.#piscina.on('error', (error: Error) => {
      if (error.message.startsWith('Unexpected message from Worker')) return;
      process.emitWarning(`MetricPool: ${error.message}`, { code: 'SAE_METRICS_POOL_ERROR' });
    });
  }

  /** Batches dispatched now. */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Batches waiting for a slot (handed to the pool, not dispatched yet). */
  get queued(): number {
    return this.#waiting.length;
  }

  /**
   * Resolves when the pool can take another batch without queueing it: fewer than `maxInFlight`
   * batches dispatched or waiting. A producer that awaits this before making each batch is paced
   * by the workers (see `fromBatches`).
   */
  whenReady(): Promise<void> {
    if (this.#inFlight + this.#waiting.length < this.maxInFlight || this.#closed) return Promise.resolve();
    return new Promise((resolve) => this.#ready.push(resolve));
  }

  /** The most batches ever dispatched at once. */
  get peakInFlight(): number {
    return this.#peakInFlight;
  }

  /** The worker threads (for tests and monitoring). */
  get threads(): number {
    return this.#piscina.threads.length;
  }

  /**
   * A zero-filled float32 tensor in shared memory: a producer that writes its batches into one
   * hands them to the workers with no copy at all.
   */
  allocate(shape: readonly number[]): Tensor<'float32'> {
    return allocateShared(shape);
  }

  /**
   * Takes a dispatch slot: at once (returning undefined) when one is free, so that a batch handed
   * to the pool is dispatched synchronously; else a promise that resolves when a slot is handed
   * over, or rejects when `signal` aborts first. No listener is left on `signal` either way.
   */
  #acquire(signal: AbortSignal | undefined): Promise<void> | undefined {
    if (this.#closed) throw new Error('MetricPool: the pool is closed');
    if (signal?.aborted) throw abortError(signal);
    if (this.#inFlight < this.maxInFlight && this.#waiting.length === 0) {
      this.#take();
      return undefined;
    }
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        const i = this.#waiting.indexOf(entry);
        if (i >= 0) this.#waiting.splice(i, 1);
        reject(abortError(signal as AbortSignal));
      };
      const entry = {
        resolve: () => {
          signal?.removeEventListener('abort', onAbort);
          this.#take();
          resolve();
        },
        reject: (e: unknown) => {
          signal?.removeEventListener('abort', onAbort);
          reject(e);
        },
        signal,
      };
      this.#waiting.push(entry);
      signal?.addEventListener('abort', onAbort, { once: true });
    });
  }

  #take(): void {
    this.#inFlight++;
    this.#peakInFlight = Math.max(this.#peakInFlight, this.#inFlight);
  }

  #release(): void {
    this.#inFlight--;
    // Hand the slot to the next waiting batch (it counts itself in).
    this.#waiting.shift()?.resolve();
    if (this.#inFlight + this.#waiting.length < this.maxInFlight) this.#ready.shift()?.();
  }

  /**
   * The merged partial state of every part over a validated batch: waits for a free slot (at most
   * `maxInFlight` batches at once), copies fields that are not in shared memory once, sends one
   * task per shard, and merges the shards in order through a fixed tree.
   *
   * @throws {WorkerError} when a worker throws or exits on a shard; the other shards are aborted.
   */
  async evaluate(
    parts: readonly StatePart<unknown>[],
    batch: Batch,
    rows: number,
    options: EvaluateOptions,
  ): Promise<ReadonlyMap<string, unknown>> {
    const waiting = this.#acquire(options.signal);
    if (waiting !== undefined) await waiting;
    const local = new AbortController();
    const staged: SharedArrayBuffer[] = [];
    const onAbort = (): void => local.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (options.signal?.aborted) throw abortError(options.signal);
      const distinct = distinctParts(parts);
      const reads = new Set<string>();
      for (const part of distinct.values()) for (const field of part.reads) reads.add(field);
      const fields: Record<string, SharedTensor> = {};
      for (const field of reads) fields[field] = toShared(batch[field] as TensorLike, (n) => this.#stage(n, staged));
      const recipes = [...distinct.values()].map((p) => p.recipe);
      const componentIdx = batch.componentIdx;
      const shards = planShards(rows, this.shardRows);
      const results = await Promise.all(
        shards.map((range, shardIndex) =>
          this.#piscina
            .run(
              {
                recipes,
                fields,
                rows: range,
                batchIndex: options.batchIndex,
                shardIndex,
                ...(componentIdx === undefined ? {} : { componentIdx }),
              },
              { signal: local.signal },
            )
            .then(
              (result) => new Map(Object.entries(result)),
              (error: unknown) => {
                if (options.signal?.aborted) throw abortError(options.signal);
                const wrapped = local.signal.aborted && local.signal.reason instanceof WorkerError
                  ? local.signal.reason
                  : new WorkerError(options.batchIndex, shardIndex, range, error);
                local.abort(wrapped);
                throw wrapped;
              },
            ),
        ),
      );
      return mergeShards(distinct, results);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      // A staging buffer may be reused once no worker can still read it: after an abort or a
      // failure, shards of this batch may still be running, so those buffers are dropped.
      if (!local.signal.aborted) for (const buffer of staged) this.#unstage(buffer);
      this.#release();
    }
  }

  /** A shared buffer of `byteLength` bytes for a copy, reused when one is spare. */
  #stage(byteLength: number, staged: SharedArrayBuffer[]): SharedArrayBuffer {
    const buffer = this.#spare.get(byteLength)?.pop() ?? new SharedArrayBuffer(byteLength);
    staged.push(buffer);
    return buffer;
  }

  /** Keeps a finished copy's buffer for reuse (as many per size as batches can be in flight). */
  #unstage(buffer: SharedArrayBuffer): void {
    const list = this.#spare.get(buffer.byteLength) ?? [];
    if (list.length < this.maxInFlight) list.push(buffer);
    this.#spare.set(buffer.byteLength, list);
  }

  /** Waits for running tasks, then ends the worker threads. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const w of this.#waiting.splice(0)) w.reject(new Error('MetricPool: the pool is closed'));
    for (const r of this.#ready.splice(0)) r();
    this.#spare.clear();
    await this.#piscina.close();
  }
}

function defaultWorker(): string {
  const here = import.meta.url;
  const ext = here.endsWith('.ts') ? 'ts' : 'js';
  return fileURLToPath(new URL(`../../workers/metric-worker.${ext}`, here));
}

/**
 * Creates a worker pool: `workers` threads (`minThreads = maxThreads`), shards of `shardRows`
 * rows, at most `maxInFlight` batches dispatched at once.
 *
 * @throws {TypeError | RangeError} on a bad option, naming it: `createMetricPool: options.workers
 *   must be a positive integer, got 0`.
 */
export function createMetricPool(options: MetricPoolOptions = {}): MetricPool {
  return new MetricPool(options);
}
