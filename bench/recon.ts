/**
 * What do the six reconstruction metrics of issue 13 (ev, fvu, cos, l2ratio, shrinkage, nmse) cost,
 * and where does the time go?
 *
 * 1. Through the pool: bench/sae-eval.ts's stream (16 large pool-allocated batches, 2 workers, wasm
 *    backend), with only the cases that read source and decoded: the six standard metrics alone,
 *    with the norms' four metrics (cos, l2ratio, shrinkage, nmse), with the moments' two (ev, fvu)
 *    and with all six, against the two-thread read ceiling of the same run.
 * 2. One thread, per 1024-row shard (the pool's shard): the wasm kernel's passes over source and
 *    decoded for each set of statistics those metrics need, against reading the same bytes, with
 *    the learned side of the six standard metrics for scale; cold (read from memory, as in the
 *    pool) and hot (in cache). Where hot is as slow as cold, the pass is bound by its arithmetic,
 *    not by memory.
 *
 * Run: node --expose-gc --import tsx bench/recon.ts
 *
 * @module
 */
import { from, lastValueFrom } from 'rxjs';
import {
  CosineSimilarity,
  createMetricPool,
  ExplainedVariance,
  FractionOfVarianceUnexplained,
  L2Ratio,
  NormalizedMse,
  reduceMetric,
  RelativeReconstructionBias,
  type AnyMetric,
  type Batch,
} from '../src/index.js';
import { wasmModule, type FusedExports } from '../src/kernels/wasm/index.js';
import { WasmArena } from '../src/pool/wasm-arena.js';
import {
  allocatedBatch,
  arenaArrays,
  bytesOf,
  Ceiling,
  copyInto,
  f2,
  footer,
  header,
  isMain,
  LARGE,
  measure,
  ordinaryArrays,
  rate,
  saeMetrics,
  table,
  type Arrays,
  type Case,
} from './harness.js';

const STREAM = 16;
const SHARD_ROWS = 1024;
/** Shards a case of the one-thread table passes over (alternating between the two batches). */
const SHARDS = 8;
/** Rows of the hot passes: 16 rows of source and decoded (512 KiB) stay in a core's L2 cache. */
const HOT_ROWS = 16;
/** Room for the passes' outputs: per-vector sums, norms and moments of a shard, fired counts. */
const OUT_BYTES = 64 * SHARD_ROWS + 48 * 16384 + 16 * 16384;

export async function run(): Promise<void> {
  header('Reconstruction metrics: their cost through the pool, and the kernel pass behind them', [
    `learned 2048 x 16384 (1.8% fired), source and decoded 2048 x 4096 float32; pool: 2 workers, pool-allocated, a stream of ${STREAM}; GB/s of the three arrays`,
  ]);
  const arrays = [ordinaryArrays(LARGE, 1), ordinaryArrays(LARGE, 2)];
  await throughThePool(arrays);
  await oneThread(arrays);
  footer();
}

async function throughThePool(arrays: readonly Arrays[]): Promise<void> {
  const ceiling = new Ceiling(arrays, LARGE);
  const pool = createMetricPool({ workers: 2, backend: 'wasm' });
  const batches = arrays.map((a) => allocatedBatch(pool, a));
  const stream = Array.from({ length: STREAM }, (_, i) => batches[i % 2] as Batch);
  const norms = (): Record<string, AnyMetric> => ({
    cos: new CosineSimilarity(),
    l2ratio: new L2Ratio(),
    shrinkage: new RelativeReconstructionBias(),
    nmse: new NormalizedMse(),
  });
  const moments = (): Record<string, AnyMetric> => ({
    ev: new ExplainedVariance({ numFeatures: LARGE.source }),
    fvu: new FractionOfVarianceUnexplained({ numFeatures: LARGE.source }),
  });
  const sets: [string, () => Record<string, AnyMetric>][] = [
    ['nothing more', () => ({})],
    ['cos, l2ratio, shrinkage, nmse (norms)', norms],
    ['ev, fvu (moments)', moments],
    ['ev, fvu, cos, l2ratio, shrinkage, nmse', () => ({ ...moments(), ...norms() })],
  ];
  try {
    const [, two] = ceiling.cases();
    const cases: Case[] = [
      two,
      ...sets.map(([name, extra]) => ({
        name: `the six + ${name}`,
        run: () => lastValueFrom(from(stream).pipe(reduceMetric(saeMetrics(LARGE.learned, extra()), { pool }))),
      })),
    ];
    const rates = (await measure(cases)).map((t, i) => rate(t, (i === 0 ? 2 : STREAM) * bytesOf(LARGE)));
    const ceil2 = (rates[0] as { median: number }).median;
    console.log(
      table(['through the pool', 'GB/s', '(min-max)', 'x 2-thr'], cases.map((c, i) => {
        const r = rates[i] as { median: number; min: number; max: number };
        return [c.name, f2(r.median), `(${f2(r.min)}-${f2(r.max)})`, f2(r.median / ceil2)];
      })),
    );
  } finally {
    await Promise.all([ceiling.close(), pool.close()]);
  }
}

/**
 * The kernel's exports on one thread, per 1024-row shard: cold (shards alternate over 64 MiB of
 * source and decoded, as the pool reads them) and hot (the first 16 rows of a batch, 512 KiB,
 * passed 64 times: in cache, so what is left is the pass's own work).
 */
async function oneThread(arrays: readonly Arrays[]): Promise<void> {
  const arena = new WasmArena();
  const x = new WebAssembly.Instance(wasmModule(), { env: { memory: arena.memory } }).exports as unknown as FusedExports;
  const inArena = arrays.map((a) => copyInto(arenaArrays(arena, LARGE), a));
  const out = arena.allocate(OUT_BYTES);
  const F = LARGE.source;
  const L = LARGE.learned;
  /** `f(arrays, rowStart, rowEnd)` over SHARDS shards, cold or hot. */
  const over = (f: (a: Arrays, start: number, end: number) => void, hot: boolean) => () => {
    for (let i = 0; i < SHARDS; i++) {
      const a = inArena[i % 2] as Arrays;
      if (hot) for (let k = 0; k < SHARD_ROWS / HOT_ROWS; k++) f(inArena[0] as Arrays, 0, HOT_ROWS);
      else f(a, ((i >> 1) % 2) * SHARD_ROWS, ((i >> 1) % 2 + 1) * SHARD_ROWS);
    }
  };
  let sink = 0;
  const read = (a: Arrays, start: number, end: number): void => {
    sink += x.readSum(a.source.byteOffset + 4 * start * F, (end - start) * F) + x.readSum(a.decoded.byteOffset + 4 * start * F, (end - start) * F);
  };
  const pair = (flags: number) => (a: Arrays, start: number, end: number): void => {
    x.pairPass(a.decoded.byteOffset, a.source.byteOffset, start, end, 1, F, out, out + 8 * SHARD_ROWS, out + 40 * SHARD_ROWS, flags);
  };
  const learned = (a: Arrays, start: number, end: number): void => {
    x.learnedPass(a.learned.byteOffset, start, end, 1, L, out, out + 8 * SHARD_ROWS, out + 16 * SHARD_ROWS, 7);
  };
  const rows: [string, (a: Arrays, start: number, end: number) => void][] = [
    ['read source and decoded (readSum)', read],
    ['mse (the six standard metrics)', (a, s, e) => x.msePass(a.decoded.byteOffset, a.source.byteOffset, s, e, 1, F, out)],
    ['mse + norms (cos, l2ratio, shrinkage, nmse)', pair(1 | 2)],
    ['mse + moments of x and x - x^ (ev, fvu)', pair(1 | 4 | 8)],
    ['mse + norms + moments (all six)', pair(1 | 2 | 4 | 8)],
    ['learned side of the six (abs, non-zero, fired)', learned],
  ];
  const cases: Case[] = rows.flatMap(([name, f]) => [
    { name: `${name}, cold`, run: over(f, false) },
    { name: `${name}, hot`, run: over(f, true) },
  ]);
  const t = await measure(cases, 11);
  const ms = (i: number): number => (t[i] as { median: number }).median / SHARDS;
  console.log(
    '\n' +
      table(['one thread, ms a 1024-row shard', 'cold', 'hot', 'cold x read'], rows.map(([name], i) => [name, f2(ms(2 * i)), f2(ms(2 * i + 1)), f2(ms(2 * i) / ms(0))])),
  );
  if (Number.isNaN(sink)) console.log('(the read sums are NaN)');
}

if (isMain(import.meta.url)) await run();
