/**
 * The message a worker receives for one shard, and how a worker answers it. Plain data only:
 * activations travel as views of shared memory.
 *
 * @module
 */
import type { Batch, PartRecipe, RowRange } from '../functional/core.js';
import { partFromRecipe } from '../functional/parts/registry.js';
import { computePartials } from '../functional/core.js';
import { jsFusedKernel } from '../kernels/js-fused.js';
import type { FusedKernel } from '../kernels/types.js';
import { fromShared, viewReaching, type SharedTensor } from './shared-memory.js';
import type { StatePart } from '../functional/core.js';

/** A float32 tensor in the pool's shared WebAssembly memory, by position. */
export interface WasmField {
  readonly wasm: true;
  readonly byteOffset: number;
  readonly length: number;
  readonly shape: readonly number[];
}

/** A batch field as a worker receives it. */
export type ShardField = SharedTensor | WasmField;

/** One shard of one batch, for a worker. */
export interface ShardTask {
  /** The distinct parts to compute. */
  readonly recipes: readonly PartRecipe[];
  /** The batch fields the parts read, in shared memory. */
  readonly fields: Readonly<Record<string, ShardField>>;
  /** The batch's `componentIdx`, if any. */
  readonly componentIdx?: number;
  /** The batch's `firstVectorIndex`, if any (the indexed parts number their vectors from it). */
  readonly firstVectorIndex?: number;
  /** The shard's rows. */
  readonly rows: RowRange;
  /** Index of the batch in its stream and of the shard in its batch, for error messages. */
  readonly batchIndex: number;
  readonly shardIndex: number;
  /**
   * Bytes of the pool's WebAssembly memory lent to the wasm kernel for this shard (the pool frees
   * them when the shard is done, whatever becomes of the thread).
   */
  readonly scratch?: { readonly byteOffset: number; readonly byteLength: number };
}

/** A worker's answer: the partial state of each part, by part id. */
export type ShardResult = Record<string, unknown>;

const cache = new Map<string, StatePart<unknown>>();

function recipeKey(r: PartRecipe): string {
  return `${r.kind}(${JSON.stringify(r.args)})`;
}

/**
 * Makes `memory.buffer` cover every byte `task` names (its fields and scratch). Another thread
 * may have grown a shared memory just before sending the task, and a thread's `memory.buffer` can
 * still have its old length until V8 delivers the growth to it; `grow(0)` takes the current
 * length now. A task past even that is refused with the sizes.
 *
 * @throws {RangeError} when the memory is smaller than the task says.
 */
export function coverTask(task: ShardTask, memory: WebAssembly.Memory | undefined): void {
  if (memory === undefined) return;
  let end = task.scratch === undefined ? 0 : task.scratch.byteOffset + task.scratch.byteLength;
  for (const field of Object.values(task.fields)) if ('wasm' in field) end = Math.max(end, field.byteOffset + field.length * 4);
  const length = viewReaching(memory, end);
  if (length < end) {
    throw new RangeError(`shard ${task.shardIndex} of batch ${task.batchIndex} reads WebAssembly memory up to byte ${end}, but the memory has ${length} bytes`);
  }
}

/**
 * Runs a shard task (in a worker, or in-thread): one fused pass of `kernel`, every part's partial
 * state. Fields in WebAssembly memory are read through views of `memory` as it is now.
 */
export function runShardTask(task: ShardTask, kernel: FusedKernel = jsFusedKernel, memory?: WebAssembly.Memory): ShardResult {
  coverTask(task, memory);
  const parts: StatePart<unknown>[] = [];
  for (const recipe of task.recipes) {
    const key = recipeKey(recipe);
    let part = cache.get(key);
    if (part === undefined) {
      part = partFromRecipe(recipe);
      cache.set(key, part);
    }
    parts.push(part);
  }
  const batch: Record<string, unknown> = {};
  for (const [name, field] of Object.entries(task.fields)) {
    if ('wasm' in field) {
      if (memory === undefined) throw new Error(`field ${name} is in WebAssembly memory, but this worker has none`);
      batch[name] = { data: new Float32Array(memory.buffer, field.byteOffset, field.length), shape: field.shape };
    } else batch[name] = fromShared(field);
  }
  if (task.componentIdx !== undefined) batch.componentIdx = task.componentIdx;
  if (task.firstVectorIndex !== undefined) batch.firstVectorIndex = task.firstVectorIndex;
  const partials = computePartials(parts, batch as Batch, task.rows, kernel);
  return Object.fromEntries(partials);
}
