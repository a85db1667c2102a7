/**
 * The feature statistics in the command's output (`freq`, `actstats`, `acthist`): their values are
 * records of tensors, shown in the table as one row per field, in `--json` as one object per
 * metric, and the per-feature histograms, too large for either, written by `--acthist-out` as JSON
 * a feature dashboard reads (see {@link actHistJson}).
 *
 * @module
 */
import type { FeatureActivationHistogramResult } from '../functional/feature-activation-histogram.js';
import { histogramQuantiles } from '../functional/feature-activation-histogram.js';
import type { Tensor } from '../tensor.js';
import type { MetricName } from './args.js';
import { formatNumber } from './numbers.js';
import { byComponent, type ComponentValues } from './report.js';

/** The command's names of the metrics whose value is a record of tensors. */
export const RECORD_METRICS: readonly MetricName[] = ['freq', 'actstats', 'acthist'];

/** The quantiles `--acthist-out` writes for each feature. */
export const ACTHIST_QUANTILES = [0.5, 0.9, 0.99] as const;

/** A record metric's value split by component: each field as {@link ComponentValues}. */
export type RecordValues = Readonly<Record<string, ComponentValues>>;

/** The table's label and meaning of each field. */
const FIELDS: Readonly<Record<string, readonly [string, string]>> = {
  aliveFraction: ['  alive', 'portion of features that fired at least once'],
  deadCount: ['  dead', 'features that never fired'],
  freqOver1Percent: ['  > 1%', 'portion of features with density above 0.01'],
  freqOver10Percent: ['  > 10%', 'portion of features with density above 0.1'],
  normalizedFreqOver1Percent: ['  > 1% share', 'share of all firings by the features above 0.01'],
  normalizedFreqOver10Percent: ['  > 10% share', 'share of all firings by the features above 0.1'],
  below1e5: ['  < 1e-5', 'features with density below 1e-5 (dead ones included)'],
  below1e6: ['  < 1e-6', 'features with density below 1e-6 (dead ones included)'],
  meanLog10Density: ['  log10', 'mean of log10(density + 1e-10) over features'],
  max: ['  max', 'per feature, the largest activation: median over features that fired'],
  mean: ['  mean', 'per feature, the mean activation where it fired: median over features that fired'],
  std: ['  std', 'per feature, the standard deviation where it fired: median over features that fired'],
  meanOverAll: ['  mean (all)', 'per feature, the mean activation over all vectors: median over features'],
};

/** A record metric's value by component: per-component fields as numbers, per-feature fields as arrays. */
export function recordValues(name: MetricName, value: Readonly<Record<string, Tensor>>, components: number): RecordValues {
  const out: Record<string, ComponentValues> = {};
  if (name === 'acthist') {
    const r = value as FeatureActivationHistogramResult;
    const slots = r.edges.data.length + 1;
    const counts = r.counts.data;
    const per = counts.length / components;
    const total = new Array<number>(components).fill(0);
    const under = new Array<number>(components).fill(0);
    const over = new Array<number>(components).fill(0);
    for (let i = 0; i < counts.length; i++) {
      const c = Math.floor(i / per);
      const n = counts[i] as number;
      total[c] = (total[c] as number) + n;
      if (i % slots === 0) under[c] = (under[c] as number) + n;
      if (i % slots === slots - 1) over[c] = (over[c] as number) + n;
    }
    return { firedActivations: total, underflow: under, overflow: over };
  }
  for (const [key, t] of Object.entries(value)) out[key] = byComponent(t, components, name === 'actstats');
  return out;
}

/** The median of the finite values (sorting a copy), NaN when there are none. */
function finiteMedian(values: Float64Array): number {
  const s = values.filter((x) => Number.isFinite(x)).sort();
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

/** The table's rows of a record metric: a heading row, then one row per field (a column per component). */
export function recordRows(name: MetricName, values: RecordValues, features: number, actHist: string | undefined): string[][] {
  const components = (Object.values(values)[0] as ComponentValues).length;
  const blank = new Array<string>(components).fill('');
  if (name === 'acthist') {
    const total = values.firedActivations as number[];
    const share = (k: string) => (values[k] as number[]).map((n, c) => `${formatNumber(n / (total[c] as number))}`);
    return [
      ['acthist', ...blank, `per-feature log10 histograms of fired activations${actHist === undefined ? ' (--acthist-out FILE.json writes them)' : `, written to ${actHist}`}`],
      ['  fired', ...total.map((n) => formatNumber(n)), 'fired activations binned'],
      ['  underflow', ...share('underflow'), 'share below the lowest edge (1e-4)'],
      ['  overflow', ...share('overflow'), 'share at or above the highest edge (1e4)'],
    ];
  }
  const rows: string[][] = [[name, ...blank, name === 'freq' ? 'feature frequency statistics' : 'feature activation statistics']];
  for (const [key, v] of Object.entries(values)) {
    const [label, meaning] = FIELDS[key] ?? [`  ${key}`, ''];
    const cells = (v as (number | Float64Array)[]).map((x) =>
      x instanceof Float64Array ? formatNumber(finiteMedian(x)) : key === 'deadCount' || key.startsWith('below') ? `${formatNumber(x)} / ${formatNumber(features)}` : formatNumber(x),
    );
    rows.push([label, ...cells, meaning]);
  }
  return rows;
}

/** JSON text of a number (non-finite numbers as strings, as the report writes them; NaN as null in the dashboard file). */
const num = (x: number): number | string => (Number.isFinite(x) ? x : String(x));

/** A record metric for `--json`: each field a number (or a per-component array, or per-feature arrays). */
export function recordJson(values: RecordValues, componentAxis: boolean): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, v] of Object.entries(values)) {
    const parts = (v as (number | Float64Array)[]).map((x) => (x instanceof Float64Array ? Array.from(x, num) : num(x)));
    out[key] = componentAxis ? parts : parts[0];
  }
  return out;
}

/** What `--acthist-out` describes the run by. */
export interface ActHistRun {
  readonly files: readonly string[];
  readonly tensor: string | undefined;
  readonly vectors: number;
  readonly componentAxis: boolean;
  readonly lowLog10: number;
  readonly highLog10: number;
  readonly binsPerDecade: number;
}

/**
 * The `--acthist-out` file: per-feature histograms of the fired activations, as JSON (schema in
 * the README, `format` `sae-metrics/feature-activation-histogram`, `version` 1), in pieces of a
 * few thousand features (a wide SAE's file can be longer than the longest string).
 */
export function* actHistJson(result: FeatureActivationHistogramResult, run: ActHistRun): Generator<string> {
  const edges = Array.from(result.edges.data);
  const slots = edges.length + 1;
  const counts = result.counts.data;
  const shape = result.counts.shape;
  const features = shape[shape.length - 2] as number;
  const components = counts.length / (features * slots);
  const quantiles = histogramQuantiles(result, ACTHIST_QUANTILES).data;
  const q = ACTHIST_QUANTILES.length;
  const head = JSON.stringify({
    format: 'sae-metrics/feature-activation-histogram',
    version: 1,
    files: run.files,
    tensor: run.tensor ?? null,
    vectors: run.vectors,
    lowLog10: run.lowLog10,
    highLog10: run.highLog10,
    binsPerDecade: run.binsPerDecade,
    quantileRelativeError: 10 ** (1 / (2 * run.binsPerDecade)) - 1,
    edges,
  });
  yield `${head.slice(0, -1)},"components":[\n`;
  for (let c = 0; c < components; c++) {
    yield `${c === 0 ? '' : ',\n'}{"component":${run.componentAxis ? c : 'null'},"features":[\n`;
    let piece: string[] = [];
    for (let f = 0; f < features; f++) {
      const k = c * features + f;
      const row = counts.subarray(k * slots, (k + 1) * slots);
      let fired = 0;
      for (const n of row) fired += n;
      const qs: Record<string, number | null> = {};
      ACTHIST_QUANTILES.forEach((p, i) => {
        const x = quantiles[k * q + i] as number;
        qs[String(p)] = Number.isNaN(x) ? null : x;
      });
      piece.push(
        JSON.stringify({ feature: f, fired, underflow: row[0], overflow: row[slots - 1], counts: Array.from(row.subarray(1, slots - 1)), quantiles: qs }),
      );
      if (piece.length === 4096 || f === features - 1) {
        yield `${f + 1 > piece.length ? ',\n' : ''}${piece.join(',\n')}`;
        piece = [];
      }
    }
    yield '\n]}';
  }
  yield '\n]}\n';
}
