/**
 * The feature statistics in the compiled `sae-metrics` command: `--metrics freq,actstats,acthist`
 * in `--json` against the library's classes on the same data, their rows in the table, the
 * `--acthist-out` file (its schema, its counts against `FeatureActivationHistogram`, its quantiles
 * against `histogramQuantiles`), and a bad `--acthist-out` refused before any input is read.
 */
import { existsSync, readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureFrequencyStats,
  tensor,
  type Tensor,
} from '../../src/index.js';
import { featureActivationHistogram, histogramQuantiles } from '../../src/functional/index.js';
import { actHistJson } from '../../src/cli/feature-stats.js';
import { npyBytes, scratchDir, sparseActivations, write } from './files.js';
import { cli, limited, requireBuilt } from './run-cli.js';

const tmp = scratchDir();
afterAll(() => tmp.remove());
const f = (name: string): string => tmp.path(name);

// [600, 20] with a dead feature in every 6, and [300, 2, 7]; values k/256 with k in [1, 1023] (some negative).
const A = { data: sparseActivations(600, 20, 51, { deadEvery: 6 }), shape: [600, 20] };
const C = { data: sparseActivations(300 * 2 * 7, 1, 52, { features: 14 }), shape: [300, 2, 7] };

beforeAll(() => {
  requireBuilt();
  write(f('a.npy'), npyBytes(A.data, A.shape));
  write(f('c.npy'), npyBytes(C.data, C.shape));
});

/** A tensor's values as nested arrays, NaN written as the report writes it ("NaN"). */
function asJson(t: Tensor): unknown {
  return JSON.parse(JSON.stringify(t.toArray(), (_k, v: unknown) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
}

/** Paths where `actual` and `expected` differ: numbers by more than 1e-12 relative. */
function differences(actual: unknown, expected: unknown, path = ''): string[] {
  if (typeof expected === 'number') {
    const ok = typeof actual === 'number' && (actual === expected || Math.abs(actual - expected) <= 1e-12 * Math.abs(expected));
    return ok ? [] : [`${path}: ${JSON.stringify(actual)} vs ${expected}`];
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return [`${path}: not an array of ${expected.length}`];
    return expected.flatMap((e, i) => differences(actual[i], e, `${path}[${i}]`));
  }
  return actual === expected ? [] : [`${path}: ${JSON.stringify(actual)} vs ${JSON.stringify(expected)}`];
}

describe('sae-metrics freq, actstats, acthist', () => {
  for (const [name, d] of [['a.npy', A], ['c.npy', C]] as const) {
    it(`${name}: --json values equal the library's classes on the same data; --acthist-out holds every feature's histogram`, async () => {
      const out = f(`${name}.hist.json`);
      const run = await cli([f(name), '--metrics', 'freq,actstats,acthist', '--json', '--workers', '2', '--batch-rows', '97', '--acthist-out', out]);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const report = JSON.parse(run.stdout) as { metrics: Record<string, Record<string, unknown>> };
      const rank3 = d.shape.length === 3;
      const opts = { numLearnedFeatures: d.shape[d.shape.length - 1] as number, ...(rank3 ? { numComponents: d.shape[1] as number } : {}) };
      const batch = { learnedActivations: tensor(d.data, d.shape) };
      const freq = new FeatureFrequencyStats(opts).forward(batch);
      const stats = new FeatureActivationStats(opts).forward(batch);
      const hist = new FeatureActivationHistogram(opts);
      const h = hist.forward(batch);
      expect(Object.keys(report.metrics)).toEqual(['freq', 'actstats', 'acthist']);
      for (const [key, t] of Object.entries(freq)) expect(differences(report.metrics.freq?.[key], asJson(t)), `freq.${key}`).toEqual([]);
      for (const [key, t] of Object.entries(stats)) expect(differences(report.metrics.actstats?.[key], asJson(t)), `actstats.${key}`).toEqual([]);
      const components = rank3 ? (d.shape[1] as number) : 1;
      const firedTotal = Array.from({ length: components }, (_, c) => {
        const per = h.counts.data.length / components;
        return h.counts.data.subarray(c * per, (c + 1) * per).reduce((a, b) => a + b, 0);
      });
      expect(report.metrics.acthist?.firedActivations).toEqual(rank3 ? firedTotal : firedTotal[0]);

      // The dashboard file.
      const file = JSON.parse(readFileSync(out, 'utf8')) as {
        format: string;
        version: number;
        vectors: number;
        lowLog10: number;
        highLog10: number;
        binsPerDecade: number;
        quantileRelativeError: number;
        edges: number[];
        components: { component: number | null; features: { feature: number; fired: number; underflow: number; overflow: number; counts: number[]; quantiles: Record<string, number | null> }[] }[];
      };
      expect(file.format).toBe('sae-metrics/feature-activation-histogram');
      expect(file.version).toBe(1);
      expect(file.vectors).toBe(d.shape[0]);
      expect([file.lowLog10, file.highLog10, file.binsPerDecade]).toEqual([-4, 4, 10]);
      expect(file.quantileRelativeError).toBeCloseTo(10 ** 0.05 - 1, 15);
      expect(file.edges).toEqual(Array.from(h.edges.data));
      expect(file.components.map((c) => c.component)).toEqual(rank3 ? [0, 1] : [null]);
      const slots = file.edges.length + 1;
      const q = histogramQuantiles(h, [0.5, 0.9, 0.99]).data;
      file.components.forEach((c, ci) => {
        expect(c.features.map((x) => x.feature)).toEqual(Array.from({ length: opts.numLearnedFeatures }, (_, i) => i));
        c.features.forEach((x, fi) => {
          const k = ci * opts.numLearnedFeatures + fi;
          const row = Array.from(h.counts.data.subarray(k * slots, (k + 1) * slots));
          expect([x.underflow, ...x.counts, x.overflow], `component ${ci} feature ${fi}`).toEqual(row);
          expect(x.fired).toBe(row.reduce((a, b) => a + b, 0));
          const want = [0, 1, 2].map((i) => (Number.isNaN(q[k * 3 + i]) ? null : q[k * 3 + i]));
          expect([x.quantiles['0.5'], x.quantiles['0.9'], x.quantiles['0.99']]).toEqual(want);
        });
      });
      if (!rank3) expect(file.components[0]?.features[0]?.fired, 'feature 0 is dead').toBe(0);
    }, 60_000);
  }

  it('the table has a row per field; --acthist-out computes acthist when --metrics leaves it out', async () => {
    const out = f('table.hist.json');
    const [table, bad, badDir, both] = await limited([
      () => cli([f('a.npy'), '--metrics', 'dead,freq,actstats', '--workers', '1', '--acthist-out', out]),
      () => cli([f('a.npy'), '--acthist-out', f('h.txt')]),
      () => cli([f('missing.npy'), '--acthist-out', f('no/such/dir/h.json')]),
      () => cli([f('c.npy'), '--metrics', 'density,freq', '--json', '--workers', '1']),
    ]);
    // density's summary counts (--histogram's) and freq's are the same numbers.
    const report = JSON.parse(both?.stdout ?? '{}') as { densityStats: Record<string, unknown>; metrics: { freq: Record<string, unknown> } };
    expect(report.densityStats).toEqual({
      'below1e-6': report.metrics.freq.below1e6,
      'below1e-5': report.metrics.freq.below1e5,
      'above1e-2': (report.metrics.freq.freqOver1Percent as number[]).map((x) => x * 7),
      'above1e-1': (report.metrics.freq.freqOver10Percent as number[]).map((x) => x * 7),
      meanLog10: report.metrics.freq.meanLog10Density,
    });
    expect(table?.code).toBe(0);
    const text = table?.stdout ?? '';
    expect(text).toMatch(/^freq +feature frequency statistics$/m);
    expect(text).toMatch(/^ {2}alive +0\.800000 +portion of features that fired at least once$/m);
    expect(text).toMatch(/^ {2}dead +4 \/ 20 +features that never fired$/m);
    expect(text).toMatch(/^ {2}std +\S+ +per feature, the standard deviation where it fired/m);
    expect(text).toMatch(/^activation histograms written to .*table\.hist\.json$/m);
    expect(text).not.toMatch(/^acthist/m);
    expect(existsSync(out)).toBe(true);
    expect(bad).toEqual({ code: 2, stdout: '', stderr: `sae-metrics: --acthist-out: must be a path ending in .json, got ${JSON.stringify(f('h.txt'))}\n` });
    // The output path is checked before the (missing) input is read.
    expect(badDir?.code).toBe(1);
    expect(badDir?.stderr).toBe(`sae-metrics: ${f('no/such/dir/h.json')}: cannot write the activation histograms (no such directory)\n`);
  }, 60_000);

  it('the --acthist-out text, written in pieces of 4096 features, parses for 1, 4096, 4097 and 8193 features and two components', () => {
    for (const [F, C] of [[1, 1], [4096, 1], [4097, 2], [8193, 1]] as const) {
      const def = featureActivationHistogram({ numLearnedFeatures: F, ...(C > 1 ? { numComponents: C } : {}) });
      const data = new Float32Array(3 * C * F).map((_, i) => (i % 7 === 0 ? (i % 13) + 0.5 : 0));
      const s = def.update(def.init(), { learnedActivations: tensor(data, C > 1 ? [3, C, F] : [3, F]) });
      const pieces = [...actHistJson(def.compute(s), { files: ['x.npy'], tensor: undefined, vectors: 3, componentAxis: C > 1, lowLog10: -4, highLog10: 4, binsPerDecade: 10 })];
      const file = JSON.parse(pieces.join('')) as { components: { component: number | null; features: { feature: number }[] }[] };
      expect(file.components.map((c) => c.component)).toEqual(C > 1 ? [0, 1] : [null]);
      for (const c of file.components) expect(c.features.map((x) => x.feature)).toEqual(Array.from({ length: F }, (_, i) => i));
    }
  });
});
