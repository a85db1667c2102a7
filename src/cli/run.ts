/**
 * The `sae-metrics` command, callable in-process: {@link run} takes the arguments and the output
 * streams and returns the exit code. `main.ts` calls it with the process's own.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { BACKEND_ENV } from '../pool/backend.js';
import type { MetricPool, MetricPoolOptions } from '../pool/metric-pool.js';
import { DEFAULT_SHARD_ROWS } from '../pool/plan.js';
import { parseCommandLine, USAGE, type CommandLine, type MetricName } from './args.js';
import { CliError, errorLine } from './errors.js';
import { densityHistogram, densityStats, histogramSvg, type DensityStats } from './histogram.js';
import { openInputs, type Inputs } from './inputs.js';
import { prepareOutput, type PreparedOutput } from './output.js';
import type { PngRenderer } from './png.js';
import { groupDigits } from './numbers.js';
import { ProgressBar, type ProgressStream } from './progress.js';
import type { RecordDefinition, TensorDefinition } from './metrics.js';
import { actHistJson, recordValues, RECORD_METRICS } from './feature-stats.js';
import type { FeatureActivationHistogramResult } from '../functional/feature-activation-histogram.js';
import type { StreamProgress } from './stream.js';
import { byComponent, splitComponents, tableReport, writeJsonReport, type ReportValues, type RunInfo } from './report.js';

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

/**
 * Runs `sae-metrics` with `argv` (the arguments after the program name). Writes the report to
 * `io.stdout` and nothing else there; writes one line to `io.stderr` on an error (and the
 * progress bar when it is a terminal and the output is not JSON). Output paths are checked before
 * any input is read; computed results are always printed, even when the histogram cannot be
 * written. When `io.signal` aborts (Ctrl-C), no more batches are read, the ones read are folded
 * in, and the results so far are printed (or it says that nothing was computed).
 *
 * @returns the exit code: 0 done, 1 bad input or run-time error, 2 bad command line, 130
 *   interrupted.
 */
export async function run(argv: readonly string[], io: RunIO): Promise<number> {
  let inputs: Inputs | undefined;
  let pool: MetricPool | undefined;
  let progress: ProgressBar | undefined;
  let histogramFile: PreparedOutput | undefined;
  let topFile: PreparedOutput | undefined;
  let actHistFile: PreparedOutput | undefined;
  try {
    const cl = parseCommandLine(argv, io.env ?? process.env);
    if (cl.help) {
      io.stdout.write(USAGE);
      return 0;
    }
    if (cl.version) {
      io.stdout.write(`sae-metrics ${packageVersion()}\n`);
      return 0;
    }
    // An output that cannot be written fails now, not after the whole computation.
    let renderPng: PngRenderer | undefined;
    if (cl.histogram !== undefined) {
      if (/\.png$/i.test(cl.histogram)) renderPng = await (await import('./png.js')).loadPngRenderer(cl.histogram);
      histogramFile = await prepareOutput(cl.histogram, 'the histogram');
    }
    if (cl.topOut !== undefined) topFile = await prepareOutput(cl.topOut, 'the top activations');
    if (cl.actHistOut !== undefined) actHistFile = await prepareOutput(cl.actHistOut, 'the activation histograms');
    inputs = await openInputs(cl);
    // The pool, the metrics and the workers load only now: a bad command line or file fails fast.
    const [{ createMetricPool }, { buildDefinitions, PER_FEATURE, topDefinition }, { liveBatchLimit, stateOf, streamParts }] = await Promise.all([
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
    pool = startPool(cl, io.createPool ?? createMetricPool, { workers, backend: cl.backend, shardRows: DEFAULT_SHARD_ROWS });
    const names = cl.metrics;
    // The histogram needs the fired counts, which dead computes from.
    const computed: MetricName[] = [...names];
    if (cl.histogram !== undefined && !computed.includes('dead')) computed.push('dead');
    if (cl.topOut !== undefined && !computed.includes('top')) computed.push('top');
    if (cl.actHistOut !== undefined && !computed.includes('acthist')) computed.push('acthist');
    const definitions = buildDefinitions(computed, inputs, cl);
    if (io.stderr.isTTY === true && !cl.json) {
      progress = new ProgressBar(io.stderr, { total: inputs.vectors, files: cl.files, ...(io.now === undefined ? {} : { now: io.now }) });
    }
    const bar = progress;
    // A batch's per-feature partial state: S (8 bytes a feature), with top up to K entries of 12
    // bytes and 24 bytes of bookkeeping a feature, with actstats 4 more S (its moments), with
    // acthist 82 more S (its counts).
    const perFeature = computed.some((m) => PER_FEATURE.includes(m) || m === 'dead' || m === 'deadwindow' || RECORD_METRICS.includes(m));
    const perFeatureBytes = perFeature
      ? stateBytes(inputs) *
        (1 + (computed.includes('top') ? (12 * cl.topK + 24) / 8 : 0) + (computed.includes('actstats') ? 4 : 0) + (computed.includes('acthist') ? 82 : 0))
      : 0;
    const result = await streamParts(inputs, [...definitions.values()], {
      pool,
      batchRows,
      maxLiveBatches: liveBatchLimit(4 * batchRows * floatsPerRow, perFeatureBytes, pool.maxInFlight),
      ...(io.signal === undefined ? {} : { signal: io.signal }),
      ...(bar === undefined ? {} : { onProgress: (p: StreamProgress) => bar.update(p.vectors, p.bytes, p.file) }),
    });
    progress?.clear();
    if (result.vectors === 0) {
      io.stderr.write('sae-metrics: interrupted: nothing was computed\n');
      return 130;
    }
    const elapsedSeconds = (performance.now() - started) / 1000;
    const components = inputs.components;
    // Values are computed when reported, one at a time.
    const valueOf = (name: MetricName): ReportValues => {
      if (RECORD_METRICS.includes(name)) {
        const d = definitions.get(name) as RecordDefinition;
        return recordValues(name, d.compute(stateOf(d, result.parts)), components);
      }
      const d = definitions.get(name) as TensorDefinition;
      return byComponent(d.compute(stateOf(d, result.parts)), components, PER_FEATURE.includes(name));
    };
    // The exact fired counts of each component, as streamed (the state dead, density and fired share).
    const firedDefinition = definitions.get('dead') ?? definitions.get('density') ?? definitions.get('fired');
    const fired =
      firedDefinition === undefined
        ? undefined
        : splitComponents((stateOf(firedDefinition, result.parts).parts as { firedCount: { fired: Float64Array } }).firedCount.fired, components);
    const stats: DensityStats[] | undefined = names.includes('density') && fired !== undefined ? fired.map((f) => densityStats(f, result.vectors)) : undefined;

    // The histogram goes first (the report's last line says where it went); if it cannot be
    // written, the report is printed all the same, then the error.
    let histogramError: unknown;
    if (histogramFile !== undefined) {
      try {
        const componentAxis = inputs.componentAxis;
        const options = { binsPerDecade: cl.binsPerDecade, deadThreshold: cl.deadThreshold };
        const panels = (fired as Float64Array[]).map((f, c) => ({ label: componentAxis ? `component ${c}` : '', histogram: densityHistogram(f, result.vectors, options) }));
        const svg = histogramSvg(panels, {
          title: cl.files.length === 1 ? (cl.files[0] as string) : `${cl.files.length} files`,
          tensor: inputs.segments[0]?.learned.name,
          interrupted: result.interrupted,
          totalVectors: inputs.vectors,
          logY: cl.logY,
        });
        await histogramFile.commit(renderPng === undefined ? svg : renderPng(svg));
      } catch (error) {
        histogramError = error;
      }
    }
    // Written the same way: a failure is reported after the results.
    let topError: unknown;
    if (topFile !== undefined) {
      try {
        const { topActivationsJson } = await import('./top-json.js');
        const d = topDefinition(inputs, cl.topK);
        const files = inputs.segments.map((g) => ({ path: g.learned.path, tensor: g.learned.name, rows: g.rows }));
        const text = topActivationsJson(d.compute(stateOf(d, result.parts) as Parameters<typeof d.compute>[0]), {
          k: cl.topK,
          componentAxis: inputs.componentAxis,
          components,
          features: inputs.features,
          interrupted: result.interrupted,
          files,
        });
        await topFile.commit(text);
      } catch (error) {
        topError = error;
      }
    }
    let actHistError: unknown;
    if (actHistFile !== undefined) {
      try {
        const d = definitions.get('acthist') as RecordDefinition;
        const histograms = d.compute(stateOf(d, result.parts)) as unknown as FeatureActivationHistogramResult;
        const { lowLog10, highLog10, binsPerDecade } = d.config as { lowLog10: number; highLog10: number; binsPerDecade: number };
        const text = actHistJson(histograms, {
          files: cl.files,
          tensor: inputs.segments[0]?.learned.name,
          vectors: result.vectors,
          componentAxis: inputs.componentAxis,
          lowLog10,
          highLog10,
          binsPerDecade,
        });
        await actHistFile.commit(text);
      } catch (error) {
        actHistError = error;
      }
    }
    const info: RunInfo = {
      files: cl.files,
      tensor: inputs.segments[0]?.learned.name,
      source: cl.source,
      decoded: cl.decoded,
      vectors: result.vectors,
      totalVectors: inputs.vectors,
      interrupted: result.interrupted,
      componentAxis: inputs.componentAxis,
      components: inputs.components,
      features: inputs.features,
      inputFeatures: inputs.inputFeatures,
      dtypes: inputs.dtypes,
      backend: pool.backend,
      workers: pool.workers,
      batchRows,
      batches: result.batches,
      bytes: result.bytes,
      elapsedSeconds,
      l1Coefficient: cl.l1Coefficient,
      deadThreshold: cl.deadThreshold,
      histogram: histogramFile !== undefined && histogramError === undefined ? cl.histogram : undefined,
      topK: cl.topK,
      deadWindow: cl.deadWindow,
      topOut: topFile !== undefined && topError === undefined ? cl.topOut : undefined,
      actHist: actHistFile !== undefined && actHistError === undefined ? cl.actHistOut : undefined,
    };
    if (cl.json) await writeJsonReport(info, names, valueOf, stats, (text) => writeOut(io.stdout, text));
    else await writeOut(io.stdout, tableReport(info, names, valueOf, stats));
    if (histogramError !== undefined) io.stderr.write(`${errorLine(histogramError)}\n`);
    if (topError !== undefined) io.stderr.write(`${errorLine(topError)}\n`);
    if (actHistError !== undefined) io.stderr.write(`${errorLine(actHistError)}\n`);
    if (result.interrupted) {
      io.stderr.write(`sae-metrics: interrupted: the results are over the first ${groupDigits(result.vectors)} of ${groupDigits(inputs.vectors)} vectors\n`);
      return 130;
    }
    const outputError = histogramError ?? topError ?? actHistError;
    return outputError === undefined ? 0 : outputError instanceof CliError ? outputError.exitCode : 1;
  } catch (error) {
    progress?.clear();
    io.stderr.write(`${errorLine(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  } finally {
    await histogramFile?.discard();
    await topFile?.discard();
    await actHistFile?.discard();
    await pool?.close().catch(() => undefined);
    await inputs?.close();
  }
}
