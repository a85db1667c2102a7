/**
 * How fast is each fused kernel alone (no metric classes, no shards): one call per large batch
 * over all its rows, in this thread, against the one-thread read ceiling of the same run? The
 * WebAssembly pass in place (batches in its memory, as a pool's workers read them) and chunked
 * (ordinary memory, copied a cache-sized chunk at a time: the default path's kernel), the
 * JavaScript pass, and gpu.js (fewer rows; `headlessgl` only where a display is).
 * Run: node --expose-gc --import tsx bench/kernels.ts
 *
 * @module
 */
import { jsFusedKernel } from '../src/kernels/js-fused.js';
import type { FusedKernel, KernelBatch, ShardNeeds } from '../src/kernels/types.js';
import { createChunkedWasmKernel } from '../src/kernels/wasm/chunked.js';
import { createWasmKernel } from '../src/kernels/wasm/index.js';
import { createGpujsKernel, gpujsAvailable } from '../src/kernels/gpujs/index.js';
import {
  arenaArrays, batchOf, bytesOf, Ceiling, copyInto, f2, footer, header, isMain, LARGE, measure, ordinaryArrays, rate, table,
  type Arrays, type Case, type ReadmeRow, type Size,
} from './harness.js';

const ALL: ShardNeeds = { abs: true, nonZero: true, fired: true, mse: true };
/** Rows gpu.js reads of each batch: it takes 0.25 to 0.6 s a whole batch here. */
const GPUJS_ROWS = 256;

function firstRows(a: Arrays, size: Size, rows: number): { arrays: Arrays; size: Size } {
  const cut = (x: Float32Array, f: number): Float32Array => x.subarray(0, rows * f);
  return { arrays: { learned: cut(a.learned, size.learned), source: cut(a.source, size.source), decoded: cut(a.decoded, size.source) }, size: { ...size, rows } };
}

export async function run(): Promise<ReadmeRow[]> {
  header('kernels: each fused pass alone, one call per batch, this thread (large batches)', [
    'two batches of learned 2048 x 16384, source and decoded 2048 x 4096 float32; every statistic; GB/s of the bytes read',
  ]);
  const arrays = [ordinaryArrays(LARGE, 1), ordinaryArrays(LARGE, 2)];
  const ceiling = new Ceiling(arrays, LARGE);
  const inPlace = createWasmKernel(ceiling.arena.memory);
  const inMemory = arrays.map((a) => batchOf(copyInto(arenaArrays(ceiling.arena, LARGE), a), LARGE));
  const ordinary = arrays.map((a) => batchOf(a, LARGE));
  const pass = (kernel: FusedKernel, batches: readonly KernelBatch[], rows: number) => () => {
    for (const b of batches) kernel(b, { start: 0, end: rows }, ALL);
  };
  const rows: { case: Case; bytes: number }[] = [];
  const whole = 2 * bytesOf(LARGE);
  const [one] = ceiling.cases();
  rows.push(
    { case: one, bytes: whole },
    { case: { name: 'wasm, in place (batches in its memory)', run: pass(inPlace.fused, inMemory, LARGE.rows) }, bytes: whole },
    { case: { name: 'wasm, chunked (ordinary memory)', run: pass(createChunkedWasmKernel(), ordinary, LARGE.rows) }, bytes: whole },
    { case: { name: 'js', run: pass(jsFusedKernel, ordinary, LARGE.rows) }, bytes: whole },
  );
  const skipped: string[] = [];
  const destroy: (() => Promise<void>)[] = [];
  for (const mode of ['cpu', 'webasm', 'headlessgl'] as const) {
    const available = gpujsAvailable(mode);
    if (!available.ok) {
      skipped.push(`gpu.js ${mode}: not run (${available.reason})`);
      continue;
    }
    const k = createGpujsKernel({ mode });
    destroy.push(() => k.destroy());
    const part = arrays.map((a) => firstRows(a, LARGE, GPUJS_ROWS));
    const batches = part.map((p) => batchOf(p.arrays, p.size));
    const name = `gpu.js ${k.mode}${k.renderer ? ` (${k.renderer})` : ''}, first ${GPUJS_ROWS} rows`;
    rows.push({ case: { name, run: pass(k.fused, batches, GPUJS_ROWS) }, bytes: 2 * bytesOf({ ...LARGE, rows: GPUJS_ROWS }) });
  }
  try {
    const rates = (await measure(rows.map((r) => r.case), 5)).map((t, i) => rate(t, rows[i]!.bytes));
    const ceil = rates[0]!.median;
    console.log(table(['kernel', 'GB/s', '(min-max)', 'x ceiling'], rows.map((r, i) => [r.case.name, f2(rates[i]!.median), `(${f2(rates[i]!.min)}-${f2(rates[i]!.max)})`, f2(rates[i]!.median / ceil)])));
    for (const s of skipped) console.log(s);
    footer();
    return rows.slice(1).map((r, i) => ({ path: `kernel alone: ${r.case.name}`, figure: `${f2(rates[i + 1]!.median)} GB/s`, ratio: f2(rates[i + 1]!.median / ceil) }));
  } finally {
    await Promise.all([ceiling.close(), ...destroy.map((d) => d())]);
  }
}

if (isMain(import.meta.url)) await run();
