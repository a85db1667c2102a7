/**
 * The command line of `sae-metrics`: parsed with `node:util` `parseArgs` (strict), then checked
 * option by option. A bad command line raises a {@link UsageError} (exit code 2) naming the option.
 *
 * @module
 */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { BACKEND_ENV, checkGpujsMode, GPUJS_MODE_ENV } from '../pool/backend.js';
import { UsageError } from './errors.js';

/** The metrics the command computes, by their command-line names. */
export const METRIC_NAMES = [
  'l1',
  'l2',
  'loss',
  'l0',
  'dead',
  'density',
  'fired',
  'top',
  'deadwindow',
  'freq',
  'actstats',
  'acthist',
  'ev',
  'fvu',
  'cos',
  'l2ratio',
  'shrinkage',
  'nmse',
] as const;

/** A metric's command-line name. */
export type MetricName = (typeof METRIC_NAMES)[number];

/** The metrics that need source and decoded activations. */
export const RECONSTRUCTION_METRICS: readonly MetricName[] = ['l2', 'loss', 'ev', 'fvu', 'cos', 'l2ratio', 'shrinkage', 'nmse'];

/** `--top`'s default: activations kept per feature. */
export const DEFAULT_TOP_K = 10;

/** `--top`'s largest K: `TopActivations`' `MAX_TOP_K` (not imported: the metrics load after the command line is checked). */
const MAX_TOP_K = 2 ** 20;

/** `--dead-window`'s default, in vectors: sparsify's and dictionary_learning's 10M tokens. */
export const DEFAULT_DEAD_WINDOW = 10_000_000;

/** The backends `--backend` takes. */
export const BACKEND_NAMES = ['auto', 'wasm', 'gpujs', 'js'] as const;

/** A checked command line. */
export interface CommandLine {
  readonly help: boolean;
  readonly version: boolean;
  /** Files of learned activations, read in order as one stream. */
  readonly files: readonly string[];
  readonly tensor: string | undefined;
  readonly source: string | undefined;
  readonly decoded: string | undefined;
  /** The metrics to compute, in the order given (defaults filled in). */
  readonly metrics: readonly MetricName[];
  readonly l1Coefficient: number;
  readonly deadThreshold: number;
  /** Worker threads; undefined for the pool's default (the machine's parallelism). */
  readonly workers: number | undefined;
  readonly backend: (typeof BACKEND_NAMES)[number];
  /**
   * Where the backend came from: `--backend` (which wins), the environment variable
   * `SAE_METRICS_BACKEND`, or neither (`auto`). Errors about the backend name it.
   */
  readonly backendFrom: '--backend' | typeof BACKEND_ENV | undefined;
  /** Rows per batch; undefined to choose from the row size. */
  readonly batchRows: number | undefined;
  /** Components the input must have; undefined to take them from the shape. */
  readonly components: number | undefined;
  readonly json: boolean;
  /** Where to write the density histogram: an .svg or .png path. */
  readonly histogram: string | undefined;
  /** Histogram bins per decade of density (default 4). */
  readonly binsPerDecade: number;
  /** Whether the histogram's counts are on a log scale. */
  readonly logY: boolean;
  /** Activations kept per feature by `top` (default {@link DEFAULT_TOP_K}). */
  readonly topK: number;
  /** Where to write the per-feature top activations: a .json path. */
  readonly topOut: string | undefined;
  /** The window of `deadwindow`, in vectors (default {@link DEFAULT_DEAD_WINDOW}). */
  readonly deadWindow: number;
  /** Where to write the per-feature activation histograms (`acthist`): a .json path. */
  readonly actHistOut: string | undefined;
  /** `--shard I/N`: compute shard `index` (0-based) of `count` only. */
  readonly shard: ShardSpec | undefined;
  /** `--state-out PART.json`: where the shard's encoded state goes (with `--shard`). */
  readonly stateOut: string | undefined;
}

/** A shard of a run: `index` in `[0, count)`. */
export interface ShardSpec {
  readonly index: number;
  readonly count: number;
}

/** The most shards `--shard` cuts a run into. */
export const MAX_SHARDS = 1_000_000;

/** The usage text of `--help`. */
export const USAGE = `Usage: sae-metrics FILE... [options]

Computes sparse-autoencoder metrics over activation files (.safetensors or .npy; float32,
float16, bfloat16, or float64 converted to float32 as it is read), streamed in chunks through a
worker pool with bounded memory.

FILE...  learned activations [vectors, features] or [vectors, components, features], read in order
         as one stream (the files must agree on every axis but the first)

Options:
  --tensor NAME          the tensor of learned activations in .safetensors files (default: the
                         only tensor not named by --source/--decoded)
  --source NAME|FILE     source (input) activations: a tensor name in the same .safetensors
                         files, or for one .npy FILE a .npy file with the same rows
  --decoded NAME|FILE    decoded (reconstructed) activations, as --source
  --metrics LIST         comma-separated, from: ${METRIC_NAMES.filter((m) => !RECONSTRUCTION_METRICS.includes(m)).join(', ')},
                         and with --source/--decoded: ${RECONSTRUCTION_METRICS.join(', ')}
                         (default: l1,l0,dead,density, and l2,loss with --source/--decoded)
  --l1-coefficient X     the L1 coefficient of loss = l2 + X * l1, at least 0 (default 0.001;
                         with 0, loss is l2)
  --dead-threshold X     a feature is dead when it fired for at most this portion of vectors,
                         in [0, 1] (default 0: it never fired)
  --components N         the number of components the input must have (default: from the shape)
  --workers N            worker threads (default: the machine's parallelism; the results
                         are the same bits with any number)
  --backend NAME         ${BACKEND_NAMES.join(' | ')} (default: SAE_METRICS_BACKEND if set, else auto;
                         SAE_METRICS_GPUJS_MODE picks gpu.js's mode)
  --batch-rows N         activation vectors read per batch (default: up to 4096, about 16 MiB)
  --json                 print one JSON object instead of a table
  --histogram OUT.svg    write the log10 feature-density histogram: an SVG image, or PNG for a
                         path ending in .png (needs the optional package @resvg/resvg-js and a
                         font); the path is checked before any input is read
  --bins-per-decade N    histogram bins per decade of density, 1 to 100 (default 4)
  --log-y                the histogram's counts on a log scale
  --top K                activations kept per feature by the top metric (default ${DEFAULT_TOP_K})
  --top-out FILE.json    write each feature's K largest activations with the global index of
                         the vector each came from (vectors numbered from 0 across all FILEs in
                         order), as JSON; computes top (the path is checked before any input is read)
  --dead-window N        deadwindow: a feature is dead when it fired on none of the last N vectors
                         (default ${DEFAULT_DEAD_WINDOW.toLocaleString('en-US')}; none is dead before N vectors were read)
  --acthist-out OUT.json write each feature's histogram of fired activations (acthist: log10
                         bins from 1e-4 to 1e4, 10 a decade) and its quantiles as JSON for a
                         feature dashboard; computes acthist when --metrics leaves it out
  --shard I/N            compute only shard I of N (I counts from 0, as SLURM_ARRAY_TASK_ID and
                         JOB_COMPLETION_INDEX do: 0 to N-1) and write its state to --state-out
                         (give every shard the same FILEs, options and --backend); the report
                         and output files come from sae-metrics merge
  --state-out PART.json  where --shard writes the shard's state (versioned, with a checksum)
  -h, --help             print this help
  -V, --version          print the version

Then: sae-metrics merge PART.json... [--json] [--histogram OUT.svg] [--top-out FILE.json] ...
      checks that the parts are the N shards of one run and prints its report, the same bits
      as one run over all the FILEs (see sae-metrics merge --help)
Or, with workers on a Redis queue (BullMQ):
      sae-metrics worker --redis URL [--workers N]   on each machine, until stopped
      sae-metrics coordinate --redis URL FILE... [options] [--shards N]
      queues the run's shards, waits for the workers and prints the report, the same bits as
      one run (see sae-metrics coordinate --help and sae-metrics worker --help)

Exit codes: 0 done, 1 bad input file or run-time error, 2 bad command line.
`;

/** The usage text of `sae-metrics merge --help`. */
export const MERGE_USAGE = `Usage: sae-metrics merge PART.json... [options]

Merges the states that sae-metrics FILE... --shard I/N --state-out PART.json wrote for I = 0 to
N-1 (in any order on the command line) and prints the report of the whole run, the same bits as
one run over all the files. The parts must be the N shards of one run: the same metrics and
options, the same inputs (names, shapes, dtypes, sizes and headers), every shard once.

Options:
  --json                 print one JSON object instead of a table
  --histogram OUT.svg    write the log10 feature-density histogram (SVG, or PNG for .png); needs
                         dead, density or fired among the shards' metrics
  --bins-per-decade N    histogram bins per decade of density, 1 to 100 (default 4)
  --log-y                the histogram's counts on a log scale
  --top-out FILE.json    write each feature's K largest activations; needs top among the shards'
                         metrics (its K is theirs)
  --acthist-out OUT.json write the per-feature activation histograms; needs acthist among the
                         shards' metrics
  -h, --help             print this help

Exit codes: 0 done, 1 a bad or mismatched part file, 2 bad command line.
`;

export function positiveInteger(option: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const n = /^\s*\d+\s*$/.test(value) ? Number(value) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) throw new UsageError(`--${option}`, `must be a positive integer, got ${JSON.stringify(value)}`);
  return n;
}

function finiteNumber(option: string, value: string | undefined, fallback: number, check: (x: number) => boolean, expected: string): number {
  if (value === undefined) return fallback;
  const n = value.trim() === '' ? NaN : Number(value);
  if (!Number.isFinite(n) || !check(n)) throw new UsageError(`--${option}`, `must be ${expected}, got ${JSON.stringify(value)}`);
  return n;
}

/** Turns a `parseArgs` error into a one-line usage error naming the option. */
export function parseError(error: unknown, help = 'sae-metrics --help'): UsageError {
  const e = error as { code?: string; message?: string };
  const message = e.message ?? String(error);
  const option = /'(-{1,2}[^', ]+)/.exec(message)?.[1];
  switch (e.code) {
    case 'ERR_PARSE_ARGS_UNKNOWN_OPTION':
      return new UsageError(option ?? 'command line', `unknown option (see ${help})`);
    case 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE':
      if (/ambiguous/.test(message)) {
        return new UsageError(option ?? 'command line', `needs a value (for a value that starts with '-', write ${option ?? '--option'}=VALUE)`);
      }
      return new UsageError(option ?? 'command line', /argument missing/.test(message) ? 'needs a value' : 'takes no value');
    default:
      return new UsageError('command line', (message.split('\n', 1)[0] ?? '').trim());
  }
}

/** The output options, the same for a run and a merge (`parseArgs` options). */
const OUTPUT_OPTIONS = {
  json: { type: 'boolean' },
  histogram: { type: 'string' },
  'bins-per-decade': { type: 'string' },
  'log-y': { type: 'boolean' },
  'top-out': { type: 'string' },
  'acthist-out': { type: 'string' },
} as const;

/**
 * Parses and checks the command line (the arguments after the program name).
 *
 * @throws {UsageError} on an unknown option, a missing or bad value, no FILE, or options that
 *   contradict each other.
 */
export function parseCommandLine(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = process.env): CommandLine {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: {
        tensor: { type: 'string' },
        source: { type: 'string' },
        decoded: { type: 'string' },
        metrics: { type: 'string' },
        'l1-coefficient': { type: 'string' },
        'dead-threshold': { type: 'string' },
        components: { type: 'string' },
        workers: { type: 'string' },
        backend: { type: 'string' },
        'batch-rows': { type: 'string' },
        ...OUTPUT_OPTIONS,
        top: { type: 'string' },
        'dead-window': { type: 'string' },
        shard: { type: 'string' },
        'state-out': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'V' },
      },
    });
  } catch (error) {
    throw parseError(error);
  }
  const v = parsed.values;
  const help = v.help === true;
  const version = v.version === true;
  const files = parsed.positionals;
  if (!help && !version && files.length === 0) throw new UsageError('FILE', 'no activation file given (see sae-metrics --help)');

  // An explicit flag beats the environment; a value from the environment is named as such.
  const fromEnv = env[BACKEND_ENV] === '' ? undefined : env[BACKEND_ENV];
  const backendFrom = v.backend !== undefined ? '--backend' : fromEnv !== undefined ? BACKEND_ENV : undefined;
  const backend = v.backend ?? fromEnv ?? 'auto';
  if (!(BACKEND_NAMES as readonly string[]).includes(backend)) {
    throw new UsageError(backendFrom === '--backend' ? '--backend' : `${BACKEND_ENV} (environment)`, `must be one of ${BACKEND_NAMES.join(', ')}, got ${JSON.stringify(backend)}`);
  }
  const mode = env[GPUJS_MODE_ENV];
  if (mode !== undefined && mode !== '') {
    try {
      checkGpujsMode('sae-metrics', mode);
    } catch (error) {
      const message = (error as Error).message;
      throw new UsageError(`${GPUJS_MODE_ENV} (environment)`, message.slice(message.indexOf('must')).replace(/'/g, ''));
    }
  }
  if ((v.source === undefined) !== (v.decoded === undefined)) {
    throw new UsageError(v.source === undefined ? '--decoded' : '--source', 'needs --source and --decoded together');
  }
  for (const option of ['tensor', 'source', 'decoded'] as const) {
    if (v[option] === '') throw new UsageError(`--${option}`, 'must not be empty');
  }
  const outputs = checkOutputs(v);
  const topK = positiveInteger('top', v.top);
  if (topK !== undefined && topK > MAX_TOP_K) throw new UsageError('--top', `must be an integer in [1, ${MAX_TOP_K}], got ${JSON.stringify(v.top)}`);
  const shard = v.shard === undefined ? undefined : parseShard(v.shard);
  if (v['state-out'] === '') throw new UsageError('--state-out', 'must not be empty');
  // As for the other outputs: a path ending in .json cannot be an input FILE (.npy, .safetensors).
  if (v['state-out'] !== undefined && !/\.json$/i.test(v['state-out'])) {
    throw new UsageError('--state-out', `must be a path ending in .json, got ${JSON.stringify(v['state-out'])}`);
  }
  if (shard !== undefined && v['state-out'] === undefined) throw new UsageError('--shard', 'writes the shard\'s state: give --state-out PART.json too');
  if (shard === undefined && v['state-out'] !== undefined) throw new UsageError('--state-out', 'writes the state of a shard: give --shard I/N too (--shard 0/1 for the whole run)');
  if (shard !== undefined) {
    for (const option of ['json', 'histogram', 'top-out', 'acthist-out'] as const) {
      if (v[option] !== undefined) throw new UsageError(`--${option}`, `is an output of sae-metrics merge: give it there, not with --shard`);
    }
  }
  const deadWindow = positiveInteger('dead-window', v['dead-window']);
  const reconstruction = v.source !== undefined;
  let metrics: MetricName[];
  if (v.metrics === undefined) {
    metrics = reconstruction ? ['l1', 'l2', 'loss', 'l0', 'dead', 'density'] : ['l1', 'l0', 'dead', 'density'];
  } else {
    metrics = [];
    for (const raw of v.metrics.split(',')) {
      const name = raw.trim();
      if (!(METRIC_NAMES as readonly string[]).includes(name)) {
        throw new UsageError('--metrics', `unknown metric ${JSON.stringify(name)} (known: ${METRIC_NAMES.join(', ')})`);
      }
      if (!metrics.includes(name as MetricName)) metrics.push(name as MetricName);
    }
    const needs = metrics.filter((m) => RECONSTRUCTION_METRICS.includes(m));
    if (needs.length > 0 && !reconstruction) {
      throw new UsageError('--metrics', `${needs.join(' and ')} need${needs.length === 1 ? 's' : ''} --source and --decoded activations`);
    }
  }
  if (v.top !== undefined && !metrics.includes('top') && v['top-out'] === undefined) {
    throw new UsageError('--top', 'sets K of the top metric: give --metrics with top, or --top-out FILE.json');
  }
  if (deadWindow !== undefined && !metrics.includes('deadwindow')) {
    throw new UsageError('--dead-window', 'sets the window of the deadwindow metric: give --metrics with deadwindow');
  }
  return {
    help,
    version,
    files,
    tensor: v.tensor,
    source: v.source,
    decoded: v.decoded,
    metrics,
    l1Coefficient: finiteNumber('l1-coefficient', v['l1-coefficient'], 0.001, (x) => x >= 0, 'a number >= 0'),
    deadThreshold: finiteNumber('dead-threshold', v['dead-threshold'], 0, (x) => x >= 0 && x <= 1, 'a number in [0, 1]'),
    workers: positiveInteger('workers', v.workers),
    backend: backend as CommandLine['backend'],
    backendFrom,
    batchRows: positiveInteger('batch-rows', v['batch-rows']),
    components: positiveInteger('components', v.components),
    ...outputs,
    topK: topK ?? DEFAULT_TOP_K,
    deadWindow: deadWindow ?? DEFAULT_DEAD_WINDOW,
    shard,
    stateOut: v['state-out'],
  };
}

/** The output options, as parsed (`parseArgs`' values). */
interface OutputValues {
  readonly json?: boolean | undefined;
  readonly histogram?: string | undefined;
  readonly 'bins-per-decade'?: string | undefined;
  readonly 'log-y'?: boolean | undefined;
  readonly 'top-out'?: string | undefined;
  readonly 'acthist-out'?: string | undefined;
}

/** Checks the output options (the run's and the merge's). */
function checkOutputs(v: OutputValues): Pick<CommandLine, 'json' | 'histogram' | 'binsPerDecade' | 'logY' | 'topOut' | 'actHistOut'> {
  for (const option of ['histogram', 'top-out', 'acthist-out'] as const) {
    if (v[option] === '') throw new UsageError(`--${option}`, 'must not be empty');
  }
  if (v.histogram !== undefined && !/\.(svg|png)$/i.test(v.histogram)) {
    throw new UsageError('--histogram', `must be a path ending in .svg or .png, got ${JSON.stringify(v.histogram)}`);
  }
  if (v['top-out'] !== undefined && !/\.json$/i.test(v['top-out'])) {
    throw new UsageError('--top-out', `must be a path ending in .json, got ${JSON.stringify(v['top-out'])}`);
  }
  if (v['acthist-out'] !== undefined && !/\.json$/i.test(v['acthist-out'])) {
    throw new UsageError('--acthist-out', `must be a path ending in .json, got ${JSON.stringify(v['acthist-out'])}`);
  }
  // Both are .json: one file for both would fail only at the end, after the whole computation.
  if (v['top-out'] !== undefined && v['acthist-out'] !== undefined && resolve(v['top-out']) === resolve(v['acthist-out'])) {
    throw new UsageError('--acthist-out', `${JSON.stringify(v['acthist-out'])} is --top-out's file too: give each output its own path`);
  }
  const binsPerDecade = positiveInteger('bins-per-decade', v['bins-per-decade']);
  if (binsPerDecade !== undefined && binsPerDecade > 100) {
    throw new UsageError('--bins-per-decade', `must be an integer in [1, 100], got ${JSON.stringify(v['bins-per-decade'])}`);
  }
  for (const option of ['bins-per-decade', 'log-y'] as const) {
    if (v[option] !== undefined && v.histogram === undefined) throw new UsageError(`--${option}`, 'shapes the histogram: give --histogram OUT.svg too');
  }
  return {
    json: v.json === true,
    histogram: v.histogram,
    binsPerDecade: binsPerDecade ?? 4,
    logY: v['log-y'] === true,
    topOut: v['top-out'],
    actHistOut: v['acthist-out'],
  };
}

/** `--shard I/N`: I in [0, N), N in [1, {@link MAX_SHARDS}]. */
function parseShard(value: string): ShardSpec {
  const m = /^\s*(\d+)\s*\/\s*(\d+)\s*$/.exec(value);
  const index = m === null ? NaN : Number(m[1]);
  const count = m === null ? NaN : Number(m[2]);
  if (!Number.isSafeInteger(index) || !Number.isSafeInteger(count) || count < 1 || count > MAX_SHARDS) {
    throw new UsageError('--shard', `must be I/N with N an integer in [1, ${MAX_SHARDS}] and I in [0, N) (counted from 0), got ${JSON.stringify(value)}`);
  }
  if (index >= count) {
    throw new UsageError('--shard', `I counts from 0: it must be in [0, ${count - 1}] for N = ${count}, got ${JSON.stringify(value)}`);
  }
  return { index, count };
}

/** A checked `sae-metrics merge` command line. */
export interface MergeCommandLine extends Pick<CommandLine, 'json' | 'histogram' | 'binsPerDecade' | 'logY' | 'topOut' | 'actHistOut'> {
  readonly help: boolean;
  /** The part files, as given. */
  readonly parts: readonly string[];
}

/**
 * Parses and checks the arguments of `sae-metrics merge` (those after `merge`).
 *
 * @throws {UsageError} on an unknown option, a bad value, or no part file.
 */
export function parseMergeCommandLine(argv: readonly string[]): MergeCommandLine {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: true,
      options: {
        ...OUTPUT_OPTIONS,
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    throw parseError(error, 'sae-metrics merge --help');
  }
  const v = parsed.values;
  const help = v.help === true;
  if (!help && parsed.positionals.length === 0) throw new UsageError('PART.json', 'no part file given (see sae-metrics merge --help)');
  const outputs = checkOutputs(v);
  // The outputs are .json (or .svg, .png) as the parts are: one written over a part would lose it.
  const parts = new Set(parsed.positionals.map((p) => resolve(p)));
  for (const [option, out] of [['--histogram', outputs.histogram], ['--top-out', outputs.topOut], ['--acthist-out', outputs.actHistOut]] as const) {
    if (out !== undefined && parts.has(resolve(out))) throw new UsageError(option, `${JSON.stringify(out)} is one of the parts: write the output elsewhere`);
  }
  return { help, parts: parsed.positionals, ...outputs };
}
