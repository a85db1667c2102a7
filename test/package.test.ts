/**
 * The package as npm publishes it: `npm pack` (of the `dist/` that `npm test` builds first),
 * unpacked into a scratch project's node_modules, then imported by name from JavaScript and
 * type-checked from TypeScript. The scratch project lives under this repository's
 * `node_modules/.cache`, so the package's own dependencies (rxjs, piscina) resolve to the installed
 * ones, with no network install.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
let project = '';

beforeAll(() => {
  if (!existsSync(join(root, 'dist/src/index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
  const cache = join(root, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  project = mkdtempSync(join(cache, 'sae-metrics-consumer-'));
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: root, encoding: 'utf8' }),
  ) as { filename: string; files: { path: string }[] }[];
  const tarball = join(project, (packed[0] as { filename: string }).filename);
  const target = join(project, 'node_modules', 'sae-metrics');
  mkdirSync(target, { recursive: true });
  execFileSync('tar', ['-xzf', tarball, '-C', target, '--strip-components=1']);
  writeFileSync(join(project, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }));
}, 60_000);

afterAll(() => {
  if (project) rmSync(project, { recursive: true, force: true });
});

describe('the published package', () => {
  it('imports by name from JavaScript, both entry points', () => {
    writeFileSync(
      join(project, 'main.js'),
      `import { tensor, L1AbsoluteLoss, NeuronActivityMetric } from 'sae-metrics';
import { l0Norm } from 'sae-metrics/functional';
import { reduceMetric } from 'sae-metrics/operators';
import { createMetricPool } from 'sae-metrics';
import { of, lastValueFrom } from 'rxjs';
const learnedActivations = tensor([[[1, 0, 1]], [[0, 1, 0]]]);
const l0 = l0Norm();
console.log(JSON.stringify({
  l1: new L1AbsoluteLoss().forward({ learnedActivations }).item(),
  dead: new NeuronActivityMetric({ numLearnedFeatures: 3, numComponents: 1 }).forward({ learnedActivations }).item(),
  l0: l0.compute(l0.update(l0.init(), { learnedActivations: tensor([[1, 0, 1], [0, 1, 0]]) })).item(),
  reduced: (await lastValueFrom(of({ learnedActivations }).pipe(reduceMetric(new L1AbsoluteLoss())))).item(),
  ...(await pooled()),
}));

// A pool from the published files: the compiled worker and the shipped WebAssembly kernel.
async function pooled() {
  const pool = createMetricPool({ workers: 2, shardRows: 1, backend: 'wasm' });
  try {
    const value = await lastValueFrom(of({ learnedActivations }).pipe(reduceMetric(new L1AbsoluteLoss(), { pool })));
    return { pooled: value.item(), backend: pool.backend };
  } finally {
    await pool.close();
  }
}
`,
    );
    const out = JSON.parse(execFileSync('node', ['main.js'], { cwd: project, encoding: 'utf8' })) as Record<string, number>;
    expect(out).toEqual({ l1: 1.5, dead: 0, l0: 1.5, reduced: 1.5, pooled: 1.5, backend: 'wasm' });
  });

  it('ships the sae-metrics command: its bin entry runs (--version, --help)', () => {
    const target = join(project, 'node_modules', 'sae-metrics');
    const manifest = JSON.parse(readFileSync(join(target, 'package.json'), 'utf8')) as { version: string; bin: Record<string, string> };
    const bin = join(target, manifest.bin['sae-metrics'] as string);
    expect(readFileSync(bin, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    expect(execFileSync('node', [bin, '--version'], { cwd: project, encoding: 'utf8' }).trim()).toBe(`sae-metrics ${manifest.version}`);
    expect(execFileSync('node', [bin, '--help'], { cwd: project, encoding: 'utf8' })).toContain('sae-metrics FILE...');
  });

  it('ships type declarations that a strict TypeScript consumer compiles against', () => {
    writeFileSync(
      join(project, 'main.ts'),
      `import { tensor, L1AbsoluteLoss, type Tensor } from 'sae-metrics';
import { l1AbsoluteLoss } from 'sae-metrics/functional';
const value: Tensor<'float64'> = new L1AbsoluteLoss({ keepBatchDim: true }).forward({ learnedActivations: tensor([[1, 2]]) });
const def = l1AbsoluteLoss({ numComponents: 2 });
const n: number = value.item() + def.compute(def.init()).size;
// @ts-expect-error numComponents is a number
new L1AbsoluteLoss({ numComponents: '2' });
export { n };
`,
    );
    writeFileSync(
      join(project, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          strict: true,
          exactOptionalPropertyTypes: true,
          module: 'NodeNext',
          moduleResolution: 'NodeNext',
          target: 'ES2022',
          noEmit: true,
          types: [],
        },
        files: ['main.ts'],
      }),
    );
    const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
    const result = (() => {
      try {
        return { code: 0, out: execFileSync('node', [tsc, '-p', project], { cwd: project, encoding: 'utf8' }) };
      } catch (error) {
        const e = error as { status: number; stdout: string };
        return { code: e.status, out: e.stdout };
      }
    })();
    expect(result.out).toBe('');
    expect(result.code).toBe(0);
  }, 60_000);
});
