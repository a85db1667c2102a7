/**
 * What does one small batch cost (learned 64 x 4096, source and decoded 64 x 1024: a training
 * step's worth)? `collection.update` / `forward`, the in-thread operator and a 2-worker pool over a
 * stream, in microseconds per batch. Target (issue 12): update <= 100 us.
 * Run: node --expose-gc --import tsx bench/small-batches.ts
 *
 * @module
 */
import { from, lastValueFrom } from 'rxjs';
import { createMetricPool, reduceMetric, type Batch, type SparseAutoencoderBatch, type Tensor } from '../src/index.js';
import {
  agree, batchOf, copyInto, f0, footer, header, isMain, measure, ordinaryArrays, referenceValues, saeMetrics, SMALL, table, TOLERANCE, valuesOf,
  type Case, type ReadmeRow,
} from './harness.js';

/** Batches per timed repetition. */
const N = 256;

export async function run(): Promise<ReadmeRow[]> {
  header('small batches: microseconds per batch (learned 64 x 4096, source and decoded 64 x 1024 float32)', [
    `${N} batches per repetition (the same batch), 7 interleaved repetitions after a warm-up: median (min-max) per batch`,
  ]);
  const arrays = ordinaryArrays(SMALL, 11);
  const batch = batchOf(arrays, SMALL);
  const stream: SparseAutoencoderBatch[] = Array.from({ length: N }, () => batch);
  const pool = createMetricPool({ workers: 2, backend: 'wasm' });
  const shared = pool.allocate([SMALL.rows, SMALL.learned]);
  const pooled = copyInto({ learned: shared.data, source: pool.allocate([SMALL.rows, SMALL.source]).data, decoded: pool.allocate([SMALL.rows, SMALL.source]).data }, arrays);
  const pooledStream = Array.from({ length: N }, () => batchOf(pooled, SMALL));
  const updated = saeMetrics(SMALL.learned);
  const forwarded = saeMetrics(SMALL.learned);
  const results: Record<string, Record<string, Tensor>> = {};
  const through = (name: string, batches: Batch[], options?: { pool: typeof pool }) => async () => {
    results[name] = (await lastValueFrom(from(batches).pipe(reduceMetric(saeMetrics(SMALL.learned), options)))) as Record<string, Tensor>;
  };
  try {
    const cases: Case[] = [
      { name: 'collection.update(batch)', run: () => (updated.reset(), stream.forEach((b) => updated.update(b))) },
      { name: 'collection.forward(batch)', run: () => (forwarded.reset(), stream.forEach((b) => forwarded.forward(b))) },
      { name: `reduceMetric(collection), in-thread, stream of ${N}`, run: through('operator', stream) },
      { name: `reduceMetric(collection), pool (wasm, 2 workers, pool.allocate), stream of ${N}`, run: through('pool', pooledStream, { pool }) },
    ];
    const times = await measure(cases);
    const want = referenceValues([arrays], SMALL);
    agree('update', valuesOf(updated.compute()), want, TOLERANCE.wasm);
    agree('forward', valuesOf(forwarded.compute()), want, TOLERANCE.wasm);
    for (const [name, r] of Object.entries(results)) agree(name, valuesOf(r), want, TOLERANCE.wasm);
    const us = times.map((t) => ({ median: (t.median * 1000) / N, min: (t.min * 1000) / N, max: (t.max * 1000) / N }));
    console.log(table(['path', 'us/batch', '(min-max)'], cases.map((c, i) => [c.name, f0(us[i]!.median), `(${f0(us[i]!.min)}-${f0(us[i]!.max)})`])));
    const update = us[0]!.median;
    console.log(`\ncheck: every path computed the float64 loops' values (within ${TOLERANCE.wasm}; dead counts equal)`);
    console.log(`target update <= 100 us: ${update <= 100 ? 'MET' : 'NOT MET'} (${f0(update)} us); forward / update ${(us[1]!.median / update).toFixed(2)}`);
    footer();
    return cases.map((c, i) => ({ path: `small batch: ${c.name}`, figure: `${f0(us[i]!.median)} us` }));
  } finally {
    await pool.close();
  }
}

if (isMain(import.meta.url)) await run();
