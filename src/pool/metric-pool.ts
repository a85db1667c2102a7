/**
 * A pool of worker threads (one Piscina pool) that computes partial states of shards.
 *
 * @module
 */
import { setMaxListeners } from 'node:events';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { describeValue, WorkerError } from '../errors.js';
import { checkOptions, orDefault, positiveInteger, type Batch, type StatePart } from '../functional/core.js';
import { Tensor, type TensorLike } from '../tensor.js';
import { distinctParts, fieldsRead, mergeShards, type EvaluateOptions, type ShardExecutor } from './executor.js';
import { DEFAULT_SHARD_ROWS, planShards } from './plan.js';
import { allocateShared, checkAllocationShape, toShared } from './shared-memory.js';
import type { ShardField, ShardResult, ShardTask } from './task.js';
import { WasmArena } from './wasm-arena.js';
import {
  checkBackendOption,
  checkGpujsMode,
  chooseBackend,
  type BackendName,
  type BackendOption,
  type GpujsMode,
} from './backend.js';

/** Options of {@link createMetricPool}. */
export interface MetricPoolOptions {
  /** Worker threads (default `os.availableParallelism()`). */
  readonly workers?: number;
  /** Rows per shard, fixed by the batch and not by the worker count (default 1024). */
  readonly shardRows?: number;
  /**
   * Which kernel computes shards (default `'auto'`: gpu.js on a hardware GPU, else the fused
   * WebAssembly SIMD pass, else plain JavaScript). The environment variable
   * `SAE_METRICS_BACKEND` overrides it.
   */
  readonly backend?: BackendOption;
  /** The gpu.js mode for the `gpujs` backend (default `'gpu'`; `SAE_METRICS_GPUJS_MODE` overrides it). */
  readonly gpujsMode?: GpujsMode;
  /** Batches dispatched at once, across all users of the pool (default 2 per worker). */
  readonly maxInFlight?: number;
  /** The worker module (default: this package's worker). For tests and custom workers. */
  readonly filename?: string;
}

const NAME = 'createMetricPool';

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
  /** The kernel family the workers run. */
  readonly backend: BackendName;
  /** The gpu.js mode, for the gpujs backend. */
  readonly gpujsMode: GpujsMode | undefined;
  /** Why this backend was chosen. */
  readonly backendReason: string;
  /** The shared WebAssembly memory of the wasm backend, and its blocks. */
  readonly #arena: WasmArena | undefined;
  /** Blocks of the arena handed out by `allocate`, by their data. */
  readonly #blocks = new WeakMap<Float32Array, number>();
  readonly #collected = new FinalizationRegistry<number>((offset) => this.#arena?.free(offset));
  /** Batches dispatched at once. */
  readonly maxInFlight: number;
  readonly #piscina: Piscina<ShardTask, ShardResult>;
  #inFlight = 0;
  #peakInFlight = 0;
  #closed = false;
  readonly #waiting: { resolve: () => void; reject: (e: unknown) => void; signal: AbortSignal | undefined }[] = [];
  readonly #ready: (() => void)[] = [];
  /**
   * Shared buffers that held copies of finished batches, or the data of released tensors (backends
   * other than wasm), by size, for the next copies and allocations.
   */
  readonly #spare = new Map<number, SharedArrayBuffer[]>();
  /** Data handed out by `allocate` without an arena (a SharedArrayBuffer each). */
  readonly #sharedAllocations = new WeakSet<Float32Array>();

  /** @internal Use {@link createMetricPool}. */
  constructor(options: MetricPoolOptions = {}) {
    checkOptions(NAME, options, ['workers', 'shardRows', 'backend', 'gpujsMode', 'maxInFlight', 'filename']);
    this.workers = positiveInteger(NAME, 'workers', orDefault(options.workers, availableParallelism()));
    this.shardRows = positiveInteger(NAME, 'shardRows', orDefault(options.shardRows, DEFAULT_SHARD_ROWS));
    this.maxInFlight = positiveInteger(NAME, 'maxInFlight', orDefault(options.maxInFlight, 2 * this.workers));
    const backend = checkBackendOption(NAME, orDefault(options.backend, 'auto'));
    const mode = options.gpujsMode === undefined ? undefined : checkGpujsMode(NAME, options.gpujsMode);
    const choice = chooseBackend(NAME, backend, mode);
    this.backend = choice.backend;
    this.gpujsMode = choice.gpujsMode;
    this.backendReason = choice.reason;
    this.#arena = choice.backend === 'wasm' ? new WasmArena() : undefined;
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
      workerData: {
        backend: choice.backend,
        ...(choice.gpujsMode === undefined ? {} : { gpujsMode: choice.gpujsMode }),
        ...(this.#arena === undefined ? {} : { memory: this.#arena.memory }),
      },
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
    const size = checkAllocationShape(shape);
    const arena = this.#arena;
    if (arena === undefined) {
      const reused = this.#spare.get(size * Float32Array.BYTES_PER_ELEMENT)?.pop();
      const tensor = reused === undefined ? allocateShared(shape) : new Tensor(new Float32Array(reused).fill(0), shape, 'float32');
      this.#sharedAllocations.add(tensor.data);
      return tensor;
    }
    const offset = arena.allocate(size * Float32Array.BYTES_PER_ELEMENT);
    const data = arena.view(offset, size);
    data.fill(0);
    this.#blocks.set(data, offset);
    const tensor = new Tensor(data, shape, 'float32');
    // The block returns to the arena when its data is collected (or on release()).
    this.#collected.register(data, offset, data);
    return tensor;
  }

  /**
   * Gives back the memory of a tensor from {@link allocate} at once (it is otherwise freed when
   * the tensor is garbage-collected): the wasm backend's block returns to its memory, other
   * backends' buffer serves the next allocation of the same size. The tensor must not be used
   * afterwards.
   */
  release(tensor: Tensor<'float32'>): void {
    if (this.#sharedAllocations.delete(tensor.data)) {
      // Its buffer serves the next allocation (or copy) of the same size.
      this.#unstage(tensor.data.buffer as SharedArrayBuffer);
      return;
    }
    const offset = this.#blocks.get(tensor.data);
    if (offset === undefined || this.#arena === undefined) return;
    this.#blocks.delete(tensor.data);
    this.#collected.unregister(tensor.data);
    this.#arena.free(offset);
  }

  /** Puts a batch field where the workers' kernel reads it; `staged` collects blocks to free after. */
  #place(t: TensorLike, staged: number[], stagedBuffers: SharedArrayBuffer[]): ShardField {
    const arena = this.#arena;
    if (arena === undefined) return toShared(t, (n) => this.#stage(n, stagedBuffers));
    const own = this.#blocks.get(t.data);
    if (own !== undefined) return { wasm: true, byteOffset: t.data.byteOffset, length: t.data.length, shape: [...t.shape] };
    const offset = arena.allocate(t.data.byteLength);
    staged.push(offset);
    arena.view(offset, t.data.length).set(t.data);
    return { wasm: true, byteOffset: offset, length: t.data.length, shape: [...t.shape] };
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
    // Piscina listens on this signal once per shard task: a batch of more than 10 shards is normal.
    setMaxListeners(0, local.signal);
    const staged: SharedArrayBuffer[] = [];
    const blocks: number[] = [];
    let running: Promise<unknown>[] = [];
    const onAbort = (): void => local.abort(options.signal?.reason);
    options.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      if (options.signal?.aborted) throw abortError(options.signal);
      const distinct = distinctParts(parts);
      const fields: Record<string, ShardField> = {};
      for (const field of fieldsRead(distinct.values())) fields[field] = this.#place(batch[field] as TensorLike, blocks, staged);
      const recipes = [...distinct.values()].map((p) => p.recipe);
      const componentIdx = batch.componentIdx;
      const shards = planShards(rows, this.shardRows);
      running = shards.map((range, shardIndex) =>
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
      );
      const results = await Promise.all(running);
      return mergeShards(distinct, results as ReadonlyMap<string, unknown>[]);
    } finally {
      options.signal?.removeEventListener('abort', onAbort);
      // A staging buffer may be reused once no worker can still read it: after an abort or a
      // failure, shards of this batch may still be running, so those buffers are dropped.
      if (!local.signal.aborted) for (const buffer of staged) this.#unstage(buffer);
      // Blocks of the wasm arena are freed once no shard can read them any more.
      if (blocks.length > 0) {
        const arena = this.#arena as WasmArena;
        void Promise.allSettled(running).then(() => {
          for (const offset of blocks) arena.free(offset);
        });
      }
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
  // The path, not the whole URL: a loader may add a query (tsx does: ?tsx-namespace=...).
  const here = new URL(import.meta.url);
  here.search = '';
  const ext = here.pathname.endsWith('.ts') ? 'ts' : 'js';
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
