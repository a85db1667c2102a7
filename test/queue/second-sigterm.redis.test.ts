/**
 * A worker's second SIGTERM while it writes a shard's state beside the inputs (a state larger
 * than --inline-max): the process ends by SIGTERM and the temporary file it was writing is gone.
 */
import { readdirSync, truncateSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npyBytes, scratchDir } from '../cli/files.js';
import { requireBuilt } from '../cli/run-cli.js';
import { startCli, startRedis, startWorker, stopChild, type RedisServer } from './processes.js';

// 32 rows of 2^20 features, zeros (sparse on disk): a state of about 56 MB, written for a while.
const ROWS = 32;
const FEATURES = 1 << 20;

describe('sae-metrics worker on a second SIGTERM while it writes a state file', () => {
  const tmp = scratchDir('reattack-pool-queue-');
  let redis: RedisServer;
  beforeAll(async () => {
    requireBuilt();
    redis = await startRedis();
  }, 30_000);
  afterAll(async () => {
    await redis.stop();
    tmp.remove();
  }, 30_000);

  it('ends by SIGTERM and leaves no temporary file beside the inputs', async () => {
    const input = tmp.path('wide.npy');
    const header = npyBytes(new Float32Array(0), [ROWS, FEATURES]);
    writeFileSync(input, header);
    truncateSync(input, header.length + 4 * ROWS * FEATURES);
    const queue = 'second-sigterm';
    const worker = await startWorker(redis.url, ['--queue', queue]);
    const coordinator = startCli(['coordinate', '--redis', redis.url, '--queue', queue, input, '--metrics', 'dead,density,actstats', '--shards', '1', '--inline-max', '0', '--json']);
    try {
      const temporaries = (): string[] => readdirSync(tmp.dir).filter((name) => name.endsWith('.tmp'));
      const since = performance.now();
      while (temporaries().length === 0 && performance.now() - since < 60_000) await new Promise((resolve) => setTimeout(resolve, 1));
      expect(temporaries()).toHaveLength(1);
      // Two signals sent at once may arrive as one: the second once the first is handled.
      worker.child.kill('SIGTERM');
      await worker.waitFor(/stopping/, 10_000);
      worker.child.kill('SIGTERM');
      const { code } = await worker.exit();
      // 128 + 15: ended by the signal.
      expect(code).toBe(143);
      // Writing 56 MB takes far longer than handling the first signal: the second comes during it.
      expect(temporaries()).toEqual([]);
    } finally {
      await stopChild(worker.child, 'SIGKILL');
      await stopChild(coordinator.child, 'SIGKILL');
    }
  }, 90_000);
});
