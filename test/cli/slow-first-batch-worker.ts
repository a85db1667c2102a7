/**
 * A fixture pool worker: answers every shard as the real worker does, but the shards of batch 0
 * only after 400 ms, so that later batches finish first and wait for it to be emitted in order.
 */
import type { ShardResult, ShardTask } from '../../src/pool/task.js';
import metricWorker from '../../workers/metric-worker.js';

const sleeper = new Int32Array(new SharedArrayBuffer(4));

export default function slowFirstBatch(task: ShardTask): ShardResult {
  if (task.batchIndex === 0) Atomics.wait(sleeper, 0, 0, 400);
  return metricWorker(task);
}
