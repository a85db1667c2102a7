/**
 * The computing half of `sae-metrics`: the worker pool, the metrics' definitions and the stream
 * over the inputs' leaves (all of them, or a shard's), shared by a whole run and a shard.
 *
 * @module
 */
import { availableParallelism } from 'node:os';
import { BACKEND_ENV } from '../pool/backend.js';
import type { MetricPool, MetricPoolOptions } from '../pool/metric-pool.js';
import type { CommandLine, MetricName } from './args.js';
import { CliError, UsageError } from './errors.js';
import type { Inputs } from './inputs.js';
import { LEAF_ROWS, type LeafRange } from './merge-tree.js';
import { ProgressBar, type ProgressStream } from './progress.js';
import { RECORD_METRICS } from './feature-stats.js';
import type { StreamProgress, StreamResult } from './stream.js';

/** Where the command writes, and (for tests) how it makes its pool. */
export interface RunIO {
  readonly stdout: { write(text: string): unknown; once?(event: 'drain', listener: () => void): unknown };
  /** stderr: errors, and the progress bar when `isTTY` is true. */
  readonly stderr: ProgressStream & { readonly isTTY?: boolean };
  /** Makes the worker pool (default {@link createMetricPool}). */
  readonly createPool?: (options: MetricPoolOptions) => MetricPool;
  /** The clock of the progress bar, in milliseconds (default `performance.now`). */
  readonly now?: () => number;
  /** Stops the run (Ctrl-C in `main.ts`): the results so far are printed, and the code is 130. */
  readonly signal?: AbortSignal;
  /** The environment the backend variables are read from (default `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Bytes of float32 data a default batch holds at most (all fields together). */
export const DEFAULT_BATCH_BYTES = 16 * 1024 * 1024;
/** Rows a default batch holds at most. */
export const MAX_DEFAULT_BATCH_ROWS = 4096;

/**
 * The default rows per batch: as many as fit in {@link DEFAULT_BATCH_BYTES} of float32 data (all
 * fields), at most {@link MAX_DEFAULT_BATCH_ROWS}, at least 1.
 */
export function defaultBatchRows(floatsPerRow: number): number {
  return Math.max(1, Math.min(MAX_DEFAULT_BATCH_ROWS, Math.floor(DEFAULT_BATCH_BYTES / (4 * floatsPerRow))));
}

/**
 * Bytes of the per-feature state: the exact fired count of every feature of every component, a
 * float64 each (what dead, density, fired and the histogram are computed from).
 */
export function stateBytes(inputs: Pick<Inputs, 'components' | 'features'>): number {
  return 8 * inputs.components * inputs.features;
}

/** Floats of one row of the inputs (all fields). */
export function floatsPerRow(inputs: Pick<Inputs, 'components' | 'features' | 'inputFeatures'>): number {
  return inputs.components * (inputs.features + 2 * (inputs.inputFeatures ?? 0));
}

/**
 * The rows a leaf's partial state is folded from, which the bits depend on: a whole leaf
 * ({@link LEAF_ROWS}) when a batch holds a leaf or more, else pieces of `batchRows` rows.
 */
export function leafPieceRows(batchRows: number): number {
  return Math.min(LEAF_ROWS, batchRows);
}

/**
 * Makes the pool. An explicit `--backend` beats `SAE_METRICS_BACKEND`, which the pool obeys over
 * its options (as the library documents): with the flag, the pool is made with the variable
 * hidden. A failure names where the backend came from.
 */
function startPool(cl: CommandLine, create: (options: MetricPoolOptions) => MetricPool, options: MetricPoolOptions): MetricPool {
  const saved = process.env[BACKEND_ENV];
  const hide = cl.backendFrom === '--backend' && saved !== undefined;
  try {
    if (hide) delete process.env[BACKEND_ENV];
    return create(options);
  } catch (error) {
    const subject = cl.backendFrom === BACKEND_ENV ? `${BACKEND_ENV} (environment)` : (cl.backendFrom ?? 'the worker pool');
    throw new CliError(subject, `cannot start the worker pool with backend ${cl.backend}: ${(error as Error).message}`);
  } finally {
    if (hide) process.env[BACKEND_ENV] = saved;
  }
}

/** What {@link computeStates} computed, and how. */
export interface ComputedStates {
  readonly result: StreamResult;
  readonly backend: string;
  /** The gpu.js mode, with the gpujs backend. */
  readonly gpujsMode: string | undefined;
  readonly workers: number;
  readonly batchRows: number;
  readonly elapsedSeconds: number;
}

/**
 * Refuses `--top K` too large for inputs of `components` x `features` with a usage error (exit 2):
 * K is the command line's. Checked before any input is read (the coordinator) or computed.
 */
export async function checkTopK(topK: number, components: number, features: number, computed: readonly MetricName[]): Promise<void> {
  if (!computed.includes('top')) return;
  const { MAX_TOP_VALUES } = await import('../functional/top-activations.js');
  const slots = components * features * topK;
  if (slots > MAX_TOP_VALUES) {
    throw new UsageError(
      '--top',
      `K = ${topK} is too large for ${components === 1 ? '' : `${components} components x `}${features} features: top keeps components x features x K values, at most ${MAX_TOP_VALUES}, got ${slots}`,
    );
  }
}

/**
 * Computes the states of the `computed` metrics over `leaves` of `inputs` (default: all), with a
 * worker pool made for the command line (closed before it returns) and, when stderr is a terminal
 * and `progress` is true, a progress bar (cleared at the end).
 */
export async function computeStates(
  cl: CommandLine,
  inputs: Inputs,
  computed: readonly MetricName[],
  io: RunIO,
  options: { readonly leaves?: LeafRange; readonly progress: boolean; readonly totalRows: number },
): Promise<ComputedStates> {
  // The pool, the metrics and the workers load only now: a bad command line or file fails fast.
  const [{ createMetricPool }, { buildDefinitions, PER_FEATURE }, { liveBatchLimit, streamParts }] = await Promise.all([
    import('../pool/metric-pool.js'),
    import('./metrics.js'),
    import('./stream.js'),
  ]);
  await checkTopK(cl.topK, inputs.components, inputs.features, computed);
  const started = performance.now();
  const rowFloats = floatsPerRow(inputs);
  const batchRows = cl.batchRows ?? defaultBatchRows(rowFloats);
  const workers = cl.workers ?? availableParallelism();
  let pool: MetricPool | undefined;
  let progress: ProgressBar | undefined;
  try {
    // Shards of a fixed size (the leaves), whatever the number of workers: the results are the
    // same bits with any --workers (a batch of default size has up to 4 leaves; batches run in
    // parallel too).
    pool = startPool(cl, io.createPool ?? createMetricPool, { workers, backend: cl.backend, shardRows: LEAF_ROWS });
    const definitions = buildDefinitions(computed, inputs, cl);
    if (options.progress && io.stderr.isTTY === true) {
      progress = new ProgressBar(io.stderr, { total: options.totalRows, files: cl.files, ...(io.now === undefined ? {} : { now: io.now }) });
    }
    const bar = progress;
    // A batch's per-feature partial state: S (8 bytes a feature), with deadwindow one more S (its
    // last-fired rows), with top up to K entries of 12 bytes and 24 bytes of bookkeeping a feature,
    // with actstats 4 more S (its moments), with acthist the cells its fired entries touched (12
    // bytes a cell, at most one a learned value, at most 82 S).
    const perFeature = computed.some((m) => PER_FEATURE.includes(m) || m === 'dead' || m === 'deadwindow' || RECORD_METRICS.includes(m));
    const actHistCells = computed.includes('acthist') ? Math.min(82 * stateBytes(inputs), 12 * batchRows * inputs.components * inputs.features) : 0;
    const perFeatureBytes = perFeature
      ? stateBytes(inputs) * (1 + (computed.includes('deadwindow') ? 1 : 0) + (computed.includes('top') ? (12 * cl.topK + 24) / 8 : 0) + (computed.includes('actstats') ? 4 : 0)) + actHistCells
      : 0;
    const result = await streamParts(inputs, [...definitions.values()], {
      pool,
      batchRows,
      maxLiveBatches: liveBatchLimit(4 * batchRows * rowFloats, perFeatureBytes, pool.maxInFlight),
      ...(options.leaves === undefined ? {} : { leaves: options.leaves }),
      ...(io.signal === undefined ? {} : { signal: io.signal }),
      ...(bar === undefined ? {} : { onProgress: (p: StreamProgress) => bar.update(p.vectors, p.bytes, p.file) }),
    });
    return { result, backend: pool.backend, gpujsMode: pool.gpujsMode, workers: pool.workers, batchRows, elapsedSeconds: (performance.now() - started) / 1000 };
  } finally {
    progress?.clear();
    await pool?.close().catch(() => undefined);
  }
}
