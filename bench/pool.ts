/**
 * How fast is the pooled pipeline (`reduceMetric(collection, { pool })`) on large batches, against
 * the two-thread read ceiling of the same run? Batches from `pool.allocate` (read in place), in
 * ordinary memory (copied in), a stream of 16. Target (issue 12): the stream >= 0.9 x the two-thread ceiling.
 * Run: node --expose-gc --import tsx bench/pool.ts
 *
 * @module
 */
import { from, lastValueFrom } from 'rxjs';
import { createMetricPool, reduceMetric, type Batch, type MetricPool, type Tensor } from '../src/index.js';
import {
  agree, allocatedBatch, batchOf, bytesOf, Ceiling, f2, footer, header, isMain, LARGE, measure, ordinaryArrays, rate, referenceValues, saeMetrics, table, TOLERANCE, valuesOf,
  type Case, type ReadmeRow,
} from './harness.js';

const STREAM = 16;

export async function run(): Promise<ReadmeRow[]> {
  header('pool: reduceMetric(collection, { pool }) over large batches (wasm backend, shardRows 1024)', [
    'learned 2048 x 16384, source and decoded 2048 x 4096 float32; 2 batches a run (one row: a stream of 16); GB/s of the three arrays',
  ]);
  const arrays = [ordinaryArrays(LARGE, 1), ordinaryArrays(LARGE, 2)];
  const ceiling = new Ceiling(arrays, LARGE);
  const pool1 = createMetricPool({ workers: 1, backend: 'wasm' });
  const pool2 = createMetricPool({ workers: 2, backend: 'wasm' });
  const in1 = arrays.map((a) => allocatedBatch(pool1, a));
  const in2 = arrays.map((a) => allocatedBatch(pool2, a));
  const ordinary = arrays.map((a) => batchOf(a, LARGE));
  const stream = Array.from({ length: STREAM }, (_, i) => in2[i % 2] as Batch);
  const results: [string, Record<string, Tensor>][] = [];
  const through = (name: string, batches: Batch[], pool: MetricPool) => async () => {
    results.push([name, (await lastValueFrom(from(batches).pipe(reduceMetric(saeMetrics(LARGE.learned), { pool })))) as Record<string, Tensor>]);
  };
  try {
    const [one, two] = ceiling.cases();
    const cases: { case: Case; batches: number }[] = [
      { case: one, batches: 2 },
      { case: two, batches: 2 },
      { case: { name: 'pool, 1 worker, pool.allocate', run: through('1 worker', in1, pool1) }, batches: 2 },
      { case: { name: 'pool, 2 workers, pool.allocate', run: through('2 workers', in2, pool2) }, batches: 2 },
      { case: { name: `pool, 2 workers, pool.allocate, a stream of ${STREAM}`, run: through('stream', stream, pool2) }, batches: STREAM },
      { case: { name: 'pool, 2 workers, ordinary memory (copied in)', run: through('ordinary', ordinary, pool2) }, batches: 2 },
    ];
    const rates = (await measure(cases.map((c) => c.case))).map((t, i) => rate(t, cases[i]!.batches * bytesOf(LARGE)));
    const want = referenceValues(arrays, LARGE);
    for (const [name, r] of results) agree(name, valuesOf(r), want, TOLERANCE.wasm);
    const [ceil1, ceil2] = [rates[0]!.median, rates[1]!.median];
    console.log(table(['path', 'GB/s', '(min-max)', 'x 1-thr', 'x 2-thr'], cases.map((c, i) => {
      const r = rates[i]!;
      return [c.case.name, f2(r.median), `(${f2(r.min)}-${f2(r.max)})`, f2(r.median / ceil1), f2(r.median / ceil2)];
    })));
    const s = rates[4]!.median / ceil2;
    console.log(`\ncheck: every pooled run computed the float64 loops' values (within ${TOLERANCE.wasm}; dead counts equal)`);
    console.log(`target stream >= 0.9 x two-thread ceiling: ${s >= 0.9 ? 'MET' : 'NOT MET'} (${f2(s)})`);
    footer();
    return cases.slice(2).map((c, i) => ({ path: c.case.name, figure: `${f2(rates[i + 2]!.median)} GB/s`, ratio: `${f2(rates[i + 2]!.median / ceil2)} of 2 threads` }));
  } finally {
    await Promise.all([ceiling.close(), pool1.close(), pool2.close()]);
  }
}

if (isMain(import.meta.url)) await run();
