/**
 * The package as npm publishes it: `npm pack` (of the `dist/` that `npm test` builds first),
 * unpacked into a scratch project's node_modules, then imported by name from JavaScript and
 * type-checked from TypeScript. The scratch project lives under this repository's
 * `node_modules/.cache`, so the package's own dependencies (rxjs, piscina) resolve to the installed
 * ones, with no network install.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const root = fileURLToPath(new URL('..', import.meta.url));
let project = '';
let packedFiles: { path: string }[] = [];

beforeAll(() => {
  if (!existsSync(join(root, 'dist/src/index.js'))) throw new Error('dist/ is missing: run `npm run build` (npm test does)');
  const cache = join(root, 'node_modules', '.cache');
  mkdirSync(cache, { recursive: true });
  project = mkdtempSync(join(cache, 'sae-metrics-consumer-'));
  const packed = JSON.parse(
    execFileSync('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', project], { cwd: root, encoding: 'utf8' }),
  ) as { filename: string; files: { path: string }[] }[];
  packedFiles = (packed[0] as { files: { path: string }[] }).files;
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

  it('is required by name from CommonJS (Node >= 20.19 requires ES modules; an exports default condition)', () => {
    writeFileSync(
      join(project, 'main.cjs'),
      `const { tensor, L1AbsoluteLoss, MetricCollection, NeuronActivityMetric } = require('sae-metrics');
const { l0Norm } = require('sae-metrics/functional');
const { reduceMetric } = require('sae-metrics/operators');
const { of, lastValueFrom } = require('rxjs');
const metrics = new MetricCollection({ l1: new L1AbsoluteLoss(), dead: new NeuronActivityMetric({ numLearnedFeatures: 3 }) });
metrics.update({ learnedActivations: tensor([[1, 0, 1], [0, 0, 0]]) });
const l0 = l0Norm();
lastValueFrom(of({ learnedActivations: tensor([[1, 0, 1]]) }).pipe(reduceMetric(new L1AbsoluteLoss()))).then((reduced) => {
  console.log(JSON.stringify({ ...metrics.compute(), l0: l0.compute(l0.update(l0.init(), { learnedActivations: tensor([[1, 0, 1]]) })), reduced }));
});
`,
    );
    const run = spawnSync('node', ['main.cjs'], { cwd: project, encoding: 'utf8' });
    expect(run.stderr).not.toMatch(/ERR_PACKAGE_PATH_NOT_EXPORTED|ERR_REQUIRE/);
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout)).toEqual({ l1: 1, dead: 1, l0: 2, reduced: 2 });
  });

  it('ships a LICENSE; ships no source map that points outside the package', () => {
    const target = join(project, 'node_modules', 'sae-metrics');
    const manifest = JSON.parse(readFileSync(join(target, 'package.json'), 'utf8')) as { license: string };
    expect(manifest.license).toBe('MIT');
    expect(readFileSync(join(target, 'LICENSE'), 'utf8')).toMatch(/^MIT License\n\nCopyright \(c\) \d{4} .+\n\nPermission is hereby granted, free of charge/);
    // Every source map the package has must name sources it has too.
    const files = packedFiles.map((f) => f.path);
    for (const file of files.filter((f) => f.endsWith('.js'))) {
      const url = /\/\/# sourceMappingURL=(\S+)\s*$/.exec(readFileSync(join(target, file), 'utf8'))?.[1];
      if (url === undefined) continue;
      const map = join(dirname(file), url);
      expect(files, `${file} points at ${map}`).toContain(map);
      const sources = (JSON.parse(readFileSync(join(target, map), 'utf8')) as { sources: string[] }).sources;
      for (const source of sources) expect(files, `${map} names ${source}`).toContain(join(dirname(map), source));
    }
    expect(files.filter((f) => f.endsWith('.map'))).toEqual([]);
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

describe('the repository', () => {
  it('npm install leaves package-lock.json as it is (the lock has what npm writes, every platform\'s optional packages included)', () => {
    const dir = mkdtempSync(join(root, 'node_modules', '.cache', 'sae-metrics-lock-'));
    try {
      const lock = readFileSync(join(root, 'package-lock.json'), 'utf8');
      writeFileSync(join(dir, 'package.json'), readFileSync(join(root, 'package.json')));
      writeFileSync(join(dir, 'package-lock.json'), lock);
      execFileSync('npm', ['install', '--package-lock-only', '--ignore-scripts', '--no-audit', '--no-fund'], { cwd: dir, encoding: 'utf8', stdio: 'pipe' });
      expect(readFileSync(join(dir, 'package-lock.json'), 'utf8') === lock).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);

  it('npm commands run without warnings about unknown config keys; gl still builds from source (.prebuild-installrc)', () => {
    // npm passes its configuration to scripts as npm_config_* variables: leave them out.
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k)));
    const run = spawnSync('npm', ['pkg', 'get', 'name'], { cwd: root, env, encoding: 'utf8' });
    expect(run.status).toBe(0);
    expect(run.stderr).not.toMatch(/Unknown (project|env|user|global) config/);
    expect(existsSync(join(root, '.npmrc')) ? readFileSync(join(root, '.npmrc'), 'utf8') : '').not.toMatch(/build-from-source/);
    // prebuild-install (gl's install script) reads .prebuild-installrc from the folders above it.
    expect(readFileSync(join(root, '.prebuild-installrc'), 'utf8')).toMatch(/^buildFromSource=true$/m);
    const rc = join(root, 'node_modules', 'prebuild-install', 'rc.js');
    if (existsSync(rc)) {
      const here = join(root, 'node_modules', 'gl');
      const out = execFileSync('node', ['-e', `console.log(JSON.stringify(require(${JSON.stringify(rc)})({ name: 'gl' }).buildFromSource))`], {
        cwd: existsSync(here) ? here : root,
        env,
        encoding: 'utf8',
      });
      expect(['true', '"true"']).toContain(out.trim());
    }
  });

  it('ignores the files the README\'s walk-through writes', () => {
    const ignored = (path: string): boolean => spawnSync('git', ['check-ignore', '-q', path], { cwd: root }).status === 0;
    for (const path of ['sample.npy', 'density.svg', 'density.png']) expect(ignored(path), path).toBe(true);
    expect(ignored('README.md')).toBe(false);
  });
});
