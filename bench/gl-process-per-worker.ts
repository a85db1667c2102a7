/**
 * A benchmark worker for the candidate design that the pool does not use: each worker thread
 * starts a GL process of its own (rather than one per pool) and sends it its shards.
 *
 * @module
 */
import { workerData } from 'piscina';
import { startGlHost } from '../src/pool/gl-host.js';
import { createGlShardRunner, type KernelConfig } from '../src/pool/kernel-host.js';
import type { ShardResult, ShardTask } from '../src/pool/task.js';

let run: ((task: ShardTask) => Promise<ShardResult>) | undefined;

export default function glProcessPerWorker(task: ShardTask): Promise<ShardResult> {
  run ??= createGlShardRunner(startGlHost((workerData as KernelConfig).gpujsMode ?? 'gpu').address);
  return run(task);
}
