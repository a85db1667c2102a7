/**
 * Pipeline benchmark: GB/s of activations through the full SAE metric set, pooled and in-thread,
 * against a plain JavaScript loop and a read-only pass over the same memory (the ceiling), all
 * measured in this run on the same arrays. Run with `npm run bench`. A benchmark, not a test:
 * it asserts nothing about speed (it only checks that every path computed the same values).
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
 * `npm run bench` builds first), and the last lines give both pools' start times.
 *
 * What it reports (every row: 7 timed repetitions after one warm-up, configurations interleaved
 * round by round so that the load of the shared machine falls on all of them alike; medians,
 * with min and max):
 * - GB/s (1 GB = 1e9 bytes) over the bytes of the three arrays of each batch, counted once
 *   (a path that reads some of them twice gets no credit for it): learned 2048 x 16384 float32
 *   (128 MiB), source and decoded 2048 x 4096 float32 (32 MiB each), 192 MiB per batch, 2
 *   batches per repetition; the pooled rows use batches allocated with `pool.allocate` (in shared
 *   memory), and one pooled row the same batches in ordinary memory, which the pool copies into
 *   new shared memory for every batch;
 * - the read-only ceiling: the fastest of several read-only loops over the same arrays, and the
 *   ratio of every row to it; a read-only pass on 2 threads, for scale against the 2-worker rows;
 * - the per-batch time of small batches (64 x 4096 each array) through the pool against the
 *   in-thread operator, in a stream of 256 batches and one batch at a time.
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { cpus, platform, release, totalmem } from 'node:os';
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
  type Batch,
  type MetricPool,
  type Tensor,
} from '../src/index.js';

// ---------------------------------------------------------------- settings

const REPS = 7;
const ROWS = 2048;
const LEARNED = 16384;
const SOURCE = 4096;
const BATCHES_PER_REP = 2;
const SHARD_ROWS = 1024; // the default; the in-thread operator uses the same shard plan as the pools
const L1_COEFFICIENT = 0.001;
const FIRE_PROBABILITY = 0.02; // about 330 active features per row, on the 90% of features that ever fire
const ALIVE_FEATURES = 0.9;
const SMALL_ROWS = 64;
const SMALL_FEATURES = 4096;
const SMALL_STREAM = 256;
const SMALL_ROUND_TRIPS = 32;

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

/** Through the operator: the batches as a stream, `reduceMetric` over the collection. */
async function throughOperator(metrics: SaeMetrics, batches: readonly Batch[], pool?: MetricPool): Promise<Values> {
  const options = pool === undefined ? { shardRows: SHARD_ROWS } : { pool };
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

function finish(l1: number, l2: number, l0: number, fired: Uint32Array, n: number): Values {
  const density = new Float64Array(fired.length);
  let dead = 0;
  for (let f = 0; f < fired.length; f++) {
    density[f] = (fired[f] as number) / n;
    if (fired[f] === 0) dead++;
  }
  return { sae: l2 + L1_COEFFICIENT * l1, l1, l2, l0, dead, density };
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
}

/** One warm-up of every case, then `REPS` rounds, each running every case once; times in ms. */
async function measure(cases: readonly Case[]): Promise<number[][]> {
  const times: number[][] = cases.map(() => []);
  for (let round = -1; round < REPS; round++) {
    for (const [i, c] of cases.entries()) {
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

function agree(name: string, got: Values, want: Values): number {
  let worst = 0;
  const rel = (a: number, b: number): number => (a === b ? 0 : Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b)));
  for (const k of ['sae', 'l1', 'l2', 'l0'] as const) worst = Math.max(worst, rel(got[k], want[k]));
  for (let f = 0; f < want.density.length; f++) worst = Math.max(worst, rel(got.density[f] as number, want.density[f] as number));
  if (worst > 1e-9 || got.dead !== want.dead || got.density.length !== want.density.length) {
    throw new Error(`bench: ${name} disagrees with the plain loop (relative difference ${worst}, dead ${got.dead} vs ${want.dead})`);
  }
  return worst;
}

// ---------------------------------------------------------------- main

interface Pools {
  readonly pool1: MetricPool;
  readonly pool2: MetricPool;
  /** 2 workers running the compiled `dist/workers/metric-worker.js`, when it is built. */
  readonly pool2c: MetricPool | undefined;
  readonly readers: Readers;
}

/** GB/s of large batches through every path, printed as a table. */
async function largeBatches({ pool1, pool2, readers }: Pools): Promise<void> {
  const shared: Arrays[] = [];
  for (let b = 0; b < BATCHES_PER_REP; b++) {
    const a = sharedArrays(pool2, ROWS, LEARNED, SOURCE);
    fill(a, ROWS, LEARNED, SOURCE, 1 + b);
    shared.push(a);
  }
  const ordinary: Arrays[] = shared.map((a) => ({
    learned: Float32Array.from(a.learned),
    source: Float32Array.from(a.source),
    decoded: Float32Array.from(a.decoded),
  }));
  const sharedBatches = shared.map((a) => batchOf(a, ROWS, LEARNED, SOURCE));
  const ordinaryBatches = ordinary.map((a) => batchOf(a, ROWS, LEARNED, SOURCE));
  const metrics = saeMetrics(LEARNED);
  const bytesPerBatch = (ROWS * LEARNED + 2 * ROWS * SOURCE) * 4;
  const bytes = bytesPerBatch * BATCHES_PER_REP;

  const want = plainFused(shared, ROWS, LEARNED, SOURCE);
  const results = new Map<string, Values>();
  const keep = (name: string) => (v: Values): void => void results.set(name, v);

  const readCases: Case[] = [
    { name: 'read-only: float32 loop, 1 accumulator', run: () => readAll(readF32, shared) },
    { name: 'read-only: float32 loop, 4 accumulators', run: () => readAll(readF32x4, shared) },
    { name: 'read-only: float64 view, 8 accumulators', run: () => readAll(readF64x8, shared) },
  ];
  const cases: Case[] = [
    ...readCases,
    { name: 'read-only: float64 view, 8 acc., 2 threads', run: () => readers.read(shared) },
    { name: 'plain JS loop, one fused pass', run: () => keep('plain, fused')(plainFused(shared, ROWS, LEARNED, SOURCE)) },
    { name: 'plain JS loops, one pass per metric', run: () => keep('plain, per metric')(plainPerMetric(shared, ROWS, LEARNED, SOURCE)) },
    { name: 'operator in-thread (no pool)', run: () => throughOperator(metrics, sharedBatches).then(keep('in-thread')) },
    { name: 'operator + pool, 1 worker, shared memory', run: () => throughOperator(metrics, sharedBatches, pool1).then(keep('pool 1')) },
    { name: 'operator + pool, 2 workers, shared memory', run: () => throughOperator(metrics, sharedBatches, pool2).then(keep('pool 2')) },
    {
      name: 'operator + pool, 2 workers, ordinary memory',
      run: () => throughOperator(metrics, ordinaryBatches, pool2).then(keep('pool 2, ordinary')),
    },
  ];
  const times = await measure(cases);
  let worst = 0;
  for (const [name, v] of results) worst = Math.max(worst, agree(name, v, want));

  const rates = times.map((t) => rate(t, bytes / GB));
  const readRates = rates.slice(0, readCases.length);
  const ceilingIndex = readRates.reduce((best, r, i) => (r.median > (readRates[best] as Summary).median ? i : best), 0);
  const ceiling = (rates[ceilingIndex] as Summary).median;

  console.log(
    `large batches: learned [${ROWS}, ${LEARNED}], source and decoded [${ROWS}, ${SOURCE}], float32: ` +
      `${(bytesPerBatch / 2 ** 20).toFixed(0)} MiB per batch, ${BATCHES_PER_REP} batches per repetition, ` +
      `shardRows ${SHARD_ROWS}; learned ${(FIRE_PROBABILITY * ALIVE_FEATURES * 100).toFixed(1)}% non-zero`,
  );
  console.log(
    'metrics: MetricCollection of SparseAutoencoderLoss, L1AbsoluteLoss, L2ReconstructionLoss, L0NormMetric, ' +
      'FeatureDensityMetric, NeuronActivityMetric through reduceMetric',
  );
  console.log(
    `GB/s = 1e9 bytes of the three arrays per second; ${REPS} repetitions after a warm-up: median (min-max); ` +
      'x ceiling = median / the fastest one-thread read-only median\n',
  );
  console.log(
    table(
      ['configuration', 'GB/s', '(min-max)', 'ms/batch', 'x ceiling'],
      cases.map((c, i) => {
        const r = rates[i] as Summary;
        const ms = summary(times[i] as number[]).median / BATCHES_PER_REP;
        return [
          c.name + (i === ceilingIndex ? ' [ceiling]' : ''),
          f2(r.median),
          `(${f2(r.min)}-${f2(r.max)})`,
          ms.toFixed(1),
          f2(r.median / ceiling),
        ];
      }),
      ['l', 'r', 'l', 'r', 'r'],
    ),
  );
  console.log(`\ncheck: every path computed the plain loop's values (worst relative difference ${worst.toExponential(1)}; counts equal)`);
}

/** Microseconds per small batch through the pools and in-thread, printed as a table. */
async function smallBatches({ pool1, pool2, pool2c }: Pools): Promise<void> {
  const small = sharedArrays(pool2, SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES);
  fill(small, SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES, 11);
  const smallBatch = batchOf(small, SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES);
  const metrics = saeMetrics(SMALL_FEATURES);
  const stream = Array.from({ length: SMALL_STREAM }, () => smallBatch);
  const want = plainFused([small], SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES);
  const targets: { name: string; pool?: MetricPool }[] = [
    { name: 'in-thread (no pool)' },
    { name: 'pool, 1 worker (tsx worker)', pool: pool1 },
    { name: 'pool, 2 workers (tsx worker)', pool: pool2 },
    ...(pool2c === undefined ? [] : [{ name: 'pool, 2 workers (compiled dist worker)', pool: pool2c }]),
  ];
  const results = new Map<string, Values>();
  const cases: Case[] = targets.flatMap((t) => [
    { name: `${t.name}, stream`, run: async () => results.set(`${t.name}, stream`, await throughOperator(metrics, stream, t.pool)) },
    {
      name: `${t.name}, alone`,
      run: async () => {
        for (let i = 0; i < SMALL_ROUND_TRIPS; i++) results.set(`${t.name}, alone`, await throughOperator(metrics, [smallBatch], t.pool));
      },
    },
  ]);
  const times = (await measure(cases)).map((ts, i) => ts.map((ms) => (ms * 1000) / (i % 2 === 0 ? SMALL_STREAM : SMALL_ROUND_TRIPS)));
  // The same batch 256 times has the same means as the batch once (up to rounding).
  for (const [name, v] of results) agree(name, v, want);

  const us = (i: number): Summary => summary(times[i] as number[]);
  const cell = (s: Summary): string => `${f0(s.median)} (${f0(s.min)}-${f0(s.max)})`;
  console.log(
    `\nsmall batches: learned, source and decoded [${SMALL_ROWS}, ${SMALL_FEATURES}] float32 ` +
      `(${((3 * SMALL_ROWS * SMALL_FEATURES * 4) / 2 ** 20).toFixed(0)} MiB per batch) in shared memory; ` +
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

/** The time from creating a 2-worker pool to the value of its first (small) batch. */
async function startPool(filename?: string): Promise<{ pool: MetricPool; ms: number }> {
  const t0 = performance.now();
  const pool = createMetricPool({ workers: 2, shardRows: SHARD_ROWS, ...(filename === undefined ? {} : { filename }) });
  const a = sharedArrays(pool, SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES);
  await throughOperator(saeMetrics(SMALL_FEATURES), [batchOf(a, SMALL_ROWS, SMALL_FEATURES, SMALL_FEATURES)], pool);
  return { pool, ms: performance.now() - t0 };
}

async function main(): Promise<void> {
  const started = performance.now();
  const compiledWorker = fileURLToPath(new URL('../dist/workers/metric-worker.js', import.meta.url));
  const haveCompiled = existsSync(compiledWorker);
  const tsx = await startPool();
  const compiled = haveCompiled ? await startPool(compiledWorker) : undefined;
  const pools: Pools = {
    pool1: createMetricPool({ workers: 1, shardRows: SHARD_ROWS }),
    pool2: tsx.pool,
    pool2c: compiled?.pool,
    readers: new Readers(2),
  };
  try {
    const machine = cpus();
    console.log(
      `machine: ${machine[0]?.model ?? 'unknown'}, ${machine.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ` +
        `${platform()} ${release()}, Node ${process.version}`,
    );
    await largeBatches(pools);
    gc();
    await smallBatches(pools);
    console.log(
      `\npool start (create + first batch, one sample each), 2 workers: tsx worker ${f0(tsx.ms)} ms, ` +
        (compiled === undefined ? 'compiled worker not built (run npm run build)' : `compiled worker ${f0(compiled.ms)} ms`),
    );
    console.log(`total bench time ${((performance.now() - started) / 1000).toFixed(0)} s`);
  } finally {
    await Promise.all([pools.pool1.close(), pools.pool2.close(), pools.pool2c?.close(), pools.readers.close()]);
  }
}

await main();
