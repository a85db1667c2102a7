/**
 * The SAE metric set computed by TensorFlow.js (`@tensorflow/tfjs-core` with its `cpu` and `wasm`
 * backends), for the benchmark: the same six values as the pipeline (L1 mean, L2 mean, SAE loss,
 * L0 mean, feature density, dead count), written with tfjs ops as a tfjs user would, accumulated
 * over the batches on the backend and read back once at the end.
 *
 * Per batch, as the Python library writes them (a reduction per row, then over the rows):
 * `sum(sum(abs(x), 1))`, `sum(sum(cast(notEqual(x, 0)), 1))`, `sum(cast(greater(x, 0)), 0)`
 * (fired counts per feature) and `sum(mean(squaredDifference(decoded, source), 1))`; then
 * L1 = abs total / n, L2 = total of the row means / n, SAE loss = L2 + l1Coefficient * L1,
 * L0 = non-zero total / n, density = fired / n, dead = number of features with fired = 0.
 * Everything is float32 on the backend (tfjs has no float64), so values agree with the float64
 * pipeline to float32 tolerance only; counts are exact (integers below 2^24). (Summing the whole
 * batch at once, `sum(abs(x))`, is as fast but its float32 total over 2^25 values is off by
 * about 1% on the wasm backend.) Other ways we timed on the wasm backend (one 2048 x 16384 batch,
 * this machine) were no faster or not correct: fired counts by a product with a row of ones,
 * about 415 ms like the sum over the rows, or summing the booleans directly, 433 ms; non-zeros by
 * `cast(x, 'bool')`, 51 ms against 193 ms, but tfjs-backend-wasm 4.22 casts a float to bool by
 * truncating it to a byte (0.5 becomes false, -2 becomes 254), so it counts wrongly; the value
 * check of the bench caught it.
 *
 * The wasm backend's `.wasm` files are read from `node_modules/@tensorflow/tfjs-backend-wasm/dist/`
 * (a file path, so nothing is fetched); in Node it runs the SIMD build on one thread (its threaded
 * build needs a browser's cross-origin isolation). Not compared: `@tensorflow/tfjs-node`, the
 * native TensorFlow library (the issue names the cpu and wasm backends; tfjs-node downloads a
 * native binary when installed).
 *
 * @module
 */
import { createRequire } from 'node:module';
import { dirname, join, sep } from 'node:path';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import { setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import type { Values } from './harness.js';

/** A tfjs backend the bench runs. */
export type TfjsBackend = 'cpu' | 'wasm';

/** The three float32 arrays of one batch, row-major. */
export interface TfjsBatch {
  readonly learned: Float32Array;
  readonly source: Float32Array;
  readonly decoded: Float32Array;
}

/** The six values, as plain numbers (float32 computed, widened). */
export type TfjsValues = Values;

/** What tfjs runs here, for the report. */
export interface TfjsInfo {
  readonly version: string;
  /** The backends that started, and why any did not. */
  readonly available: Readonly<Record<TfjsBackend, { ok: true } | { ok: false; reason: string }>>;
  /** `wasm`: SIMD build or not, threads or not. */
  readonly wasmBuild: string;
}

let info: TfjsInfo | undefined;

/**
 * Registers the backends (once): `cpu` from `@tensorflow/tfjs-backend-cpu`, `wasm` from the
 * package's own `.wasm` files on disk.
 */
export async function initTfjs(): Promise<TfjsInfo> {
  if (info !== undefined) return info;
  const require = createRequire(import.meta.url);
  // require.resolve gives .../tfjs-backend-wasm/dist/index.js (the package's "main").
  const wasmDir = dirname(require.resolve('@tensorflow/tfjs-backend-wasm')) + sep;
  setWasmPaths(wasmDir);
  // Production mode, as a tfjs user timing their code would run it (in tfjs 4.22 it only turns off
  // warnings, among them the cpu backend's note that tfjs-node would be faster in Node).
  tf.enableProdMode();
  const available: Record<TfjsBackend, { ok: true } | { ok: false; reason: string }> = {
    cpu: { ok: false, reason: 'not tried' },
    wasm: { ok: false, reason: 'not tried' },
  };
  // The wasm backend's Emscripten module adds process handlers that rethrow every uncaught error
  // from inside its own source (printing all of it); they are removed, leaving Node's behaviour.
  const exceptions = new Set(process.listeners('uncaughtException'));
  const rejections = new Set(process.listeners('unhandledRejection'));
  for (const name of ['cpu', 'wasm'] as const) {
    try {
      const ok = await tf.setBackend(name);
      available[name] = ok && tf.getBackend() === name ? { ok: true } : { ok: false, reason: `tf.setBackend('${name}') failed` };
    } catch (error) {
      available[name] = { ok: false, reason: (error as Error).message };
    }
  }
  for (const l of process.listeners('uncaughtException')) if (!exceptions.has(l)) process.off('uncaughtException', l);
  for (const l of process.listeners('unhandledRejection')) if (!rejections.has(l)) process.off('unhandledRejection', l);
  const simd = available.wasm.ok ? tf.env().getBool('WASM_HAS_SIMD_SUPPORT') : false;
  const threads = available.wasm.ok ? tf.env().getBool('WASM_HAS_MULTITHREAD_SUPPORT') : false;
  info = {
    version: tf.version_core,
    available,
    wasmBuild: `${simd ? 'SIMD' : 'no SIMD'}, ${threads ? 'multi-threaded' : 'one thread'} (files from ${join('node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist')})`,
  };
  return info;
}

/** Switches the active backend; throws when it did not switch. */
export async function useTfjsBackend(name: TfjsBackend): Promise<void> {
  if (tf.getBackend() === name) return;
  const ok = await tf.setBackend(name);
  if (!ok || tf.getBackend() !== name) throw new Error(`bench: tfjs backend ${name} did not start`);
}

/** Tensors of a batch on the active backend (the wasm backend copies the data into its heap). */
export interface TfjsTensors {
  readonly learned: tf.Tensor2D;
  readonly source: tf.Tensor2D;
  readonly decoded: tf.Tensor2D;
}

/** Makes the tensors of a batch on the active backend. Dispose them with {@link disposeTensors}. */
export function toTensors(b: TfjsBatch, rows: number, learned: number, source: number): TfjsTensors {
  return {
    learned: tf.tensor2d(b.learned, [rows, learned], 'float32'),
    source: tf.tensor2d(b.source, [rows, source], 'float32'),
    decoded: tf.tensor2d(b.decoded, [rows, source], 'float32'),
  };
}

export function disposeTensors(ts: readonly TfjsTensors[]): void {
  for (const t of ts) tf.dispose([t.learned, t.source, t.decoded]);
}

/** Running totals on the backend. */
interface Totals {
  abs: tf.Scalar;
  nonZero: tf.Scalar;
  squared: tf.Scalar;
  fired: tf.Tensor1D;
}

/** Folds one batch into the totals (the old totals are disposed). */
function fold(totals: Totals | undefined, t: TfjsTensors): Totals {
  const next = tf.tidy(() => {
    // As the Python library writes them: per-row reductions, then over the rows.
    const x = t.learned;
    const abs: tf.Scalar = tf.sum(tf.sum(tf.abs(x), 1));
    const nonZero: tf.Scalar = tf.sum(tf.sum(tf.cast(tf.notEqual(x, 0), 'float32'), 1));
    const fired: tf.Tensor1D = tf.sum(tf.cast(tf.greater(x, 0), 'float32'), 0);
    const squared: tf.Scalar = tf.sum(tf.mean(tf.squaredDifference(t.decoded, t.source), 1));
    if (totals === undefined) return { abs, nonZero, squared, fired };
    return {
      abs: tf.add(totals.abs, abs) as tf.Scalar,
      nonZero: tf.add(totals.nonZero, nonZero) as tf.Scalar,
      squared: tf.add(totals.squared, squared) as tf.Scalar,
      fired: tf.add(totals.fired, fired) as tf.Tensor1D,
    };
  });
  if (totals !== undefined) tf.dispose([totals.abs, totals.nonZero, totals.squared, totals.fired]);
  return next;
}

/** The six values from the totals over `n` rows, read back at once. */
async function finish(totals: Totals, n: number, l1Coefficient: number): Promise<TfjsValues> {
  const [l1, l2, sae, l0, density, dead] = tf.tidy(() => {
    const l1 = tf.div(totals.abs, n);
    const l2 = tf.div(totals.squared, n);
    const sae = tf.add(l2, tf.mul(l1, l1Coefficient));
    const l0 = tf.div(totals.nonZero, n);
    const density = tf.div(totals.fired, n);
    const dead = tf.sum(tf.cast(tf.equal(totals.fired, 0), 'float32'));
    return [l1, l2, sae, l0, density, dead];
  });
  tf.dispose([totals.abs, totals.nonZero, totals.squared, totals.fired]);
  const read = async (t: tf.Tensor): Promise<Float32Array> => {
    const v = (await t.data()) as Float32Array;
    t.dispose();
    return v;
  };
  const scalar = async (t: tf.Tensor): Promise<number> => (await read(t))[0] as number;
  return {
    l1: await scalar(l1),
    l2: await scalar(l2),
    sae: await scalar(sae),
    l0: await scalar(l0),
    density: Float64Array.from(await read(density)),
    dead: await scalar(dead),
  };
}

/**
 * The six values over `batches` on the active backend, from the Float32Arrays: each batch's
 * tensors are made (copied into the wasm heap on `wasm`), folded, and disposed.
 */
export async function tfjsFromArrays(
  batches: readonly TfjsBatch[],
  rows: number,
  learned: number,
  source: number,
  l1Coefficient: number,
): Promise<TfjsValues> {
  let totals: Totals | undefined;
  for (const b of batches) {
    const t = toTensors(b, rows, learned, source);
    try {
      totals = fold(totals, t);
    } finally {
      disposeTensors([t]);
    }
  }
  return finish(totals as Totals, rows * batches.length, l1Coefficient);
}

/** The six values over batches whose tensors are already on the active backend. */
export async function tfjsFromTensors(tensors: readonly TfjsTensors[], rows: number, l1Coefficient: number): Promise<TfjsValues> {
  let totals: Totals | undefined;
  for (const t of tensors) totals = fold(totals, t);
  return finish(totals as Totals, rows * tensors.length, l1Coefficient);
}
