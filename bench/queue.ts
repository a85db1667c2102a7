/**
 * What does the queue cost, and what do more worker processes buy? One file set through
 * `sae-metrics coordinate` + 1, 2 and 3 `sae-metrics worker` processes on a local redis-server,
 * against the single-process command (`sae-metrics FILE...`) on the same files, as ratios of
 * median wall times (each a whole command, process start included), interleaved in rounds; and
 * the per-shard overhead of the queue: one worker process, few shards against many, the
 * difference per extra shard. Each queued answer is checked against the single run's (the same
 * bits). Needs `npm run build` and Debian's redis-server; not part of `npm run bench`.
 * Run: node --import tsx bench/queue.ts [--files K] [--rows R] [--features F] [--reps N]
 *
 * @module
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { cli } from '../test/cli/run-cli.js';
import { comparable } from '../test/support/reports.js';
import { startRedis, startWorker, stopChild, type CliProcess } from '../test/queue/processes.js';
import { f2, footer, header, table } from './harness.js';

const { values } = parseArgs({ options: { files: { type: 'string' }, rows: { type: 'string' }, features: { type: 'string' }, reps: { type: 'string' } } });
const FILES = Number(values.files ?? 4);
const ROWS = Number(values.rows ?? 60_000);
const FEATURES = Number(values.features ?? 256);
const REPS = Number(values.reps ?? 5);
const SHARDS = 6;
const FEW = 2;
const MANY = 128;
const METRICS = 'l1,l0,dead,density,fired,actstats';

/** A .npy file of sparse non-negative float32 activations (about 1 in 8 non-zero). */
function npy(path: string, rows: number, features: number, seed: number): string {
  let x = seed >>> 0;
  const data = new Float32Array(rows * features);
  for (let i = 0; i < data.length; i++) {
    x = (Math.imul(x, 1664525) + 1013904223) >>> 0;
    const u = x / 2 ** 32;
    data[i] = u < 0.875 ? 0 : (u - 0.875) * 24;
  }
  const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${rows}, ${features}), }`;
  const unpadded = 10 + dict.length + 1;
  const text = `${dict}${' '.repeat(Math.ceil(unpadded / 64) * 64 - unpadded)}\n`;
  const head = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0]);
  head.writeUInt16LE(text.length, 8);
  writeFileSync(path, Buffer.concat([head, Buffer.from(text, 'latin1'), Buffer.from(data.buffer)]));
  return path;
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};

async function main(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'i14-queue-bench-'));
  const redis = await startRedis();
  const workers: CliProcess[] = [];
  try {
    const files = Array.from({ length: FILES }, (_, i) => npy(join(dir, `a${i}.npy`), ROWS, FEATURES, 1 + i));
    const bytes = FILES * ROWS * FEATURES * 4;
    header('sae-metrics coordinate + worker processes on a local redis-server, against the single-process command', [
      `${FILES} .npy files of ${ROWS} x ${FEATURES} float32 (${(bytes / 2 ** 20).toFixed(0)} MiB), --metrics ${METRICS}; wall time of whole commands, median of ${REPS} interleaved rounds`,
      `queue: ${SHARDS} shards, each worker process --workers 1; per-shard overhead: 1 worker process, ${FEW} shards against ${MANY}`,
    ]);
    const run = ['--metrics', METRICS, '--json'];
    const timed = async (args: readonly string[]): Promise<{ ms: number; out: string }> => {
      const t0 = performance.now();
      const r = await cli(args, {}, 600_000);
      const ms = performance.now() - t0;
      if (r.code !== 0) throw new Error(`sae-metrics ${args.join(' ')}: exit ${r.code}: ${r.stderr}`);
      return { ms, out: r.stdout };
    };
    const reference = JSON.stringify(comparable((await timed([...files, ...run, '--workers', '1'])).out));
    const queued = (shards: number): string[] => ['coordinate', '--redis', redis.url, ...files, ...run, '--shards', String(shards)];
    const cases: { name: string; processes: number; args: string[] }[] = [
      { name: 'single process, --workers 1', processes: 0, args: [...files, ...run, '--workers', '1'] },
      { name: 'single process, --workers 2', processes: 0, args: [...files, ...run, '--workers', '2'] },
      { name: 'single process, --workers 3', processes: 0, args: [...files, ...run, '--workers', '3'] },
      { name: `queue, 1 worker process (${SHARDS} shards)`, processes: 1, args: queued(SHARDS) },
      { name: `queue, 2 worker processes (${SHARDS} shards)`, processes: 2, args: queued(SHARDS) },
      { name: `queue, 3 worker processes (${SHARDS} shards)`, processes: 3, args: queued(SHARDS) },
      { name: `queue, 1 worker process, ${FEW} shards`, processes: 1, args: queued(FEW) },
      { name: `queue, 1 worker process, ${MANY} shards`, processes: 1, args: queued(MANY) },
    ];
    const times = cases.map(() => [] as number[]);
    for (let round = -1; round < REPS; round++) {
      for (const [i, c] of cases.entries()) {
        // Worker processes wait for jobs between runs, as they would on a cluster.
        // (idle ones stay up during the single-process runs: they wait on Redis, using no CPU).
        if (c.processes > 0) {
          while (workers.length < c.processes) workers.push(await startWorker(redis.url));
          while (workers.length > c.processes) await stopChild((workers.pop() as CliProcess).child);
        }
        const { ms, out } = await timed(c.args);
        if (JSON.stringify(comparable(out)) !== reference) throw new Error(`${c.name}: the report differs from the single run's`);
        if (round >= 0) (times[i] as number[]).push(ms);
      }
    }
    const medians = times.map(median);
    const base = medians[0] as number;
    console.log(
      table(
        ['path', 'median s', 'min s', 'max s', 'vs single --workers 1', 'MiB/s'],
        cases.map((c, i) => {
          const t = times[i] as number[];
          return [c.name, f2((medians[i] as number) / 1000), f2(Math.min(...t) / 1000), f2(Math.max(...t) / 1000), `${f2(base / (medians[i] as number))}x`, (bytes / 2 ** 20 / ((medians[i] as number) / 1000)).toFixed(0)];
        }),
      ),
    );
    const few = medians[cases.length - 2] as number;
    const many = medians[cases.length - 1] as number;
    console.log(`\nper-shard overhead of the queue (1 worker process): (${f2(many / 1000)} s - ${f2(few / 1000)} s) / ${MANY - FEW} extra shards = ${((many - few) / (MANY - FEW)).toFixed(0)} ms a shard`);
    console.log('every queued report had the same values as the single run');
    footer();
  } finally {
    await Promise.all(workers.map((w) => stopChild(w.child)));
    await redis.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
