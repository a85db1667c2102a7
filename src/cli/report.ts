/**
 * The output of `sae-metrics`: a table for people, or one JSON object for machines.
 *
 * @module
 */
import type { Tensor } from '../tensor.js';
import type { MetricName } from './args.js';
import { groupDigits } from './progress.js';

/** What the run was over, for the report. */
export interface RunInfo {
  readonly files: readonly string[];
  readonly tensor: string | undefined;
  readonly source: string | undefined;
  readonly decoded: string | undefined;
  readonly vectors: number;
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
}

/** Per-metric values split by component: for each component, a number or (per feature) an array. */
export type ComponentValues = number[] | number[][];

/**
 * A metric value split by component: C numbers for a per-component value (`[]` or `[C]`), or C
 * arrays of F numbers for a per-feature value (`[F]` or `[C, F]`).
 *
 * @throws {RangeError} when the value does not hold C (or C × F) numbers.
 */
export function byComponent(t: Tensor, components: number, perFeature: boolean): ComponentValues {
  const data = Array.from(t.data);
  if (!perFeature) {
    if (data.length !== components) throw new RangeError(`byComponent: expected ${components} values, got shape [${t.shape.join(', ')}]`);
    return data;
  }
  if (data.length % components !== 0) throw new RangeError(`byComponent: ${data.length} values do not split into ${components} components`);
  const per = data.length / components;
  return Array.from({ length: components }, (_, c) => data.slice(c * per, (c + 1) * per));
}

function jsonNumber(x: number): number | string {
  return Number.isFinite(x) ? x : String(x);
}

function jsonValue(v: number | number[]): number | string | (number | string)[] {
  return Array.isArray(v) ? v.map(jsonNumber) : jsonNumber(v);
}

/**
 * The JSON report: the run's description and every metric's full value. Values are per component
 * arrays when the input has a component axis (`[N, C, F]`); per-feature values (density, fired)
 * are arrays of F numbers (or C such arrays). Non-finite numbers are written as strings
 * (`"NaN"`, `"Infinity"`), which JSON cannot hold.
 */
export function jsonReport(info: RunInfo, values: ReadonlyMap<MetricName, ComponentValues>): string {
  const metrics: Record<string, unknown> = {};
  for (const [name, v] of values) {
    const parts = (v as (number | number[])[]).map(jsonValue);
    metrics[name] = info.componentAxis ? parts : parts[0];
  }
  return `${JSON.stringify({
    files: info.files,
    tensor: info.tensor ?? null,
    source: info.source ?? null,
    decoded: info.decoded ?? null,
    vectors: info.vectors,
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
    metrics,
  })}\n`;
}

/** A number for the table: 6 significant digits, integers as they are. */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
  if (x !== 0 && (Math.abs(x) < 1e-4 || Math.abs(x) >= 1e9)) return x.toExponential(5);
  return x.toPrecision(6);
}

function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

function mean(values: readonly number[]): number {
  return values.reduce((a, b) => a + b, 0) / values.length;
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
  }
}

function cell(name: MetricName, v: number | number[], info: RunInfo): string {
  if (!Array.isArray(v)) return name === 'dead' ? `${formatNumber(v)} / ${info.features}` : formatNumber(v);
  if (name === 'density') return `${formatNumber(mean(v))}, ${formatNumber(median(v))}`;
  return `${formatNumber(Math.min(...v))}, ${formatNumber(median(v))}, ${formatNumber(Math.max(...v))}`;
}

/** The first line of the table report: what was read, how fast. */
export function summaryLine(info: RunInfo): string {
  const shape = info.componentAxis ? `${info.components} components x ${groupDigits(info.features)} features` : `${groupDigits(info.features)} features`;
  const files = `${info.files.length === 1 ? (info.files[0] as string) : `${info.files.length} files`}${info.tensor === undefined ? '' : ` [${info.tensor}]`}`;
  const rate = info.elapsedSeconds > 0 ? info.bytes / info.elapsedSeconds / 1e9 : 0;
  return `${files}: ${groupDigits(info.vectors)} vectors, ${shape} (${info.dtypes.join(', ')}); backend ${info.backend}, ${info.workers} workers; ${info.elapsedSeconds.toFixed(2)} s, ${rate.toFixed(2)} GB/s`;
}

/** The table report: a summary line, then one row per metric (a column per component when C > 1). */
export function tableReport(info: RunInfo, values: ReadonlyMap<MetricName, ComponentValues>): string {
  const header = ['metric', ...(info.components > 1 ? Array.from({ length: info.components }, (_, c) => `component ${c}`) : ['value']), ''];
  const rows: string[][] = [header];
  for (const [name, v] of values) {
    rows.push([name, ...(v as (number | number[])[]).map((x) => cell(name, x, info)), describeMetric(name, info)]);
  }
  const widths = header.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  const lines = rows.map((r) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] as number))).join('  ').trimEnd());
  const extra = info.histogram === undefined ? [] : [`histogram written to ${info.histogram}`];
  return `${[summaryLine(info), '', ...lines, ...extra].join('\n')}\n`;
}
