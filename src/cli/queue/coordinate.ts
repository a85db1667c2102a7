/**
 * `sae-metrics coordinate --redis URL FILE... [options]`: queues one BullMQ flow (a parent job and
 * one child job per shard), waits for the workers, folds the shards' states in shard order and
 * prints the report of a single run.
 *
 * @module
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, readFile, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import type { Job } from 'bullmq';
import { BACKEND_ENV } from '../../pool/backend.js';
import { checkTopK, type RunIO } from '../compute.js';
import type { CommandLine, MetricName } from '../args.js';
import { CliError, errorLine, UsageError } from '../errors.js';
import { LEAF_ROWS } from '../merge-tree.js';
import type { PreparedOutputs } from '../results.js';
import type { InputsIdentity, NamedPart, Part } from '../shard.js';
import { COORDINATE_USAGE, parseCoordinateCommandLine } from './args.js';
import { JOB_FORMAT, JOB_VERSION, jobResultProblem, sha256Hex, type ShardJobData, type ShardJobResult } from './protocol.js';
import { loadQueueModules, openRedis, type RedisLink } from './redis.js';
import { partFilePath } from './worker.js';

/** Input bytes per shard when `--shards` is not given. */
export const DEFAULT_SHARD_BYTES = 256 * 1024 * 1024;
/** The length the shard queue's event stream is trimmed to (about; BullMQ's default is 10,000). */
export const EVENTS_MAX_LEN = 100;
/** Attempts of a shard job that fails with an ordinary error (a stall is not an attempt). */
export const SHARD_ATTEMPTS = 2;
/** How often the coordinator looks for a failed shard, in milliseconds. */
const POLL_MS = 250;

/** `--shards`' default: one shard per {@link DEFAULT_SHARD_BYTES} of input, at most one per leaf. */
export function defaultShardCount(identity: InputsIdentity): number {
  const bytes = identity.files.reduce((n, f) => n + f.bytes, 0);
  const rows = identity.segments.reduce((n, s) => n + (s.learned.shape[0] as number), 0);
  return Math.max(1, Math.min(Math.ceil(rows / LEAF_ROWS), Math.ceil(bytes / DEFAULT_SHARD_BYTES)));
}

/** One shard's result as it came back, checked and with its text at hand (or where to read it). */
export interface Arrived {
  readonly key: string;
  readonly result: ShardJobResult;
}

/** The one result kept per shard index (a shard computed twice counts once), in shard order. */
export function onePerShard(values: Readonly<Record<string, unknown>>, run: string, count: number): Arrived[] {
  const kept = new Map<number, Arrived>();
  for (const key of Object.keys(values).sort()) {
    const result = values[key];
    const problem = jobResultProblem(result, run, count);
    if (problem !== undefined) throw new CliError(`shard job ${key}`, `its result ${problem}`);
    const r = result as ShardJobResult;
    if (!kept.has(r.shard)) kept.set(r.shard, { key, result: r });
  }
  return [...kept.values()].sort((a, b) => a.result.shard - b.result.shard);
}

/** The encoded part of a result: inline, or read from its file; its checksum verified. */
export async function partText(a: Arrived): Promise<string> {
  const { result } = a;
  let text: string;
  if (result.text !== undefined) text = result.text;
  else {
    const path = result.path as string;
    try {
      text = await readFile(path, 'utf8');
    } catch (error) {
      throw new CliError(path, `cannot read shard ${result.shard}'s state that a worker wrote there (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}): files must be at the same paths on every machine`);
    }
  }
  if (Buffer.byteLength(text) !== result.bytes || sha256Hex(text) !== result.sha256) {
    throw new CliError(result.path ?? `shard job ${a.key}`, `shard ${result.shard}'s state does not match the checksum its worker returned (changed or truncated)`);
  }
  return text;
}

/** What {@link failedShard} reads from the queues. */
interface FailureSources {
  readonly parents: { getJob(id: string): Promise<Job | undefined> };
  readonly shards: { readonly qualifiedName: string; getJob(id: string): Promise<Job | undefined>; getJobs(types: 'failed'[], start: number, end: number): Promise<Job[]> };
}

/**
 * Why the run failed: the failed shard job its parent names (BullMQ's `child <key> failed`), or
 * else the first failed job of the run on the shard queue, and its reason.
 */
async function failedShard(q: FailureSources, parentId: string, run: string): Promise<CliError> {
  const named = /^child (\S+) failed/.exec((await q.parents.getJob(parentId))?.failedReason ?? '')?.[1];
  const prefix = `${q.shards.qualifiedName}:`;
  let failed = named?.startsWith(prefix) === true ? await q.shards.getJob(named.slice(prefix.length)) : undefined;
  if (failed === undefined) {
    const all = (await q.shards.getJobs(['failed'], 0, -1)).filter((j) => (j.data as Partial<ShardJobData> | undefined)?.run === run);
    failed = all.sort((a, b) => (a.finishedOn ?? 0) - (b.finishedOn ?? 0))[0];
  }
  if (failed === undefined) return new CliError('coordinate', 'the run failed, and no failed shard job was found (removed from the queue?)');
  const d = failed.data as ShardJobData;
  return new CliError(`shard ${d.shard.index} of ${d.shard.count}`, failed.failedReason || 'failed with no reason given');
}

/**
 * Runs `sae-metrics coordinate` (`argv`: the arguments after `coordinate`).
 *
 * @returns the exit code: 0 done, 1 a bad input, a failed shard or Redis lost, 2 bad command
 *   line, 130 interrupted.
 */
export async function runCoordinate(argv: readonly string[], io: RunIO): Promise<number> {
  let link: RedisLink | undefined;
  let outputs: PreparedOutputs | undefined;
  let stateFiles: { dir: string; prefix: string } | undefined;
  let cleanup: (() => Promise<unknown>) | undefined;
  try {
    const c = parseCoordinateCommandLine(argv, io.env ?? process.env);
    if (c.help) {
      io.stdout.write(COORDINATE_USAGE);
      return 0;
    }
    const [{ computedMetrics, prepareOutputs, writeResults }, shard] = await Promise.all([import('../results.js'), import('../shard.js')]);
    // An output that cannot be written fails now, before any job is queued.
    outputs = await prepareOutputs(c.run);
    const identity = await shard.identityOfCommandLine(c.run);
    // Before anything is queued: the workers would each fail with it.
    const shape = identity.segments[0]?.learned.shape ?? [];
    await checkTopK(c.run.topK, shape.length === 3 ? (shape[1] as number) : 1, shape[shape.length - 1] as number, computedMetrics(c.run.metrics, c.run));
    const count = c.shards ?? defaultShardCount(identity);
    const modules = await loadQueueModules('coordinate');
    const { FlowProducer, Queue, Worker } = modules.bullmq;
    link = openRedis(modules, c.redis, c.connectTimeoutMs);
    const l = link;
    // Ctrl-C (or SIGTERM) stops any wait: the run's jobs are removed, nothing is merged.
    const interrupted = new Promise<never>((_, reject) => {
      const stop = (): void => reject(new CliError('interrupted', `the run's jobs were removed from the queue; nothing was merged`, 130));
      if (io.signal?.aborted === true) stop();
      io.signal?.addEventListener('abort', stop, { once: true });
    });
    interrupted.catch(() => undefined);
    const wait = <T>(work: Promise<T>): Promise<T> => Promise.race([work, l.lost, interrupted]);
    const run = randomBytes(6).toString('hex');
    const runQueue = `${c.queue}.run.${run}`;
    // A backend from the environment goes to the workers as a flag: their environment may differ.
    const jobArgv = c.run.backendFrom === BACKEND_ENV ? [...c.runArgv, '--backend', c.run.backend] : [...c.runArgv];
    const data = (index: number): ShardJobData => ({
      format: JOB_FORMAT,
      version: JOB_VERSION,
      run,
      argv: jobArgv,
      cwd: process.cwd(),
      shard: { index, count },
      identity,
      inlineMax: c.inlineMax,
    });
    const producer = new FlowProducer({ connection: link.connection() });
    producer.on('error', () => undefined);
    // BullMQ copies each result into the queue's event stream too: keep that stream short.
    const shards = new Queue(c.queue, { connection: link.connection(), streams: { events: { maxLen: EVENTS_MAX_LEN } } });
    shards.on('error', () => undefined);
    const parents = new Queue(runQueue, { connection: link.connection() });
    parents.on('error', () => undefined);
    await wait(link.ready());
    const flow = await wait(
      producer.add({
        name: 'merge',
        queueName: runQueue,
        data: { run, count },
        children: Array.from({ length: count }, (_, i) => ({
          name: 'shard',
          queueName: c.queue,
          data: data(i),
          // One more attempt after an error that may not recur (an UnrecoverableError gets none).
          opts: { jobId: `${run}.${i}`, failParentOnFailure: true, attempts: SHARD_ATTEMPTS },
        })),
      }),
    );
    const parentId = flow.job.id as string;
    // Where workers write the states too large for Redis: all of them go at the end, merged or not.
    stateFiles = { dir: dirname(partFilePath(data(0))), prefix: basename(partFilePath(data(0))).replace(/shard-0-of-\d+\.json$/, '') };
    cleanup = async () => {
      // Removes what is left of the run: the parent, and the children that no worker holds.
      await parents.remove(parentId, { removeChildren: true }).catch(() => undefined);
      await Promise.all(Array.from({ length: count }, (_, i) => shards.remove(`${run}.${i}`).catch(() => undefined)));
      await parents.obliterate({ force: true }).catch(() => undefined);
    };
    // The parent job: ready once every child is done; its processor hands the values over.
    let handOver!: (values: Record<string, unknown>) => void;
    const values = new Promise<Record<string, unknown>>((done) => {
      handOver = done;
    });
    const parentWorker = new Worker(
      runQueue,
      async (job: Job) => {
        handOver(await job.getChildrenValues());
        return { run, count };
      },
      { connection: link.connection(), concurrency: 1 },
    );
    parentWorker.on('error', () => undefined);
    let stopped = false;
    // On a terminal (and without --json), one line that says how many shards are done.
    const progress = io.stderr.isTTY === true && !c.run.json;
    let shownDone = -1;
    const showProgress = async (): Promise<void> => {
      const counts = await (await parents.getJob(parentId))?.getDependenciesCount({ processed: true });
      const done = counts?.processed ?? 0;
      if (done === shownDone || stopped) return;
      shownDone = done;
      io.stderr.write(`\r\x1b[2Ksae-metrics: ${done} of ${count} shards done (run ${run} on ${l.shown}, queue ${c.queue})`);
    };
    const failure = new Promise<never>((_, reject) => {
      const poll = async (): Promise<void> => {
        while (!stopped) {
          await new Promise((r) => setTimeout(r, POLL_MS));
          if (stopped) return;
          const state = await parents.getJobState(parentId).catch(() => 'unreachable');
          if (state === 'unknown') {
            reject(new CliError('--redis', `${l.shown}: the run's jobs are gone from Redis (restarted without persistence, or flushed): run again`));
            return;
          }
          if (state === 'failed') {
            reject(await failedShard({ parents, shards }, parentId, run));
            return;
          }
          if (progress) await showProgress().catch(() => undefined);
        }
      };
      poll().catch(reject);
    });
    let childValues: Record<string, unknown>;
    try {
      childValues = await wait(Promise.race([values, failure]));
    } finally {
      stopped = true;
      if (shownDone >= 0) io.stderr.write('\r\x1b[2K');
    }
    await wait(parentWorker.close());
    const arrived = onePerShard(childValues, run, count);
    // Every part is checked without its states first, then folded in shard order one at a time.
    const texts = new Map<Arrived, string>();
    const named: (NamedPart & { arrived: Arrived })[] = [];
    for (const a of arrived) {
      const text = await partText(a);
      const name = a.result.path ?? `shard ${a.result.shard} of ${count}`;
      const part = shard.decodePart(text, name);
      if (part.shard.index !== a.result.shard || part.shard.count !== count) {
        throw new CliError(name, `holds shard ${part.shard.index} of ${part.shard.count}, but was returned as shard ${a.result.shard} of ${count}`);
      }
      const diff = shard.identityDifference(identity, part.inputs);
      if (diff !== undefined) throw new CliError(name, `was computed from other inputs than the coordinator's: ${diff}`);
      if (a.result.text !== undefined) texts.set(a, text);
      named.push({ name, part: { ...part, exact: new Map(), nodes: [] }, arrived: a });
    }
    const merged = shard.foldCheckedParts(shard.checkParts(named), (p): Part => {
      const a = (p as (typeof named)[number]).arrived;
      const text = texts.get(a) ?? readFileSync(a.result.path as string, 'utf8');
      if (sha256Hex(text) !== a.result.sha256) throw new CliError(p.name, 'changed while it was being merged');
      return shard.decodePart(text, p.name);
    });
    return await writeResults(merged, c.run, outputs, io);
  } catch (error) {
    io.stderr.write(`${errorLine(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  } finally {
    await outputs?.discard();
    if (link !== undefined && cleanup !== undefined) {
      await Promise.race([cleanup(), link.lost, new Promise((r) => setTimeout(r, 5000))]).catch(() => undefined);
    }
    if (stateFiles !== undefined) {
      const { dir, prefix } = stateFiles;
      const names = await readdir(dir).catch(() => [] as string[]);
      await Promise.all(names.filter((n) => n.startsWith(prefix)).map((n) => unlink(join(dir, n)).catch(() => undefined)));
    }
    link?.close();
  }
}
