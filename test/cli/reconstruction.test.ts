/**
 * The reconstruction-quality metrics on the command line: `--metrics ev,fvu,cos,l2ratio,shrinkage,nmse`
 * with `--source` / `--decoded`, in the table and in `--json`, against the float64 references
 * (test/reference/reconstruction.ts) within 2e-6 (the pool's WebAssembly pass sums squared errors
 * in float32 blocks); the same numbers at 1 and 3 workers and whatever --batch-rows; one value
 * per component for [N, C, F] input; refused without source and decoded activations.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { npyBytes, safetensorsBytes, scratchDir, write } from './files.js';
import { cli, requireBuilt } from './run-cli.js';
import {
  cosineSimilarityRef,
  explainedVarianceRef,
  fractionOfVarianceUnexplainedRef,
  l2RatioRef,
  normalizedMseRef,
  relativeReconstructionBiasRef,
  type PairBatch,
} from '../reference/reconstruction.js';
import { mulberry32 } from '../support/random.js';

const NAMES = ['ev', 'fvu', 'cos', 'l2ratio', 'shrinkage', 'nmse'] as const;
const REFS: Record<(typeof NAMES)[number], (b: readonly PairBatch[]) => number[]> = {
  ev: explainedVarianceRef,
  fvu: fractionOfVarianceUnexplainedRef,
  cos: cosineSimilarityRef,
  l2ratio: l2RatioRef,
  shrinkage: relativeReconstructionBiasRef,
  nmse: (b) => normalizedMseRef(b).value,
};

const tmp = scratchDir();
afterAll(() => tmp.remove());

function pair(shape: number[], seed: number): PairBatch {
  const rng = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const features = shape[shape.length - 1] as number;
  const source = new Float32Array(n);
  const decoded = new Float32Array(n);
  for (let v = 0; v < n / features; v++) {
    const zero = rng() < 0.05;
    for (let f = 0; f < features; f++) {
      const i = v * features + f;
      source[i] = zero ? 0 : 2 + (rng() - 0.5) * 6;
      decoded[i] = (source[i] as number) * 0.8 + (rng() - 0.5) * 0.7;
    }
  }
  return { source, decoded, shape };
}

const flat = pair([700, 24], 1);
const learnedFlat = new Float32Array(700 * 10).map((_, i) => (i % 3 === 0 ? 1 : 0));
const comps = pair([300, 2, 12], 2);
const learnedComps = new Float32Array(300 * 2 * 5).map((_, i) => (i % 4 === 0 ? 0.5 : 0));

beforeAll(() => {
  requireBuilt();
  write(tmp.path('l.npy'), npyBytes(learnedFlat, [700, 10]));
  write(tmp.path('s.npy'), npyBytes(flat.source, [700, 24]));
  write(tmp.path('d.npy'), npyBytes(flat.decoded, [700, 24]));
  write(
    tmp.path('c.safetensors'),
    safetensorsBytes({
      learned: { dtype: 'F32', shape: [300, 2, 5], data: learnedComps },
      src: { dtype: 'F32', shape: [300, 2, 12], data: comps.source },
      dec: { dtype: 'F32', shape: [300, 2, 12], data: comps.decoded },
    }),
  );
});

function expectNear(actual: unknown, expected: number, what: string): void {
  expect(typeof actual, what).toBe('number');
  expect(Math.abs((actual as number) - expected), `${what}: ${String(actual)} vs ${expected}`).toBeLessThanOrEqual(2e-6 * Math.max(1, Math.abs(expected)));
}

describe('sae-metrics with the reconstruction metrics', () => {
  it('--json gives the reference values on [N, F] .npy files, the same at 1 and 3 workers and any --batch-rows', async () => {
    const base = [tmp.path('l.npy'), '--source', tmp.path('s.npy'), '--decoded', tmp.path('d.npy'), '--json', '--metrics', NAMES.join(',')];
    const runs = await Promise.all([cli([...base, '--workers', '1', '--batch-rows', '64']), cli([...base, '--workers', '3', '--batch-rows', '333'])]);
    const outs = runs.map((r) => {
      expect(r.code, r.stderr).toBe(0);
      return JSON.parse(r.stdout) as { metrics: Record<string, number> };
    });
    for (const name of NAMES) {
      const ref = REFS[name]([flat])[0] as number;
      for (const out of outs) expectNear(out.metrics[name], ref, name);
    }
    expect(Object.keys((outs[0] as { metrics: object }).metrics)).toEqual([...NAMES]);
  });

  it('--json gives one value per component for [N, C, F] safetensors', async () => {
    const r = await cli([tmp.path('c.safetensors'), '--tensor', 'learned', '--source', 'src', '--decoded', 'dec', '--json', '--metrics', NAMES.join(','), '--batch-rows', '40']);
    expect(r.code, r.stderr).toBe(0);
    const out = JSON.parse(r.stdout) as { metrics: Record<string, number[]> };
    for (const name of NAMES) {
      const ref = REFS[name]([comps]);
      expect(out.metrics[name], name).toHaveLength(2);
      ref.forEach((e, c) => expectNear((out.metrics[name] as number[])[c], e, `${name}[${c}]`));
    }
  });

  it('the table has a row per metric with its value and meaning', async () => {
    const r = await cli([tmp.path('l.npy'), '--source', tmp.path('s.npy'), '--decoded', tmp.path('d.npy'), '--metrics', NAMES.join(',')]);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.split('\n');
    for (const [name, meaning] of [
      ['ev', 'explained variance'],
      ['fvu', 'fraction of variance unexplained'],
      ['cos', 'mean cosine similarity'],
      ['l2ratio', 'mean |x^| / |x|'],
      ['shrinkage', 'relative reconstruction bias'],
      ['nmse', 'mean |x - x^|^2 / |x|^2'],
    ] as const) {
      const line = lines.find((l) => l.startsWith(`${name} `));
      expect(line, name).toBeDefined();
      expect(line, name).toContain(meaning);
      const value = Number((line as string).slice(name.length).trim().split(/\s+/)[0]);
      expect(Math.abs(value - (REFS[name]([flat])[0] as number)), `${name}: ${line}`).toBeLessThan(1e-3);
    }
  });

  it('refuses them without --source and --decoded (exit 2), naming them', async () => {
    const r = await cli([tmp.path('l.npy'), '--metrics', 'cos,ev']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/--metrics: cos and ev need --source and --decoded activations/);
  });

  it('--help lists the names', async () => {
    const r = await cli(['--help']);
    expect(r.stdout).toContain('with --source/--decoded: l2, loss, ev, fvu, cos, l2ratio, shrinkage, nmse');
  });
});
