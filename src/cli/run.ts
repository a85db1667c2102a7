/**
 * The `sae-metrics` command, callable in-process: {@link run} takes the arguments and the output
 * streams and returns the exit code. `main.ts` calls it with the process's own.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { availableParallelism } from 'node:os';
import type { MetricPool, MetricPoolOptions } from '../pool/metric-pool.js';
import { DEFAULT_SHARD_ROWS } from '../pool/plan.js';
import { parseCommandLine, USAGE, type MetricName } from './args.js';
import { CliError, errorLine } from './errors.js';
import { densityHistogram, histogramSvg, lowestEdge } from './histogram.js';
import { openInputs, type Inputs } from './inputs.js';
import { ProgressBar, type ProgressStream } from './progress.js';
import type { TensorDefinition } from './metrics.js';
import { byComponent, tableReport, writeJsonReport, type ComponentValues, type RunInfo } from './report.js';

/** Where the command writes, and (for tests) how it makes its pool. */
export interface RunIO {
  readonly stdout: { write(text: string): unknown; once?(event: 'drain', listener: () => void): unknown };
  /** stderr: errors, and the progress bar when `isTTY` is true. */
  readonly stderr: ProgressStream & { readonly isTTY?: boolean };
  /** Makes the worker pool (default {@link createMetricPool}). */
  readonly createPool?: (options: MetricPoolOptions) => MetricPool;
  /** The clock of the progress bar, in milliseconds (default `performance.now`). */
  readonly now?: () => number;
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

/** The package version, from the package.json above this module (in src/cli or dist/src/cli). */
export function packageVersion(): string {
  for (const up of ['../../package.json', '../../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(new URL(up, import.meta.url), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'sae-metrics' && typeof pkg.version === 'string') return pkg.version;
    } catch {
      // try the next level
    }
  }
  return 'unknown';
}

/**
 * Bytes of the per-feature state: the exact fired count of every feature of every component, a
 * float64 each (what dead, density, fired and the histogram are computed from).
 */
export function stateBytes(inputs: Pick<Inputs, 'components' | 'features'>): number {
  return 8 * inputs.components * inputs.features;
}

/** Writes to the output, waiting for it to drain when it asks to (a slow pipe). */
async function writeOut(out: RunIO['stdout'], text: string): Promise<void> {
  if (out.write(text) !== false || typeof out.once !== 'function') return;
  await new Promise<void>((resolve) => out.once?.('drain', resolve));
}

/**
 * Runs `sae-metrics` with `argv` (the arguments after the program name). Writes the report to
 * `io.stdout` and nothing else there; writes one line to `io.stderr` on an error (and the
 * progress bar when it is a terminal and the output is not JSON).
 *
 * @returns the exit code: 0 done, 1 bad input or run-time error, 2 bad command line.
 */
export async function run(argv: readonly string[], io: RunIO): Promise<number> {
  let inputs: Inputs | undefined;
  let pool: MetricPool | undefined;
  let progress: ProgressBar | undefined;
  try {
    const cl = parseCommandLine(argv);
    if (cl.help) {
      io.stdout.write(USAGE);
      return 0;
    }
    if (cl.version) {
      io.stdout.write(`sae-metrics ${packageVersion()}\n`);
      return 0;
    }
    inputs = await openInputs(cl);
    // The pool, the metrics and RxJS load only now: a bad command line or file fails fast.
    const [{ createMetricPool }, { buildDefinitions, PER_FEATURE }, { liveBatchLimit, stateOf, streamParts }] = await Promise.all([
      import('../pool/metric-pool.js'),
      import('./metrics.js'),
      import('./stream.js'),
    ]);
    const started = performance.now();
    const floatsPerRow = inputs.components * (inputs.features + 2 * (inputs.inputFeatures ?? 0));
    const batchRows = cl.batchRows ?? defaultBatchRows(floatsPerRow);
    const workers = cl.workers ?? availableParallelism();
    // Shards of a fixed size, whatever the number of workers: the results are the same bits with
    // any --workers (a batch of default size has up to 4 shards; batches run in parallel too).
    const poolOptions: MetricPoolOptions = { workers, backend: cl.backend, shardRows: DEFAULT_SHARD_ROWS };
    try {
      pool = (io.createPool ?? createMetricPool)(poolOptions);
    } catch (error) {
      throw new CliError('--backend', `cannot start the worker pool: ${(error as Error).message}`);
    }
    const names = cl.metrics;
    // The histogram needs the densities, computed (they share the fired counts) even when not shown.
    const computed: MetricName[] = cl.histogram !== undefined && !names.includes('density') ? [...names, 'density'] : [...names];
    const definitions = buildDefinitions(computed, inputs, cl);
    if (io.stderr.isTTY === true && !cl.json) {
      progress = new ProgressBar(io.stderr, { total: inputs.vectors, ...(io.now === undefined ? {} : { now: io.now }) });
    }
    const bar = progress;
    const perFeatureBytes = computed.some((m) => PER_FEATURE.includes(m) || m === 'dead') ? stateBytes(inputs) : 0;
    const result = await streamParts(inputs, [...definitions.values()], {
      pool,
      batchRows,
      maxLiveBatches: liveBatchLimit(4 * batchRows * floatsPerRow, perFeatureBytes, pool.maxInFlight),
      ...(bar === undefined ? {} : { onProgress: (p: { vectors: number; bytes: number }) => bar.update(p.vectors, p.bytes) }),
    });
    progress?.clear();
    const elapsedSeconds = (performance.now() - started) / 1000;
    const components = inputs.components;
    // Values are computed when reported, one at a time (density is kept for the histogram).
    let density: ComponentValues | undefined;
    const valueOf = (name: MetricName): ComponentValues => {
      if (name === 'density' && density !== undefined) return density;
      const d = definitions.get(name) as TensorDefinition;
      const value = byComponent(d.compute(stateOf(d, result.parts)), components, PER_FEATURE.includes(name));
      if (name === 'density' && cl.histogram !== undefined) density = value;
      return value;
    };

    if (cl.histogram !== undefined) {
      const densities = valueOf('density') as Float64Array[];
      const lo = densities.reduce((edge, d) => Math.min(edge, lowestEdge(d)), -0.25);
      const componentAxis = inputs.componentAxis;
      const panels = densities.map((d, c) => ({ label: componentAxis ? `component ${c}` : '', histogram: densityHistogram(d, 0.25, lo) }));
      const title = cl.files.length === 1 ? (cl.files[0] as string) : `${cl.files.length} files`;
      try {
        await writeFile(cl.histogram, histogramSvg(panels, { title, vectors: inputs.vectors }));
      } catch (error) {
        throw new CliError(cl.histogram, `cannot write the histogram (${(error as NodeJS.ErrnoException).code ?? (error as Error).message})`);
      }
    }
    const info: RunInfo = {
      files: cl.files,
      tensor: inputs.segments[0]?.learned.name,
      source: cl.source,
      decoded: cl.decoded,
      vectors: inputs.vectors,
      componentAxis: inputs.componentAxis,
      components: inputs.components,
      features: inputs.features,
      inputFeatures: inputs.inputFeatures,
      dtypes: inputs.dtypes,
      backend: pool.backend,
      workers: pool.workers,
      batchRows,
      batches: result.batches,
      bytes: inputs.bytes,
      elapsedSeconds,
      l1Coefficient: cl.l1Coefficient,
      deadThreshold: cl.deadThreshold,
      histogram: cl.histogram,
    };
    if (cl.json) await writeJsonReport(info, names, valueOf, (text) => writeOut(io.stdout, text));
    else await writeOut(io.stdout, tableReport(info, names, valueOf));
    return 0;
  } catch (error) {
    progress?.clear();
    io.stderr.write(`${errorLine(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  } finally {
    await pool?.close().catch(() => undefined);
    await inputs?.close();
  }
}
