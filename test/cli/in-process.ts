/**
 * The command run in this process (`run` of src/cli/run.ts), with worker pools kept across runs
 * (one per worker count and backend: a run's `close()` leaves them open), so that tests making
 * many runs do not start threads for each.
 */
import { createMetricPool, type MetricPool, type MetricPoolOptions } from '../../src/index.js';
import { run } from '../../src/cli/run.js';

/** What a run gave. */
export interface Ran {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** `sae` runs the command with its arguments; `close` closes the pools it kept. */
export function pooledCli(): { sae: (args: readonly string[]) => Promise<Ran>; close: () => Promise<void> } {
  const pools = new Map<string, MetricPool>();
  const createPool = (options: MetricPoolOptions): MetricPool => {
    const key = `${options.workers}/${options.backend}`;
    let pool = pools.get(key);
    if (pool === undefined) pools.set(key, (pool = createMetricPool(options)));
    return new Proxy(pool, {
      get(t, k) {
        if (k === 'close') return async () => undefined;
        const v = Reflect.get(t, k, t) as unknown;
        return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
      },
    });
  };
  const sae = async (args: readonly string[]): Promise<Ran> => {
    const out: string[] = [];
    const err: string[] = [];
    const code = await run(args, {
      stdout: { write: (s: string) => out.push(s) > 0 },
      stderr: { write: (s: string) => err.push(s) > 0, isTTY: false },
      createPool,
    });
    return { code, stdout: out.join(''), stderr: err.join('') };
  };
  const close = async (): Promise<void> => void (await Promise.all([...pools.values()].map((p) => p.close())));
  return { sae, close };
}
