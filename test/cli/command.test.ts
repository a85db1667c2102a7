/**
 * The compiled `sae-metrics` command, run as a child process on small files the tests write
 * (.npy and .safetensors, float32 and float16, [N, F] and [N, C, F]): its --json numbers against
 * the library's metric classes on the same data, its table, and every bad input (one line on
 * stderr naming the file and the problem, exit code 1, or 2 for a bad command line, and nothing on
 * stdout).
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, readlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  SparseAutoencoderLoss,
  tensor,
  type Batch,
  type NestedArray,
  type Tensor,
} from '../../src/index.js';
import { denseActivations, npyBytes, safetensorsBytes, scratchDir, sparseActivations, toFloat16, write } from './files.js';
import { cli, limited, main, requireBuilt, root, type CliRun } from './run-cli.js';
import { mulberry32 } from '../support/random.js';

const tmp = scratchDir();
afterAll(() => tmp.remove());

interface Data {
  readonly learned: Float32Array;
  readonly shape: number[];
  readonly source?: Float32Array;
  readonly decoded?: Float32Array;
  readonly inputShape?: number[];
}

/** Every metric of the command, computed by the library's classes on all the data at once. */
function library(d: Data, o: { l1Coefficient?: number; deadThreshold?: number } = {}): Record<string, NestedArray> {
  const rank3 = d.shape.length === 3;
  const C = rank3 ? (d.shape[1] as number) : 1;
  const F = d.shape[d.shape.length - 1] as number;
  const nc = rank3 ? { numComponents: C } : {};
  const family = { numLearnedFeatures: F, ...nc };
  const batch = {
    learnedActivations: tensor(d.learned, d.shape),
    ...(d.source && d.decoded && d.inputShape
      ? { sourceActivations: tensor(d.source, d.inputShape), decodedActivations: tensor(d.decoded, d.inputShape) }
      : {}),
  };
  const metrics = {
    l1: new L1AbsoluteLoss({ numComponents: C }),
    l0: new L0NormMetric(nc),
    dead: new NeuronActivityMetric({ ...family, thresholdIsDeadPortionFires: o.deadThreshold ?? 0 }),
    density: new FeatureDensityMetric(family),
    fired: new NeuronFiredCountMetric(family),
    ...(d.source
      ? { l2: new L2ReconstructionLoss({ numComponents: C }), loss: new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: o.l1Coefficient ?? 0.001 }) }
      : {}),
  };
  const out: Record<string, NestedArray> = {};
  // l2 and loss are there only when the batch has source and decoded activations.
  for (const [name, m] of Object.entries(metrics) as [string, { update(b: Batch): void; compute(): Tensor }][]) {
    m.update(batch);
    out[name] = m.compute().toArray();
  }
  return out;
}

/** Paths where `actual` and `expected` differ: numbers by more than 1e-12 relative (sums in another order). */
function differences(actual: unknown, expected: unknown, path = ''): string[] {
  if (typeof expected === 'number') {
    if (typeof actual !== 'number') return [`${path}: ${JSON.stringify(actual)} is not a number`];
    const ok = Number.isInteger(expected) ? actual === expected : Math.abs(actual - expected) <= 1e-12 * Math.abs(expected);
    return ok ? [] : [`${path}: ${actual} vs ${expected}`];
  }
  if (Array.isArray(expected)) {
    if (!Array.isArray(actual) || actual.length !== expected.length) return [`${path}: ${JSON.stringify(actual)?.slice(0, 80)} vs an array of ${expected.length}`];
    return expected.flatMap((e, i) => differences(actual[i], e, `${path}[${i}]`));
  }
  return [`${path}: unexpected ${JSON.stringify(expected)}`];
}

function json(run: CliRun): Record<string, unknown> & { metrics: Record<string, unknown> } {
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout) as Record<string, unknown> & { metrics: Record<string, unknown> };
}

function expectMetrics(actual: Record<string, unknown>, expected: Record<string, NestedArray>, names: readonly string[]): void {
  expect(Object.keys(actual)).toEqual(names);
  for (const name of names) expect(differences(actual[name], expected[name]), name).toEqual([]);
}

const ALL = ['l1', 'l0', 'dead', 'density', 'fired'];
const ALL_WITH_LOSS = ['l1', 'l2', 'loss', 'l0', 'dead', 'density', 'fired'];

// A: [1000, 48], a dead feature in every 7, sparse values exact in float16.
const A: Data = { learned: sparseActivations(1000, 48, 11, { deadEvery: 7 }), shape: [1000, 48] };
// B: two safetensors files with source and decoded tensors, of mixed dtypes, read as one stream.
const B1 = { learned: sparseActivations(300, 48, 12), source: denseActivations(300 * 16, 13), decoded: denseActivations(300 * 16, 14) };
const B2 = { learned: sparseActivations(200, 48, 15), source: denseActivations(200 * 16, 16), decoded: denseActivations(200 * 16, 17) };
const concat = (a: Float32Array, b: Float32Array): Float32Array => {
  const out = new Float32Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
};
const B: Data = {
  learned: concat(B1.learned, B2.learned),
  shape: [500, 48],
  source: concat(B1.source, B2.source),
  decoded: concat(B1.decoded, B2.decoded),
  inputShape: [500, 16],
};
// C: [400, 2, 32], two components, with source and decoded [400, 2, 8].
const C: Data = {
  learned: sparseActivations(400 * 2 * 32, 1, 21, { features: 64, deadEvery: 9 }),
  shape: [400, 2, 32],
  source: denseActivations(400 * 2 * 8, 22),
  decoded: denseActivations(400 * 2 * 8, 23),
  inputShape: [400, 2, 8],
};
// D: .npy learned activations with .npy source and decoded.
const D: Data = { learned: sparseActivations(250, 40, 31), shape: [250, 40], source: denseActivations(250 * 12, 32), decoded: denseActivations(250 * 12, 33), inputShape: [250, 12] };

const f = (name: string): string => tmp.path(name);

beforeAll(() => {
  requireBuilt();
  write(f('a32.npy'), npyBytes(A.learned, A.shape));
  write(f('a16.npy'), npyBytes(toFloat16(A.learned), A.shape, { version: 2 }));
  write(
    f('b1.safetensors'),
    safetensorsBytes(
      {
        acts: { dtype: 'F32', shape: [300, 48], data: B1.learned },
        src: { dtype: 'F32', shape: [300, 16], data: B1.source },
        dec: { dtype: 'F16', shape: [300, 16], data: toFloat16(B1.decoded) },
      },
      { metadata: { layer: '6' } },
    ),
  );
  write(
    f('b2.safetensors'),
    safetensorsBytes({
      src: { dtype: 'F16', shape: [200, 16], data: toFloat16(B2.source) },
      acts: { dtype: 'F16', shape: [200, 48], data: toFloat16(B2.learned) },
      dec: { dtype: 'F32', shape: [200, 16], data: B2.decoded },
    }),
  );
  write(
    f('c.safetensors'),
    safetensorsBytes({
      learned: { dtype: 'F32', shape: C.shape, data: C.learned },
      source: { dtype: 'F32', shape: C.inputShape as number[], data: C.source as Float32Array },
      decoded: { dtype: 'F16', shape: C.inputShape as number[], data: toFloat16(C.decoded as Float32Array) },
    }),
  );
  write(f('d.npy'), npyBytes(D.learned, D.shape));
  write(f('d-source.npy'), npyBytes(D.source as Float32Array, D.inputShape as number[]));
  write(f('d-decoded.npy'), npyBytes(toFloat16(D.decoded as Float32Array), D.inputShape as number[], { version: 3 }));
});

describe('sae-metrics --json gives the library numbers', () => {
  it('on float32 and float16 .npy files, over several batches', async () => {
    const [r32, r16] = await limited([
      () => cli([f('a32.npy'), '--json', '--metrics', ALL.join(','), '--batch-rows', '128', '--workers', '2']),
      () => cli([f('a16.npy'), '--json', '--metrics', ALL.join(','), '--batch-rows', '100', '--workers', '1']),
    ]);
    const expected = library(A);
    for (const run of [r32, r16]) {
      const out = json(run as CliRun);
      expectMetrics(out.metrics, expected, ALL);
      expect(out.vectors).toBe(1000);
      expect(out.features).toBe(48);
      expect(out.components).toBe(null);
      expect(typeof out.elapsedSeconds).toBe('number');
    }
    expect(json(r32 as CliRun)).toMatchObject({ dtypes: ['F32'], batches: 8, batchRows: 128, files: [f('a32.npy')], bytes: 1000 * 48 * 4, workers: 2 });
    expect(json(r16 as CliRun)).toMatchObject({ dtypes: ['F16'], batches: 10, bytes: 1000 * 48 * 2, workers: 1 });
    // Every 7th feature never fires: the data's own count of dead features.
    expect(json(r32 as CliRun).metrics.dead).toBe(Math.ceil(48 / 7));
  });

  it('on two safetensors files of mixed dtypes with source and decoded tensors, read as one stream', async () => {
    const run = await cli([f('b1.safetensors'), f('b2.safetensors'), '--source', 'src', '--decoded', 'dec', '--json', '--metrics', ALL_WITH_LOSS.join(','), '--l1-coefficient', '0.01', '--batch-rows', '64']);
    const out = json(run);
    expectMetrics(out.metrics, library(B, { l1Coefficient: 0.01 }), ALL_WITH_LOSS);
    expect(out).toMatchObject({ vectors: 500, tensor: 'acts', source: 'src', decoded: 'dec', inputFeatures: 16, dtypes: ['F32', 'F16'], l1Coefficient: 0.01 });
    // 300 rows in batches of 64 (5 batches), then 200 (4): a batch never spans two files.
    expect(out.batches).toBe(9);
  });

  it('on [N, 2, F] activations: per-component values, with and without --components 2', async () => {
    const [inferred, explicit] = await limited([
      () => cli([f('c.safetensors'), '--tensor', 'learned', '--source', 'source', '--decoded', 'decoded', '--json', '--metrics', ALL_WITH_LOSS.join(','), '--batch-rows', '50']),
      () => cli([f('c.safetensors'), '--tensor', 'learned', '--source', 'source', '--decoded', 'decoded', '--json', '--metrics', ALL_WITH_LOSS.join(','), '--components', '2']),
    ]);
    const expected = library(C);
    for (const run of [inferred, explicit]) {
      const out = json(run as CliRun);
      expectMetrics(out.metrics, expected, ALL_WITH_LOSS);
      expect(out.components).toBe(2);
      expect((out.metrics.l1 as number[]).length).toBe(2);
      expect((out.metrics.density as number[][]).map((d) => d.length)).toEqual([32, 32]);
    }
  });

  it('on a .npy file with .npy source and decoded files, with the default metrics and a dead threshold', async () => {
    const run = await cli([f('d.npy'), '--source', f('d-source.npy'), '--decoded', f('d-decoded.npy'), '--json', '--dead-threshold', '0.3']);
    const out = json(run);
    const expected = library(D, { deadThreshold: 0.3 });
    expectMetrics(out.metrics, expected, ['l1', 'l2', 'loss', 'l0', 'dead', 'density']);
    // The threshold matters on this data: some features fire for more, some for less than 30%.
    expect(out.metrics.dead).toBeGreaterThan(0);
    expect(out.metrics.dead).toBeLessThan(40);
    expect(out.metrics.dead).toBe((out.metrics.density as number[]).filter((x) => x <= 0.3).length);
  });

  it("on a float64 .npy file (numpy's default dtype), converted to float32 as it is read, and says so", async () => {
    // Values float32 cannot hold: the command must give the numbers of their float32 roundings.
    const r = mulberry32(5);
    const f64 = Float64Array.from({ length: 300 * 24 }, () => (r() < 0.6 ? 0 : (r() - 0.2) * 3.000000001));
    const path = write(f('f64.npy'), npyBytes(f64, [300, 24]));
    const [run, table] = await limited([
      () => cli([path, '--json', '--metrics', ALL.join(','), '--batch-rows', '64']),
      () => cli([path, '--metrics', 'l0']),
    ]);
    const out = json(run as CliRun);
    expectMetrics(out.metrics, library({ learned: Float32Array.from(f64), shape: [300, 24] }), ALL);
    expect(out).toMatchObject({ dtypes: ['F64'], bytes: 300 * 24 * 8 });
    expect(table?.stdout).toMatch(/^\S+f64\.npy: 300 vectors, 24 features \(F64, converted to float32 as read\);/);
  });

  it('gives the same bits whatever --workers (the shard plan does not depend on it)', async () => {
    // Values that are not multiples of 2^-8: sums in another order would show in the last bits.
    const r = mulberry32(77);
    const noisy = (n: number): Float32Array => Float32Array.from({ length: n }, () => (r() - 0.3) * 3);
    write(f('e.npy'), npyBytes(noisy(5000 * 40), [5000, 40]));
    write(f('e-source.npy'), npyBytes(noisy(5000 * 24), [5000, 24]));
    write(f('e-decoded.npy'), npyBytes(noisy(5000 * 24), [5000, 24]));
    const args = [f('e.npy'), '--source', f('e-source.npy'), '--decoded', f('e-decoded.npy'), '--json', '--metrics', ALL_WITH_LOSS.join(','), '--batch-rows', '1000'];
    const [one, two, three] = await limited([1, 2, 3].map((w) => () => cli([...args, '--workers', String(w)])));
    const metrics = (run: CliRun | undefined): unknown => json(run as CliRun).metrics;
    expect(json(three as CliRun).workers).toBe(3);
    expect(metrics(two)).toEqual(metrics(one));
    expect(metrics(three)).toEqual(metrics(one));
  });

  it('on every backend it can run here (js and wasm)', async () => {
    const runs = await limited(['js', 'wasm'].map((b) => () => cli([f('a32.npy'), '--json', '--backend', b, '--batch-rows', '300'])));
    const expected = library(A);
    runs.forEach((run, i) => {
      const out = json(run);
      expect(out.backend).toBe(['js', 'wasm'][i]);
      expectMetrics(out.metrics, expected, ['l1', 'l0', 'dead', 'density']);
    });
  });
});

describe('sae-metrics prints', () => {
  it('a table with the same numbers, and nothing on stderr when stderr is a pipe', async () => {
    const run = await cli([f('c.safetensors'), '--tensor', 'learned', '--source', 'source', '--decoded', 'decoded', '--metrics', 'l1,l2,loss,l0,dead']);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const lines = run.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(new RegExp(`^${f('c.safetensors').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\[learned\\]: 400 vectors, 2 components x 32 features \\(F32, F16\\); backend \\w+, \\d+ workers?; [\\d.]+ s, [\\d.]+ GB/s$`));
    expect(lines[2]).toMatch(/^metric\s+component 0\s+component 1$/);
    const expected = library(C);
    for (const name of ['l1', 'l2', 'loss', 'l0']) {
      const row = lines.find((l) => l.startsWith(`${name} `));
      const cells = (row as string).split(/\s{2,}/);
      const values = (expected[name] as number[]).map(Number);
      expect(cells.slice(1, 3).map(Number).map((x, c) => Math.abs(x - (values[c] as number)) / Math.abs(values[c] as number))).toSatisfy(
        (errs: number[]) => errs.every((e) => e < 1e-5),
      );
    }
    const dead = (lines.find((l) => l.startsWith('dead ')) as string).split(/\s{2,}/);
    expect(dead.slice(1, 3)).toEqual((expected.dead as number[]).map((n) => `${n} / 32`));
  });

  it('counts with their digits grouped and a singular for one worker', async () => {
    const run = await cli([f('a32.npy'), '--workers', '1', '--metrics', 'l0,dead', '--backend', 'js']);
    expect(run.stdout).toMatch(/^\S+a32\.npy: 1,000 vectors, 48 features \(F32\); backend js, 1 worker; /);
    expect(run.stdout).toMatch(/^dead +7 \/ 48 /m);
  });

  it('--help and --version on stdout', async () => {
    const [help, version, short] = await limited([() => cli(['--help']), () => cli(['--version']), () => cli(['-h'])]);
    expect(help).toMatchObject({ code: 0, stderr: '' });
    expect(help?.stdout).toMatch(/^Usage: sae-metrics FILE\.\.\. \[options\]/);
    // Every option the README's usage block lists.
    const readme = readFileSync(`${root}/README.md`, 'utf8');
    const block = readme.slice(readme.indexOf('sae-metrics FILE... [options]'));
    const documented = [...block.slice(0, block.indexOf('```')).matchAll(/^(--[\w-]+)/gm)].map((m) => m[1] as string);
    expect(documented).toEqual(expect.arrayContaining(['--histogram', '--bins-per-decade', '--log-y', '--l1-coefficient']));
    for (const option of documented) {
      expect(help?.stdout).toContain(option);
    }
    expect(short?.stdout).toBe(help?.stdout);
    const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { version: string };
    expect(version).toEqual({ code: 0, stdout: `sae-metrics ${pkg.version}\n`, stderr: '' });
  });
});

describe('sae-metrics on bad input', () => {
  it('prints one line naming the file and the problem, exits 1 (2 for a bad command line), and prints nothing on stdout', async () => {
    const data = sparseActivations(20, 8, 41);
    const w = (name: string, bytes: Buffer): string => write(f(name), bytes);
    const truncated = w('truncated.npy', npyBytes(data, [20, 8]).subarray(0, 200));
    const int64 = w('int64.safetensors', safetensorsBytes({ acts: { dtype: 'I64', shape: [20, 4], data } }));
    const lying = w('lying.safetensors', safetensorsBytes({ acts: { dtype: 'F32', shape: [20, 9], data } }));
    const lyingNpy = w('lying.npy', npyBytes(data, [21, 8]));
    const several = w('several.safetensors', safetensorsBytes({ a: { dtype: 'F32', shape: [20, 8], data }, b: { dtype: 'F32', shape: [20, 8], data } }));
    const rank2 = w('rank2.npy', npyBytes(data, [20, 8]));
    const rank3 = w('rank3.npy', npyBytes(data, [10, 2, 8]));
    const rank1 = w('rank1.npy', npyBytes(data, [160]));
    const other = w('other-features.npy', npyBytes(data, [16, 10]));
    const shortSource = w('short-source.npy', npyBytes(data.subarray(0, 19 * 8), [19, 8]));
    const missing = f('missing.safetensors');
    const svgDir = f('a-dir.svg');
    mkdirSync(svgDir);
    const cases: [string[], number, RegExp][] = [
      [[missing], 1, /^sae-metrics: \S+missing\.safetensors: no such file$/],
      [[truncated], 1, /^sae-metrics: \S+truncated\.npy: the data is truncated: shape \[20, 8\] of '<f4' needs 640 bytes after the header \(from byte 128\), but the file has 72 bytes there$/],
      [[int64], 1, /^sae-metrics: \S+int64\.safetensors: tensor "acts" has dtype I64; only F32, F16, BF16 and F64 are supported$/],
      [[lying], 1, /^sae-metrics: \S+lying\.safetensors: tensor "acts": data_offsets \[0, 640\] hold 640 bytes, but shape \[20, 9\] of F32 needs 720 bytes$/],
      [[lyingNpy], 1, /^sae-metrics: \S+lying\.npy: the data is truncated: shape \[21, 8\] of '<f4' needs 672 bytes/],
      [[several, '--tensor', 'c'], 1, /^sae-metrics: \S+several\.safetensors: no tensor named "c" \(--tensor\); the file holds "a", "b"$/],
      [[several], 1, /^sae-metrics: \S+several\.safetensors: the file holds 2 tensors \("a", "b"\); choose one with --tensor NAME$/],
      [[rank2, '--components', '2'], 1, /^sae-metrics: \S+rank2\.npy: shape \[20, 8\], with no component axis, but --components is 2$/],
      [[rank3, '--components', '3'], 1, /^sae-metrics: \S+rank3\.npy: shape \[10, 2, 8\], with 2 components on axis 1, but --components is 3$/],
      [[rank1], 1, /^sae-metrics: \S+rank1\.npy: shape \[160\]: expected rank 2 \[vectors, features\] or rank 3 \[vectors, components, features\]$/],
      [[rank2, other], 1, /^sae-metrics: \S+other-features\.npy: shape \[16, 10\], but \S+rank2\.npy has \[20, 8\]: the files must agree on every axis but the first$/],
      [[rank2, '--source', shortSource, '--decoded', rank2], 1, /^sae-metrics: \S+short-source\.npy: --source shape \[19, 8\]: 19 vectors, but the learned activations have 20 \[20, 8\]$/],
      [[rank2, '--histogram', f('no-such-dir/h.svg')], 1, /^sae-metrics: \S+no-such-dir\/h\.svg: cannot write the histogram \(no such directory\)$/],
      // Outputs are checked before any input is read: the missing input is not reached.
      [[missing, '--histogram', f('no-such-dir/h.svg')], 1, /^sae-metrics: \S+no-such-dir\/h\.svg: cannot write the histogram \(no such directory\)$/],
      [[rank2, '--histogram', svgDir], 1, /^sae-metrics: \S+a-dir\.svg: cannot write the histogram: it is a directory$/],
      [[rank2, '--histogram', `${rank2}/h.svg`], 1, /^sae-metrics: \S+rank2\.npy\/h\.svg: cannot write the histogram \(a part of the path is not a directory\)$/],
      [[rank2, '--frobnicate'], 2, /^sae-metrics: --frobnicate: unknown option \(see sae-metrics --help\)$/],
      [[rank2, '--workers', '0'], 2, /^sae-metrics: --workers: must be a positive integer, got "0"$/],
      [[rank2, '--workers'], 2, /^sae-metrics: --workers: needs a value$/],
      [[rank2, '--batch-rows', '1.5'], 2, /^sae-metrics: --batch-rows: must be a positive integer, got "1\.5"$/],
      [[rank2, '--backend', 'cuda'], 2, /^sae-metrics: --backend: must be one of auto, wasm, gpujs, js, got "cuda"$/],
      [[rank2, '--metrics', 'l1,l9'], 2, /^sae-metrics: --metrics: unknown metric "l9" \(known: l1, l2, loss, l0, dead, density, fired, top, deadwindow, freq, actstats, acthist, ev, fvu, cos, l2ratio, shrinkage, nmse\)$/],
      [[rank2, '--metrics', 'l1,l2'], 2, /^sae-metrics: --metrics: l2 needs --source and --decoded activations$/],
      [[rank2, '--source', rank2], 2, /^sae-metrics: --source: needs --source and --decoded together$/],
      [[rank2, '--dead-threshold', '2'], 2, /^sae-metrics: --dead-threshold: must be a number in \[0, 1\], got "2"$/],
      [[rank2, '--l1-coefficient=-1'], 2, /^sae-metrics: --l1-coefficient: must be a number >= 0, got "-1"$/],
      [[rank2, '--l1-coefficient', 'x'], 2, /^sae-metrics: --l1-coefficient: must be a number >= 0, got "x"$/],
      [[rank2, '--l1-coefficient', '-1'], 2, /^sae-metrics: --l1-coefficient: needs a value \(for a value that starts with '-', write --l1-coefficient=VALUE\)$/],
      [[rank2, '--json=yes'], 2, /^sae-metrics: --json: takes no value$/],
      [[rank2, '--histogram', f('h.jpg')], 2, /^sae-metrics: --histogram: must be a path ending in \.svg or \.png, got "\S+h\.jpg"$/],
      [[rank2, '--histogram', f('h.svg'), '--bins-per-decade', '0'], 2, /^sae-metrics: --bins-per-decade: must be a positive integer, got "0"$/],
      [[rank2, '--histogram', f('h.svg'), '--bins-per-decade', '101'], 2, /^sae-metrics: --bins-per-decade: must be an integer in \[1, 100\], got "101"$/],
      [[rank2, '--log-y'], 2, /^sae-metrics: --log-y: shapes the histogram: give --histogram OUT\.svg too$/],
      [[rank2, '--tensor', 'x'], 2, /^sae-metrics: --tensor: names a tensor of a \.safetensors file, but \S+rank2\.npy is a \.npy file$/],
      [[], 2, /^sae-metrics: FILE: no activation file given \(see sae-metrics --help\)$/],
    ];
    const runs = await limited(cases.map(([args]) => () => cli(args)));
    runs.forEach((run, i) => {
      const [args, code, line] = cases[i] as [string[], number, RegExp];
      const label = args.join(' ');
      expect(run.stdout, label).toBe('');
      expect(run.stderr.endsWith('\n'), label).toBe(true);
      const lines = run.stderr.slice(0, -1).split('\n');
      expect(lines, label).toHaveLength(1);
      expect(lines[0], label).toMatch(line);
      expect(run.code, label).toBe(code);
    });
  }, 60_000);
});

describe('sae-metrics never blocks on a path that is not a regular file', () => {
  it('refuses a FIFO, a directory and a device at once, as FILE and as --source / --decoded, in one line', async () => {
    const data = sparseActivations(20, 8, 42);
    const good = write(f('regular.npy'), npyBytes(data, [20, 8]));
    const fifo = f('pipe.npy');
    execFileSync('mkfifo', [fifo]);
    const dir = f('dir.npy');
    mkdirSync(dir);
    const cases: [string[], RegExp][] = [
      [[fifo], /^sae-metrics: \S+pipe\.npy: is a FIFO \(named pipe\), not a regular file: the command reads files by offset$/],
      [[good, '--source', fifo, '--decoded', good], /^sae-metrics: \S+pipe\.npy: is a FIFO \(named pipe\), not a regular file/],
      [[good, '--source', good, '--decoded', fifo], /^sae-metrics: \S+pipe\.npy: is a FIFO \(named pipe\), not a regular file/],
      [[dir], /^sae-metrics: \S+dir\.npy: is a directory, not a file$/],
      [['/dev/zero'], /^sae-metrics: \/dev\/zero: is a character device, not a regular file$/],
      [['/dev/null', '--json'], /^sae-metrics: \/dev\/null: is a character device, not a regular file$/],
    ];
    // Nobody ever writes to the FIFO: a command that opens it for reading waits forever, and
    // is killed after 20 s, which fails the test.
    const runs = await limited(cases.map(([args]) => () => cli(args, {}, 20_000)));
    runs.forEach((run, i) => {
      const [args, line] = cases[i] as [string[], RegExp];
      expect(run.code, args.join(' ')).toBe(1);
      expect(run.stdout).toBe('');
      expect(run.stderr.trimEnd().split('\n'), args.join(' ')).toHaveLength(1);
      expect(run.stderr.trimEnd(), args.join(' ')).toMatch(line);
    });
  }, 60_000);
});

describe('sae-metrics on wide SAEs', () => {
  it('prints the table for 2^17 and 2^20 features with every metric (no spread of a per-feature array)', async () => {
    const cases = [2 ** 17, 2 ** 20].map((F) => {
      // 3 vectors: feature f fires in vector 0 when f is even, in vectors 1 and 2 when f < 10.
      const data = new Float32Array(3 * F);
      for (let f = 0; f < F; f += 2) data[f] = 1;
      for (let f = 0; f < 10; f++) data[F + f] = data[2 * F + f] = 0.5;
      return { F, path: write(f(`wide-${F}.npy`), npyBytes(data, [3, F])) };
    });
    const runs = await limited(cases.map((c) => () => cli([c.path, '--metrics', 'l1,l0,dead,density,fired', '--workers', '1'])));
    runs.forEach((run, i) => {
      const { F } = cases[i] as { F: number };
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      const row = (name: string): string[] => (run.stdout.split('\n').find((l) => l.startsWith(`${name} `)) as string).split(/\s{2,}/);
      // fired: 0 for the F/2 - 5 odd features from 10 on, 1 for the even ones, 2 or 3 below 10.
      expect(row('fired')[1]).toBe('0, 1, 3');
      // Counts with their digits grouped, as everywhere in the table.
      expect(row('dead')[1]).toBe(`${(F / 2 - 5).toLocaleString('en-US')} / ${F.toLocaleString('en-US')}`);
    });
  }, 60_000);
});

describe('sae-metrics backend choice', () => {
  it('an explicit --backend beats SAE_METRICS_BACKEND; the variable is used without the flag', async () => {
    const file = f('a32.npy');
    const [flag, env, both] = await limited([
      () => cli([file, '--json', '--backend', 'wasm']),
      () => cli([file, '--json'], { SAE_METRICS_BACKEND: 'js' }),
      () => cli([file, '--json', '--backend', 'wasm'], { SAE_METRICS_BACKEND: 'js' }),
    ]);
    expect(json(flag as CliRun).backend).toBe('wasm');
    expect(json(env as CliRun).backend).toBe('js');
    expect(json(both as CliRun).backend).toBe('wasm');
  });

  it('names an environment value as such in errors, and --backend only when it was given', async () => {
    const file = f('a32.npy');
    const cases: [string[], Record<string, string>, RegExp][] = [
      [[file], { SAE_METRICS_BACKEND: 'bogus' }, /^sae-metrics: SAE_METRICS_BACKEND \(environment\): must be one of auto, wasm, gpujs, js, got "bogus"$/],
      [[file, '--backend', 'bogus'], { SAE_METRICS_BACKEND: 'js' }, /^sae-metrics: --backend: must be one of auto, wasm, gpujs, js, got "bogus"$/],
      [[file], { SAE_METRICS_GPUJS_MODE: 'bogus' }, /^sae-metrics: SAE_METRICS_GPUJS_MODE \(environment\): must be one of gpu, headlessgl, .*, got "bogus"$/],
    ];
    const runs = await limited(cases.map(([args, env]) => () => cli(args, env)));
    runs.forEach((run, i) => {
      const [, , line] = cases[i] as [string[], Record<string, string>, RegExp];
      expect(run.code).toBe(2);
      expect(run.stdout).toBe('');
      expect(run.stderr.trimEnd()).toMatch(line);
      expect(run.stderr.trimEnd().split('\n')).toHaveLength(1);
    });
  });
});

describe('sae-metrics --l1-coefficient 0', () => {
  it('is accepted: loss is then l2 exactly (the class itself takes only a positive coefficient)', async () => {
    const run = await cli([f('d.npy'), '--source', f('d-source.npy'), '--decoded', f('d-decoded.npy'), '--json', '--metrics', 'l2,loss', '--l1-coefficient', '0']);
    const out = json(run);
    expect(out.l1Coefficient).toBe(0);
    expect(out.metrics.loss).toBe(out.metrics.l2);
    expectMetrics(out.metrics, { l2: library(D).l2 as number, loss: library(D).l2 as number }, ['l2', 'loss']);
    const table = await cli([f('d.npy'), '--source', f('d-source.npy'), '--decoded', f('d-decoded.npy'), '--metrics', 'loss', '--l1-coefficient', '0']);
    expect(table.stdout).toMatch(/^loss +\S+ +l2 \+ 0 \* l1$/m);
  });
});

describe('sae-metrics on Ctrl-C', () => {
  it('exits 130 with the results so far, or saying nothing was computed', async () => {
    // 4 GiB of zeros, sparse on disk: long enough to be interrupted.
    const big = f('big.npy');
    const header = npyBytes(new Float32Array(0), [1 << 20, 1024]);
    writeFileSync(big, header);
    truncateSync(big, header.length + 4 * 1024 * (1 << 20));
    const child = spawn(process.execPath, [main, big, '--workers', '1'], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const closed = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // Once the command has the file open, its SIGINT handler is long installed.
    const opened = (): boolean => {
      try {
        return readdirSync(`/proc/${child.pid}/fd`).some((fd) => {
          try {
            return readlinkSync(`/proc/${child.pid}/fd/${fd}`) === big;
          } catch {
            return false;
          }
        });
      } catch {
        return false;
      }
    };
    const waitedSince = performance.now();
    while (!opened() && performance.now() - waitedSince < 20_000) await new Promise((r) => setTimeout(r, 10));
    child.kill('SIGINT');
    const code = await closed;
    expect(code).toBe(130);
    const lines = stderr.trimEnd().split('\n');
    expect(lines).toHaveLength(1);
    if (stdout === '') expect(lines[0]).toBe('sae-metrics: interrupted: nothing was computed');
    else {
      expect(lines[0]).toMatch(/^sae-metrics: interrupted: the results are over the first [\d,]+ of 1,048,576 vectors$/);
      expect(stdout).toMatch(/^\S+big\.npy: [\d,]+ of 1,048,576 vectors \(interrupted\)/);
      expect(stdout).toMatch(/^dead +1,024 \/ 1,024 /m);
    }
  }, 60_000);
});
