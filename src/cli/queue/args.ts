/**
 * The command lines of `sae-metrics coordinate` and `sae-metrics worker`.
 *
 * @module
 */
import { parseArgs } from 'node:util';
import { MAX_SHARDS, parseCommandLine, parseError, positiveInteger, type CommandLine } from '../args.js';
import { UsageError } from '../errors.js';
import { checkRedisUrl } from './redis.js';

/** The BullMQ queue of shard jobs when `--queue` is not given. */
export const DEFAULT_QUEUE = 'sae-metrics';
/** Seconds a connection to Redis may be down (or not yet up) before the command fails. */
export const DEFAULT_CONNECT_TIMEOUT_S = 10;
/** Bytes of encoded state a worker returns through Redis; a larger one goes to a file beside the inputs. */
export const DEFAULT_INLINE_MAX = 256 * 1024;
/** Milliseconds of BullMQ's job lock and stalled-job check (BullMQ's own default). */
export const DEFAULT_STALLED_MS = 30_000;

const SHARED_USAGE = `  --redis URL            redis://[user:password@]host[:port][/db] or rediss:// (TLS) (required)
  --queue NAME           the BullMQ queue of shard jobs (default ${DEFAULT_QUEUE}); coordinators and
                         workers of one queue must agree
  --connect-timeout S    seconds a connection to Redis may be down (or not yet up) before the
                         command fails with one line and exit code 1 (default ${DEFAULT_CONNECT_TIMEOUT_S})`;

/** The usage text of `sae-metrics coordinate --help`. */
export const COORDINATE_USAGE = `Usage: sae-metrics coordinate --redis URL FILE... [options]

Queues one BullMQ flow on Redis: a parent job and one child job per shard of the run that
sae-metrics FILE... [options] would make. Workers (sae-metrics worker) compute the shards; the
parent folds their states in shard order, and this command prints the report, the same bits as
one run over all the files. Every FILE must be readable at the same path on every worker (a
relative path is taken from this command's working directory, which must exist there too).

Options (and every option of sae-metrics FILE..., but --shard and --state-out; --workers N is
the threads of each worker started without its own --workers):
${SHARED_USAGE}
  --shards N             shards to cut the run into (default: one per 256 MiB of input, at most
                         one per 1024 vectors)
  --inline-max BYTES     a shard's encoded state larger than this is written beside the inputs
                         (FILE's folder) and its path and checksum returned instead (default
                         ${DEFAULT_INLINE_MAX}; 0: always a file)
  -h, --help             print this help

Exit codes: 0 done, 1 bad input, a failed shard or Redis lost, 2 bad command line.
`;

/** The usage text of `sae-metrics worker --help`. */
export const WORKER_USAGE = `Usage: sae-metrics worker --redis URL [options]

Takes shard jobs from the queue, one at a time, computes each with a local worker pool and returns
its encoded state, until Ctrl-C or SIGTERM (which finish the job in hand first). A job whose files
differ from the coordinator's (names, shapes, dtypes, sizes, headers) fails at once, without retry.
Run any number of workers on any number of machines.

Options:
${SHARED_USAGE}
  --workers N            worker threads per shard (default: the machine's parallelism)
  --stalled-ms MS        BullMQ's job lock and stalled-job check, in milliseconds: a shard whose
                         worker died is taken by another within about twice this (default
                         ${DEFAULT_STALLED_MS})
  -h, --help             print this help

Exit codes: 0 stopped, 1 Redis lost, 2 bad command line.
`;

/** What the two commands share. */
export interface QueueOptions {
  readonly help: false;
  readonly redis: URL;
  readonly queue: string;
  readonly connectTimeoutMs: number;
}

/** A checked `sae-metrics coordinate` command line. */
export interface CoordinateCommandLine extends QueueOptions {
  /** The run's command line, as a single run would take it (FILEs and options). */
  readonly runArgv: readonly string[];
  readonly run: CommandLine;
  readonly shards: number | undefined;
  readonly inlineMax: number;
}

/** A checked `sae-metrics worker` command line. */
export interface WorkerCommandLine extends QueueOptions {
  readonly workers: number | undefined;
  readonly stalledMs: number;
}

const QUEUE_OPTIONS = {
  redis: { type: 'string' },
  queue: { type: 'string' },
  'connect-timeout': { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

function queueOptions(v: { redis?: string | undefined; queue?: string | undefined; 'connect-timeout'?: string | undefined }, command: string): QueueOptions {
  if (v.redis === undefined) {
    throw new UsageError('--redis', `is required: sae-metrics ${command} --redis redis://HOST:PORT ...`);
  }
  const queue = v.queue ?? DEFAULT_QUEUE;
  if (!/^[A-Za-z0-9_.-]{1,100}$/.test(queue)) throw new UsageError('--queue', `must be 1 to 100 letters, digits, '_', '.' or '-', got ${JSON.stringify(queue)}`);
  let connectTimeoutMs = DEFAULT_CONNECT_TIMEOUT_S * 1000;
  if (v['connect-timeout'] !== undefined) {
    const raw = v['connect-timeout'];
    const s = raw.trim() === '' ? NaN : Number(raw);
    if (!Number.isFinite(s) || s < 0.1 || s > 3600) throw new UsageError('--connect-timeout', `must be a number of seconds in [0.1, 3600], got ${JSON.stringify(raw)}`);
    connectTimeoutMs = Math.round(s * 1000);
  }
  return { help: false, redis: checkRedisUrl(v.redis), queue, connectTimeoutMs };
}

/**
 * Parses `sae-metrics coordinate` (the arguments after `coordinate`): its own options, and the
 * rest as a single run's command line.
 *
 * @throws {UsageError} naming the option.
 */
export function parseCoordinateCommandLine(argv: readonly string[], env: Readonly<Record<string, string | undefined>>): CoordinateCommandLine | { readonly help: true } {
  const own = { ...QUEUE_OPTIONS, shards: { type: 'string' }, 'inline-max': { type: 'string' } } as const;
  // Takes this command's options out; the rest is checked as a run's command line.
  const { tokens } = parseArgs({ args: [...argv], options: own, strict: false, allowPositionals: true, tokens: true });
  const values: Record<string, string | boolean | undefined> = {};
  const taken = new Set<number>();
  for (const t of tokens) {
    if (t.kind === 'option-terminator') break;
    if (t.kind !== 'option' || !(t.name in own)) continue;
    const type = own[t.name as keyof typeof own].type;
    taken.add(t.index);
    if (type === 'string') {
      if (t.value === undefined) throw new UsageError(`--${t.name}`, 'needs a value');
      if (!t.inlineValue) taken.add(t.index + 1);
      if (values[t.name] !== undefined && values[t.name] !== t.value) throw new UsageError(`--${t.name}`, 'given twice with different values');
      values[t.name] = t.value;
    } else {
      if (t.value !== undefined) throw new UsageError(`--${t.name}`, 'takes no value');
      values[t.name] = true;
    }
  }
  if (values.help === true) return { help: true };
  const q = queueOptions(values as Parameters<typeof queueOptions>[0], 'coordinate');
  const runArgv = argv.filter((_, i) => !taken.has(i));
  for (const option of ['--shard', '--state-out']) {
    if (runArgv.some((a) => a === option || a.startsWith(`${option}=`))) {
      throw new UsageError(option, 'is set by coordinate for each shard job: give --shards N instead');
    }
  }
  if (runArgv.some((a) => a === '-V' || a === '--version')) throw new UsageError('--version', 'is not an option of coordinate (see sae-metrics coordinate --help)');
  const run = parseCommandLine(runArgv, env);
  const shards = positiveInteger('shards', values.shards as string | undefined);
  if (shards !== undefined && shards > MAX_SHARDS) throw new UsageError('--shards', `must be an integer in [1, ${MAX_SHARDS}], got ${JSON.stringify(values.shards)}`);
  let inlineMax = DEFAULT_INLINE_MAX;
  if (values['inline-max'] !== undefined) {
    const raw = values['inline-max'] as string;
    const n = /^\s*\d+\s*$/.test(raw) ? Number(raw) : NaN;
    if (!Number.isSafeInteger(n)) throw new UsageError('--inline-max', `must be an integer number of bytes >= 0, got ${JSON.stringify(raw)}`);
    inlineMax = n;
  }
  return { ...q, runArgv, run, shards, inlineMax };
}

/**
 * Parses `sae-metrics worker` (the arguments after `worker`).
 *
 * @throws {UsageError} naming the option.
 */
export function parseWorkerCommandLine(argv: readonly string[]): WorkerCommandLine | { readonly help: true } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: { ...QUEUE_OPTIONS, workers: { type: 'string' }, 'stalled-ms': { type: 'string' } },
    });
  } catch (error) {
    throw parseError(error, 'sae-metrics worker --help');
  }
  const v = parsed.values;
  if (v.help === true) return { help: true };
  const q = queueOptions(v, 'worker');
  const stalledMs = positiveInteger('stalled-ms', v['stalled-ms']) ?? DEFAULT_STALLED_MS;
  if (stalledMs < 100) throw new UsageError('--stalled-ms', `must be at least 100, got ${JSON.stringify(v['stalled-ms'])}`);
  return { ...q, workers: positiveInteger('workers', v.workers), stalledMs };
}
