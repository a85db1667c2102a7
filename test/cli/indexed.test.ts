/**
 * The command's `top` and `deadwindow` metrics and `--top K --top-out FILE.json`, on files the
 * test writes: the JSON file against the library's `TopActivations` on the files' rows
 * concatenated (vectors numbered across the files in order, the files table mapping them back),
 * the same bytes at 1, 2 and 4 workers and at any --batch-rows, the `--json` values, the table,
 * and the command-line errors.
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DeadFeaturesOverWindow, TopActivations, createMetricPool, tensor, type MetricPool, type MetricPoolOptions } from '../../src/index.js';
import { run } from '../../src/cli/run.js';
import { npyBytes, safetensorsBytes, scratchDir, sparseActivations, write } from './files.js';
import { cli, limited, requireBuilt } from './run-cli.js';

const tmp = scratchDir('sae-metrics-indexed-');
afterAll(() => tmp.remove());
const f = tmp.path;

const F = 12;
// Quarters in (0, 4) with many ties, some features dead (every 5th).
const A = sparseActivations(300, F, 1, { density: 0.08, deadEvery: 5 });
const B = sparseActivations(170, F, 2, { density: 0.08, deadEvery: 5 });
for (const x of [A, B]) for (let i = 0; i < x.length; i++) x[i] = Math.round((x[i] as number) * 4) / 4;
// Rank 3: two components.
const R3 = sparseActivations(90 * 2 * F, 1, 3, { density: 0.1 });

beforeAll(() => {
  requireBuilt();
  write(f('a.npy'), npyBytes(A, [300, F]));
  write(f('b.npy'), npyBytes(B, [170, F]));
  write(f('r3.safetensors'), safetensorsBytes({ acts: { dtype: 'F32', shape: [90, 2, F], data: R3 } }));
});

interface TopFile {
  format: string;
  version: number;
  k: number;
  vectors: number;
  features: number;
  components: number | null;
  interrupted: boolean;
  files: { path: string; tensor: string | null; firstVector: number; vectors: number }[];
  top: unknown;
}

/** The library's answer as the file's `top` array. */
function expectedTop(data: Float32Array, shape: number[], k: number, numComponents?: number): unknown {
  const top = new TopActivations({ numLearnedFeatures: F, k, ...(numComponents === undefined ? {} : { numComponents }) });
  top.update({ learnedActivations: tensor(data, shape) });
  const r = top.compute();
  const values = Array.from(r.values.data);
  const indices = Array.from(r.indices.data);
  const counts = Array.from(r.counts.data);
  const entry = (g: number) => ({ values: values.slice(g * k, g * k + (counts[g] as number)), vectors: indices.slice(g * k, g * k + (counts[g] as number)) });
  const features = (c: number) => Array.from({ length: F }, (_, i) => entry(c * F + i));
  return numComponents === undefined ? features(0) : Array.from({ length: numComponents }, (_, c) => features(c));
}

describe('sae-metrics --top-out', () => {
  it('writes each feature’s K largest activations with vectors numbered across the files, the same bytes at any worker count and batch size', async () => {
    const runs = [
      ['--workers', '1'],
      ['--workers', '2', '--batch-rows', '7'],
      ['--workers', '4', '--batch-rows', '64'],
    ].map((extra, i) => () => cli([f('a.npy'), f('b.npy'), '--metrics', 'dead', '--top', '4', '--top-out', f(`top${i}.json`), ...extra]));
    const results = await limited(runs);
    for (const r of results) expect(r).toMatchObject({ code: 0, stderr: '' });
    const texts = results.map((_, i) => readFileSync(f(`top${i}.json`), 'utf8'));
    expect(texts[1]).toBe(texts[0]);
    expect(texts[2]).toBe(texts[0]);
    const file = JSON.parse(texts[0] as string) as TopFile;
    expect(file).toMatchObject({ format: 'sae-metrics/top-activations', version: 1, k: 4, vectors: 470, features: F, components: null, interrupted: false });
    expect(file.files).toEqual([
      { path: f('a.npy'), tensor: null, firstVector: 0, vectors: 300 },
      { path: f('b.npy'), tensor: null, firstVector: 300, vectors: 170 },
    ]);
    const all = new Float32Array(470 * F);
    all.set(A);
    all.set(B, A.length);
    expect(file.top).toEqual(expectedTop(all, [470, F], 4));
    // A vector of the second file maps back to its row there.
    const some = (file.top as { values: number[]; vectors: number[] }[]).flatMap((e, feature) => e.vectors.map((v, i) => ({ feature, v, value: e.values[i] as number })));
    const late = some.find((e) => e.v >= 300);
    expect(late).toBeDefined();
    if (late !== undefined) expect(B[(late.v - 300) * F + late.feature]).toBe(late.value);
    // Dead features (every 5th) have no entries.
    expect((file.top as { values: number[] }[])[0]).toEqual({ values: [], vectors: [] });
    expect(results[0]?.stdout).toMatch(/\ntop activations written to \S+top0\.json\n$/);
  });

  it('with a component axis: top[c][f], rows numbered once for all their components', async () => {
    const r = await cli([f('r3.safetensors'), '--metrics', 'l0,top', '--top-out', f('r3.json'), '--top', '2', '--json']);
    expect(r).toMatchObject({ code: 0, stderr: '' });
    const file = JSON.parse(readFileSync(f('r3.json'), 'utf8')) as TopFile;
    expect(file).toMatchObject({ k: 2, vectors: 90, components: 2, files: [{ path: f('r3.safetensors'), tensor: 'acts', firstVector: 0, vectors: 90 }] });
    expect(file.top).toEqual(expectedTop(R3, [90, 2, F], 2, 2));
    // --json reports top as each feature's largest activation (NaN: never fired).
    const report = JSON.parse(r.stdout) as { topK: number; metrics: { top: unknown[][] } };
    expect(report.topK).toBe(2);
    expect(report.metrics.top.map((c) => c.map((v) => (v === 'NaN' ? null : v)))).toEqual(
      (file.top as { values: number[] }[][]).map((c) => c.map((e) => e.values[0] ?? null)),
    );
  });
});

describe('sae-metrics deadwindow', () => {
  it('counts the features that fired on none of the last --dead-window vectors of the whole stream, as the library', async () => {
    const all = new Float32Array(470 * F);
    all.set(A);
    all.set(B, A.length);
    const windows = [1, 20, 200, 469, 470, 471, 10_000];
    const runs = windows.map((w) => () => cli([f('a.npy'), f('b.npy'), '--metrics', 'deadwindow', '--dead-window', String(w), '--json', '--batch-rows', '50']));
    const results = await limited(runs);
    results.forEach((r, i) => {
      const want = new DeadFeaturesOverWindow({ numLearnedFeatures: F, windowVectors: windows[i] as number });
      want.update({ learnedActivations: tensor(all, [470, F]) });
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout) as { deadWindow: number; metrics: { deadwindow: number } };
      expect(report.deadWindow).toBe(windows[i]);
      expect(report.metrics.deadwindow, `window ${windows[i]}`).toBe(want.compute().dead.item());
    });
    // More than the stream: nothing is dead (a never-fired feature counts from the start).
    expect((JSON.parse(results[6]?.stdout ?? '{}') as { metrics: { deadwindow: number } }).metrics.deadwindow).toBe(0);
    expect((JSON.parse(results[4]?.stdout ?? '{}') as { metrics: { deadwindow: number } }).metrics.deadwindow).toBeGreaterThan(0);
  });

  it('shows top and deadwindow in the table', async () => {
    const r = await cli([f('a.npy'), '--metrics', 'top,deadwindow', '--dead-window', '100']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/\ntop +\S+, \S+, \S+ +largest activation of each feature that fired: min, median, max \(top 10 kept per feature\)\n/);
    expect(r.stdout).toMatch(/\ndeadwindow +\d+ \/ 12 +features that fired \(x > 0\) on none of the last 100 vectors, of all features\n/);
  });
});

describe('sae-metrics --top, --top-out, --dead-window: bad command lines', () => {
  it('prints one line naming the option, exits 2 (1 for an output that cannot be written), and nothing on stdout; no file is written', async () => {
    const cases: [string[], number, RegExp][] = [
      [['--top', '0', '--metrics', 'top'], 2, /^sae-metrics: --top: must be a positive integer, got "0"$/],
      [['--top', '1048577', '--metrics', 'top'], 2, /^sae-metrics: --top: must be an integer in \[1, 1048576\], got "1048577"$/],
      [['--top', '3'], 2, /^sae-metrics: --top: sets K of the top metric: give --metrics with top, or --top-out FILE\.json$/],
      [['--top-out', f('t.txt')], 2, /^sae-metrics: --top-out: must be a path ending in \.json, got "\S+t\.txt"$/],
      [['--top-out', ''], 2, /^sae-metrics: --top-out: must not be empty$/],
      [['--dead-window', '10'], 2, /^sae-metrics: --dead-window: sets the window of the deadwindow metric: give --metrics with deadwindow$/],
      [['--dead-window', '-1', '--metrics', 'deadwindow'], 2, /^sae-metrics: --dead-window: (needs a value|must be a positive integer, got "-1").*$/],
      [['--metrics', 'top,bogus'], 2, /^sae-metrics: --metrics: unknown metric "bogus" \(known: l1, l2, loss, l0, dead, density, fired, top, deadwindow, freq, actstats, acthist, ev, fvu, cos, l2ratio, shrinkage, nmse\)$/],
      [['--top-out', f('no-such-dir/t.json')], 1, /^sae-metrics: \S+no-such-dir\/t\.json: cannot write the top activations \(no such directory\)$/],
    ];
    const results = await limited(cases.map(([args]) => () => cli([f('a.npy'), ...args])));
    results.forEach((r, i) => {
      const [args, code, pattern] = cases[i] as [string[], number, RegExp];
      expect(r.code, args.join(' ')).toBe(code);
      expect(r.stdout, args.join(' ')).toBe('');
      expect(r.stderr.trimEnd(), args.join(' ')).toMatch(pattern);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(1);
    });
  });
});

describe('sae-metrics --top-out on an interrupted run (Ctrl-C)', () => {
  it('writes the top activations over the vectors read, with interrupted: true', async () => {
    const controller = new AbortController();
    // A pool that aborts when the third batch is handed to it: three batches of 50 rows are read.
    const createPool = (options: MetricPoolOptions): MetricPool => {
      const pool = createMetricPool(options);
      const evaluate = pool.evaluate.bind(pool);
      let calls = 0;
      pool.evaluate = (...args) => {
        if (++calls === 3) controller.abort();
        return evaluate(...args);
      };
      return pool;
    };
    const writes: string[] = [];
    const stream = { write: (t: string) => writes.push(t) > 0 };
    const code = await run([f('a.npy'), f('b.npy'), '--top-out', f('cut.json'), '--top', '3', '--batch-rows', '50', '--workers', '1'], {
      stdout: stream,
      stderr: stream,
      signal: controller.signal,
      createPool,
    });
    expect(code).toBe(130);
    const file = JSON.parse(readFileSync(f('cut.json'), 'utf8')) as TopFile;
    expect(file).toMatchObject({ k: 3, vectors: 150, interrupted: true });
    expect(file.files.map((x) => x.firstVector)).toEqual([0, 300]);
    expect(file.top).toEqual(expectedTop(A.subarray(0, 150 * F), [150, F], 3));
    expect(writes.join('')).toContain(`top activations written to ${f('cut.json')}`);
  }, 30_000);
});
