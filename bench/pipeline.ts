/**
 * Pipeline benchmark: GB/s of activations through the full SAE metric set on every backend, side
 * by side, with TensorFlow.js computing the same metrics on the same data, against a read-only
 * pass over the same memory (the ceiling), all measured in this run. Run with `npm run bench`
 * (under `xvfb-run -a` for the gpu.js `headlessgl` row). A benchmark, not a test: it asserts
 * nothing about speed (it checks that every path computed the same values, and says whether the
 * targets of issue 4 are met, with the numbers).
 *
 * Which build it measures: the TypeScript sources (`../src/index.js`, run through tsx), so the
 * pool's default worker is `workers/metric-worker.ts`, started with `--import tsx`. We measured
 * what the tsx loader in every worker costs against the compiled worker
 * (`dist/workers/metric-worker.js`, what the compiled package `dist/src/index.js` starts), 2
 * workers, 64 x 4096 batches, in three runs of this bench: per batch, nothing we can tell apart
 * from the noise of this shared 2-core machine. Overhead over in-thread (pooled median minus
 * in-thread median), in a stream of batches: 263, -478 and 225 us with tsx workers, 369, -183 and
 * 208 us compiled; one batch alone: 359, -322 and 459 us against 169, -59 and 345 us; the ranges
 * of the repetitions overlap by milliseconds. The loader's hooks run when a module is imported,
 * never per task, so it is paid once, when a worker starts: a 2-worker pool gave its first value
 * in 640, 1623 and 264 ms with tsx workers against 116, 230 and 47 ms compiled (one sample per
 * run). That does not matter for throughput, so we import
 * the sources: the bench then measures the code in `src/` even when `dist/` is stale, and
 * `npm run typecheck` (which covers bench/) does not depend on a build. Each run re-checks the
 * choice: the small-batch table has a row for a pool of compiled workers (this is why
 * `npm run bench` builds first; the build also compiles `dist/wasm/fused.wasm`, which the wasm
 * backend loads from the sources too), and the last lines give both pools' start times.
 *
 * What it reports (every row: 7 timed repetitions after one warm-up, configurations interleaved
 * round by round so that the load of the shared machine falls on all of them alike; medians,
 * with min and max):
 * - GB/s (1 GB = 1e9 bytes) over the bytes of the three arrays of each batch, counted once
 *   (a path that reads some of them twice gets no credit for it): learned 2048 x 16384 float32
 *   (128 MiB), source and decoded 2048 x 4096 float32 (32 MiB each), 192 MiB per batch, 2
 *   batches per repetition. Rows too slow for whole batches in a bench of a few minutes (gpu.js
 *   in every mode, TensorFlow.js's cpu backend) run on the first rows of the same batches, say so
 *   in their name, and are credited with the bytes they read;
 * - the read-only ceiling: the fastest one-thread read-only pass over the same arrays (the
 *   WebAssembly SIMD `readSum` of the package's module, next to the plain JavaScript loops), and
 *   the ratio of every row to it; the same passes on 2 threads, for scale against the 2-worker
 *   rows, and the ratio to the faster of those;
 * - each fused kernel alone, in this thread, one call per batch over all its rows (no shards, no
 *   operator): `js`, `wasm` (on batches in its WebAssembly memory), gpu.js `cpu`, `webasm` and
 *   `headlessgl` (or why it cannot run here);
 * - the pipeline: `reduceMetric` over a `MetricCollection` of the six metrics, on a pool (wasm
 *   backend at 1 and 2 workers, js backend at 2 workers; batches from `pool.allocate`, so in the
 *   pool's shared memory; one row with the batches in ordinary memory, which the pool copies into
 *   its memory for every batch; and one row with a stream of 16 batches instead of 2, where the
 *   start and end of a stream weigh less), and in this thread (backends `wasm`, which copies every
 *   batch into this thread's WebAssembly memory, and `js`);
 * - TensorFlow.js (`bench/tfjs.ts`): the same six values with tfjs ops on its `cpu` and `wasm`
 *   backends, from the same Float32Arrays (tensors made in the timed run, as for batches that
 *   arrive as arrays) and, on `wasm`, from tensors already in its heap (tfjs at its best);
 * - the two targets of issue 4 (pooled >= 0.8 x ceiling, judged on 2-batch and on 16-batch
 *   streams; >= 5x TensorFlow.js's best row, judged on the best 2-batch pooled row), met or not,
 *   with the numbers;
 * - the per-batch time of small batches (64 x 4096 each array) through the pool against the
 *   in-thread operator, in a stream of 256 batches and one batch at a time.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import { from, lastValueFrom } from 'rxjs';
import {
  createMetricPool,
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  reduceMetric,
  SparseAutoencoderLoss,
  tensor,
  type BackendOption,
  type Batch,
  type MetricPool,
  type Tensor,
} from '../src/index.js';
import { jsFusedKernel } from '../src/kernels/js-fused.js';
import { createWasmKernel, type WasmKernel } from '../src/kernels/wasm/index.js';
import { chooseBackend } from '../src/pool/backend.js';
import { WasmArena } from '../src/pool/wasm-arena.js';
import { GPUJS_MODES, kernelTotals, startGpujs, WasmReaders, type BenchGpujsMode, type GpujsSlot, type KernelTotals } from './kernels.js';
import {
  disposeTensors,
  initTfjs,
  tfjsFromArrays,
  tfjsFromTensors,
  toTensors,
  useTfjsBackend,
  type TfjsInfo,
  type TfjsTensors,
} from './tfjs.js';

// ---------------------------------------------------------------- settings

const REPS = 7;
const ROWS = 2048;
const LEARNED = 16384;
const SOURCE = 4096;
const BATCHES_PER_REP = 2;
/**
 * Batches in the one longer stream (the same two batches in turn): a `reduceMetric` over 2 batches
 * pays the pool's start (first dispatch) and end (last merge) of a stream in every repetition; a
 * stream this long shows what a training loop's steady state gets.
 */
const STREAM_BATCHES = 16;
const SHARD_ROWS = 1024; // the default; the in-thread operator uses the same shard plan as the pools
const L1_COEFFICIENT = 0.001;
const FIRE_PROBABILITY = 0.02; // about 330 active features per row, on the 90% of features that ever fire
const ALIVE_FEATURES = 0.9;
const SMALL_ROWS = 64;
const SMALL_FEATURES = 4096;
const SMALL_STREAM = 256;
const SMALL_ROUND_TRIPS = 32;
/**
 * Rows of each batch that the gpu.js rows read (the first ones; the row says how many, and is
 * credited with the bytes it read): gpu.js takes 0.25 to 0.6 s a whole batch here, in every mode,
 * and 8 rounds of every row must fit in a few minutes. Rates per byte hardly depend on the row
 * count past a few hundred rows (measured alone, third call: cpu 0.44, 0.53 and 0.50 GB/s at 256,
 * 1024 and 2048 rows; webasm 0.78, 0.80 and 0.74; headlessgl, llvmpipe under Xvfb, 0.60 at 256 and
 * 0.68 to 0.85 at 2048, so it gets more rows).
 */
const GPUJS_ROWS: Readonly<Record<BenchGpujsMode, number>> = { cpu: 512, webasm: 512, headlessgl: 1024 };
/** Rows of each batch that TensorFlow.js's cpu backend reads (about 4 s a whole batch). Its wasm backend reads them all. */
const TFJS_CPU_ROWS = 256;
/**
 * Worst relative difference allowed from the float64 plain loop: float64 paths (js), the
 * WebAssembly pass (float32 blocks carried into float64), float32 paths (gpu.js, tfjs).
 */
const TOLERANCE_F64 = 1e-9;
const TOLERANCE_WASM = 1e-6;
const TOLERANCE_F32 = 1e-4;
/** The targets of issue 4. */
const TARGET_CEILING = 0.8;
const TARGET_TFJS = 5;

const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined);
const GB = 1e9;

// ---------------------------------------------------------------- data

interface Arrays {
  readonly learned: Float32Array;
  readonly source: Float32Array;
  readonly decoded: Float32Array;
}

/** A deterministic xorshift32 generator of floats in [0, 1). */
function random(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

/** Sparse non-negative learned activations (the last 10% of features never fire), and a reconstruction close to its source. */
function fill(a: Arrays, rows: number, learned: number, source: number, seed: number): void {
  const next = random(seed);
  const alive = Math.floor(learned * ALIVE_FEATURES);
  for (let r = 0; r < rows; r++) {
    const o = r * learned;
    for (let f = 0; f < alive; f++) if (next() < FIRE_PROBABILITY) a.learned[o + f] = next() * 4;
  }
  for (let i = 0; i < rows * source; i++) {
    const x = next() * 2 - 1;
    a.source[i] = x;
    a.decoded[i] = x + (next() - 0.5) * 0.1;
  }
}

function batchOf(a: Arrays, rows: number, learned: number, source: number): Batch {
  return {
    learnedActivations: tensor(a.learned, [rows, learned]),
    sourceActivations: tensor(a.source, [rows, source]),
    decodedActivations: tensor(a.decoded, [rows, source]),
  };
}

function sharedArrays(pool: MetricPool, rows: number, learned: number, source: number): Arrays {
  const t = (shape: number[]): Float32Array => pool.allocate(shape).data;
  return { learned: t([rows, learned]), source: t([rows, source]), decoded: t([rows, source]) };
}

/** Arrays in a WebAssembly memory of our own (what the wasm kernel alone and the wasm readers read). */
function arenaArrays(arena: WasmArena, rows: number, learned: number, source: number): Arrays {
  const t = (n: number): Float32Array => arena.view(arena.allocate(n * 4), n);
  return { learned: t(rows * learned), source: t(rows * source), decoded: t(rows * source) };
}

/** Copies the values of `from` into `to` (the same data in another memory); returns `to`. */
function copyInto(to: Arrays, from: Arrays): Arrays {
  to.learned.set(from.learned);
  to.source.set(from.source);
  to.decoded.set(from.decoded);
  return to;
}

/** The first `rows` rows of every array (views, no copy). */
function firstRows(a: Arrays, rows: number, learned: number, source: number): Arrays {
  return {
    learned: a.learned.subarray(0, rows * learned),
    source: a.source.subarray(0, rows * source),
    decoded: a.decoded.subarray(0, rows * source),
  };
}

// ---------------------------------------------------------------- the metrics

function saeMetrics(numLearnedFeatures: number) {
  return new MetricCollection({
    sae: new SparseAutoencoderLoss({ l1Coefficient: L1_COEFFICIENT }),
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    density: new FeatureDensityMetric({ numLearnedFeatures }),
    dead: new NeuronActivityMetric({ numLearnedFeatures }),
  });
}
type SaeMetrics = ReturnType<typeof saeMetrics>;

/** The metric values, as plain numbers: what every path must agree on. */
interface Values {
  sae: number;
  l1: number;
  l2: number;
  l0: number;
  dead: number;
  density: Float64Array;
}

function valuesOf(result: Readonly<Record<string, Tensor>>): Values {
  const item = (k: string): number => (result[k] as Tensor).item();
  return {
    sae: item('sae'),
    l1: item('l1'),
    l2: item('l2'),
    l0: item('l0'),
    dead: item('dead'),
    density: Float64Array.from((result.density as Tensor).data),
  };
}

/**
 * Through the operator: the batches as a stream, `reduceMetric` over the collection, on a pool or
 * in this thread with a backend.
 */
async function throughOperator(metrics: SaeMetrics, batches: readonly Batch[], on: MetricPool | BackendOption): Promise<Values> {
  const options = typeof on === 'string' ? { shardRows: SHARD_ROWS, backend: on } : { pool: on };
  return valuesOf(await lastValueFrom(from(batches).pipe(reduceMetric(metrics, options))));
}

/**
 * The baseline a user would write: the same metrics by hand, one fused pass over the learned
 * activations (absolute sums, non-zero counts, fired counts) and one over source and decoded.
 */
function plainFused(batches: readonly Arrays[], rows: number, learned: number, source: number): Values {
  let absSum = 0;
  let mseSum = 0;
  let nonZero = 0;
  const fired = new Uint32Array(learned);
  for (const { learned: x, source: s, decoded: d } of batches) {
    for (let r = 0; r < rows; r++) {
      const o = r * learned;
      let a = 0;
      let nz = 0;
      for (let f = 0; f < learned; f++) {
        const v = x[o + f] as number;
        a += Math.abs(v);
        if (v !== 0) nz++;
        if (v > 0) fired[f] = (fired[f] as number) + 1;
      }
      absSum += a;
      nonZero += nz;
    }
    for (let r = 0; r < rows; r++) {
      const o = r * source;
      let e2 = 0;
      for (let f = 0; f < source; f++) {
        const e = (d[o + f] as number) - (s[o + f] as number);
        e2 += e * e;
      }
      mseSum += e2 / source;
    }
  }
  const n = rows * batches.length;
  return finish(absSum / n, mseSum / n, nonZero / n, fired, n);
}

function finish(l1: number, l2: number, l0: number, fired: ArrayLike<number>, n: number): Values {
  const density = new Float64Array(fired.length);
  let dead = 0;
  for (let f = 0; f < fired.length; f++) {
    density[f] = (fired[f] as number) / n;
    if (fired[f] === 0) dead++;
  }
  return { sae: l2 + L1_COEFFICIENT * l1, l1, l2, l0, dead, density };
}

/** The values from a fused kernel's totals. */
function fromTotals(t: KernelTotals): Values {
  return finish(t.abs / t.rows, t.mse / t.rows, t.nonZero / t.rows, t.fired, t.rows);
}

/** The same metrics as a user might write them one function per metric: a pass over memory each. */
function plainPerMetric(batches: readonly Arrays[], rows: number, learned: number, source: number): Values {
  const l1 = (): number => {
    let sum = 0;
    for (const { learned: x } of batches) {
      for (let r = 0; r < rows; r++) {
        let a = 0;
        for (let f = 0, o = r * learned; f < learned; f++) a += Math.abs(x[o + f] as number);
        sum += a;
      }
    }
    return sum / (rows * batches.length);
  };
  const l2 = (): number => {
    let sum = 0;
    for (const { source: s, decoded: d } of batches) {
      for (let r = 0; r < rows; r++) {
        let e2 = 0;
        for (let f = 0, o = r * source; f < source; f++) {
          const e = (d[o + f] as number) - (s[o + f] as number);
          e2 += e * e;
        }
        sum += e2 / source;
      }
    }
    return sum / (rows * batches.length);
  };
  const l0 = (): number => {
    let nz = 0;
    for (const { learned: x } of batches) for (let i = 0; i < x.length; i++) if (x[i] !== 0) nz++;
    return nz / (rows * batches.length);
  };
  const firedCounts = (): Uint32Array => {
    const fired = new Uint32Array(learned);
    for (const { learned: x } of batches) {
      for (let r = 0; r < rows; r++) for (let f = 0, o = r * learned; f < learned; f++) if ((x[o + f] as number) > 0) fired[f] = (fired[f] as number) + 1;
    }
    return fired;
  };
  // One call per metric, as six independent metric functions would run.
  const sae = l2() + L1_COEFFICIENT * l1(); // SparseAutoencoderLoss
  const l1Value = l1(); // L1AbsoluteLoss
  const l2Value = l2(); // L2ReconstructionLoss
  const l0Value = l0(); // L0NormMetric
  const n = rows * batches.length;
  const { density } = finish(0, 0, 0, firedCounts(), n); // FeatureDensityMetric
  const { dead } = finish(0, 0, 0, firedCounts(), n); // NeuronActivityMetric
  return { sae, l1: l1Value, l2: l2Value, l0: l0Value, dead, density };
}

// ---------------------------------------------------------------- read-only passes (the ceiling)

let sink = 0; // keeps every read live

function readF32(a: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i] as number;
  return s;
}

function readF32x4(a: Float32Array): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const n = a.length & ~3;
  for (let i = 0; i < n; i += 4) {
    s0 += a[i] as number;
    s1 += a[i + 1] as number;
    s2 += a[i + 2] as number;
    s3 += a[i + 3] as number;
  }
  return s0 + s1 + s2 + s3;
}

/**
 * The same bytes as float64 words, 8 accumulators: the fastest read-only loop we found in JS (the
 * values mean nothing; only the reading counts). Half the loop iterations of a float32 loop, and
 * enough independent sums to hide the latency of each addition.
 */
function readF64x8(a: Float32Array): number {
  const v = new Float64Array(a.buffer, a.byteOffset, a.length >>> 1);
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  let s4 = 0;
  let s5 = 0;
  let s6 = 0;
  let s7 = 0;
  const n = v.length & ~7;
  for (let i = 0; i < n; i += 8) {
    s0 += v[i] as number;
    s1 += v[i + 1] as number;
    s2 += v[i + 2] as number;
    s3 += v[i + 3] as number;
    s4 += v[i + 4] as number;
    s5 += v[i + 5] as number;
    s6 += v[i + 6] as number;
    s7 += v[i + 7] as number;
  }
  return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

function readAll(read: (a: Float32Array) => number, batches: readonly Arrays[]): void {
  for (const b of batches) sink += read(b.learned) + read(b.source) + read(b.decoded);
}

/** Read-only workers: each reads its share of every array (shared memory), as readF64x8 does. */
const READER_SOURCE = `
const { parentPort } = require('node:worker_threads');
function read(buffer, start, end) {
  const v = new Float64Array(buffer, start * 8, end - start);
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0;
  const n = v.length & ~7;
  for (let i = 0; i < n; i += 8) {
    s0 += v[i]; s1 += v[i + 1]; s2 += v[i + 2]; s3 += v[i + 3];
    s4 += v[i + 4]; s5 += v[i + 5]; s6 += v[i + 6]; s7 += v[i + 7];
  }
  return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}
parentPort.on('message', (jobs) => {
  let s = 0;
  for (const j of jobs) s += read(j.buffer, j.start, j.end);
  parentPort.postMessage(s);
});
`;

interface ReadJob {
  readonly buffer: SharedArrayBuffer;
  readonly start: number;
  readonly end: number;
}

class Readers {
  readonly #workers: Worker[];
  constructor(threads: number) {
    this.#workers = Array.from({ length: threads }, () => new Worker(READER_SOURCE, { eval: true, execArgv: [] }));
  }
  /** Each thread reads a contiguous share of every array of every batch. */
  async read(batches: readonly Arrays[]): Promise<void> {
    const threads = this.#workers.length;
    const jobs: ReadJob[][] = this.#workers.map(() => []);
    for (const b of batches) {
      for (const a of [b.learned, b.source, b.decoded]) {
        // In float64 words (every array here starts on 8 bytes and holds an even count of floats).
        const start = a.byteOffset / 8;
        const words = a.length >>> 1;
        const per = Math.ceil(words / threads / 8) * 8;
        for (let t = 0; t < threads; t++) {
          const s = start + Math.min(words, t * per);
          const e = start + Math.min(words, (t + 1) * per);
          (jobs[t] as ReadJob[]).push({ buffer: a.buffer as SharedArrayBuffer, start: s, end: e });
        }
      }
    }
    const sums = await Promise.all(
      this.#workers.map(
        (w, t) =>
          new Promise<number>((resolve) => {
            w.once('message', resolve);
            w.postMessage(jobs[t]);
          }),
      ),
    );
    for (const s of sums) sink += s;
  }
  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}

// ---------------------------------------------------------------- timing

interface Case {
  readonly name: string;
  run(): unknown;
  /** Untimed, before each run (e.g. switching the tfjs backend). */
  prepare?(): unknown;
  /** Bytes one run reads, when not the whole batches (rows on a part of each batch, or more batches). */
  readonly bytes?: number;
  /** Batches one run reads, when not `BATCHES_PER_REP`. */
  readonly batches?: number;
}

/** One warm-up of every case, then `REPS` rounds, each running every case once; times in ms. */
async function measure(cases: readonly Case[]): Promise<number[][]> {
  const times: number[][] = cases.map(() => []);
  for (let round = -1; round < REPS; round++) {
    for (const [i, c] of cases.entries()) {
      await c.prepare?.();
      gc();
      const t0 = performance.now();
      await c.run();
      const t = performance.now() - t0;
      if (round >= 0) (times[i] as number[]).push(t);
    }
  }
  return times;
}

interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

function summary(xs: readonly number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[s.length >> 1] as number, min: s[0] as number, max: s[s.length - 1] as number };
}

/** A rate from times: the median time gives the median rate; the min time the max rate. */
function rate(timesMs: readonly number[], amount: number): Summary {
  const t = summary(timesMs);
  return { median: amount / (t.median / 1000), min: amount / (t.max / 1000), max: amount / (t.min / 1000) };
}

function table(header: readonly string[], rows: readonly (readonly string[])[], align: readonly ('l' | 'r')[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (align[i] === 'l' ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

const f2 = (x: number): string => x.toFixed(2);
const f0 = (x: number): string => x.toFixed(0);

// ---------------------------------------------------------------- checks

/**
 * The worst relative difference of `got` from `want` over the four means and the densities;
 * throws when it exceeds `tolerance`, or when the dead counts or the lengths differ.
 */
function agree(name: string, got: Values, want: Values, tolerance = TOLERANCE_F64): number {
  let worst = 0;
  const rel = (a: number, b: number): number => (a === b ? 0 : Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b)));
  for (const k of ['sae', 'l1', 'l2', 'l0'] as const) worst = Math.max(worst, rel(got[k], want[k]));
  for (let f = 0; f < want.density.length; f++) worst = Math.max(worst, rel(got.density[f] as number, want.density[f] as number));
  if (!(worst <= tolerance) || got.dead !== want.dead || got.density.length !== want.density.length) {
    throw new Error(
      `bench: ${name} disagrees with the plain loop (relative difference ${worst}, tolerance ${tolerance}; dead ${got.dead} vs ${want.dead})`,
    );
  }
  return worst;
}

// ---------------------------------------------------------------- main

interface Pools {
  /** Backend wasm, 1 worker. */
  readonly pool1: MetricPool;
  /** Backend wasm, 2 workers. */
  readonly pool2: MetricPool;
  /** Backend js, 2 workers. */
  readonly pool2js: MetricPool;
  /** Backend wasm, 2 workers running the compiled `dist/workers/metric-worker.js`, when it is built. */
  readonly pool2c: MetricPool | undefined;
  /** Plain JavaScript read-only workers. */
  readonly readers: Readers;
  /** Our own WebAssembly memory, with the wasm kernel of this thread and two read-only workers on it. */
  readonly arena: WasmArena;
  readonly wasm: WasmKernel;
  readonly wasmReaders: WasmReaders;
  /** gpu.js kernels in this thread, one per mode (or why the mode cannot run). */
  readonly gpujs: readonly GpujsSlot[];
  readonly tfjs: TfjsInfo;
}

/** A row of the large-batch table: a measured case, or a path that cannot run here. */
type Row = { readonly title: string } | { readonly case: Case; readonly kind: RowKind } | { readonly name: string; readonly skipped: string };
/** Which figures a row takes part in. */
type RowKind = 'read-1' | 'read-2' | 'pooled' | 'pooled-stream' | 'tfjs' | 'other';

/** The figures of the large-batch run that the targets are judged on. */
interface Headline {
  readonly ceiling: { readonly name: string; readonly gbs: number };
  readonly read2: { readonly name: string; readonly gbs: number };
  readonly pooled: { readonly name: string; readonly gbs: number };
  readonly stream: { readonly name: string; readonly gbs: number };
  readonly tfjs: { readonly name: string; readonly gbs: number } | undefined;
}

/** GB/s of large batches through every path, printed as a table; returns the headline figures. */
async function largeBatches(p: Pools): Promise<Headline> {
  const { pool1, pool2, pool2js, readers, arena, wasm, wasmReaders } = p;
  // The data, once, in our own WebAssembly memory; the same values copied into each pool's memory
  // (pool.allocate) and into ordinary memory.
  const own: Arrays[] = [];
  for (let b = 0; b < BATCHES_PER_REP; b++) {
    const a = arenaArrays(arena, ROWS, LEARNED, SOURCE);
    fill(a, ROWS, LEARNED, SOURCE, 1 + b);
    own.push(a);
  }
  const inPool = (pool: MetricPool): Arrays[] => own.map((a) => copyInto(sharedArrays(pool, ROWS, LEARNED, SOURCE), a));
  const pool1Arrays = inPool(pool1);
  const pool2Arrays = inPool(pool2);
  const pool2jsArrays = inPool(pool2js);
  const ordinary: Arrays[] = own.map((a) => ({
    learned: Float32Array.from(a.learned),
    source: Float32Array.from(a.source),
    decoded: Float32Array.from(a.decoded),
  }));
  const batches = (arrays: readonly Arrays[], rows = ROWS): Batch[] => arrays.map((a) => batchOf(a, rows, LEARNED, SOURCE));
  const ownBatches = batches(own);
  const ordinaryBatches = batches(ordinary);
  const pool1Batches = batches(pool1Arrays);
  const pool2Batches = batches(pool2Arrays);
  const pool2jsBatches = batches(pool2jsArrays);
  // The same two batches in turn: the same means, densities and dead count as the two once.
  const streamBatches = Array.from({ length: STREAM_BATCHES }, (_, i) => pool2Batches[i % pool2Batches.length] as Batch);
  const metrics = saeMetrics(LEARNED);
  const bytesPerRow = (LEARNED + 2 * SOURCE) * 4;
  const bytesPerBatch = ROWS * bytesPerRow;
  const bytes = bytesPerBatch * BATCHES_PER_REP;
  const allArrays = own.flatMap((a) => [a.learned, a.source, a.decoded]);

  const want = plainFused(own, ROWS, LEARNED, SOURCE);
  const results = new Map<string, { got: Values; want: Values; tolerance: number }>();
  const keep =
    (name: string, expected = want, tolerance = TOLERANCE_F64) =>
    (got: Values): void =>
      void results.set(name, { got, want: expected, tolerance });

  const rows: Row[] = [
    { title: 'read-only passes (the ceiling: the fastest on one thread)' },
    { kind: 'read-1', case: { name: 'read-only: JS float32 loop, 1 accumulator', run: () => readAll(readF32, own) } },
    { kind: 'read-1', case: { name: 'read-only: JS float32 loop, 4 accumulators', run: () => readAll(readF32x4, own) } },
    { kind: 'read-1', case: { name: 'read-only: JS float64 view, 8 accumulators', run: () => readAll(readF64x8, own) } },
    {
      kind: 'read-1',
      case: {
        name: 'read-only: WebAssembly SIMD readSum',
        run: () => {
          for (const a of allArrays) sink += wasm.readSum(a);
        },
      },
    },
    { kind: 'read-2', case: { name: 'read-only: JS float64 view, 8 acc., 2 threads', run: () => readers.read(own) } },
    {
      kind: 'read-2',
      case: { name: 'read-only: WebAssembly SIMD readSum, 2 threads', run: async () => void (sink += await wasmReaders.read(allArrays)) },
    },
    { title: 'plain JavaScript, no library' },
    { kind: 'other', case: { name: 'plain JS loop, one fused pass', run: () => keep('plain, fused')(plainFused(own, ROWS, LEARNED, SOURCE)) } },
    {
      kind: 'other',
      case: { name: 'plain JS loops, one pass per metric', run: () => keep('plain, per metric')(plainPerMetric(own, ROWS, LEARNED, SOURCE)) },
    },
    { title: 'each fused kernel alone, this thread, one call per batch' },
    {
      kind: 'other',
      case: { name: 'kernel js', run: () => keep('kernel js')(fromTotals(kernelTotals(jsFusedKernel, ownBatches, ROWS, LEARNED))) },
    },
    {
      kind: 'other',
      case: { name: 'kernel wasm', run: () => keep('kernel wasm', want, TOLERANCE_WASM)(fromTotals(kernelTotals(wasm.fused, ownBatches, ROWS, LEARNED))) },
    },
    ...p.gpujs.map((slot): Row => {
      if (!slot.ok) return { name: `kernel gpu.js ${slot.mode}`, skipped: `not run: ${slot.reason}` };
      const r = Math.min(ROWS, GPUJS_ROWS[slot.mode]);
      const part = own.map((a) => firstRows(a, r, LEARNED, SOURCE));
      const partBatches = batches(part, r);
      const partWant = plainFused(part, r, LEARNED, SOURCE);
      const name = `kernel gpu.js ${slot.mode}${r < ROWS ? ` (first ${r} of ${ROWS} rows)` : ''}`;
      return {
        kind: 'other',
        case: {
          name,
          bytes: r * bytesPerRow * BATCHES_PER_REP,
          run: () => keep(name, partWant, TOLERANCE_F32)(fromTotals(kernelTotals(slot.fused, partBatches, r, LEARNED))),
        },
      };
    }),
    { title: 'the pipeline: reduceMetric over the six metrics' },
    {
      kind: 'pooled',
      case: {
        name: 'operator + pool (wasm), 1 worker, pool.allocate',
        run: () => throughOperator(metrics, pool1Batches, pool1).then(keep('pool wasm 1', want, TOLERANCE_WASM)),
      },
    },
    {
      kind: 'pooled',
      case: {
        name: 'operator + pool (wasm), 2 workers, pool.allocate',
        run: () => throughOperator(metrics, pool2Batches, pool2).then(keep('pool wasm 2', want, TOLERANCE_WASM)),
      },
    },
    {
      kind: 'pooled-stream',
      case: {
        name: `operator + pool (wasm), 2 workers, pool.allocate, stream of ${STREAM_BATCHES}`,
        bytes: bytesPerBatch * STREAM_BATCHES,
        batches: STREAM_BATCHES,
        run: () => throughOperator(metrics, streamBatches, pool2).then(keep('pool wasm 2, stream', want, TOLERANCE_WASM)),
      },
    },
    {
      kind: 'pooled',
      case: {
        name: 'operator + pool (wasm), 2 workers, ordinary memory (copied in)',
        run: () => throughOperator(metrics, ordinaryBatches, pool2).then(keep('pool wasm 2, ordinary', want, TOLERANCE_WASM)),
      },
    },
    {
      kind: 'pooled',
      case: {
        name: 'operator + pool (js), 2 workers, pool.allocate',
        run: () => throughOperator(metrics, pool2jsBatches, pool2js).then(keep('pool js 2')),
      },
    },
    {
      kind: 'other',
      case: {
        name: 'operator in-thread (wasm: copies each batch in)',
        run: () => throughOperator(metrics, ordinaryBatches, 'wasm').then(keep('in-thread wasm', want, TOLERANCE_WASM)),
      },
    },
    {
      kind: 'other',
      case: { name: 'operator in-thread (js)', run: () => throughOperator(metrics, ordinaryBatches, 'js').then(keep('in-thread js')) },
    },
    { title: `TensorFlow.js ${p.tfjs.version}: the same six values with tfjs ops` },
  ];

  // TensorFlow.js. Its cpu backend wraps a Float32Array without copying it, so "from the arrays"
  // is also "tensors already made" there; its wasm backend copies every tensor into its heap.
  let tfjsTensors: TfjsTensors[] = [];
  const tf = p.tfjs.available;
  if (tf.cpu.ok) {
    const r = Math.min(ROWS, TFJS_CPU_ROWS);
    const part = own.map((a) => firstRows(a, r, LEARNED, SOURCE));
    const partWant = plainFused(part, r, LEARNED, SOURCE);
    const name = `tfjs cpu, from the arrays (no copy)${r < ROWS ? ` (first ${r} of ${ROWS} rows)` : ''}`;
    rows.push({
      kind: 'tfjs',
      case: {
        name,
        bytes: r * bytesPerRow * BATCHES_PER_REP,
        prepare: () => useTfjsBackend('cpu'),
        run: () => tfjsFromArrays(part, r, LEARNED, SOURCE, L1_COEFFICIENT).then(keep(name, partWant, TOLERANCE_F32)),
      },
    });
  } else rows.push({ name: 'tfjs cpu', skipped: `not run: ${tf.cpu.reason}` });
  if (tf.wasm.ok) {
    await useTfjsBackend('wasm');
    tfjsTensors = own.map((a) => toTensors(a, ROWS, LEARNED, SOURCE));
    rows.push(
      {
        kind: 'tfjs',
        case: {
          name: 'tfjs wasm, from the arrays (copied into its heap)',
          prepare: () => useTfjsBackend('wasm'),
          run: () => tfjsFromArrays(own, ROWS, LEARNED, SOURCE, L1_COEFFICIENT).then(keep('tfjs wasm', want, TOLERANCE_F32)),
        },
      },
      {
        kind: 'tfjs',
        case: {
          name: 'tfjs wasm, tensors already in its heap',
          prepare: () => useTfjsBackend('wasm'),
          run: () => tfjsFromTensors(tfjsTensors, ROWS, L1_COEFFICIENT).then(keep('tfjs wasm, tensors', want, TOLERANCE_F32)),
        },
      },
    );
  } else rows.push({ name: 'tfjs wasm', skipped: `not run: ${tf.wasm.reason}` });

  const measured = rows.filter((r): r is { case: Case; kind: RowKind } => 'case' in r);
  const cases = measured.map((r) => r.case);
  let times: number[][];
  try {
    times = await measure(cases);
  } finally {
    if (tfjsTensors.length > 0) {
      await useTfjsBackend('wasm');
      disposeTensors(tfjsTensors);
    }
  }
  // Checked after the table is printed, so that a disagreement still shows the figures.
  let worst64 = 0;
  let worstWasm = 0;
  let worst32: { name: string; d: number } = { name: '', d: 0 };
  const disagreements: string[] = [];
  for (const [name, r] of results) {
    try {
      const d = agree(name, r.got, r.want, r.tolerance);
      if (r.tolerance === TOLERANCE_F64) worst64 = Math.max(worst64, d);
      else if (r.tolerance === TOLERANCE_WASM) worstWasm = Math.max(worstWasm, d);
      else if (d >= worst32.d) worst32 = { name, d };
    } catch (error) {
      disagreements.push((error as Error).message);
    }
  }

  const rates = times.map((t, i) => rate(t, (cases[i]?.bytes ?? bytes) / GB));
  const best = (kind: RowKind): { name: string; gbs: number } | undefined => {
    let out: { name: string; gbs: number } | undefined;
    measured.forEach((r, i) => {
      const gbs = (rates[i] as Summary).median;
      if (r.kind === kind && (out === undefined || gbs > out.gbs)) out = { name: r.case.name, gbs };
    });
    return out;
  };
  const ceiling = best('read-1') as { name: string; gbs: number };
  const read2 = best('read-2') as { name: string; gbs: number };
  const pooled = best('pooled') as { name: string; gbs: number };
  const stream = best('pooled-stream') as { name: string; gbs: number };
  const tfjsBest = best('tfjs');

  console.log(
    `large batches: learned [${ROWS}, ${LEARNED}], source and decoded [${ROWS}, ${SOURCE}], float32: ` +
      `${(bytesPerBatch / 2 ** 20).toFixed(0)} MiB per batch, ${BATCHES_PER_REP} batches per repetition (one row: ${STREAM_BATCHES}), ` +
      `shardRows ${SHARD_ROWS}; learned ${(FIRE_PROBABILITY * ALIVE_FEATURES * 100).toFixed(1)}% non-zero`,
  );
  console.log(
    'metrics: MetricCollection of SparseAutoencoderLoss, L1AbsoluteLoss, L2ReconstructionLoss, L0NormMetric, ' +
      'FeatureDensityMetric, NeuronActivityMetric through reduceMetric (kernels alone: the statistics of all six)',
  );
  console.log(
    `GB/s = 1e9 bytes of the three arrays per second (rows on part of each batch: the bytes they read); ${REPS} repetitions ` +
      'after a warm-up, interleaved: median (min-max); ms/batch = median / batches (of the rows read); ' +
      'x ceiling = median / the fastest one-thread read-only median; x 2-thr = median / the fastest two-thread read-only median\n',
  );
  let k = 0;
  const lines = rows.map((r): string[] => {
    if ('title' in r) return [`-- ${r.title}`, '', '', '', '', ''];
    if ('skipped' in r) return [`${r.name}: not run (see below)`, '-', '', '-', '-', '-'];
    const i = k++;
    const rr = rates[i] as Summary;
    const ms = summary(times[i] as number[]).median / (r.case.batches ?? BATCHES_PER_REP);
    const mark = r.case.name === ceiling.name ? ' [ceiling]' : '';
    return [r.case.name + mark, f2(rr.median), `(${f2(rr.min)}-${f2(rr.max)})`, ms.toFixed(1), f2(rr.median / ceiling.gbs), f2(rr.median / read2.gbs)];
  });
  console.log(table(['configuration', 'GB/s', '(min-max)', 'ms/batch', 'x ceiling', 'x 2-thr'], lines, ['l', 'r', 'l', 'r', 'r', 'r']));
  for (const r of rows) if ('skipped' in r) console.log(`${r.name}: ${r.skipped}`);
  if (disagreements.length > 0) throw new Error(disagreements.join('\n'));
  console.log(
    `\ncheck: every path computed the plain loop's values (dead counts equal; worst relative difference of the means and ` +
      `densities: float64 paths ${worst64.toExponential(1)}, tolerance ${TOLERANCE_F64}; WebAssembly paths ` +
      `${worstWasm.toExponential(1)}, tolerance ${TOLERANCE_WASM}; float32 paths (gpu.js, tfjs) ` +
      `${worst32.d.toExponential(1)} (${worst32.name}), tolerance ${TOLERANCE_F32})`,
  );
  return { ceiling, read2, pooled, stream, tfjs: tfjsBest };
}

/** The two targets of issue 4, met or not, with the numbers. */
function targets(h: Headline): void {
  const ratio = h.pooled.gbs / h.ceiling.gbs;
  const streamRatio = h.stream.gbs / h.ceiling.gbs;
  const verdict = (r: number): string => (r >= TARGET_CEILING ? 'MET' : 'NOT MET');
  console.log('\ntargets of issue 4 (this run, this machine):');
  console.log(
    `- pooled pipeline >= ${TARGET_CEILING} x the read-only ceiling ("${h.ceiling.name}", ${f2(h.ceiling.gbs)} GB/s on one thread; ` +
      `the fastest on two threads, "${h.read2.name}", ${f2(h.read2.gbs)} GB/s):\n` +
      `  ${BATCHES_PER_REP} batches per reduceMetric: ${verdict(ratio)}: best pooled row "${h.pooled.name}" ` +
      `${f2(h.pooled.gbs)} GB/s = ${f2(ratio)} x the ceiling (${f2(h.pooled.gbs / h.read2.gbs)} x the two-thread pass)\n` +
      `  ${STREAM_BATCHES} batches per reduceMetric: ${verdict(streamRatio)}: "${h.stream.name}" ` +
      `${f2(h.stream.gbs)} GB/s = ${f2(streamRatio)} x the ceiling (${f2(h.stream.gbs / h.read2.gbs)} x the two-thread pass)`,
  );
  if (h.tfjs === undefined) {
    console.log(`- >= ${TARGET_TFJS}x TensorFlow.js's best backend: NOT MEASURED (no tfjs backend started)`);
    return;
  }
  const speedup = h.pooled.gbs / h.tfjs.gbs;
  console.log(
    `- >= ${TARGET_TFJS}x TensorFlow.js's best backend: ${speedup >= TARGET_TFJS ? 'MET' : 'NOT MET'}: ` +
      `best pooled row (${BATCHES_PER_REP} batches per reduceMetric) ${f2(h.pooled.gbs)} GB/s against "${h.tfjs.name}" ` +
      `${f2(h.tfjs.gbs)} GB/s = ${speedup.toFixed(1)}x`,
  );
}

/** Microseconds per small batch through the pools and in-thread, printed as a table. */
async function smallBatches({ pool1, pool2, pool2c }: Pools): Promise<void> {
  const values: Arrays = {
    learned: new Float32Array(SMALL_ROWS * SMALL_FEATURES),
    source: new Float32Array(SMALL_ROWS * SMALL_FEATURES),
    decoded: new Float32Array(SMALL_ROWS * SMALL_FEATURES),
  };
  fill(values, SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES, 11);
  const metrics = saeMetrics(SMALL_FEATURES);
  const want = plainFused([values], SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES);
  // Each pool gets the batch in its own memory (pool.allocate); in-thread, ordinary memory.
  const batchIn = (pool?: MetricPool): Batch =>
    batchOf(
      pool === undefined ? values : copyInto(sharedArrays(pool, SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES), values),
      SMALL_ROWS,
      SMALL_FEATURES,
      SMALL_FEATURES,
    );
  const targets: { name: string; on: MetricPool | BackendOption; batch: Batch }[] = [
    { name: 'in-thread (wasm: copies each batch in)', on: 'wasm', batch: batchIn() },
    { name: 'pool (wasm), 1 worker (tsx worker)', on: pool1, batch: batchIn(pool1) },
    { name: 'pool (wasm), 2 workers (tsx worker)', on: pool2, batch: batchIn(pool2) },
    ...(pool2c === undefined ? [] : [{ name: 'pool (wasm), 2 workers (compiled dist worker)', on: pool2c, batch: batchIn(pool2c) }]),
  ];
  const results = new Map<string, Values>();
  const cases: Case[] = targets.flatMap((t) => {
    const stream = Array.from({ length: SMALL_STREAM }, () => t.batch);
    return [
      { name: `${t.name}, stream`, run: async () => results.set(`${t.name}, stream`, await throughOperator(metrics, stream, t.on)) },
      {
        name: `${t.name}, alone`,
        run: async () => {
          for (let i = 0; i < SMALL_ROUND_TRIPS; i++) results.set(`${t.name}, alone`, await throughOperator(metrics, [t.batch], t.on));
        },
      },
    ];
  });
  const times = (await measure(cases)).map((ts, i) => ts.map((ms) => (ms * 1000) / (i % 2 === 0 ? SMALL_STREAM : SMALL_ROUND_TRIPS)));
  // The same batch 256 times has the same means as the batch once (up to rounding).
  for (const [name, v] of results) agree(name, v, want);

  const us = (i: number): Summary => summary(times[i] as number[]);
  const cell = (s: Summary): string => `${f0(s.median)} (${f0(s.min)}-${f0(s.max)})`;
  console.log(
    `\nsmall batches: learned, source and decoded [${SMALL_ROWS}, ${SMALL_FEATURES}] float32 ` +
      `(${((3 * SMALL_ROWS * SMALL_FEATURES * 4) / 2 ** 20).toFixed(0)} MiB per batch), in each pool's memory (pool.allocate); ` +
      `us per batch, median (min-max) of ${REPS} repetitions after a warm-up`,
  );
  console.log(
    `"stream": ${SMALL_STREAM} batches through one reduceMetric; "alone": one batch per reduceMetric, ` +
      `${SMALL_ROUND_TRIPS} in a row; overhead = pooled median - in-thread median\n`,
  );
  console.log(
    table(
      ['configuration', 'us/batch, stream', 'overhead', 'us/batch, alone', 'overhead'],
      targets.map((t, j) => {
        const s = us(2 * j);
        const o = us(2 * j + 1);
        return [
          t.name,
          cell(s),
          j === 0 ? '-' : f0(s.median - us(0).median),
          cell(o),
          j === 0 ? '-' : f0(o.median - us(1).median),
        ];
      }),
      ['l', 'r', 'r', 'r', 'r'],
    ),
  );
}

/** The time from creating a 2-worker wasm pool to the value of its first (small) batch. */
async function startPool(filename?: string): Promise<{ pool: MetricPool; ms: number }> {
  const t0 = performance.now();
  const pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, backend: 'wasm', ...(filename === undefined ? {} : { filename }) });
  const a = sharedArrays(pool, SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES);
  await throughOperator(saeMetrics(SMALL_FEATURES), [batchOf(a, SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES)], pool);
  return { pool, ms: performance.now() - t0 };
}

async function main(): Promise<void> {
  const started = performance.now();
  const load = loadavg().map(f2).join(' ');
  const compiledWorker = fileURLToPath(new URL('../dist/workers/metric-worker.js', import.meta.url));
  const haveCompiled = existsSync(compiledWorker);
  const tsx = await startPool();
  const compiled = haveCompiled ? await startPool(compiledWorker) : undefined;
  const arena = new WasmArena();
  const gpujs = GPUJS_MODES.map(startGpujs);
  const pools: Pools = {
    pool1: createMetricPool({ workers: 1, shardRows: SHARD_ROWS, backend: 'wasm' }),
    pool2: tsx.pool,
    pool2js: createMetricPool({ workers: 2, shardRows: SHARD_ROWS, backend: 'js' }),
    pool2c: compiled?.pool,
    readers: new Readers(2),
    arena,
    wasm: createWasmKernel(arena.memory),
    wasmReaders: new WasmReaders(2, arena.memory),
    gpujs,
    tfjs: await initTfjs(),
  };
  try {
    const machine = cpus();
    console.log(
      `machine: ${machine[0]?.model ?? 'unknown'}, ${machine.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
        `${platform()} ${release()}, Node ${process.version}`,
    );
    const auto = chooseBackend('bench', 'auto', undefined);
    console.log(`backend 'auto' here: ${auto.backend}${auto.gpujsMode ? ` (${auto.gpujsMode})` : ''} (${auto.reason})`);
    for (const slot of gpujs) {
      console.log(
        `gpu.js ${slot.mode}: ${slot.ok ? `runs${slot.renderer === undefined ? '' : `, renderer ${slot.renderer}`}` : `cannot run here: ${slot.reason}`}`,
      );
    }
    const tf = pools.tfjs;
    console.log(
      `TensorFlow.js ${tf.version}: cpu ${tf.available.cpu.ok ? 'runs' : `cannot run: ${tf.available.cpu.reason}`}; ` +
        `wasm ${tf.available.wasm.ok ? `runs (${tf.wasmBuild})` : `cannot run: ${tf.available.wasm.reason}`}\n`,
    );
    const headline = await largeBatches(pools);
    gc();
    await smallBatches(pools);
    targets(headline);
    console.log(
      `\npool start (create + first batch, one sample each), 2 workers: tsx worker ${f0(tsx.ms)} ms, ` +
        (compiled === undefined ? 'compiled worker not built (run npm run build)' : `compiled worker ${f0(compiled.ms)} ms`),
    );
    console.log(
      `total bench time ${((performance.now() - started) / 1000).toFixed(0)} s; load average at the start ${load}, ` +
        `at the end ${loadavg().map(f2).join(' ')} (this bench keeps about 1 to 2 cores busy; more means other work shared the machine)`,
    );
  } finally {
    await Promise.all([
      ...gpujs.map((slot) => (slot.ok ? slot.destroy() : undefined)),
      pools.pool1.close(),
      pools.pool2.close(),
      pools.pool2js.close(),
      pools.pool2c?.close(),
      pools.readers.close(),
      pools.wasmReaders.close(),
    ]);
  }
}

await main();
