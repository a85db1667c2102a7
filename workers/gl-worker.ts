/**
 * The Piscina worker entry for gpu.js's GL modes: the pool's GL process runs the kernels of every
 * shard (`gl` loads in one thread of a process only, see `src/pool/gl-host.ts`); this thread sends
 * it the shard's rows and makes the partial states from the statistics it answers.
 *
 * @module
 */
import { workerData } from 'piscina';
import { createGlShardRunner, type KernelConfig } from '../src/pool/kernel-host.js';
import type { ShardResult, ShardTask } from '../src/pool/task.js';

let run: ((task: ShardTask) => Promise<ShardResult>) | undefined;

export default function glWorker(task: ShardTask): Promise<ShardResult> {
  const address = (workerData as KernelConfig | undefined)?.glHost;
  if (address === undefined) throw new Error('gl-worker: the pool gave no GL process');
  run ??= createGlShardRunner(address);
  return run(task);
}
