/**
 * The output of `sae-metrics`: a table for people, or one JSON object for machines.
 *
 * @module
 */
import type { Tensor } from '../tensor.js';
import type { DensityStats } from './histogram.js';
import type { MetricName } from './args.js';
import { formatNumber, groupDigits } from './numbers.js';
import { RECORD_METRICS, recordJson, recordRows, type RecordValues } from './feature-stats.js';

/** What the run was over, for the report. */
export interface RunInfo {
  readonly files: readonly string[];
  readonly tensor: string | undefined;
  readonly source: string | undefined;
  readonly decoded: string | undefined;
  /** Vectors the values are over: all of them, unless the run was interrupted. */
  readonly vectors: number;
  /** Vectors in the files. */
  readonly totalVectors: number;
  /** Whether the run was stopped before the end (Ctrl-C). */
  readonly interrupted: boolean;
  readonly componentAxis: boolean;
  readonly components: number;
  readonly features: number;
  readonly inputFeatures: number | undefined;
  readonly dtypes: readonly string[];
  readonly backend: string;
  readonly workers: number;
  readonly batchRows: number;
  readonly batches: number;
  readonly bytes: number;
  readonly elapsedSeconds: number;
  readonly l1Coefficient: number;
  readonly deadThreshold: number;
  readonly histogram: string | undefined;
  /** `top`'s K. */
  readonly topK: number;
  /** `deadwindow`'s window, in vectors. */
  readonly deadWindow: number;
  /** Where the top activations were written, if they were. */
  readonly topOut?: string | undefined;
  /** Where `--acthist-out` wrote the per-feature activation histograms. */
  readonly actHist?: string | undefined;
}

/**
 * A metric's value split by component: C numbers for a per-component value (`[]` or `[C]`), or C
 * views of F numbers each for a per-feature value (`[F]` or `[C, F]`; views of the tensor's data,
 * not copies: a value may have millions of features).
 */
export type ComponentValues = number[] | Float64Array[];

/** A metric's value for the report: split by component, or a record of such (the feature statistics). */
export type ReportValues = ComponentValues | RecordValues;

/**
 * A metric value split by component (see {@link ComponentValues}).
 *
 * @throws {RangeError} when the value does not hold C (or C × F) numbers.
 */
export function byComponent(t: Tensor, components: number, perFeature: boolean): ComponentValues {
  const data = t.data instanceof Float64Array ? t.data : Float64Array.from(t.data);
  if (!perFeature) {
    if (data.length !== components) throw new RangeError(`byComponent: expected ${components} values, got shape [${t.shape.join(', ')}]`);
    return Array.from(data);
  }
  return splitComponents(data, components);
}

/**
 * `[C, F]` numbers, row-major, as C views of F numbers (not copies).
 *
 * @throws {RangeError} when they do not split into C parts.
 */
export function splitComponents(data: Float64Array, components: number): Float64Array[] {
  if (data.length % components !== 0) throw new RangeError(`splitComponents: ${data.length} values do not split into ${components} components`);
  const per = data.length / components;
  return Array.from({ length: components }, (_, c) => data.subarray(c * per, (c + 1) * per));
}

function jsonNumber(x: number): string {
  return Number.isFinite(x) ? JSON.stringify(x) : `"${String(x)}"`;
}

/** Numbers per piece of a long array written by {@link writeJsonReport}. */
const JSON_CHUNK = 1 << 16;

/** Writes an array of numbers as JSON, in pieces of {@link JSON_CHUNK} numbers. */
async function writeJsonArray(values: Float64Array, write: (text: string) => unknown): Promise<void> {
  await write('[');
  for (let i = 0; i < values.length; i += JSON_CHUNK) {
    const end = Math.min(values.length, i + JSON_CHUNK);
    const parts = new Array<string>(end - i);
    for (let j = i; j < end; j++) parts[j - i] = jsonNumber(values[j] as number);
    await write(`${i === 0 ? '' : ','}${parts.join(',')}`);
  }
  await write(']');
}

/**
 * Writes the JSON report: the run's description and every metric's full value, computed one
 * metric at a time by `valueOf` and written in pieces, so that a value of millions of numbers is
 * never one string. Values are per component arrays when the input has a component axis
 * (`[N, C, F]`); per-feature values (density, fired) are arrays of F numbers (or C such arrays).
 * Non-finite numbers are written as strings (`"NaN"`, `"Infinity"`), which JSON cannot hold.
 */
export async function writeJsonReport(
  info: RunInfo,
  names: readonly MetricName[],
  valueOf: (name: MetricName) => ReportValues,
  stats: readonly DensityStats[] | undefined,
  write: (text: string) => unknown,
): Promise<void> {
  const head = JSON.stringify({
    files: info.files,
    tensor: info.tensor ?? null,
    source: info.source ?? null,
    decoded: info.decoded ?? null,
    vectors: info.vectors,
    totalVectors: info.totalVectors,
    interrupted: info.interrupted,
    components: info.componentAxis ? info.components : null,
    features: info.features,
    inputFeatures: info.inputFeatures ?? null,
    dtypes: info.dtypes,
    backend: info.backend,
    workers: info.workers,
    batchRows: info.batchRows,
    batches: info.batches,
    bytes: info.bytes,
    elapsedSeconds: info.elapsedSeconds,
    l1Coefficient: info.l1Coefficient,
    deadThreshold: info.deadThreshold,
    ...(names.includes('top') ? { topK: info.topK } : {}),
    ...(names.includes('deadwindow') ? { deadWindow: info.deadWindow } : {}),
    densityStats: stats === undefined ? null : jsonStats(stats, info.componentAxis),
  });
  await write(`${head.slice(0, -1)},"metrics":{`);
  for (const [k, name] of names.entries()) {
    await write(`${k === 0 ? '' : ','}${JSON.stringify(name)}:`);
    if (RECORD_METRICS.includes(name)) {
      await write(JSON.stringify(recordJson(valueOf(name) as RecordValues, info.componentAxis)));
      continue;
    }
    const parts = valueOf(name) as ComponentValues;
    if (info.componentAxis) await write('[');
    for (const [c, v] of parts.entries()) {
      if (c > 0) await write(',');
      if (v instanceof Float64Array) await writeJsonArray(v, write);
      else await write(jsonNumber(v));
      if (!info.componentAxis) break;
    }
    if (info.componentAxis) await write(']');
  }
  await write('}}\n');
}

/** The table's rows of density summary counts, after the density row: label, value, meaning. */
const STATS_ROWS: readonly [string, (s: DensityStats) => number, string][] = [
  ['  < 1e-6', (s) => s.below1e6, 'features with density below 1e-6 (dead ones included)'],
  ['  < 1e-5', (s) => s.below1e5, 'features with density below 1e-5 (dead ones included)'],
  ['  > 0.01', (s) => s.above1e2, 'features with density above 0.01'],
  ['  > 0.1', (s) => s.above1e1, 'features with density above 0.1 (dense)'],
  ['  log10', (s) => s.meanLog10, 'mean of log10(density + 1e-10) over features'],
];

/** The density summary for JSON: one object, with a number per component for `[N, C, F]` input. */
function jsonStats(stats: readonly DensityStats[], componentAxis: boolean): Record<string, unknown> {
  const keys = { 'below1e-6': 'below1e6', 'below1e-5': 'below1e5', 'above1e-2': 'above1e2', 'above1e-1': 'above1e1', meanLog10: 'meanLog10' } as const;
  const out: Record<string, unknown> = {};
  for (const [key, field] of Object.entries(keys)) {
    const values = stats.map((s) => s[field]);
    out[key] = componentAxis ? values : values[0];
  }
  return out;
}

/** The median, sorting `values` in place (the command's values are fresh arrays, used once). */
function medianInPlace(values: Float64Array): number {
  const s = values.sort();
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function mean(values: Float64Array): number {
  let sum = 0;
  for (const v of values) sum += v;
  return sum / values.length;
}

/** The least and the greatest value, in one pass (no spread: a value may have millions of features). */
function range(values: Float64Array): [number, number] {
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of values) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  return [lo, hi];
}

function describeMetric(name: MetricName, info: RunInfo): string {
  switch (name) {
    case 'l1':
      return 'mean L1 norm of the learned activations (per vector)';
    case 'l2':
      return 'mean squared reconstruction error (decoded vs source)';
    case 'loss':
      return `l2 + ${info.l1Coefficient} * l1`;
    case 'l0':
      return 'mean number of non-zero learned activations (per vector)';
    case 'dead':
      return info.deadThreshold === 0
        ? 'features that never fired (x > 0), of all features'
        : `features that fired for at most ${info.deadThreshold} of the vectors`;
    case 'density':
      return 'portion of vectors each feature fired for: mean, median';
    case 'fired':
      return 'vectors each feature fired for: min, median, max';
    case 'ev':
      return 'explained variance: 1 - sum |x - x^|^2 / sum |x - mean x|^2';
    case 'fvu':
      return 'fraction of variance unexplained: sum_d Var(x - x^) / sum_d Var(x)';
    case 'cos':
      return 'mean cosine similarity of decoded and source (per vector)';
    case 'l2ratio':
      return 'mean |x^| / |x| (per vector; |x| < 1e-4 divides by 1)';
    case 'shrinkage':
      return 'relative reconstruction bias: sum |x^|^2 / sum <x, x^>';
    case 'nmse':
      return 'mean |x - x^|^2 / |x|^2 (per vector; |x| = 0 left out)';
    case 'top':
      return `largest activation of each feature that fired: min, median, max (top ${groupDigits(info.topK)} kept per feature)`;
    case 'deadwindow':
      return `features that fired (x > 0) on none of the last ${groupDigits(info.deadWindow)} vectors, of all features`;
    default:
      return '';
  }
}

/** A table cell; a per-feature value is summarised, then sorted in place for its median. */
function cell(name: MetricName, v: number | Float64Array, info: RunInfo): string {
  if (!(v instanceof Float64Array)) {
    return name === 'dead' || name === 'deadwindow' ? `${formatNumber(v)} / ${formatNumber(info.features)}` : formatNumber(v);
  }
  if (name === 'top') {
    // NaN: the feature never fired. Summarised over the features that did.
    const fired = v.filter((x) => !Number.isNaN(x));
    if (fired.length === 0) return 'none fired';
    const [lo, hi] = range(fired);
    return `${formatNumber(lo)}, ${formatNumber(medianInPlace(fired))}, ${formatNumber(hi)}`;
  }
  if (name === 'density') {
    const m = mean(v);
    return `${formatNumber(m)}, ${formatNumber(medianInPlace(v))}`;
  }
  const [lo, hi] = range(v);
  return `${formatNumber(lo)}, ${formatNumber(medianInPlace(v))}, ${formatNumber(hi)}`;
}

/** The first line of the table report: what was read, how fast. */
export function summaryLine(info: RunInfo): string {
  const shape = info.componentAxis ? `${info.components} components x ${groupDigits(info.features)} features` : `${groupDigits(info.features)} features`;
  const files = `${info.files.length === 1 ? (info.files[0] as string) : `${info.files.length} files`}${info.tensor === undefined ? '' : ` [${info.tensor}]`}`;
  const rate = info.elapsedSeconds > 0 ? info.bytes / info.elapsedSeconds / 1e9 : 0;
  const vectors = info.interrupted
    ? `${groupDigits(info.vectors)} of ${groupDigits(info.totalVectors)} vectors (interrupted)`
    : `${groupDigits(info.vectors)} vectors`;
  return `${files}: ${vectors}, ${shape} (${info.dtypes.map((d) => (d === 'F64' ? 'F64, converted to float32 as read' : d)).join(', ')}); backend ${info.backend}, ${info.workers} worker${info.workers === 1 ? '' : 's'}; ${info.elapsedSeconds.toFixed(2)} s, ${rate.toFixed(2)} GB/s`;
}

/**
 * The table report: a summary line, then one row per metric (a column per component when C > 1).
 * Values are computed one metric at a time by `valueOf` and summarised (a per-feature value is
 * shown by its mean and median, or min, median and max), so only one is alive at a time.
 */
export function tableReport(
  info: RunInfo,
  names: readonly MetricName[],
  valueOf: (name: MetricName) => ReportValues,
  stats?: readonly DensityStats[],
): string {
  const header = ['metric', ...(info.components > 1 ? Array.from({ length: info.components }, (_, c) => `component ${c}`) : ['value']), ''];
  const rows: string[][] = [header];
  for (const name of names) {
    if (RECORD_METRICS.includes(name)) {
      rows.push(...recordRows(name, valueOf(name) as RecordValues, info.features, info.actHist));
      continue;
    }
    rows.push([name, ...(valueOf(name) as (number | Float64Array)[]).map((x) => cell(name, x, info)), describeMetric(name, info)]);
    if (name === 'density' && stats !== undefined) {
      for (const [label, pick, meaning] of STATS_ROWS) {
        const counts = !label.includes('log10');
        rows.push([label, ...stats.map((s) => (counts ? `${formatNumber(pick(s))} / ${formatNumber(info.features)}` : formatNumber(pick(s)))), meaning]);
      }
    }
  }
  const widths = header.map((_, i) => rows.reduce((w, r) => Math.max(w, (r[i] ?? '').length), 0));
  const lines = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd());
  const extra = [
    ...(info.histogram === undefined ? [] : [`histogram written to ${info.histogram}`]),
    ...(info.topOut === undefined ? [] : [`top activations written to ${info.topOut}`]),
    ...(info.actHist === undefined ? [] : [`activation histograms written to ${info.actHist}`]),
  ];
  return `${[summaryLine(info), '', ...lines, ...extra].join('\n')}\n`;
}
