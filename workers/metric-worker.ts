/**
 * The Piscina worker entry: computes the partial states of one shard with the pool's backend
 * (built on the first task from the pool's `workerData`, so a backend that cannot start fails
 * that task with a clear error instead of the worker's start-up). Imports the functional
 * definitions and kernels only (never rxjs).
 *
 * @module
 */
import { move, transferableSymbol, valueSymbol, workerData } from 'piscina';
import { createKernelHost, type KernelConfig, type KernelHost } from '../src/pool/kernel-host.js';
import { coverTask, runShardTask, type ShardResult, type ShardTask } from '../src/pool/task.js';

let host: KernelHost | undefined;

export default function metricWorker(task: ShardTask): ShardResult {
  host ??= createKernelHost((workerData as KernelConfig | undefined) ?? { backend: 'js' });
  // Before the scratch is used: the pool may have grown the memory for it.
  coverTask(task, host.memory);
  host.useScratch?.(task.scratch);
  return moved(runShardTask(task, host.kernel, host.memory));
}

/**
 * The result, with the buffers of its typed arrays moved to the pool's thread instead of copied: a
 * shard's fired counts are 8 bytes per feature (1 GiB at 2^27 features), and a structured clone
 * would hold them three times at once (the worker's array, the serialized message, the copy).
 * Every such buffer was made for this result (the kernels and parts allocate their outputs per
 * call); buffers in shared memory are not moved, and need not be.
 */
function moved(result: ShardResult): ShardResult {
  const buffers = new Set<ArrayBuffer>();
  const visit = (value: unknown, depth: number): void => {
    if (typeof value !== 'object' || value === null || depth > 8) return;
    if (ArrayBuffer.isView(value)) {
      if (value.buffer instanceof ArrayBuffer && value.buffer.byteLength > 0) buffers.add(value.buffer);
      return;
    }
    for (const v of Object.values(value)) visit(v, depth + 1);
  };
  visit(result, 0);
  if (buffers.size === 0) return result;
  const transferable = { [transferableSymbol]: [...buffers], [valueSymbol]: result };
  // Piscina sends `result` with `buffers` in the transfer list.
  return move(transferable as unknown as Parameters<typeof move>[0]) as unknown as ShardResult;
}
