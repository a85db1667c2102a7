/**
 * Benchmark helpers for the kernels alone (no operator, no pool): one call of a fused kernel per
 * batch over all its rows, totals of the statistics it returns, the gpu.js kernels of every mode
 * that starts here (and why the others do not), and the WebAssembly SIMD read-only pass on worker
 * threads (the two-thread ceiling). Used by `pipeline.ts`.
 *
 * @module
 */
import { Worker } from 'node:worker_threads';
import type { Batch } from '../src/functional/core.js';
import type { FusedKernel, ShardNeeds, ShardStats } from '../src/kernels/types.js';
import { createGpujsKernel, gpujsAvailable } from '../src/kernels/gpujs/index.js';
import { wasmModule } from '../src/kernels/wasm/index.js';
import { WASM_READER_SOURCE, type ReadPart } from './wasm-reader-worker.js';

/** Every statistic the SAE metric set needs. */
export const ALL_NEEDS: ShardNeeds = { abs: true, nonZero: true, fired: true, mse: true };

/** Totals of a kernel's statistics over whole batches (one component). */
export interface KernelTotals {
  /** Sum over rows of the per-row absolute sums. */
  abs: number;
  /** Sum over rows of the per-row mean squared errors. */
  mse: number;
  nonZero: number;
  /** Fired counts per feature. */
  readonly fired: Float64Array;
  /** Rows in all. */
  rows: number;
}

function sum(xs: Float64Array | undefined): number {
  if (xs === undefined) throw new Error('bench: a kernel did not return a statistic it was asked for');
  let s = 0;
  for (let i = 0; i < xs.length; i++) s += xs[i] as number;
  return s;
}

/** Runs `kernel` once per batch over rows `[0, rows)`, all statistics; their totals. */
export function kernelTotals(kernel: FusedKernel, batches: readonly Batch[], rows: number, features: number): KernelTotals {
  const totals: KernelTotals = { abs: 0, mse: 0, nonZero: 0, fired: new Float64Array(features), rows: 0 };
  for (const batch of batches) {
    const stats: ShardStats = kernel(batch, { start: 0, end: rows }, ALL_NEEDS);
    totals.abs += sum(stats.abs);
    totals.mse += sum(stats.mse);
    totals.nonZero += sum(stats.nonZero);
    const fired = stats.fired;
    if (fired === undefined || fired.length !== features) throw new Error('bench: a kernel returned fired counts of the wrong length');
    for (let f = 0; f < features; f++) totals.fired[f] = (totals.fired[f] as number) + (fired[f] as number);
    totals.rows += rows;
  }
  return totals;
}

/** The gpu.js modes the bench measures. */
export const GPUJS_MODES = ['cpu', 'webasm', 'headlessgl'] as const;
export type BenchGpujsMode = (typeof GPUJS_MODES)[number];

/** A gpu.js kernel that started in the mode asked for, or why it did not. */
export type GpujsSlot =
  | { readonly mode: BenchGpujsMode; readonly ok: true; readonly fused: FusedKernel; readonly renderer: string | undefined; destroy(): Promise<void> }
  | { readonly mode: BenchGpujsMode; readonly ok: false; readonly reason: string };

/** Starts a gpu.js kernel in `mode`, or says why it cannot run here. */
export function startGpujs(mode: BenchGpujsMode): GpujsSlot {
  const available = gpujsAvailable(mode);
  if (!available.ok) return { mode, ok: false, reason: available.reason };
  try {
    const k = createGpujsKernel({ mode });
    if (k.mode !== mode) {
      void k.destroy();
      return { mode, ok: false, reason: `gpu.js ran ${k.mode} instead` };
    }
    return { mode, ok: true, fused: k.fused, renderer: k.renderer, destroy: () => k.destroy() };
  } catch (error) {
    return { mode, ok: false, reason: (error as Error).message };
  }
}

/**
 * Read-only workers over one shared WebAssembly memory: each runs the fused module's SIMD
 * `readSum` over a contiguous share of every array (`wasm-reader-worker.ts`).
 */
export class WasmReaders {
  readonly #workers: Worker[];
  readonly #ready: Promise<void>;

  constructor(threads: number, memory: WebAssembly.Memory) {
    const module = wasmModule();
    this.#workers = Array.from(
      { length: threads },
      () => new Worker(WASM_READER_SOURCE, { eval: true, workerData: { module, memory }, execArgv: [] }),
    );
    // Ready once every worker has answered an empty job (it has instantiated the module).
    this.#ready = Promise.all(this.#workers.map((w) => this.#send(w, []))).then(() => undefined);
  }

  #send(w: Worker, parts: readonly ReadPart[]): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      w.once('error', onError);
      w.once('message', (s: number) => {
        w.off('error', onError);
        resolve(s);
      });
      w.postMessage(parts);
    });
  }

  /** Each thread reads its share of every array (views on the readers' memory); the sum of the sums. */
  async read(arrays: readonly Float32Array[]): Promise<number> {
    await this.#ready;
    const threads = this.#workers.length;
    const jobs: ReadPart[][] = this.#workers.map(() => []);
    for (const a of arrays) {
      // Shares of whole 256-float blocks (the pass's unrolled block).
      const per = Math.ceil(a.length / threads / 256) * 256;
      for (let t = 0; t < threads; t++) {
        const s = Math.min(a.length, t * per);
        const e = Math.min(a.length, (t + 1) * per);
        if (e > s) (jobs[t] as ReadPart[]).push({ byteOffset: a.byteOffset + s * 4, length: e - s });
      }
    }
    const sums = await Promise.all(this.#workers.map((w, t) => this.#send(w, jobs[t] as ReadPart[])));
    return sums.reduce((x, y) => x + y, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
