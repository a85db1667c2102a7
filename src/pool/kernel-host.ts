/**
 * The kernel a thread runs shards with, built from plain data (a worker builds its own from the
 * pool's `workerData`): plain JavaScript, the fused WebAssembly pass over the pool's shared
 * memory, or gpu.js in a given mode; and, for gpu.js's GL modes in a pool, the shard runner that
 * has the pool's GL process run the kernels.
 *
 * @module
 */
import { threadId } from 'node:worker_threads';
import { shardNeeds } from '../functional/core.js';
import { partFromRecipe } from '../functional/parts/registry.js';
import { jsFusedKernel } from '../kernels/js-fused.js';
import type { FusedKernel, ShardNeeds, ShardStats } from '../kernels/types.js';
import { createWasmKernel, type ScratchRegion } from '../kernels/wasm/index.js';
import { createGpujsKernel, GPUJS_NEEDS } from '../kernels/gpujs/index.js';
import { splitNeeds, withFallback } from '../kernels/fallback.js';
import type { BackendName, GpujsMode } from './backend.js';
import { GlClient, type GlHostAddress, type ShardInput } from './gl-host.js';
import { fromShared } from './shared-memory.js';
import { registryRegions } from './region-registry.js';
import { runShardTask, type ShardResult, type ShardTask } from './task.js';

/** What a worker needs to build its kernel. */
export interface KernelConfig {
  readonly backend: BackendName;
  readonly gpujsMode?: GpujsMode;
  /** The pool's shared memory, for the wasm backend. */
  readonly memory?: WebAssembly.Memory;
  /** The pool's list of the workers' regions of that memory (see region-registry.ts). */
  readonly regions?: SharedArrayBuffer;
  /** The pool's GL process, for gpu.js's GL modes (read by `workers/gl-worker`). */
  readonly glHost?: GlHostAddress;
}

/** A thread's kernel and, for the wasm backend, the memory its fields live in. */
export interface KernelHost {
  readonly kernel: FusedKernel;
  readonly memory?: WebAssembly.Memory;
  /** What runs, e.g. `wasm`, `gpujs (cpu)`. */
  readonly describe: string;
  /** The wasm kernel's scratch space for the next shards (see `WasmKernel.useScratch`). */
  readonly useScratch?: (region: ScratchRegion | undefined) => void;
}

/**
 * Builds the kernel for a configuration.
 *
 * @throws {Error} when the backend cannot run (gpu.js fell back to another mode, no memory for wasm).
 */
export function createKernelHost(config: KernelConfig): KernelHost {
  switch (config.backend) {
    case 'js':
      return { kernel: jsFusedKernel, describe: 'js' };
    case 'wasm': {
      if (config.memory === undefined) throw new Error('the wasm backend needs the shared memory of its pool');
      // A worker's regions come from the pool's list, where they outlive the thread.
      const regions = config.regions !== undefined && threadId > 0 ? registryRegions(config.regions, config.memory, threadId) : undefined;
      const wasm = createWasmKernel(config.memory, undefined, regions);
      return { kernel: wasm.fused, memory: config.memory, describe: 'wasm', useScratch: wasm.useScratch };
    }
    case 'gpujs': {
      const gpu = createGpujsKernel({ mode: config.gpujsMode ?? 'gpu' });
      return { kernel: gpu.fused, describe: `gpujs (${gpu.mode})` };
    }
  }
}

/** The fields a shard's statistics read. */
function fieldsFor(needs: ShardNeeds): string[] {
  const fields: string[] = [];
  if (needs.abs || needs.nonZero || needs.fired) fields.push('learnedActivations');
  if (needs.mse) fields.push('decodedActivations', 'sourceActivations');
  return fields;
}

/**
 * Computes shards through the pool's GL process: the rows of the fields the statistics read go to
 * it, its statistics come back, and this thread makes the partial states from them, as from a
 * kernel of its own.
 */
export function createGlShardRunner(address: GlHostAddress): (task: ShardTask) => Promise<ShardResult> {
  const client = new GlClient(address);
  return async (task) => {
    const { own } = splitNeeds(shardNeeds(task.recipes.map(partFromRecipe)), GPUJS_NEEDS);
    const needs = own ?? {};
    const { start, end } = task.rows;
    const inputs: ShardInput[] = fieldsFor(needs).map((name) => {
      const field = task.fields[name];
      if (field === undefined || 'wasm' in field) throw new Error(`field ${name} is not in shared memory`);
      const t = fromShared(field);
      const width = t.shape.slice(1).reduce((a, b) => a * b, 1);
      return { name, data: t.data.subarray(start * width, end * width) as Float32Array, shape: [end - start, ...t.shape.slice(1)] };
    });
    const stats: ShardStats = Object.keys(needs).length > 0 ? await client.compute(inputs, needs) : {};
    // What the GL process computes comes from it; any other statistic is computed here.
    const fromGl: FusedKernel = (_batch, rows, asked) => {
      for (const [k, v] of Object.entries(asked)) {
        if (v && stats[k as keyof ShardStats] === undefined) throw new Error(`the GL process sent no ${k} for rows ${rows.start} to ${rows.end}`);
      }
      return stats;
    };
    return runShardTask(task, withFallback(fromGl, GPUJS_NEEDS));
  };
}
