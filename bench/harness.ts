/**
 * What every benchmark script shares: the data (the same seeded SAE batches everywhere), the
 * metric set, a float64 check of the values, interleaved timing with medians, the read-only
 * ceiling on one and two threads, and the header every script prints (machine, date, command,
 * load average). Each script answers one question; `all.ts` runs them all and prints the README's
 * table.
 *
 * @module
 */
import { cpus, loadavg, platform, release, totalmem } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  SparseAutoencoderLoss,
  tensor,
  type Batch,
  type SparseAutoencoderBatch,
  type Tensor,
} from '../src/index.js';
import type { AnyMetric, MetricPool } from '../src/index.js';
import { createWasmKernel, type WasmKernel } from '../src/kernels/wasm/index.js';
import { WasmArena } from '../src/pool/wasm-arena.js';
import { WasmReaders } from './wasm-readers.js';

// ---------------------------------------------------------------- data

/** Rows, learned features and source (= decoded) features of a batch. */
export interface Size {
  readonly rows: number;
  readonly learned: number;
  readonly source: number;
}

/** The large batches: 2048 x 16384 learned, 2048 x 4096 source and decoded (192 MiB). */
export const LARGE: Size = { rows: 2048, learned: 16384, source: 4096 };
/** The small batches: 64 x 4096 learned, 64 x 1024 source and decoded (1.5 MiB). */
export const SMALL: Size = { rows: 64, learned: 4096, source: 1024 };
export const L1_COEFFICIENT = 0.001;
/** About 330 active features per row on the 90% of features that ever fire (1.8% non-zero). */
const FIRE_PROBABILITY = 0.02;
const ALIVE_FEATURES = 0.9;
export const GB = 1e9;

/** The three float32 arrays of a batch, row-major. */
export interface Arrays {
  readonly learned: Float32Array;
  readonly source: Float32Array;
  readonly decoded: Float32Array;
}

/** Bytes of the three arrays of one batch. */
export function bytesOf(size: Size): number {
  return size.rows * (size.learned + 2 * size.source) * 4;
}

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

/** Fills `a` with batch number `seed`: sparse non-negative learned activations, a reconstruction close to its source. */
export function fill(a: Arrays, size: Size, seed: number): Arrays {
  const next = random(seed);
  const alive = Math.floor(size.learned * ALIVE_FEATURES);
  a.learned.fill(0);
  for (let r = 0; r < size.rows; r++) {
    const o = r * size.learned;
    for (let f = 0; f < alive; f++) if (next() < FIRE_PROBABILITY) a.learned[o + f] = next() * 4;
  }
  for (let i = 0; i < size.rows * size.source; i++) {
    const x = next() * 2 - 1;
    a.source[i] = x;
    a.decoded[i] = x + (next() - 0.5) * 0.1;
  }
  return a;
}

/** Batch number `seed` in ordinary memory (a Float32Array each). */
export function ordinaryArrays(size: Size, seed: number): Arrays {
  const n = (f: number): Float32Array => new Float32Array(size.rows * f);
  return fill({ learned: n(size.learned), source: n(size.source), decoded: n(size.source) }, size, seed);
}

/** Arrays of `size` in a WebAssembly memory's arena (copy values in with {@link copyInto}). */
export function arenaArrays(arena: WasmArena, size: Size): Arrays {
  const t = (n: number): Float32Array => arena.view(arena.allocate(n * 4), n);
  return { learned: t(size.rows * size.learned), source: t(size.rows * size.source), decoded: t(size.rows * size.source) };
}

/** Copies the values of `from` into `to`; returns `to`. */
export function copyInto(to: Arrays, from: Arrays): Arrays {
  to.learned.set(from.learned);
  to.source.set(from.source);
  to.decoded.set(from.decoded);
  return to;
}

/** A large batch in `pool`'s memory (`pool.allocate`, read in place), holding the values of `from`. */
export function allocatedBatch(pool: MetricPool, from: Arrays): SparseAutoencoderBatch {
  const t = (f: number): Float32Array => pool.allocate([LARGE.rows, f]).data;
  return batchOf(copyInto({ learned: t(LARGE.learned), source: t(LARGE.source), decoded: t(LARGE.source) }, from), LARGE);
}

export function batchOf(a: Arrays, size: Size): SparseAutoencoderBatch {
  return {
    learnedActivations: tensor(a.learned, [size.rows, size.learned]),
    sourceActivations: tensor(a.source, [size.rows, size.source]),
    decodedActivations: tensor(a.decoded, [size.rows, size.source]),
  };
}

// ---------------------------------------------------------------- the metrics and their values

/** The six standard metrics, as a collection (with `extra` metrics beside them). */
export function saeMetrics(numLearnedFeatures: number, extra: Record<string, AnyMetric> = {}) {
  return new MetricCollection({
    sae: new SparseAutoencoderLoss({ l1Coefficient: L1_COEFFICIENT }),
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    density: new FeatureDensityMetric({ numLearnedFeatures }),
    dead: new NeuronActivityMetric({ numLearnedFeatures }),
    ...extra,
  });
}

/** The metric values as plain numbers: what every path must agree on. */
export interface Values {
  sae: number;
  l1: number;
  l2: number;
  l0: number;
  dead: number;
  density: Float64Array;
}

export function valuesOf(result: Readonly<Record<string, Tensor>>): Values {
  const item = (k: string): number => (result[k] as Tensor).item();
  return { sae: item('sae'), l1: item('l1'), l2: item('l2'), l0: item('l0'), dead: item('dead'), density: Float64Array.from((result.density as Tensor).data) };
}

/** The values of the six metrics over `batches`, by plain float64 loops (the reference). */
export function referenceValues(batches: readonly Arrays[], size: Size): Values {
  let abs = 0;
  let mse = 0;
  let nonZero = 0;
  const fired = new Float64Array(size.learned);
  for (const { learned: x, source: s, decoded: d } of batches) {
    for (let i = 0; i < size.rows * size.learned; i++) {
      const v = x[i] as number;
      abs += Math.abs(v);
      if (v !== 0) nonZero++;
      if (v > 0) fired[i % size.learned] = (fired[i % size.learned] as number) + 1;
    }
    for (let r = 0; r < size.rows; r++) {
      let e2 = 0;
      for (let f = r * size.source; f < (r + 1) * size.source; f++) e2 += ((d[f] as number) - (s[f] as number)) ** 2;
      mse += e2 / size.source;
    }
  }
  const n = size.rows * batches.length;
  const density = fired.map((c) => c / n);
  return { sae: mse / n + (L1_COEFFICIENT * abs) / n, l1: abs / n, l2: mse / n, l0: nonZero / n, dead: fired.filter((c) => c === 0).length, density };
}

/** Float64 paths; the WebAssembly pass (float32 blocks carried into float64); float32 peers. */
export const TOLERANCE = { f64: 1e-9, wasm: 1e-6, f32: 1e-4 } as const;

/** Throws when `got` differs from `want` by more than `tolerance` relative, or in the dead count. */
export function agree(name: string, got: Values, want: Values, tolerance: number): void {
  const rel = (a: number, b: number): number => (a === b ? 0 : Math.abs(a - b) / Math.max(Math.abs(a), Math.abs(b)));
  let worst = 0;
  for (const k of ['sae', 'l1', 'l2', 'l0'] as const) worst = Math.max(worst, rel(got[k], want[k]));
  for (let f = 0; f < want.density.length; f++) worst = Math.max(worst, rel(got.density[f] as number, want.density[f] as number));
  if (!(worst <= tolerance) || got.dead !== want.dead || got.density.length !== want.density.length) {
    throw new Error(`bench: ${name} disagrees with the float64 loops (relative ${worst}, tolerance ${tolerance}; dead ${got.dead} vs ${want.dead})`);
  }
}

// ---------------------------------------------------------------- timing

export interface Case {
  readonly name: string;
  run(): unknown;
  /** Untimed, before each run. */
  prepare?(): unknown;
}

export interface Summary {
  readonly median: number;
  readonly min: number;
  readonly max: number;
}

const gc = (globalThis as { gc?: () => void }).gc ?? ((): void => undefined);

export function summary(xs: readonly number[]): Summary {
  const s = [...xs].sort((a, b) => a - b);
  return { median: s[s.length >> 1] as number, min: s[0] as number, max: s[s.length - 1] as number };
}

/**
 * One warm-up of every case, then `reps` rounds each running every case once (interleaved, so
 * that the load of a shared machine falls on all alike); each case's times in ms.
 */
export async function measure(cases: readonly Case[], reps = 7): Promise<Summary[]> {
  const times: number[][] = cases.map(() => []);
  for (let round = -1; round < reps; round++) {
    for (const [i, c] of cases.entries()) {
      await c.prepare?.();
      gc();
      const t0 = performance.now();
      await c.run();
      const t = performance.now() - t0;
      if (round >= 0) (times[i] as number[]).push(t);
    }
  }
  return times.map(summary);
}

/** GB/s from times in ms over `bytes`: the median time gives the median rate. */
export function rate(ms: Summary, bytes: number): Summary {
  return { median: bytes / GB / (ms.median / 1000), min: bytes / GB / (ms.max / 1000), max: bytes / GB / (ms.min / 1000) };
}

export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    cells.map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number))).join('  ').trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export const f2 = (x: number): string => x.toFixed(2);
export const f0 = (x: number): string => x.toFixed(0);
export const load = (): string => loadavg().map(f2).join(' ');

/** A row of the README's table: a path, its figure, and its figure against a ceiling of the same run (which one, unless one thread's). */
export interface ReadmeRow {
  readonly path: string;
  readonly figure: string;
  readonly ratio?: string;
}

/** Prints a script's header: what it answers (a few lines), the machine, the date, the load. */
export function header(title: string, lines: readonly string[] = []): void {
  const cpu = cpus();
  console.log(`# ${title}`);
  for (const l of lines) console.log(`# ${l}`);
  console.log(
    `# ${cpu[0]?.model ?? 'unknown'}, ${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${platform()} ${release()}, ` +
      `Node ${process.version}; ${new Date().toISOString()}; load average ${load()}\n`,
  );
}

/** Prints the load average at the end (more than the bench's own 1 to 2 means other work shared the machine). */
export function footer(): void {
  console.log(`\nload average at the end: ${load()}\n`);
}

/** Whether the module at `url` is the script node was started with. */
export function isMain(url: string): boolean {
  return process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(url);
}

// ---------------------------------------------------------------- the ceiling

/**
 * The read-only ceiling: the package's WebAssembly SIMD `readSum` (AssemblyScript, four float32x4
 * accumulators) reading the same bytes as the paths measured, on one thread and on two.
 */
export class Ceiling {
  readonly arena = new WasmArena();
  readonly #kernel: WasmKernel = createWasmKernel(this.arena.memory);
  readonly #readers = new WasmReaders(2, this.arena.memory);
  readonly #arrays: Float32Array[];

  /** Copies of `batches` in the ceiling's own WebAssembly memory. */
  constructor(batches: readonly Arrays[], size: Size) {
    this.#arrays = batches.flatMap((b) => {
      const a = copyInto(arenaArrays(this.arena, size), b);
      return [a.learned, a.source, a.decoded];
    });
  }

  /** The one-thread and two-thread read-only passes, as cases. */
  cases(): [Case, Case] {
    let sink = 0;
    return [
      { name: 'read-only pass, 1 thread (WebAssembly SIMD)', run: () => void this.#arrays.forEach((a) => (sink += this.#kernel.readSum(a))) },
      { name: 'read-only pass, 2 threads (WebAssembly SIMD)', run: async () => void (sink += await this.#readers.read(this.#arrays)) },
    ];
  }

  close(): Promise<void> {
    return this.#readers.close();
  }
}
