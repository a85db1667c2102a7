/**
 * The gpu.js kernels in the modes that run without a display (`cpu`, single-threaded `webasm`),
 * against the reference kernel `jsFusedKernel`, with one test per known gpu.js trap.
 * The `headlessgl` mode is tested by gpujs.gl.test.ts, under xvfb-run.
 */
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Batch, RowRange } from '../../src/functional/core.js';
import { createGpujsKernel, gpujsAvailable, type GpujsKernel } from '../../src/kernels/gpujs/index.js';
import { blockerText, explainGlLoadError, glInstall, gpujs, noDisplay } from '../../src/kernels/gpujs/gpu.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import type { ShardNeeds } from '../../src/kernels/types.js';
import {
  ALL_NEEDS,
  EVERY,
  bigCase,
  compare,
  expectEveryNeeds,
  expectExact,
  expectExtremeStats,
  expectNanStats,
  extremeBatch,
  loopCase,
  nanBatch,
  measured,
  randomBatch,
  throughputCase,
  timeRuns,
} from './gpujs-cases.js';
import { fallbackWithoutDisplay, inChild, NO_GL, source } from './gpujs-fallback.js';

/** A random shard case: rank 2 or 3, 1-3 components, odd feature counts, a row range inside the batch. */
const shardCase = fc
  .record({
    rank3: fc.boolean(),
    components: fc.integer({ min: 1, max: 3 }),
    features: fc.oneof(
      fc.integer({ min: 0, max: 20 }).map((k) => 2 * k + 1),
      fc.constantFrom(255, 257, 301),
    ),
    batchRows: fc.integer({ min: 1, max: 9 }),
    cut: fc.tuple(fc.nat(), fc.nat()),
    density: fc.constantFrom(0, 0.1, 0.5, 1),
    seed: fc.integer(),
    needs: fc.integer({ min: 0, max: 14 }).map((i) => ALL_NEEDS[i] as ShardNeeds),
  })
  .map((c) => {
    const start = c.cut[0] % c.batchRows;
    const end = start + 1 + (c.cut[1] % (c.batchRows - start));
    const shape = c.rank3 ? [c.batchRows, c.components, c.features] : [c.batchRows, c.features];
    return { shape, rows: { start, end }, density: c.density, seed: c.seed, needs: c.needs };
  });


function threadCount(): number {
  return readdirSync('/proc/self/task').length;
}

describe.each(['cpu', 'webasm'] as const)('gpu.js kernels in mode %s', (mode) => {
  let kernel: GpujsKernel;
  let blocked: GpujsKernel;
  beforeAll(() => {
    kernel = createGpujsKernel({ mode });
    blocked = createGpujsKernel({ mode, featureBlock: 4, rowBlock: 3 });
  });
  afterAll(async () => {
    await kernel.destroy();
    await blocked.destroy();
  });

  it('runs in the requested mode, with no renderer', () => {
    expect(gpujsAvailable(mode)).toEqual({ ok: true });
    expect(kernel.mode).toBe(mode);
    expect(kernel.requestedMode).toBe(mode);
    expect(blocked.mode).toBe(mode);
    expect(kernel.renderer).toBeUndefined();
  });

  it('matches jsFusedKernel on random sparse shards (rank 2 and 3, odd feature counts, rows inside a batch)', () => {
    fc.assert(
      fc.property(shardCase, (c) => {
        const batch = randomBatch(c.shape, c.density, c.seed);
        compare(`${mode} ${JSON.stringify(c)}`, kernel.fused(batch, c.rows, c.needs), jsFusedKernel(batch, c.rows, c.needs));
      }),
      { numRuns: 60 },
    );
  });

  it('matches with blocks smaller than the shard (several feature and row blocks, partial last blocks)', () => {
    fc.assert(
      fc.property(shardCase, (c) => {
        const batch = randomBatch(c.shape, c.density, c.seed);
        compare(`${mode} ${JSON.stringify(c)}`, blocked.fused(batch, c.rows, c.needs), jsFusedKernel(batch, c.rows, c.needs));
      }),
      { numRuns: 40 },
    );
  });

  it('matches for every combination of needs, and returns only what was needed', () => {
    expectEveryNeeds(mode, kernel, blocked);
  });

  it('computes an empty shard (no rows) as the reference does', () => {
    const batch = randomBatch([4, 2, 5], 0.5, 3);
    const rows = { start: 2, end: 2 };
    compare(`${mode} empty`, kernel.fused(batch, rows, EVERY), jsFusedKernel(batch, rows, EVERY));
  });

  it('treats NaN as non-zero and not fired, and propagates NaN and Infinity into the sums, as the reference does', () => {
    expectNanStats(kernel.fused(nanBatch(), { start: 0, end: 2 }, EVERY));
  });

  it('sums that overflow a float32 block or are subnormal are float64, as jsFusedKernel gives them', () => {
    expectExtremeStats(kernel.fused(extremeBatch(), { start: 0, end: 4 }, EVERY));
  });

  it('trap: a shard past 2^24 elements gives exact sums and counts (flat indexing is float32 in webasm)', async () => {
    const { batch, rows, expected } = bigCase();
    const fresh = createGpujsKernel({ mode });
    try {
      expectExact(fresh.fused(batch, rows, EVERY), expected);
    } finally {
      await fresh.destroy();
    }
  });

  it('trap: 4096 features and 1200 rows in one loop (above loopMaxIterations 1000) give right sums and counts', async () => {
    const { R, F, batch, rows, expected } = loopCase();
    const oneLoop = createGpujsKernel({ mode, featureBlock: F, rowBlock: R });
    try {
      for (const k of [oneLoop, kernel]) expectExact(k.fused(batch, rows, EVERY), expected);
    } finally {
      await oneLoop.destroy();
    }
  });

  it('trap: several shard shapes through one kernel object (dynamicArguments strides wrongly in cpu mode)', async () => {
    const a = randomBatch([40, 3, 9], 0.4, 11);
    const b = randomBatch([30, 11], 0.4, 12);
    const c = randomBatch([15, 9], 0.4, 13); // 15 vectors of 9 features, as 5 rows of a
    const shards: [Batch, RowRange][] = [
      [a, { start: 0, end: 5 }],
      [c, { start: 0, end: 15 }],
      [a, { start: 5, end: 12 }],
      [b, { start: 2, end: 9 }],
      [a, { start: 12, end: 40 }],
      [a, { start: 3, end: 8 }],
      [b, { start: 0, end: 30 }],
      [a, { start: 0, end: 5 }],
      [b, { start: 9, end: 16 }],
    ];
    // maxShapes 2: shapes are also evicted and rebuilt along the way.
    const small = createGpujsKernel({ mode, maxShapes: 2 });
    try {
      for (const [batch, rows] of shards) {
        compare(`${mode} ${JSON.stringify(rows)}`, small.fused(batch, rows, EVERY), jsFusedKernel(batch, rows, EVERY));
        compare(`${mode} shared ${JSON.stringify(rows)}`, kernel.fused(batch, rows, EVERY), jsFusedKernel(batch, rows, EVERY));
      }
    } finally {
      await small.destroy();
    }
  });

  it('trap: counts are exact Float64 integers, even past 2^24 where float32 cannot hold them', async () => {
    const { batch, rows, expected } = bigCase();
    const count = (expected.nonZero as Float64Array)[0] as number;
    expect(count).toBeGreaterThan(2 ** 24);
    expect(Math.fround(count)).not.toBe(count); // a float32 merge would round it
    const fresh = createGpujsKernel({ mode });
    try {
      const actual = fresh.fused(batch, rows, { nonZero: true, fired: true });
      expect(actual.nonZero).toBeInstanceOf(Float64Array);
      expect(actual.fired).toBeInstanceOf(Float64Array);
      expect((actual.nonZero as Float64Array)[0]).toBe(count);
      expect(Array.from(actual.fired as Float64Array)).toEqual(Array.from(expected.fired as Float64Array));
      expect((actual.fired as Float64Array).every((v) => Number.isInteger(v))).toBe(true);
    } finally {
      await fresh.destroy();
    }
  });

  it('throws when used after destroy()', async () => {
    const k = createGpujsKernel({ mode });
    await k.destroy();
    expect(() => k.fused(randomBatch([2, 3], 1, 1), { start: 0, end: 2 }, EVERY)).toThrow(`gpu.js kernel (${mode}): used after destroy()`);
  });
});

describe('gpu.js webasm threads', () => {
  it('trap: the webasm mode starts no worker threads (a threaded gpu.js run would start a pool)', async () => {
    const batch = randomBatch([5000, 8], 0.5, 5); // outputs of 5000 cells: above gpu.js's threading threshold (4096)
    const rows = { start: 0, end: 5000 };
    const before = threadCount();
    const k = createGpujsKernel({ mode: 'webasm' });
    try {
      for (let i = 0; i < 3; i++) compare('webasm threads', k.fused(batch, rows, EVERY), jsFusedKernel(batch, rows, EVERY));
      expect(threadCount()).toBe(before);
    } finally {
      await k.destroy();
    }

    // The control: the same count sees the pool that gpu.js starts for a threaded (asyncMode) run.
    const g = gpujs();
    const gpu = new g.GPU({ mode: 'webasm' });
    const threaded = gpu.createKernel('function(x) { return x[this.thread.x] + 1; }', {
      output: [5000],
      asyncMode: true,
    } as unknown as Parameters<typeof gpu.createKernel>[1]) as unknown as (x: Float32Array) => Promise<Float32Array>;
    try {
      const out = await threaded(new Float32Array(5000));
      expect(out[4999]).toBe(1);
      expect(threadCount()).toBeGreaterThan(before);
    } finally {
      await gpu.destroy();
    }
  });
});

describe('createGpujsKernel and gpujsAvailable', () => {
  it('say why webgpu, webgl and webgl2 cannot run in Node, and what to use instead', () => {
    const webgpu = gpujsAvailable('webgpu');
    expect(webgpu).toEqual({
      ok: false,
      reason: "there is no navigator.gpu in this runtime (Node has no WebGPU): use 'gpu' or 'headlessgl'",
    });
    for (const mode of ['webgl', 'webgl2'] as const) {
      expect(gpujsAvailable(mode)).toEqual({ ok: false, reason: `${mode} needs a browser canvas, and there is none in Node: use 'gpu' or 'headlessgl'` });
    }
    expect(() => createGpujsKernel({ mode: 'webgpu' })).toThrow(
      new Error("createGpujsKernel: gpu.js mode 'webgpu' cannot run here: there is no navigator.gpu in this runtime (Node has no WebGPU): use 'gpu' or 'headlessgl'"),
    );
  });

  it('gpujsAvailable never throws, even for a mode it does not know', () => {
    expect(gpujsAvailable('metal' as 'cpu')).toEqual({
      ok: false,
      reason: 'unknown gpu.js mode "metal": use one of gpu, headlessgl, webgl, webgl2, webgpu, cpu, webasm',
    });
  });

  it('validates its options, naming each', () => {
    expect(() => createGpujsKernel({ mode: 'metal' as 'cpu' })).toThrow(
      new RangeError(`createGpujsKernel: options.mode must be one of 'gpu', 'headlessgl', 'webgl', 'webgl2', 'webgpu', 'cpu', 'webasm', got "metal"`),
    );
    expect(() => createGpujsKernel({ mode: 'cpu', featureBlock: 0 })).toThrow(
      new RangeError('createGpujsKernel: options.featureBlock must be a positive integer, got 0'),
    );
    expect(() => createGpujsKernel({ mode: 'cpu', rowBlock: 1.5 })).toThrow(
      new RangeError('createGpujsKernel: options.rowBlock must be a positive integer, got 1.5'),
    );
    expect(() => createGpujsKernel({ mode: 'cpu', maxShapes: -1 })).toThrow(
      new RangeError('createGpujsKernel: options.maxShapes must be a positive integer, got -1'),
    );
    expect(() => createGpujsKernel(null as unknown as { mode: 'cpu' })).toThrow(
      new TypeError('createGpujsKernel: options must be an object, got null'),
    );
  });

  // The no-display case where gl is built runs in the GL suite, where gl certainly is.
  it("'gpu' where gl is not installed fails at once, in one line saying so and what to run (gl made unresolvable in a child process)", () => {
    const answer = fallbackWithoutDisplay([NO_GL]);
    expect(answer.error).toBe(
      "createGpujsKernel: gpu.js mode 'gpu' cannot run here: no GL backend: gl (gpu.js's native GL package) is not installed (its build may have failed): " +
        'npm install gl, with its build tools (Debian: apt-get install g++ make python3 pkg-config libxi-dev libx11-dev libxext-dev mesa-common-dev)',
    );
  });

  it('where gpu.js is not installed, every mode says to install it (gpu.js made unresolvable in a child process)', () => {
    const answer = inChild<{ errors: string[]; blocker: unknown }>(
      `const { createGpujsKernel, gpujsBlocker } = await import(${source('kernels/gpujs/index.ts')});
const errors = [];
for (const mode of ['cpu', 'webasm', 'gpu', 'headlessgl']) { try { createGpujsKernel({ mode }); errors.push('ran'); } catch (e) { errors.push(e.message); } }
console.log(JSON.stringify({ errors, blocker: gpujsBlocker('cpu') }));`,
      { preload: [NO_GL], env: { SAE_METRICS_TEST_BLOCK: 'gpu.js' } },
    );
    const install = 'gpu.js is not installed: npm install gpu.js (an optional peer dependency of sae-metrics)';
    expect(answer.errors).toEqual([
      `createGpujsKernel: gpu.js mode 'cpu' cannot run here: ${install}`,
      `createGpujsKernel: gpu.js mode 'webasm' cannot run here: ${install}`,
      `createGpujsKernel: gpu.js mode 'gpu' cannot run here: no GL backend: ${install}`,
      `createGpujsKernel: gpu.js mode 'headlessgl' cannot run here: ${install}`,
    ]);
    expect(answer.blocker).toEqual({ why: 'gpu.js is not installed', todo: 'npm install gpu.js (an optional peer dependency of sae-metrics)' });
  });
});

describe('gpu.js as a dependency', () => {
  it('is an optional peer dependency: a CPU-only install pulls neither gpu.js nor what it brings (webgpu, gl)', () => {
    const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as Record<string, Record<string, unknown> | undefined>;
    expect(Object.keys(pkg.dependencies ?? {})).not.toContain('gpu.js');
    expect(Object.keys(pkg.optionalDependencies ?? {})).not.toContain('gpu.js');
    expect(pkg.peerDependencies?.['gpu.js']).toBeTypeOf('string');
    expect(pkg.peerDependenciesMeta?.['gpu.js']).toEqual({ optional: true });
    expect(pkg.devDependencies?.['gpu.js']).toBe(pkg.peerDependencies?.['gpu.js']);
  });
});

describe('why gl cannot load, and what to do', () => {
  const BUILD = 'with its build tools (Debian: apt-get install g++ make python3 pkg-config libxi-dev libx11-dev libxext-dev mesa-common-dev)';
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sae-metrics-gl-tree-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A node_modules tree with gpu.js and, as asked, gl unbuilt or built; returns gpu.js's entry. */
  function tree(name: string, gl: 'none' | 'unbuilt' | 'built'): string {
    const modules = join(dir, name, 'node_modules');
    mkdirSync(join(modules, 'gpu.js', 'src'), { recursive: true });
    writeFileSync(join(modules, 'gpu.js', 'package.json'), '{"name":"gpu.js","main":"src/index.js"}');
    writeFileSync(join(modules, 'gpu.js', 'src', 'index.js'), '');
    if (gl !== 'none') {
      mkdirSync(join(modules, 'gl', 'build', 'Release'), { recursive: true });
      writeFileSync(join(modules, 'gl', 'package.json'), '{"name":"gl","main":"index.js"}');
      writeFileSync(join(modules, 'gl', 'index.js'), '');
      if (gl === 'built') writeFileSync(join(modules, 'gl', 'build', 'Release', 'webgl.node'), '');
    }
    return join(modules, 'gpu.js', 'src', 'index.js');
  }

  it('finds gl beside gpu.js without loading it: missing, installed but not built, built', () => {
    expect(glInstall(tree('none', 'none'))).toEqual({
      why: "gl (gpu.js's native GL package) is not installed (its build may have failed)",
      todo: `npm install gl, ${BUILD}`,
    });
    expect(glInstall(tree('unbuilt', 'unbuilt'))).toEqual({ why: "gl (gpu.js's native GL package) is installed but not built", todo: `npm rebuild gl, ${BUILD}` });
    expect(glInstall(tree('built', 'built'))).toEqual({ main: join(dir, 'built', 'node_modules', 'gl', 'index.js') });
  });

  it('a load error becomes why and what to do, never "npm rebuild gl" for gl loaded in another thread', () => {
    const otherThread = explainGlLoadError("Module did not self-register: '/app/node_modules/gl/build/Release/webgl.node'.");
    expect(otherThread).toEqual({
      why: 'gl is already loaded in another thread of this process, and it loads in one thread only (it is not context-aware)',
      todo: 'build GL kernels in one thread, or use a pool (createMetricPool), which runs them in a child process',
    });
    expect(blockerText(otherThread)).not.toMatch(/rebuild/);
    const abi =
      "The module '/app/node_modules/gl/build/Release/webgl.node'\nwas compiled against a different Node.js version using\nNODE_MODULE_VERSION 108. This version of Node.js requires\nNODE_MODULE_VERSION 115.";
    expect(explainGlLoadError(abi)).toEqual({
      why: 'gl was built for another Node.js version (module version 108; this Node needs 115)',
      todo: 'npm rebuild gl',
    });
    expect(explainGlLoadError('libXi.so.6: cannot open shared object file: No such file or directory')).toEqual({
      why: 'gl needs the system library libXi.so.6, which is missing',
      todo: 'install it (Debian: apt-get install libgl1 libxi6 libxext6 libx11-6)',
    });
    expect(explainGlLoadError('something else\nand more')).toEqual({ why: 'gl cannot be loaded (something else)', todo: `npm rebuild gl, ${BUILD}` });
  });

  it('says when there is no X display, and what to run', () => {
    expect(noDisplay({})).toEqual({
      why: 'there is no X display for headlessgl (DISPLAY is not set)',
      todo: 'run under xvfb-run -a (Debian: apt-get install xvfb xauth libgl1-mesa-dri), or in a desktop session',
    });
    expect(noDisplay({ DISPLAY: '' })).toEqual(noDisplay({}));
    expect(noDisplay({ DISPLAY: ':99' })).toBeUndefined();
  });
});

describe('gpu.js throughput', () => {
  it('prints GB/s per mode for one metric (abs) on a 2048 x 16384 shard', async () => {
    const { R, F, batch, rows } = throughputCase();
    const expected = jsFusedKernel(batch, rows, { abs: true });
    const bytes = R * F * 4;
    for (const mode of ['cpu', 'webasm'] as const) {
      const k = createGpujsKernel({ mode });
      try {
        const { first: build, median } = timeRuns(
          () => compare(`${mode} throughput`, k.fused(batch, rows, { abs: true }), expected),
          () => k.fused(batch, rows, { abs: true }),
        );
        console.log(`gpu.js ${mode}: abs over ${R} x ${F} float32: ${(bytes / median / 1e6).toFixed(2)} GB/s (median of 3; first run with build ${build.toFixed(0)} ms)`);
      } finally {
        await k.destroy();
      }
    }
    console.log(`largest relative error of abs/mse against jsFusedKernel: ${[...measured].map(([m, e]) => `${m} ${e.toExponential(2)}`).join(', ')}`);
  });
});
