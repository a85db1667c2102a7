/**
 * The Piscina worker entry: computes the partial states of one shard. Imports the functional
 * definitions and kernels only (never rxjs).
 *
 * @module
 */
import { runShardTask, type ShardResult, type ShardTask } from '../src/pool/task.js';

export default function metricWorker(task: ShardTask): ShardResult {
  return runShardTask(task);
}
