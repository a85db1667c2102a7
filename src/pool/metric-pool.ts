/**
 * A pool of worker threads (one Piscina pool) that computes partial states of shards.
 *
 * What it guarantees, and how:
 * - A batch's values are the values it had when it was handed over. Its fields are placed for the
 *   workers synchronously, inside the caller's `next`: a tensor from `allocate` is pinned (a
 *   `release` while its batch is queued or running is deferred until the batch is done), anything
 *   else is copied into pool memory at once (on backends other than wasm, a `SharedArrayBuffer` the
 *   caller made is shared as it is: the caller owns it and must not write into it meanwhile).
 * - Cancellation is cooperative. The pool queues shards itself and hands Piscina at most one per
 *   thread, never with an `AbortSignal`: Piscina aborts a running task by terminating its thread,
 *   and terminating a thread that is still loading its ES module aborts the whole process on
 *   Node 20. A cancelled batch settles at once; its shards that already run finish (milliseconds)
 *   and their results are dropped.
 * - Threads are terminated only by `close()`, and only once every thread has loaded its module.
 * - Memory comes back: copies and per-shard scratch space (the wasm kernel's, lent from the arena
 *   for one shard) are freed when no worker can read them any more, allocated tensors on
 *   `release()` or when garbage-collected; the regions a worker's kernel took for itself go to the
 *   threads after it once it has exited (see region-registry.ts).
 *
 * @module
 */
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import type { Worker } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { describeValue, InvalidBatchError, PoolClosedError, WorkerError } from '../errors.js';
import { checkOptions, orDefault, positiveInteger, shardNeeds, type Batch, type RowRange, type StatePart } from '../functional/core.js';
import { needsPairs, wasmScratchBytes } from '../kernels/wasm/index.js';
import { Tensor, type TensorLike } from '../tensor.js';
import { distinctParts, fieldsRead, mergeShards, type EvaluateOptions, type ShardExecutor } from './executor.js';
import { DEFAULT_SHARD_ROWS, planShards } from './plan.js';
import { checkAllocationShape } from './shared-memory.js';
import type { ShardField, ShardResult, ShardTask } from './task.js';
import { WasmArena } from './wasm-arena.js';
import { RegionRegistry } from './region-registry.js';
import { SpareBuffers } from './spare-buffers.js';
import { startGlHost, workerEntry, type GlHost } from './gl-host.js';
import {
  checkBackendOption,
  checkGpujsMode,
  chooseBackend,
  isGlMode,
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
  /**
   * Bytes that batches waiting for a slot may hold (default 1 GiB; `Infinity` for no bound). A
   * batch that would pass it errors its stream with a `RangeError`. A warning
   * (`SAE_METRICS_POOL_QUEUE`, once per pool) comes first, at 256 MiB or half this bound.
   */
  readonly maxQueuedBytes?: number;
  /**
   * Milliseconds `close()` waits for shards already running, and then for threads still loading
   * their module, before it ends the threads anyway (default 10 000).
   */
  readonly closeTimeout?: number;
  /** The worker module (default: this package's worker). For tests and custom workers. */
  readonly filename?: string;
}

const NAME = 'createMetricPool';
const MiB = 2 ** 20;
const DEFAULT_MAX_QUEUED_BYTES = 1024 * MiB;
const QUEUE_WARNING_BYTES = 256 * MiB;
const DEFAULT_CLOSE_TIMEOUT = 10_000;
/** Allocated bytes past which the pool runs the garbage collector before its arena grows. */
const COLLECT_BEFORE_GROWING = 64 * MiB;
/** What Piscina 5's worker posts on its `parentPort` once the task module has loaded. */
const PISCINA_READY = '_WORKER_READY';

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof Error ? signal.reason : new DOMException('The operation was aborted', 'AbortError');
}

let gc: (() => void) | undefined;

/**
 * Runs a full garbage collection: `globalThis.gc` under `--expose-gc`, else one made as
 * jest-leak-detector makes it (the flag is on only while a fresh context is created).
 */
function collectGarbage(): void {
  if (gc === undefined) {
    const exposed = (globalThis as { gc?: unknown }).gc;
    if (typeof exposed === 'function') gc = exposed as () => void;
    else {
      setFlagsFromString('--expose-gc');
      gc = runInNewContext('gc') as () => void;
      setFlagsFromString('--no-expose-gc');
    }
  }
  gc();
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Waits until `done()` holds or `deadline` (a `Date.now()` time) passes; says whether it holds. */
async function until(done: () => boolean, deadline: number): Promise<boolean> {
  while (!done()) {
    if (Date.now() >= deadline) return false;
    await sleep(5);
  }
  return true;
}

/**
 * The buffers of every pool's allocated tensors: another pool's tensor is not shared as it is (its
 * owner may hand its memory out again after `release()`), it is copied like ordinary memory.
 */
const allocatedBuffers = new WeakSet<ArrayBufferLike>();

/** A tensor handed out by `allocate`. */
interface Allocation {
  readonly bytes: number;
  /** Its block of the arena (wasm backend). */
  readonly offset: number | undefined;
  /** Its data, weakly (wasm backend): found dead before the arena grows. */
  readonly ref: WeakRef<Float32Array> | undefined;
  /** Batches that read it and are not done. */
  pins: number;
  /** `release()` was called. */
  released: boolean;
  /** Its memory went back. */
  freed: boolean;
}

/** One Piscina pool; a new one replaces it when it is left without a thread (see `#checkThreads`). */
interface Generation {
  readonly piscina: Piscina<ShardTask, ShardResult>;
  /** Piscina has no thread left and will start none: its queued tasks go to a new one. */
  dead: boolean;
}

/** A batch handed to the pool. */
interface Job {
  readonly batchIndex: number;
  /** The shard task without its rows, shard index and scratch space. */
  task: Omit<ShardTask, 'rows' | 'shardIndex' | 'scratch'>;
  readonly parts: Map<string, StatePart<unknown>>;
  readonly shards: RowRange[];
  readonly results: ReadonlyMap<string, unknown>[];
  /** Scratch bytes of the wasm kernel per shard (0 for other backends). */
  scratchBytes: number;
  /** Bytes of its fields (what it holds while it waits). */
  bytes: number;
  /** The next shard to hand to a thread, after those to hand out again (see `#checkThreads`). */
  next: number;
  readonly again: number[];
  /** Shards not finished. */
  remaining: number;
  /** Shards handed to a thread and not settled. */
  outstanding: number;
  /** Allocations it reads (pinned), and their data (held, so that they are not collected meanwhile). */
  readonly pins: Allocation[];
  readonly held: Float32Array[];
  /** Copies of its fields: blocks of the arena, or staging buffers. */
  readonly blocks: number[];
  readonly buffers: SharedArrayBuffer[];
  readonly signal: AbortSignal | undefined;
  state: 'new' | 'waiting' | 'running' | 'done';
  cleaned: boolean;
  resolve(value: ReadonlyMap<string, unknown>): void;
  reject(error: unknown): void;
}

/**
 * A worker pool for metric shards. Create it with {@link createMetricPool}; `close()` it when
 * done.
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
  /** Batches dispatched at once. */
  readonly maxInFlight: number;
  /** Bytes that batches waiting for a slot may hold. */
  readonly maxQueuedBytes: number;
  /** Milliseconds `close()` waits for running shards, then for loading threads. */
  readonly closeTimeout: number;

  readonly #filename: string;
  readonly #workerData: Record<string, unknown>;
  /** gpu.js's GL modes: the process that runs every shard's kernels (see gl-host.ts). */
  readonly #glHost: GlHost | undefined;
  /** The shared WebAssembly memory of the wasm backend, and its blocks. */
  readonly #arena: WasmArena | undefined;
  /** The regions of that memory the workers' kernels took for themselves, by thread. */
  readonly #regions: RegionRegistry | undefined;
  readonly #allocations = new WeakMap<Float32Array, Allocation>();
  /** The same, by buffer (backends other than wasm): a view of part of an allocation is pinned too. */
  readonly #allocationBuffers = new WeakMap<ArrayBufferLike, Allocation>();
  /** Allocations in the arena not freed yet (swept for collected ones before the arena grows). */
  readonly #arenaAllocations = new Set<Allocation>();
  readonly #collected = new FinalizationRegistry<Allocation>((a) => this.#free(a, undefined));
  /** Bytes of live allocations and copies outside an arena, and the most at once. */
  #sharedBytesInUse = 0;
  #sharedPeak = 0;
  /**
   * Shared buffers that held copies of finished batches, or the data of released tensors (backends
   * other than wasm), for the next copies and allocations: as many of one size as batches can be in
   * flight, and three fields' worth of the batches in flight and the next in all.
   */
  readonly #spare: SpareBuffers;

  #generation: Generation;
  readonly #generations = new Set<Generation>();
  /** Threads seen, and threads that said their module has loaded (safe to terminate). */
  readonly #seen = new WeakSet<Worker>();
  readonly #loaded = new WeakSet<Worker>();

  /** Batches waiting for a slot, in arrival order, and the bytes they hold. */
  readonly #waiting: Job[] = [];
  #queuedBytes = 0;
  #warned = false;
  /** Batches dispatched (holding a slot), in order; those with shards not handed out are also in `#dispatch`. */
  readonly #running = new Set<Job>();
  readonly #dispatch: Job[] = [];
  /**
   * Scratch blocks of the arena kept for the next shards, by size (at most one per thread in all):
   * taken and freed for every shard, they would split the holes that copies of batches leave.
   */
  readonly #spareScratch = new Map<number, number[]>();
  #spareScratchCount = 0;
  #spareScratchBytes = 0;
  /** Shard tasks handed to Piscina and not settled (at most one per thread). */
  #submitted = 0;
  #pumping = false;
  #peakInFlight = 0;
  /** One abort listener per signal, for all its batches. */
  readonly #signals = new Map<AbortSignal, { readonly jobs: Set<Job>; readonly onAbort: () => void }>();
  readonly #ready: (() => void)[] = [];
  #closing = false;
  #closed: Promise<void> | undefined;

  /** @internal Use {@link createMetricPool}. */
  constructor(options: MetricPoolOptions = {}) {
    checkOptions(NAME, options, ['workers', 'shardRows', 'backend', 'gpujsMode', 'maxInFlight', 'maxQueuedBytes', 'closeTimeout', 'filename']);
    this.workers = positiveInteger(NAME, 'workers', orDefault(options.workers, availableParallelism()));
    this.shardRows = positiveInteger(NAME, 'shardRows', orDefault(options.shardRows, DEFAULT_SHARD_ROWS));
    this.maxInFlight = positiveInteger(NAME, 'maxInFlight', orDefault(options.maxInFlight, 2 * this.workers));
    this.#spare = new SpareBuffers(3 * (this.maxInFlight + 1), this.maxInFlight);
    this.maxQueuedBytes = positiveAmount('maxQueuedBytes', orDefault(options.maxQueuedBytes, DEFAULT_MAX_QUEUED_BYTES));
    this.closeTimeout = positiveAmount('closeTimeout', orDefault(options.closeTimeout, DEFAULT_CLOSE_TIMEOUT));
    const backend = checkBackendOption(NAME, orDefault(options.backend, 'auto'));
    const mode = options.gpujsMode === undefined ? undefined : checkGpujsMode(NAME, options.gpujsMode);
    const choice = chooseBackend(NAME, backend, mode);
    this.backend = choice.backend;
    this.gpujsMode = choice.gpujsMode;
    this.backendReason = choice.reason;
    this.#arena = choice.backend === 'wasm' ? new WasmArena(undefined, () => this.#sweep()) : undefined;
    this.#regions = choice.backend === 'wasm' ? new RegionRegistry() : undefined;
    if (options.filename !== undefined && typeof options.filename !== 'string') {
      throw new TypeError(`${NAME}: options.filename must be a path, got ${describeValue(options.filename)}`);
    }
    this.#glHost = choice.backend === 'gpujs' && isGlMode(choice.gpujsMode) ? startGlHost(choice.gpujsMode ?? 'gpu') : undefined;
    this.#filename = options.filename ?? (this.#glHost ? workerEntry('gl-worker').file : defaultWorker());
    this.#workerData = {
      backend: choice.backend,
      ...(choice.gpujsMode === undefined ? {} : { gpujsMode: choice.gpujsMode }),
      ...(this.#arena === undefined ? {} : { memory: this.#arena.memory, regions: (this.#regions as RegionRegistry).buffer }),
      ...(this.#glHost === undefined ? {} : { glHost: this.#glHost.address }),
    };
    this.#generation = this.#startGeneration();
  }

  /** Batches dispatched now. */
  get inFlight(): number {
    return this.#running.size;
  }

  /** Batches waiting for a slot (handed to the pool, not dispatched yet). */
  get queued(): number {
    return this.#waiting.length;
  }

  /** Bytes that the batches waiting for a slot hold. */
  get queuedBytes(): number {
    return this.#queuedBytes;
  }

  /**
   * Resolves when the pool can take another batch without queueing it: fewer than `maxInFlight`
   * batches dispatched or waiting. A producer that awaits this before making each batch is paced
   * by the workers (see `fromBatches`).
   */
  whenReady(): Promise<void> {
    if (this.#running.size + this.#waiting.length < this.maxInFlight || this.#closing) return Promise.resolve();
    return new Promise((resolve) => this.#ready.push(resolve));
  }

  /** The most batches ever dispatched at once. */
  get peakInFlight(): number {
    return this.#peakInFlight;
  }

  /** The worker threads (for tests and monitoring). */
  get threads(): number {
    return this.#generation.piscina.threads.length;
  }

  /**
   * The shared memory the pool holds, in bytes: `reserved`, its size (the WebAssembly memory of
   * the wasm backend, which never shrinks, less the 16 MiB it starts with; else the shared buffers
   * in use or kept for reuse); `used`, what is in use now (allocated tensors, copies of batches, the
   * kernels' scratch space); and `peak`, the most ever in use at once.
   */
  memoryUsage(): { readonly reserved: number; readonly used: number; readonly peak: number } {
    const arena = this.#arena;
    if (arena !== undefined) {
      const used = arena.usedBytes - this.#spareScratchBytes;
      return { reserved: arena.memory.buffer.byteLength - arena.baseBytes, used, peak: arena.peakBytes };
    }
    return { reserved: this.#sharedBytesInUse + this.#spare.bytes, used: this.#sharedBytesInUse, peak: this.#sharedPeak };
  }

  /**
   * A zero-filled float32 tensor in shared memory: a producer that writes its batches into one
   * hands them to the workers with no copy at all. Once handed over, it belongs to the pool until
   * its batch is done: do not write into it before the batch's value is out (see the README, "Who
   * owns a batch's memory").
   *
   * @throws {TypeError | RangeError} on a bad shape; {RangeError} when the wasm backend's memory
   *   cannot grow (4 GiB in all), saying to release tensors.
   */
  allocate(shape: readonly number[]): Tensor<'float32'> {
    const size = checkAllocationShape(shape);
    const bytes = size * Float32Array.BYTES_PER_ELEMENT;
    const arena = this.#arena;
    let data: Float32Array;
    let allocation: Allocation;
    if (arena === undefined) {
      const reused = this.#spare.take(bytes);
      data = reused === undefined ? new Float32Array(new SharedArrayBuffer(bytes)) : new Float32Array(reused).fill(0);
      allocation = { bytes, offset: undefined, ref: undefined, pins: 0, released: false, freed: false };
      this.#useShared(bytes);
    } else {
      const offset = arena.allocate(bytes);
      data = arena.view(offset, size);
      data.fill(0);
      allocation = { bytes, offset, ref: new WeakRef(data), pins: 0, released: false, freed: false };
      this.#arenaAllocations.add(allocation);
    }
    this.#allocations.set(data, allocation);
    if (arena === undefined) this.#allocationBuffers.set(data.buffer, allocation);
    allocatedBuffers.add(data.buffer);
    // Its memory comes back when its data is collected (or on release()).
    this.#collected.register(data, allocation, allocation);
    return new Tensor(data, shape, 'float32');
  }

  /**
   * Gives back the memory of a tensor from {@link allocate} (it is otherwise freed when the tensor
   * is garbage-collected): at once, or, while a batch that reads it is queued or running, when
   * that batch is done. The tensor must not be used afterwards; handing it to the pool again throws.
   *
   * @throws {TypeError} for a tensor this pool did not allocate; {Error} for one already released.
   */
  release(tensor: Tensor<'float32'>): void {
    const data = (tensor as Partial<Tensor<'float32'>> | undefined)?.data;
    const allocation = data instanceof Float32Array ? this.#allocations.get(data) : undefined;
    if (allocation === undefined) {
      throw new TypeError(`MetricPool.release: tensor must be a tensor from this pool's allocate(), got ${describeValue(tensor)}`);
    }
    if (allocation.released) {
      throw new Error(`MetricPool.release: this tensor (shape ${JSON.stringify(tensor.shape)}) was already released`);
    }
    allocation.released = true;
    if (allocation.pins === 0) this.#free(allocation, data);
  }

  #useShared(bytes: number): void {
    this.#sharedBytesInUse += bytes;
    this.#sharedPeak = Math.max(this.#sharedPeak, this.#sharedBytesInUse);
  }

  /** Gives an allocation's memory back (once); `data`, when known, lets a shared buffer be reused. */
  #free(allocation: Allocation, data: Float32Array | undefined): void {
    if (allocation.freed) return;
    allocation.freed = true;
    this.#collected.unregister(allocation);
    if (allocation.offset !== undefined) {
      this.#arenaAllocations.delete(allocation);
      this.#arena?.free(allocation.offset);
      return;
    }
    this.#sharedBytesInUse -= allocation.bytes;
    if (data !== undefined) this.#unstage(data.buffer as SharedArrayBuffer);
  }

  /**
   * Before the arena grows (its memory never shrinks): frees the blocks of allocated tensors that
   * were garbage-collected. The garbage collector follows the JavaScript heap, where an allocated
   * tensor is a small object whatever its size, so past {@link COLLECT_BEFORE_GROWING} allocated
   * bytes it is run first.
   */
  #sweep(): void {
    let bytes = 0;
    for (const a of this.#arenaAllocations) bytes += a.bytes;
    if (bytes >= COLLECT_BEFORE_GROWING) collectGarbage();
    for (const a of [...this.#arenaAllocations]) if (a.ref?.deref() === undefined) this.#free(a, undefined);
  }

  /**
   * Puts a batch field where the workers read it, now: an allocated tensor (or, off the wasm
   * backend, a view of part of one) is pinned; anything else is copied into pool memory (except,
   * off the wasm backend, a SharedArrayBuffer the caller made, which is shared as it is).
   */
  #place(field: string, t: TensorLike, job: Job): ShardField {
    const data = t.data as Float32Array;
    const shape = [...t.shape];
    const allocation = this.#allocations.get(data) ?? this.#allocationBuffers.get(data.buffer);
    if (allocation !== undefined) {
      if (allocation.released) {
        throw new InvalidBatchError(
          'MetricPool',
          field,
          `${field} is a tensor given back with pool.release(); allocate a new one (pool.allocate) for each batch still to come`,
        );
      }
      allocation.pins++;
      job.pins.push(allocation);
      job.held.push(data);
      return this.#arena === undefined
        ? { buffer: data.buffer as SharedArrayBuffer, byteOffset: data.byteOffset, length: data.length, shape }
        : { wasm: true, byteOffset: data.byteOffset, length: data.length, shape };
    }
    const arena = this.#arena;
    if (arena !== undefined) {
      const offset = arena.allocate(data.byteLength);
      job.blocks.push(offset);
      arena.view(offset, data.length).set(data);
      return { wasm: true, byteOffset: offset, length: data.length, shape };
    }
    if (data.buffer instanceof SharedArrayBuffer && !allocatedBuffers.has(data.buffer)) {
      return { buffer: data.buffer, byteOffset: data.byteOffset, length: data.length, shape };
    }
    const buffer = this.#spare.take(data.byteLength) ?? new SharedArrayBuffer(data.byteLength);
    job.buffers.push(buffer);
    this.#useShared(buffer.byteLength);
    new Float32Array(buffer, 0, data.length).set(data);
    return { buffer, byteOffset: 0, length: data.length, shape };
  }

  /**
   * The merged partial state of every part over a validated batch. Synchronously (before it
   * returns) the batch's fields are placed for the workers, pinned or copied, so the caller may
   * reuse its buffers at once; then the batch waits for a slot (at most `maxInFlight` batches at
   * once), its shards go to the threads in order, and they merge in order through a fixed tree.
   *
   * Rejects with a {@link WorkerError} when a worker throws or exits on a shard, a
   * {@link PoolClosedError} when the pool is closed first, the signal's reason when it aborts, an
   * {@link InvalidBatchError} for a released tensor, and a `RangeError` when the batches waiting
   * would hold more than `maxQueuedBytes` or the wasm memory cannot grow.
   */
  evaluate(
    parts: readonly StatePart<unknown>[],
    batch: Batch,
    rows: number,
    options: EvaluateOptions,
  ): Promise<ReadonlyMap<string, unknown>> {
    if (this.#closing) return Promise.reject(new PoolClosedError(options.batchIndex));
    if (options.signal?.aborted) return Promise.reject(abortError(options.signal));
    let resolve!: (value: ReadonlyMap<string, unknown>) => void;
    let reject!: (error: unknown) => void;
    const promise = new Promise<ReadonlyMap<string, unknown>>((res, rej) => {
      resolve = res;
      reject = rej;
    });
    const distinct = distinctParts(parts);
    const shards = planShards(rows, this.shardRows);
    const job: Job = {
      batchIndex: options.batchIndex,
      task: { recipes: [], fields: {}, batchIndex: options.batchIndex },
      parts: distinct,
      shards,
      results: [],
      scratchBytes: 0,
      bytes: 0,
      next: 0,
      again: [],
      remaining: shards.length,
      outstanding: 0,
      pins: [],
      held: [],
      blocks: [],
      buffers: [],
      signal: options.signal,
      state: 'new',
      cleaned: false,
      resolve,
      reject,
    };
    try {
      const fields: Record<string, ShardField> = {};
      for (const field of fieldsRead(distinct.values())) {
        const t = batch[field] as TensorLike;
        const copies = job.blocks.length + job.buffers.length;
        fields[field] = this.#place(field, t, job);
        // Only copies count against maxQueuedBytes: a pool-allocated tensor (or a caller's own
        // shared memory) exists whether or not its batch waits.
        if (job.blocks.length + job.buffers.length > copies) job.bytes += t.data.byteLength;
      }
      const { componentIdx, firstVectorIndex } = batch;
      job.task = {
        recipes: [...distinct.values()].map((p) => p.recipe),
        fields,
        batchIndex: options.batchIndex,
        // Numbers only: a metric that reads them refused anything else already, and for the others
        // a value that cannot be cloned (a function) would fail the batch in a worker's name.
        ...(typeof componentIdx === 'number' ? { componentIdx } : {}),
        ...(typeof firstVectorIndex === 'number' ? { firstVectorIndex } : {}),
      };
      if (this.#arena !== undefined && shards.length > 0) {
        const needs = shardNeeds(distinct.values());
        const shapeOf = (name: string): readonly number[] | undefined => (batch[name] as TensorLike | undefined)?.shape;
        // Sized for a full shard whatever the batch's rows, so that blocks serve every batch of a shape.
        const bytes = wasmScratchBytes(
          this.shardRows,
          needs.abs || needs.nonZero || needs.fired || needs.positives || needs.features ? shapeOf('learnedActivations') : undefined,
          needsPairs(needs) ? shapeOf('decodedActivations') : undefined,
          needs,
        );
        job.scratchBytes = Math.ceil(bytes / 64) * 64; // what the arena hands out

      }
    } catch (error) {
      this.#finish(job, error);
      return promise;
    }
    if (job.signal !== undefined) this.#listen(job.signal, job);
    if (this.#running.size < this.maxInFlight && this.#waiting.length === 0) {
      this.#start(job);
      return promise;
    }
    const limit = this.maxQueuedBytes;
    if (this.#queuedBytes + job.bytes > limit) {
      this.#finish(
        job,
        new RangeError(
          `MetricPool: batch ${job.batchIndex} would make the batches waiting for a worker hold ${this.#queuedBytes + job.bytes} bytes, past maxQueuedBytes (${limit}): the source pushes batches faster than the pool computes them; pull them with fromBatches(iterable, { pool }), which waits for the pool, or raise maxQueuedBytes`,
        ),
      );
      return promise;
    }
    job.state = 'waiting';
    this.#waiting.push(job);
    this.#queuedBytes += job.bytes;
    if (!this.#warned && this.#queuedBytes > Math.min(QUEUE_WARNING_BYTES, limit / 2)) {
      this.#warned = true;
      process.emitWarning(
        `MetricPool: ${this.#waiting.length} batches (${(this.#queuedBytes / MiB).toFixed(1)} MiB) are waiting for a worker: the source pushes batches faster than the pool computes them, and each waiting batch holds its data. Pull batches with fromBatches(iterable, { pool }), which waits for the pool; past maxQueuedBytes (${limit} bytes) the stream errors`,
        { code: 'SAE_METRICS_POOL_QUEUE' },
      );
    }
    return promise;
  }

  /** One abort listener per signal: an abort cancels every batch of that signal. */
  #listen(signal: AbortSignal, job: Job): void {
    let entry = this.#signals.get(signal);
    if (entry === undefined) {
      const jobs = new Set<Job>();
      const onAbort = (): void => {
        for (const j of [...jobs]) this.#finish(j, abortError(signal));
      };
      entry = { jobs, onAbort };
      this.#signals.set(signal, entry);
      signal.addEventListener('abort', onAbort, { once: true });
    }
    entry.jobs.add(job);
  }

  #unlisten(job: Job): void {
    const signal = job.signal;
    const entry = signal === undefined ? undefined : this.#signals.get(signal);
    if (entry === undefined || !entry.jobs.delete(job) || entry.jobs.size > 0) return;
    this.#signals.delete(signal as AbortSignal);
    (signal as AbortSignal).removeEventListener('abort', entry.onAbort);
  }

  /** Dispatches a batch: it takes a slot and its shards queue for the threads. */
  #start(job: Job): void {
    job.state = 'running';
    this.#running.add(job);
    this.#peakInFlight = Math.max(this.#peakInFlight, this.#running.size);
    if (job.shards.length === 0) {
      this.#finish(job, undefined, mergeShards(job.parts, []));
      return;
    }
    this.#dispatch.push(job);
    this.#pump();
  }

  /** Hands queued shards to the threads, in batch and shard order, at most one per thread. */
  #pump(): void {
    if (this.#pumping) return;
    this.#pumping = true;
    try {
      while (this.#submitted < this.workers && this.#dispatch.length > 0) {
        const job = this.#dispatch[0] as Job;
        if (job.state !== 'running' || (job.again.length === 0 && job.next >= job.shards.length)) {
          this.#dispatch.shift();
          continue;
        }
        this.#submit(job, job.again.shift() ?? job.next++);
      }
    } finally {
      this.#pumping = false;
    }
  }

  #submit(job: Job, shardIndex: number): void {
    let scratch: ShardTask['scratch'];
    if (job.scratchBytes > 0) {
      try {
        scratch = { byteOffset: this.#takeScratch(job.scratchBytes), byteLength: job.scratchBytes };
      } catch (error) {
        this.#finish(job, error);
        return;
      }
    }
    let generation = this.#generation;
    if (generation.dead) generation = this.#generation = this.#startGeneration();
    const task: ShardTask = { ...job.task, rows: job.shards[shardIndex] as RowRange, shardIndex, ...(scratch ? { scratch } : {}) };
    this.#submitted++;
    job.outstanding++;
    generation.piscina.run(task).then(
      (result) => this.#settle(job, shardIndex, scratch, generation, true, result),
      (error: unknown) => this.#settle(job, shardIndex, scratch, generation, false, error),
    );
    this.#watchThreads(generation);
  }

  /** A shard task settled: its result counts if its batch is still running; its memory comes back. */
  #settle(job: Job, shardIndex: number, scratch: ShardTask['scratch'], generation: Generation, ok: boolean, outcome: unknown): void {
    this.#submitted--;
    job.outstanding--;
    if (scratch !== undefined) this.#giveScratch(scratch.byteOffset, scratch.byteLength);
    if (job.state === 'running' && !ok && generation.dead) {
      // Never started: it waited in a Piscina left without threads. It goes to the next one.
      if (this.#closing) this.#finish(job, new PoolClosedError(job.batchIndex));
      else {
        job.again.push(shardIndex);
        if (!this.#dispatch.includes(job)) this.#dispatch.unshift(job);
      }
    } else if (job.state === 'running') {
      if (ok) {
        job.results[shardIndex] = new Map(Object.entries(outcome as ShardResult));
        if (--job.remaining === 0) {
          let merged: ReadonlyMap<string, unknown> | undefined;
          let failure: unknown;
          try {
            merged = mergeShards(job.parts, job.results);
          } catch (error) {
            failure = error;
          }
          this.#finish(job, failure, merged);
        }
      } else this.#finish(job, this.#shardError(job, shardIndex, outcome));
    }
    this.#cleanup(job);
    this.#pump();
  }

  #shardError(job: Job, shardIndex: number, error: unknown): Error {
    return new WorkerError(job.batchIndex, shardIndex, job.shards[shardIndex] as RowRange, error);
  }

  /** Settles a batch once: its slot goes to the next waiting batch; its memory comes back when no thread reads it. */
  #finish(job: Job, error: unknown, value?: ReadonlyMap<string, unknown>): void {
    if (job.state === 'done') return;
    const was = job.state;
    job.state = 'done';
    this.#unlisten(job);
    if (was === 'waiting') {
      this.#waiting.splice(this.#waiting.indexOf(job), 1);
      this.#queuedBytes -= job.bytes;
    }
    if (was === 'running') {
      this.#running.delete(job);
      while (this.#running.size < this.maxInFlight && this.#waiting.length > 0 && !this.#closing) {
        const next = this.#waiting.shift() as Job;
        this.#queuedBytes -= next.bytes;
        this.#start(next);
      }
    }
    // Every producer waiting in whenReady() may go: one that finds its source done takes no slot,
    // and must not leave the others waiting for a slot that frees no more.
    if (this.#running.size + this.#waiting.length < this.maxInFlight) for (const go of this.#ready.splice(0)) go();
    if (value !== undefined && error === undefined) job.resolve(value);
    else job.reject(error);
    this.#cleanup(job);
  }

  /** Unpins a finished batch's tensors and frees its copies, once no thread can read them. */
  #cleanup(job: Job): void {
    if (job.state !== 'done' || job.outstanding > 0 || job.cleaned) return;
    job.cleaned = true;
    job.pins.forEach((a, i) => {
      a.pins--;
      if (a.pins === 0 && a.released) this.#free(a, job.held[i]);
    });
    job.held.length = 0;
    for (const offset of job.blocks) this.#arena?.free(offset);
    for (const buffer of job.buffers) {
      this.#sharedBytesInUse -= buffer.byteLength;
      this.#unstage(buffer);
    }
  }

  #takeScratch(bytes: number): number {
    const offset = this.#spareScratch.get(bytes)?.pop();
    if (offset === undefined) return (this.#arena as WasmArena).allocate(bytes);
    this.#spareScratchCount--;
    this.#spareScratchBytes -= bytes;
    return offset;
  }

  #giveScratch(offset: number, bytes: number): void {
    if (this.#closing || this.#spareScratchCount >= this.workers) {
      this.#arena?.free(offset);
      return;
    }
    const list = this.#spareScratch.get(bytes) ?? [];
    list.push(offset);
    this.#spareScratch.set(bytes, list);
    this.#spareScratchCount++;
    this.#spareScratchBytes += bytes;
  }

  /** Keeps a finished copy's buffer for reuse (see `#spare`). */
  #unstage(buffer: SharedArrayBuffer): void {
    if (this.#closing) return;
    this.#spare.give(buffer);
  }

  #startGeneration(): Generation {
    const piscina = new Piscina<ShardTask, ShardResult>({
      filename: this.#filename,
      minThreads: this.workers,
      maxThreads: this.workers,
      idleTimeout: 60_000,
      // A worker written in TypeScript (development, tests) runs through tsx.
      execArgv: this.#filename.endsWith('.ts') ? ['--import', 'tsx'] : [],
      workerData: this.#workerData,
    });
    const generation: Generation = { piscina, dead: false };
    this.#generations.add(generation);
    // Errors that belong to no task (a thread that failed while starting) become a warning.
    piscina.on('error', (error: Error) => {
      process.emitWarning(`MetricPool: ${error.message}`, { code: 'SAE_METRICS_POOL_ERROR' });
    });
    piscina.on('workerDestroy', () => {
      // Its replacement, made right after this event, is watched even while closing: close()
      // ends a thread only once it has loaded, and waits for that.
      queueMicrotask(() => this.#watchThreads(generation));
      if (this.#closing) return;
      setImmediate(() => this.#checkThreads(generation));
    });
    piscina.on('workerCreate', () => queueMicrotask(() => this.#watchThreads(generation)));
    this.#watchThreads(generation);
    return generation;
  }

  /**
   * Notes when each thread has loaded its module: only then can it be terminated safely (Node 20
   * aborts the process when a thread is terminated while it instantiates an ES module).
   */
  #watchThreads(generation: Generation): void {
    for (const worker of generation.piscina.threads) {
      if (this.#seen.has(worker)) continue;
      this.#seen.add(worker);
      // Its id now: it reads -1 once the thread has stopped. Its regions are free once it has.
      const threadId = worker.threadId;
      worker.once('exit', () => this.#regions?.releaseThread(threadId));
      worker.on('message', (message: unknown) => {
        if (typeof message === 'object' && message !== null && PISCINA_READY in message) this.#loaded.add(worker);
      });
    }
  }

  /**
   * After a thread is gone. Piscina replaces a thread that exits once it had started; after any
   * thread fails while starting it replaces none (its `workerFailsDuringBootstrap` flag), and with
   * no thread left the tasks it holds would wait forever. Then the pool destroys it (no thread to
   * terminate) and hands those tasks, which never started, to a new Piscina.
   */
  #checkThreads(generation: Generation): void {
    if (this.#closing || generation.dead || generation !== this.#generation) return;
    if (generation.piscina.threads.length > 0) return;
    generation.dead = true;
    this.#generations.delete(generation);
    // It has no thread: destroying it terminates none, and fails the tasks it holds.
    void generation.piscina.destroy();
  }

  /**
   * Stops taking batches: those waiting for a slot, and any handed over later, reject with a
   * {@link PoolClosedError}; batches already dispatched finish (their shards take milliseconds),
   * then the threads end. A shard still running after `closeTimeout` fails its batch with a
   * `PoolClosedError` and its thread is terminated, once every thread has loaded its module (or a
   * second `closeTimeout` passed).
   */
  close(): Promise<void> {
    this.#closed ??= this.#shutdown();
    return this.#closed;
  }

  async #shutdown(): Promise<void> {
    this.#closing = true;
    for (const job of [...this.#waiting]) this.#finish(job, new PoolClosedError(job.batchIndex));
    for (const resolve of this.#ready.splice(0)) resolve();
    await until(() => this.#running.size === 0 && this.#submitted === 0, Date.now() + this.closeTimeout);
    for (const job of [...this.#running]) this.#finish(job, new PoolClosedError(job.batchIndex));
    const loaded = (): boolean =>
      [...this.#generations].every((g) => g.piscina.threads.every((w) => this.#loaded.has(w)));
    await until(loaded, Date.now() + this.closeTimeout);
    await Promise.all([...this.#generations].map((g) => g.piscina.destroy()));
    await this.#glHost?.close();
    this.#spare.clear();
    for (const offsets of this.#spareScratch.values()) for (const offset of offsets) this.#arena?.free(offset);
    this.#spareScratch.clear();
    this.#spareScratchCount = 0;
    this.#spareScratchBytes = 0;
  }
}

/** A positive number or `Infinity`. */
function positiveAmount(option: string, value: unknown): number {
  if (typeof value !== 'number') throw new TypeError(`${NAME}: options.${option} must be a positive number, got ${describeValue(value)}`);
  if (!(value > 0)) throw new RangeError(`${NAME}: options.${option} must be a positive number, got ${describeValue(value)}`);
  return value;
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
