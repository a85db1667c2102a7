/**
 * `sae-metrics worker --redis URL [--workers N]`: takes shard jobs from a BullMQ queue, one at a
 * time, and computes each with a local worker pool.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import type { Job } from 'bullmq';
import { parseCommandLine, type CommandLine } from '../args.js';
import type { MetricPool, MetricPoolOptions } from '../../pool/metric-pool.js';
import type { RunIO } from '../compute.js';
import { CliError, errorLine, UsageError } from '../errors.js';
import { trackTemporary } from '../output.js';
import { parseWorkerCommandLine, WORKER_USAGE, type WorkerCommandLine } from './args.js';
import { jobDataProblem, sha256Hex, type ShardJobData, type ShardJobResult } from './protocol.js';
import { loadQueueModules, openRedis, overLink, type QueueModules, type RedisLink } from './redis.js';

/** Errors of a connection to Redis (which the link's timeout judges), as ioredis and BullMQ word them. */
const CONNECTION_ERROR = /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ENOTFOUND|EPIPE|Connection is closed|connect /i;

/** Times a job may be found stalled (its worker gone) and put back before it fails. */
export const MAX_STALLED_COUNT = 3;

/** The file a worker writes a shard's state to when it is too large to return through Redis. */
export function partFilePath(data: Pick<ShardJobData, 'identity' | 'cwd' | 'run' | 'shard'>): string {
  const first = data.identity.files[0]?.path ?? '.';
  return join(dirname(resolve(data.cwd, first)), `.sae-metrics-${data.run}-shard-${data.shard.index}-of-${data.shard.count}.json`);
}

/**
 * The pool kept across a worker's jobs: a thread pool starts once, not once a shard, while the
 * jobs ask for the same pool options. A job that asks for others closes the kept one first (jobs
 * run one at a time, so it is idle): a worker serving runs of many --workers or --backend values
 * holds one pool's threads, not one pool per value for as long as it runs. The pool a shard gets
 * closes nothing; {@link closePools} closes it at the end.
 */
class KeptPools {
  private readonly pools = new Map<string, MetricPool>();

  constructor(private readonly create: (options: MetricPoolOptions) => MetricPool) {}

  get(options: MetricPoolOptions): MetricPool {
    const key = JSON.stringify(options);
    let pool = this.pools.get(key);
    if (pool === undefined) {
      for (const [other, idle] of this.pools) {
        this.pools.delete(other);
        void idle.close().catch(() => undefined);
      }
      this.pools.set(key, (pool = this.create(options)));
    }
    const kept = pool;
    return new Proxy(kept, {
      get(target, property) {
        if (property === 'close') return async () => undefined;
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    });
  }

  async closePools(): Promise<void> {
    await Promise.all([...this.pools.values()].map((p) => p.close().catch(() => undefined)));
    this.pools.clear();
  }
}

interface Context {
  readonly pools: KeptPools;
  readonly modules: QueueModules;
  readonly options: WorkerCommandLine;
  readonly who: string;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** The state file written for each job whose result is not yet accepted, by job id. */
  readonly written: Map<string, string>;
  log(line: string): void;
}

/** Computes one shard job; an error that retrying cannot mend is an `UnrecoverableError`. */
async function processShard(job: Job, ctx: Context): Promise<ShardJobResult> {
  const { UnrecoverableError } = ctx.modules.bullmq;
  const fatal = (problem: string): Error => new UnrecoverableError(`worker ${ctx.who}: ${problem}`);
  const problem = jobDataProblem(job.data);
  if (problem !== undefined) throw fatal(`job ${job.id ?? '?'} ${problem}`);
  const data = job.data as ShardJobData;
  const name = `run ${data.run} shard ${data.shard.index} of ${data.shard.count}`;
  ctx.log(`${name}: started${job.attemptsStarted > 1 ? ` (start ${job.attemptsStarted}: taken over from a worker that stopped)` : ''}`);
  const started = performance.now();
  try {
    process.chdir(data.cwd);
  } catch (error) {
    throw fatal(`cannot enter the coordinator's working directory ${data.cwd} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): files must be at the same paths on every machine`);
  }
  let cl: CommandLine;
  try {
    cl = parseCommandLine(data.argv, ctx.env);
  } catch (error) {
    throw fatal(`the job's command line: ${(error as Error).message}`);
  }
  if (ctx.options.workers !== undefined) cl = { ...cl, workers: ctx.options.workers };
  const { computeShard, encodePart, identityDifference, identityOfCommandLine } = await import('../shard.js');
  let diff: string | undefined;
  try {
    diff = identityDifference(data.identity, await identityOfCommandLine(cl));
  } catch (error) {
    throw fatal(`cannot read the inputs: ${(error as Error).message}`);
  }
  if (diff !== undefined) throw fatal(`its files differ from the coordinator's: ${diff}`);
  const quiet: RunIO = { stdout: { write: () => true }, stderr: { write: () => true, isTTY: false }, env: ctx.env, createPool: (o) => ctx.pools.get(o) };
  let part: Awaited<ReturnType<typeof computeShard>>;
  try {
    part = await computeShard(cl, data.shard, quiet);
  } catch (error) {
    // A bad command line fails again anywhere; another error (a read, a thread) may not: one retry.
    const message = (error as Error).message;
    throw error instanceof UsageError ? fatal(message) : new Error(`worker ${ctx.who}: ${message}`);
  }
  // The files may have changed between the check and the read.
  diff = identityDifference(data.identity, part.inputs);
  if (diff !== undefined) throw fatal(`its files changed while the shard was computed: ${diff}`);
  let text: string;
  try {
    text = encodePart(part);
  } catch (error) {
    throw fatal((error as Error).message);
  }
  const bytes = Buffer.byteLength(text);
  const sha256 = sha256Hex(text);
  const seconds = ((performance.now() - started) / 1000).toFixed(2);
  if (bytes <= data.inlineMax) {
    ctx.log(`${name}: computed in ${seconds} s (${bytes} bytes of state, returned through Redis)`);
    return { run: data.run, shard: data.shard.index, sha256, bytes, text };
  }
  // A file of this attempt's own: a worker that held the job past its lock writes it too, and
  // removes its own when its result is refused (see runWorker), never the one that counts.
  const path = partFilePath(data).replace(/\.json$/, `.${randomBytes(4).toString('hex')}.json`);
  const temporary = `${path}.${randomBytes(4).toString('hex')}.tmp`;
  // A second SIGTERM while it is written removes it before the process ends.
  const untrack = trackTemporary(temporary);
  try {
    await writeFile(temporary, text);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw new Error(`worker ${ctx.who}: cannot write the shard's state to ${path}: ${(error as Error).message}`);
  } finally {
    untrack();
  }
  if (job.id !== undefined) ctx.written.set(job.id, path);
  ctx.log(`${name}: computed in ${seconds} s (${bytes} bytes of state, written to ${path})`);
  return { run: data.run, shard: data.shard.index, sha256, bytes, path };
}

/**
 * Runs `sae-metrics worker` (`argv`: the arguments after `worker`) until `io.signal` aborts
 * (Ctrl-C, SIGTERM), which lets the job in hand finish. Writes one line to stderr per job started,
 * done or failed.
 *
 * @returns the exit code: 0 stopped, 1 Redis unreachable or lost, 2 bad command line.
 */
export async function runWorker(argv: readonly string[], io: RunIO): Promise<number> {
  let link: RedisLink | undefined;
  let pools: KeptPools | undefined;
  try {
    const options = parseWorkerCommandLine(argv);
    if (options.help) {
      io.stdout.write(WORKER_USAGE);
      return 0;
    }
    const modules = await loadQueueModules('worker');
    link = openRedis(modules, options.redis, options.connectTimeoutMs);
    const who = `${hostname()}:${process.pid}`;
    const log = (line: string): void => void io.stderr.write(`sae-metrics worker ${who}: ${line}\n`);
    pools = new KeptPools(io.createPool ?? (await import('../../pool/metric-pool.js')).createMetricPool);
    const written = new Map<string, string>();
    const ctx: Context = { pools, modules, options, who, env: io.env ?? process.env, written, log };
    const stop = new Promise<void>((done) => {
      if (io.signal?.aborted === true) done();
      io.signal?.addEventListener('abort', () => done(), { once: true });
    });
    const connection = link.connection();
    await overLink(link, Promise.race([link.ready(), stop]));
    if (io.signal?.aborted === true) return 130;
    const worker = new modules.bullmq.Worker(options.queue, (job: Job) => processShard(job, ctx), {
      connection,
      concurrency: 1,
      lockDuration: options.stalledMs,
      stalledInterval: options.stalledMs,
      maxStalledCount: MAX_STALLED_COUNT,
    });
    // Connection errors are the link's to judge (it fails after the timeout; BullMQ retries them);
    // others (a completion refused because the job's lock was lost) are said.
    worker.on('error', (error) => {
      if (CONNECTION_ERROR.test(error.message)) return;
      const lost = /^(Lock mismatch|Missing lock|Missing key) for job (\S+?)\.? /.exec(error.message);
      if (lost === null) {
        log(`error: ${errorLine(error).replace(/^sae-metrics: /, '')}`);
        return;
      }
      const id = lost[2] as string;
      if (lost[1] === 'Missing key') log(`job ${id}: this worker's result was refused: the job is gone (another worker took it over when its lock ran out, and its run is over)`);
      else log(`job ${id}: this worker's result was refused: it held the job past its lock, and another worker has taken it over`);
      // Its state file counts for nothing now (the run may be over, its files removed): not left behind.
      const path = written.get(id);
      written.delete(id);
      if (path !== undefined) void unlink(path).then(() => log(`job ${id}: removed its state file ${path}`), () => undefined);
    });
    worker.on('completed', (job) => {
      if (job.id !== undefined) written.delete(job.id);
      const d = job.data as Partial<ShardJobData>;
      log(`run ${d.run ?? '?'} shard ${d.shard?.index ?? '?'} of ${d.shard?.count ?? '?'}: done`);
    });
    worker.on('failed', (job, error) => {
      const d = job?.data as Partial<ShardJobData> | undefined;
      log(`run ${d?.run ?? '?'} shard ${d?.shard?.index ?? '?'} of ${d?.shard?.count ?? '?'}: failed: ${errorLine(error).replace(/^sae-metrics: /, '')}`);
    });
    worker.on('stalled', (jobId) => log(`job ${jobId} stalled (its worker stopped): put back in the queue`));
    log(`waiting for shard jobs on queue ${options.queue} at ${link.shown}`);
    await overLink(link, stop);
    log('stopping: the job in hand finishes first');
    await overLink(link, worker.close());
    log('stopped');
    return 0;
  } catch (error) {
    io.stderr.write(`${errorLine(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  } finally {
    link?.close();
    await pools?.closePools();
  }
}
