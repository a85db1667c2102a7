/**
 * The gpujs backend in the pool, in gpu.js's GL modes (real GLSL on whatever GL the display
 * offers: Mesa's software renderer under Xvfb in CI), with any number of workers: every shard is
 * computed by gpu.js in the pool's GL process, with the same bits as gpu.js in one thread, at 1,
 * 2 and 4 workers. Also: where `gl` loads (never in this process, never in a worker thread), the
 * hardware probe's decision with a fake renderer, the one-line errors, and the GL process's
 * faults. Run by `npm run test:gl` under xvfb-run.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { from, lastValueFrom, Subject, take, toArray } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { accumulateMetric, createMetricPool, type MetricPool } from '../../src/index.js';
import { cli, requireBuilt } from '../cli/run-cli.js';
import { npyBytes } from '../cli/files.js';
import { inChild, source } from '../kernels/gpujs-fallback.js';
import { bitsOf, inThread, onPool, poolBatches, poolMetrics, SHAPES, SHARD_ROWS, within, type Values } from './gpujs-pool-cases.js';

const TIMEOUT = 240_000;
const ROWS = [70, 33, 1, 48];
const GL_SPY = `--require ${fileURLToPath(new URL('../fixtures/gl-spy.cjs', import.meta.url))}`;

const pools: MetricPool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

function pool(workers: number, gpujsMode: 'gpu' | 'headlessgl'): MetricPool {
  const p = createMetricPool({ workers, shardRows: SHARD_ROWS, backend: 'gpujs', gpujsMode });
  pools.push(p);
  return p;
}

/** The pids of this process's GL processes. */
function glProcesses(): number[] {
  const out: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      if (ppid === process.pid && readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes('gl-host')) out.push(Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

describe.each(SHAPES)('gpujs pools, components $components, $features features', (shape) => {
  const batches = poolBatches(shape, ROWS, shape.features);
  let reference: Values;
  let js: Values;
  beforeAll(async () => {
    // gpu.js in this thread, with the pools' shard plan: what a one-thread gpu.js pool computed.
    reference = await inThread(shape, batches, 'headlessgl');
    js = await inThread(shape, batches, 'js');
  }, TIMEOUT);

  it.each(['gpu', 'headlessgl'] as const)(
    "mode '%s' at 1, 2 and 4 workers: the same bits as gpu.js in one thread, within 1e-5 of js",
    async (mode) => {
      expect(within(reference, js, 1e-5)).toBeUndefined();
      // The kernels' float32 sums make gpu.js differ from js: equal bits are not a js result.
      expect(bitsOf(reference)).not.toEqual(bitsOf(js));
      for (const workers of [1, 2, 4]) {
        const p = pool(workers, mode);
        expect([p.backend, p.gpujsMode, p.workers]).toEqual(['gpujs', mode, workers]);
        expect(bitsOf(await onPool(shape, batches, p)), `${workers} workers`).toEqual(bitsOf(reference));
      }
    },
    TIMEOUT,
  );
});

describe('one gpujs pool under attack', () => {
  const shape = SHAPES[1] as (typeof SHAPES)[number];

  it(
    'streams at once on one 4-worker pool, batches of random sizes: each stream gets its own bits',
    async () => {
      const p = pool(4, 'gpu');
      const streams = [
        [5, 64, 17],
        [40, 3],
        [1, 1, 90, 16],
      ].map((rows, i) => poolBatches(shape, rows, 100 + i));
      const expected = await Promise.all(streams.map((b) => inThread(shape, b, 'headlessgl')));
      const got = await Promise.all(streams.map((b) => onPool(shape, b, p)));
      got.forEach((g, i) => expect(bitsOf(g), `stream ${i}`).toEqual(bitsOf(expected[i] as Values)));
    },
    TIMEOUT,
  );

  it(
    'an unsubscribe in the middle of a stream (worker threads ended mid-shard) leaves the pool computing the next stream right',
    async () => {
      const p = pool(2, 'gpu');
      const batches = poolBatches(shape, [64, 64, 64, 64, 64, 64], 7);
      const firstOnly = await lastValueFrom(from(batches).pipe(accumulateMetric(poolMetrics(shape), { pool: p }), take(1), toArray()));
      expect(firstOnly).toHaveLength(1);
      const after = poolBatches(shape, [50, 21], 8);
      expect(bitsOf(await onPool(shape, after, p))).toEqual(bitsOf(await inThread(shape, after, 'headlessgl')));
    },
    TIMEOUT,
  );

  it(
    'a GL process that is killed fails the batch in one line saying how it ended; this process goes on, and the pool keeps failing, not hanging',
    async () => {
      const before = new Set(glProcesses());
      const p = pool(2, 'gpu');
      const batches = poolBatches(shape, [40], 9);
      await onPool(shape, batches, p);
      const mine = glProcesses().filter((pid) => !before.has(pid));
      expect(mine).toHaveLength(1);
      process.kill(mine[0] as number, 'SIGKILL');
      const failure = /^worker failed on batch 0, shard \d+ \(rows \d+ to \d+\): the gpu\.js GL process exited on signal SIGKILL$/;
      await expect(onPool(shape, batches, p)).rejects.toThrow(failure);
      await expect(onPool(shape, batches, p)).rejects.toThrow(failure);
    },
    TIMEOUT,
  );

  it(
    'a subject fed while the pool computes: values in order, the same bits as in one thread',
    async () => {
      const p = pool(4, 'headlessgl');
      const batches = poolBatches(shape, [30, 30, 30, 30, 30], 11);
      const subject = new Subject<(typeof batches)[number]>();
      const values = lastValueFrom(subject.pipe(accumulateMetric(poolMetrics(shape), { pool: p }), toArray()));
      for (const b of batches) subject.next(b);
      subject.complete();
      const got = await values;
      expect(got).toHaveLength(batches.length);
      expect(bitsOf(got.at(-1) as Values)).toEqual(bitsOf(await inThread(shape, batches, 'headlessgl')));
    },
    TIMEOUT,
  );
});

describe('where gl loads, and what auto picks', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'sae-metrics-gl-log-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** Pools with backend auto at 1, 2 and 4 workers in a child process; what they picked and computed. */
  function autoPools(env: Record<string, string>): {
    pid: number;
    glInThisProcess: boolean;
    pools: { backend: string; mode: string | null; reason: string; bits: Record<string, string> }[];
  } {
    return inChild(
      `const { createMetricPool } = await import(${source('index.ts')});
const cases = await import(${JSON.stringify(fileURLToPath(new URL('./gpujs-pool-cases.ts', import.meta.url)))});
const { readFileSync } = await import('node:fs');
const shape = cases.SHAPES[1];
const batches = cases.poolBatches(shape, [70, 33], 5);
const pools = [];
for (const workers of [1, 2, 4]) {
  const pool = createMetricPool({ workers, shardRows: cases.SHARD_ROWS });
  pools.push({ backend: pool.backend, mode: pool.gpujsMode ?? null, reason: pool.backendReason, bits: cases.bitsOf(await cases.onPool(shape, batches, pool)) });
  await pool.close();
}
console.log(JSON.stringify({ pid: process.pid, glInThisProcess: readFileSync('/proc/self/maps', 'utf8').includes('webgl.node'), pools }));`,
      { env: { DISPLAY: process.env.DISPLAY ?? '', ...env } },
    );
  }

  it(
    "with a hardware renderer (faked), auto picks gpu.js ('gpu') and works at 1, 2 and 4 workers; gl loads only in the probe and GL processes, each in its main thread",
    async () => {
      const log = join(dir, 'fake.log');
      const answer = autoPools({ NODE_OPTIONS: GL_SPY, SAE_METRICS_TEST_GL_LOG: log, SAE_METRICS_TEST_RENDERER: 'NVIDIA GeForce RTX 4090/PCIe/SSE2' });
      const shape = SHAPES[1] as (typeof SHAPES)[number];
      const expected = bitsOf(await inThread(shape, poolBatches(shape, [70, 33], 5), 'headlessgl'));
      for (const p of answer.pools) {
        expect(p.backend).toBe('gpujs');
        expect(p.mode).toBe('gpu');
        expect(p.reason).toBe('auto: GL renderer NVIDIA GeForce RTX 4090/PCIe/SSE2 (WebGL 1.0 stack-gl 8.1.6)');
        expect(p.bits).toEqual(expected);
      }
      expect(answer.glInThisProcess).toBe(false);
      const loads = readFileSync(log, 'utf8')
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { pid: number; mainThread: boolean; argv: string[] });
      // One probe (once per process), one GL process per pool.
      expect(loads.filter((l) => l.argv.includes('--probe'))).toHaveLength(1);
      expect(loads.filter((l) => !l.argv.includes('--probe'))).toHaveLength(3);
      for (const l of loads) {
        expect(l.pid).not.toBe(answer.pid);
        expect(l.mainThread).toBe(true);
        expect(l.argv[0]).toMatch(/workers[\\/]gl-host\.ts$/);
      }
    },
    TIMEOUT,
  );

  it(
    'with the software renderer, auto picks the wasm pass and says why; gl loads in the probe process only',
    () => {
      const log = join(dir, 'real.log');
      const answer = autoPools({ NODE_OPTIONS: GL_SPY, SAE_METRICS_TEST_GL_LOG: log });
      for (const p of answer.pools) {
        expect(p.backend).toBe('wasm');
        expect(p.reason).toMatch(/^auto: no hardware GPU \(the GL renderer is software: ANGLE .*llvmpipe.*\); WebAssembly SIMD is available$/);
      }
      expect(answer.glInThisProcess).toBe(false);
      const loads = readFileSync(log, 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { pid: number; argv: string[] });
      expect(loads).toHaveLength(1);
      expect(loads[0]?.pid).not.toBe(answer.pid);
      expect(loads[0]?.argv).toContain('--probe');
    },
    TIMEOUT,
  );
});

describe('when gpu.js cannot run: one line, why, and what to do', () => {
  it('no display: a gpujs pool and a gpu kernel say to run under xvfb-run', () => {
    const answer = inChild<{ pool: string; kernel: string }>(
      `const { createMetricPool } = await import(${source('pool/metric-pool.ts')});
const { createGpujsKernel } = await import(${source('kernels/gpujs/index.ts')});
const message = (f) => { try { f(); return 'ran'; } catch (e) { return e.message; } };
console.log(JSON.stringify({ pool: message(() => createMetricPool({ workers: 2, backend: 'gpujs' })), kernel: message(() => createGpujsKernel({ mode: 'gpu' })) }));`,
    );
    const why = 'there is no X display for headlessgl (DISPLAY is not set): run under xvfb-run -a (Debian: apt-get install xvfb xauth libgl1-mesa-dri), or in a desktop session';
    expect(answer).toEqual({
      pool: `createMetricPool: the gpujs backend (gpu.js mode 'gpu') cannot run here: ${why}`,
      kernel: `createGpujsKernel: gpu.js mode 'gpu' cannot run here: no GL backend: ${why}`,
    });
  });

  it(
    'gl loaded in this process\'s main thread: a worker thread is told it is loaded in another thread (not to rebuild it), and a gpujs pool still works',
    () => {
      requireBuilt();
      const dist = (p: string): string => JSON.stringify(fileURLToPath(new URL(`../../dist/src/${p}`, import.meta.url)));
      const script = `
const { createRequire } = await import('node:module');
const { Worker } = await import('node:worker_threads');
const { gpujsPath } = await import(${dist('kernels/gpujs/gpu.js')});
createRequire(gpujsPath())('gl');
const reason = await new Promise((resolve, reject) => {
  const w = new Worker(\`const { parentPort } = await import('node:worker_threads');
const m = await import(\${JSON.stringify(${dist('kernels/gpujs/index.js')})});
parentPort.postMessage(m.gpujsAvailable('headlessgl'));\`, { eval: true });
  w.once('message', (m) => { resolve(m.reason); void w.terminate(); });
  w.once('error', reject);
});
const { createMetricPool, reduceMetric, L1AbsoluteLoss, tensor } = await import(${dist('index.js')});
const { from, lastValueFrom } = await import('rxjs');
const pool = createMetricPool({ workers: 2, shardRows: 2, backend: 'gpujs' });
const l1 = await lastValueFrom(from([{ learnedActivations: tensor([[1, -2], [0, 3], [4, 0], [0, 0], [1, 1]]) }]).pipe(reduceMetric(new L1AbsoluteLoss(), { pool })));
await pool.close();
console.log(JSON.stringify({ reason, l1: l1.item() }));`;
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 120_000 });
      expect(child.status, child.stderr).toBe(0);
      expect(JSON.parse(child.stdout.trim().split('\n').pop() as string)).toEqual({
        reason:
          'gl is already loaded in another thread of this process, and it loads in one thread only (it is not context-aware): build GL kernels in one thread, or use a pool (createMetricPool), which runs them in a child process',
        l1: 12 / 5,
      });
    },
    TIMEOUT,
  );
});

describe('the command line with --backend gpujs', () => {
  it(
    'gives the same values with --workers 1, 2 and 4',
    async () => {
      requireBuilt();
      const dir = mkdtempSync(join(tmpdir(), 'sae-metrics-gl-cli-'));
      try {
        const [shape] = SHAPES as [(typeof SHAPES)[number]];
        const [batch] = poolBatches(shape, [3000], 3);
        const learned = batch?.learnedActivations as { data: Float32Array; shape: number[] };
        const file = join(dir, 'act.npy');
        writeFileSync(file, npyBytes(learned.data, learned.shape));
        const runs = [];
        for (const workers of ['1', '2', '4']) runs.push(await cli([file, '--backend', 'gpujs', '--workers', workers, '--json']));
        const reports = runs.map((r) => {
          expect(r.stderr).toBe('');
          expect(r.code).toBe(0);
          return JSON.parse(r.stdout) as { backend: string; workers: number; metrics: unknown };
        });
        expect(reports.map((r) => [r.backend, r.workers])).toEqual([
          ['gpujs', 1],
          ['gpujs', 2],
          ['gpujs', 4],
        ]);
        expect(reports[1]?.metrics).toEqual(reports[0]?.metrics);
        expect(reports[2]?.metrics).toEqual(reports[0]?.metrics);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
    TIMEOUT,
  );
});

describe("issue 13's statistics in a GL pool: what the GL process does not compute, the worker does", () => {
  it(
    'fired entries, norms and moments come from the JS kernel in the workers: the same bits as a js pool, at 1 and 2 workers',
    async () => {
      const { CosineSimilarity, DeadFeaturesOverWindow, FeatureActivationHistogram, FeatureActivationStats, FractionOfVarianceUnexplained, MetricCollection, NormalizedMse, TopActivations, tensor } =
        await import('../../src/index.js');
      const features = 37;
      const width = 12;
      let seed = 5;
      const next = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
      const batch = (rows: number) => {
        const learned = Float32Array.from({ length: rows * features }, () => (next() < 0.3 ? next() * 4 : 0));
        const src = Float32Array.from({ length: rows * width }, () => next() - 0.5);
        const dec = Float32Array.from(src, (x) => x + (next() - 0.5) * 0.1);
        return {
          learnedActivations: tensor(learned, [rows, features]),
          sourceActivations: tensor(src, [rows, width]),
          decodedActivations: tensor(dec, [rows, width]),
        };
      };
      const batches = [batch(70), batch(33), batch(1), batch(48)];
      const metrics = () =>
        new MetricCollection({
          top: new TopActivations({ numLearnedFeatures: features, k: 3 }),
          deadwindow: new DeadFeaturesOverWindow({ numLearnedFeatures: features, windowVectors: 40 }),
          actstats: new FeatureActivationStats({ numLearnedFeatures: features }),
          acthist: new FeatureActivationHistogram({ numLearnedFeatures: features }),
          cos: new CosineSimilarity(),
          nmse: new NormalizedMse(),
          fvu: new FractionOfVarianceUnexplained({ numFeatures: width }),
        });
      const run = async (p: MetricPool) =>
        JSON.stringify(await lastValueFrom(from(batches).pipe(accumulateMetric(metrics(), { pool: p }), toArray())));
      const js = createMetricPool({ workers: 1, shardRows: SHARD_ROWS, backend: 'js' });
      pools.push(js);
      const want = await run(js);
      for (const workers of [1, 2]) expect(await run(pool(workers, 'headlessgl')), `${workers} workers`).toBe(want);
    },
    TIMEOUT,
  );
});
