/**
 * The Piscina worker entry: computes the partial states of one shard with the pool's backend
 * (built on the first task from the pool's `workerData`, so a backend that cannot start fails
 * that task with a clear error instead of the worker's start-up). Imports the functional
 * definitions and kernels only (never rxjs).
 *
 * @module
 */
import { workerData } from 'piscina';
import { createKernelHost, type KernelConfig, type KernelHost } from '../src/pool/kernel-host.js';
import { runShardTask, type ShardResult, type ShardTask } from '../src/pool/task.js';

let host: KernelHost | undefined;

export default function metricWorker(task: ShardTask): ShardResult {
  host ??= createKernelHost((workerData as KernelConfig | undefined) ?? { backend: 'js' });
  host.useScratch?.(task.scratch);
  return runShardTask(task, host.kernel, host.memory);
}
