/**
 * The end of a run and of a merge: the report (table or JSON) and the output files (the density
 * histogram, `--top-out`, `--acthist-out`), made from the states of the metrics' parts. A run and
 * the merge of its shards go through this same code, so the same states print the same bytes.
 *
 * @module
 */
import type { FeatureActivationHistogramResult } from '../functional/feature-activation-histogram.js';
import type { CommandLine, MetricName } from './args.js';
import { CliError, errorLine } from './errors.js';
import { actHistJson, recordValues, RECORD_METRICS } from './feature-stats.js';
import { densityHistogram, densityStats, histogramSvg, type DensityStats } from './histogram.js';
import { buildDefinitions, PER_FEATURE, topDefinition, type RecordDefinition, type TensorDefinition } from './metrics.js';
import { groupDigits } from './numbers.js';
import { prepareOutput, type PreparedOutput } from './output.js';
import type { PngRenderer } from './png.js';
import { byComponent, splitComponents, tableReport, writeJsonReport, type ReportValues, type RunInfo } from './report.js';
import { stateOf } from './stream.js';

/** The options of the metrics, as the command line gives them. */
export type MetricOptions = Pick<CommandLine, 'l1Coefficient' | 'deadThreshold' | 'topK' | 'deadWindow'>;

/** The shape of the inputs, which the metrics' definitions are built for. */
export interface InputShape {
  readonly componentAxis: boolean;
  readonly components: number;
  readonly features: number;
  readonly inputFeatures: number | undefined;
}

/** What the results are over: the inputs, as the report and the output files describe them. */
export interface ResultInputs extends InputShape {
  readonly files: readonly string[];
  readonly tensor: string | undefined;
  readonly source: string | undefined;
  readonly decoded: string | undefined;
  readonly dtypes: readonly string[];
  /** Each FILE in order: its path, tensor and rows (`--top-out` maps vectors back to them). */
  readonly segments: readonly { readonly path: string; readonly tensor: string | undefined; readonly rows: number }[];
  /** Vectors in all files. */
  readonly totalVectors: number;
}

/** How the states were computed, for the report's description. */
export type RunFacts = Pick<RunInfo, 'vectors' | 'interrupted' | 'backend' | 'workers' | 'batchRows' | 'batches' | 'bytes' | 'elapsedSeconds'>;

/** The output files, prepared (checked and opened) before any input is read. */
export interface PreparedOutputs {
  readonly histogram?: { readonly file: PreparedOutput; readonly renderPng: PngRenderer | undefined };
  readonly top?: PreparedOutput;
  readonly actHist?: PreparedOutput;
  /** Removes the temporary files of the outputs not written. */
  discard(): Promise<void>;
}

/** What the report is asked for: the command line's output options. */
export type OutputOptions = Pick<CommandLine, 'json' | 'histogram' | 'binsPerDecade' | 'logY' | 'topOut' | 'actHistOut'>;

/**
 * Checks the output paths and makes their temporary files: an output that cannot be written fails
 * now, not after the whole computation.
 *
 * @throws {CliError} naming the path (or the PNG renderer) and the problem.
 */
export async function prepareOutputs(o: OutputOptions): Promise<PreparedOutputs> {
  const made: PreparedOutput[] = [];
  const discard = async (): Promise<void> => {
    await Promise.all(made.map((f) => f.discard()));
  };
  try {
    let histogram: PreparedOutputs['histogram'];
    if (o.histogram !== undefined) {
      let renderPng: PngRenderer | undefined;
      if (/\.png$/i.test(o.histogram)) renderPng = await (await import('./png.js')).loadPngRenderer(o.histogram);
      const file = await prepareOutput(o.histogram, 'the histogram');
      made.push(file);
      histogram = { file, renderPng };
    }
    const top = o.topOut === undefined ? undefined : await prepareOutput(o.topOut, 'the top activations');
    if (top !== undefined) made.push(top);
    const actHist = o.actHistOut === undefined ? undefined : await prepareOutput(o.actHistOut, 'the activation histograms');
    if (actHist !== undefined) made.push(actHist);
    return { ...(histogram === undefined ? {} : { histogram }), ...(top === undefined ? {} : { top }), ...(actHist === undefined ? {} : { actHist }), discard };
  } catch (error) {
    await discard();
    throw error;
  }
}

/**
 * The metrics computed for the report's metrics `names` and its outputs: the histogram needs the
 * fired counts (which dead computes from), `--top-out` top's state, `--acthist-out` acthist's.
 */
export function computedMetrics(names: readonly MetricName[], o: Pick<OutputOptions, 'histogram' | 'topOut' | 'actHistOut'>): MetricName[] {
  const computed: MetricName[] = [...names];
  if (o.histogram !== undefined && !computed.includes('dead')) computed.push('dead');
  if (o.topOut !== undefined && !computed.includes('top')) computed.push('top');
  if (o.actHistOut !== undefined && !computed.includes('acthist')) computed.push('acthist');
  return computed;
}

/** Where a stream writes: `write` may return false, then `once('drain')` says when to go on. */
export interface ReportStream {
  write(text: string): unknown;
  once?(event: 'drain', listener: () => void): unknown;
}

/** Writes to the output, waiting for it to drain when it asks to (a slow pipe). */
async function writeOut(out: ReportStream, text: string): Promise<void> {
  if (out.write(text) !== false || typeof out.once !== 'function') return;
  await new Promise<void>((resolve) => out.once?.('drain', resolve));
}

/** Everything the report and the output files are made from. */
export interface ResultsSource {
  /** The metrics of the report, in order. */
  readonly names: readonly MetricName[];
  /** The metrics whose states are in `parts` (see {@link computedMetrics}). */
  readonly computed: readonly MetricName[];
  readonly options: MetricOptions;
  readonly inputs: ResultInputs;
  /** The state of every distinct part of the computed metrics, by part id. */
  readonly parts: ReadonlyMap<string, unknown>;
  readonly run: RunFacts;
}

/**
 * Writes the output files, then the report to `io.stdout`, then on `io.stderr` a line for each
 * output file that could not be written (the report is printed all the same: computed results are
 * never lost) and, when interrupted, what the results are over.
 *
 * @returns the exit code: 0, 1 when an output file could not be written, 130 when interrupted.
 */
export async function writeResults(
  source: ResultsSource,
  output: OutputOptions,
  files: PreparedOutputs,
  io: { readonly stdout: ReportStream; readonly stderr: { write(text: string): unknown } },
): Promise<number> {
  const { names, inputs, run, parts, options } = source;
  const definitions = buildDefinitions(source.computed, inputs, options);
  const components = inputs.components;
  // Values are computed when reported, one at a time.
  const valueOf = (name: MetricName): ReportValues => {
    if (RECORD_METRICS.includes(name)) {
      const d = definitions.get(name) as RecordDefinition;
      return recordValues(name, d.compute(stateOf(d, parts)), components);
    }
    const d = definitions.get(name) as TensorDefinition;
    return byComponent(d.compute(stateOf(d, parts)), components, PER_FEATURE.includes(name));
  };
  // The exact fired counts of each component, as streamed (the state dead, density and fired share).
  const firedDefinition = definitions.get('dead') ?? definitions.get('density') ?? definitions.get('fired');
  const fired =
    firedDefinition === undefined
      ? undefined
      : splitComponents((stateOf(firedDefinition, parts).parts as { firedCount: { fired: Float64Array } }).firedCount.fired, components);
  const stats: DensityStats[] | undefined = names.includes('density') && fired !== undefined ? fired.map((f) => densityStats(f, run.vectors)) : undefined;

  // The histogram goes first (the report's last line says where it went); if it cannot be
  // written, the report is printed all the same, then the error.
  let histogramError: unknown;
  if (files.histogram !== undefined) {
    try {
      const histogramOptions = { binsPerDecade: output.binsPerDecade, deadThreshold: options.deadThreshold };
      const panels = (fired as Float64Array[]).map((f, c) => ({
        label: inputs.componentAxis ? `component ${c}` : '',
        histogram: densityHistogram(f, run.vectors, histogramOptions),
      }));
      const svg = histogramSvg(panels, {
        title: inputs.files.length === 1 ? (inputs.files[0] as string) : `${inputs.files.length} files`,
        tensor: inputs.segments[0]?.tensor,
        interrupted: run.interrupted,
        totalVectors: inputs.totalVectors,
        logY: output.logY,
      });
      const { file, renderPng } = files.histogram;
      await file.commit(renderPng === undefined ? svg : renderPng(svg));
    } catch (error) {
      histogramError = error;
    }
  }
  // Written the same way: a failure is reported after the results.
  let topError: unknown;
  if (files.top !== undefined) {
    try {
      const { topActivationsJson } = await import('./top-json.js');
      const d = topDefinition(inputs, options.topK);
      const text = topActivationsJson(d.compute(stateOf(d, parts) as Parameters<typeof d.compute>[0]), {
        k: options.topK,
        componentAxis: inputs.componentAxis,
        components,
        features: inputs.features,
        interrupted: run.interrupted,
        files: inputs.segments,
      });
      await files.top.commit(text);
    } catch (error) {
      topError = error;
    }
  }
  let actHistError: unknown;
  if (files.actHist !== undefined) {
    try {
      const d = definitions.get('acthist') as RecordDefinition;
      const histograms = d.compute(stateOf(d, parts)) as unknown as FeatureActivationHistogramResult;
      const { lowLog10, highLog10, binsPerDecade } = d.config as { lowLog10: number; highLog10: number; binsPerDecade: number };
      const text = actHistJson(histograms, {
        files: inputs.files,
        tensor: inputs.segments[0]?.tensor,
        vectors: run.vectors,
        componentAxis: inputs.componentAxis,
        lowLog10,
        highLog10,
        binsPerDecade,
      });
      await files.actHist.commit(text);
    } catch (error) {
      actHistError = error;
    }
  }
  const info: RunInfo = {
    files: inputs.files,
    tensor: inputs.segments[0]?.tensor,
    source: inputs.source,
    decoded: inputs.decoded,
    vectors: run.vectors,
    totalVectors: inputs.totalVectors,
    interrupted: run.interrupted,
    componentAxis: inputs.componentAxis,
    components: inputs.components,
    features: inputs.features,
    inputFeatures: inputs.inputFeatures,
    dtypes: inputs.dtypes,
    backend: run.backend,
    workers: run.workers,
    batchRows: run.batchRows,
    batches: run.batches,
    bytes: run.bytes,
    elapsedSeconds: run.elapsedSeconds,
    l1Coefficient: options.l1Coefficient,
    deadThreshold: options.deadThreshold,
    histogram: files.histogram !== undefined && histogramError === undefined ? output.histogram : undefined,
    topK: options.topK,
    deadWindow: options.deadWindow,
    topOut: files.top !== undefined && topError === undefined ? output.topOut : undefined,
    actHist: files.actHist !== undefined && actHistError === undefined ? output.actHistOut : undefined,
  };
  if (output.json) await writeJsonReport(info, names, valueOf, stats, (text) => writeOut(io.stdout, text));
  else await writeOut(io.stdout, tableReport(info, names, valueOf, stats));
  if (histogramError !== undefined) io.stderr.write(`${errorLine(histogramError)}\n`);
  if (topError !== undefined) io.stderr.write(`${errorLine(topError)}\n`);
  if (actHistError !== undefined) io.stderr.write(`${errorLine(actHistError)}\n`);
  if (run.interrupted) {
    io.stderr.write(`sae-metrics: interrupted: the results are over the first ${groupDigits(run.vectors)} of ${groupDigits(inputs.totalVectors)} vectors\n`);
    return 130;
  }
  const outputError = histogramError ?? topError ?? actHistError;
  return outputError === undefined ? 0 : outputError instanceof CliError ? outputError.exitCode : 1;
}
