/**
 * The message a worker receives for one shard, and how a worker answers it. Plain data only:
 * activations travel as views of shared memory.
 *
 * @module
 */
import type { Batch, PartRecipe, RowRange } from '../functional/core.js';
import { partFromRecipe } from '../functional/parts/registry.js';
import { computePartials } from '../kernels/partials.js';
import { fromShared, type SharedTensor } from './shared-memory.js';
import type { StatePart } from '../functional/core.js';

/** One shard of one batch, for a worker. */
export interface ShardTask {
  /** The distinct parts to compute. */
  readonly recipes: readonly PartRecipe[];
  /** The batch fields the parts read, in shared memory. */
  readonly fields: Readonly<Record<string, SharedTensor>>;
  /** The batch's `componentIdx`, if any. */
  readonly componentIdx?: number;
  /** The shard's rows. */
  readonly rows: RowRange;
  /** Index of the batch in its stream and of the shard in its batch, for error messages. */
  readonly batchIndex: number;
  readonly shardIndex: number;
}

/** A worker's answer: the partial state of each part, by part id. */
export type ShardResult = Record<string, unknown>;

const cache = new Map<string, StatePart<unknown>>();

function recipeKey(r: PartRecipe): string {
  return `${r.kind}(${JSON.stringify(r.args)})`;
}

/** Runs a shard task (in a worker, or in-thread): one fused pass, every part's partial state. */
export function runShardTask(task: ShardTask): ShardResult {
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
  for (const [name, shared] of Object.entries(task.fields)) batch[name] = fromShared(shared);
  if (task.componentIdx !== undefined) batch.componentIdx = task.componentIdx;
  const partials = computePartials(parts, batch as Batch, task.rows);
  return Object.fromEntries(partials);
}
