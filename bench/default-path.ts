/**
 * How fast is the path most users take: `update` / `forward` of a collection of the six standard
 * metrics (and of one metric), and the in-thread operator, on ordinary Float32Arrays, one thread?
 * Targets (issue 12): update >= 0.5 x the one-thread read ceiling of the same run; forward <= 1.2 x update.
 * Run: node --expose-gc --import tsx bench/default-path.ts
 *
 * @module
 */
import { from, lastValueFrom } from 'rxjs';
import { L1AbsoluteLoss, reduceMetric, type Tensor } from '../src/index.js';
import { defaultExecutor } from '../src/pool/executor.js';
import {
  agree, batchOf, bytesOf, Ceiling, f2, footer, header, isMain, LARGE, measure, ordinaryArrays, rate, referenceValues, saeMetrics, table, TOLERANCE, valuesOf,
  type Case, type ReadmeRow,
} from './harness.js';

export async function run(): Promise<ReadmeRow[]> {
  const executor = defaultExecutor();
  header('default path: collection.update / forward, one metric, the in-thread operator (large batches, one thread)', [
    'two batches of learned 2048 x 16384, source and decoded 2048 x 4096 float32 in ordinary memory; GB/s of the three arrays;',
    `backend ${executor.backend}, shardRows ${executor.shardRows}; 7 interleaved repetitions, median (min-max)`,
  ]);
  const arrays = [ordinaryArrays(LARGE, 1), ordinaryArrays(LARGE, 2)];
  const batches = arrays.map((a) => batchOf(a, LARGE));
  const ceiling = new Ceiling(arrays, LARGE);
  const updated = saeMetrics(LARGE.learned);
  const forwarded = saeMetrics(LARGE.learned);
  const l1 = new L1AbsoluteLoss();
  let operated: Record<string, Tensor> | undefined;
  try {
    const [one, two] = ceiling.cases();
    const cases: Case[] = [
      one,
      two,
      { name: 'collection.update(batch)', run: () => (updated.reset(), batches.forEach((b) => updated.update(b))) },
      { name: 'collection.forward(batch)', run: () => (forwarded.reset(), batches.forEach((b) => forwarded.forward(b))) },
      { name: 'L1AbsoluteLoss.update(batch) alone (reads learned only)', run: () => batches.forEach((b) => l1.update(b)) },
      {
        name: 'reduceMetric(collection), in-thread',
        run: async () => void (operated = (await lastValueFrom(from(batches).pipe(reduceMetric(saeMetrics(LARGE.learned))))) as Record<string, Tensor>),
      },
    ];
    const rates = (await measure(cases)).map((t) => rate(t, 2 * bytesOf(LARGE)));
    const want = referenceValues(arrays, LARGE);
    for (const [name, got] of [['update', updated.compute()], ['forward', forwarded.compute()], ['operator', operated]] as const) {
      agree(name, valuesOf(got as Record<string, Tensor>), want, TOLERANCE.wasm);
    }
    const ceil = rates[0]!.median;
    console.log(table(['path', 'GB/s', '(min-max)', 'x ceiling'], cases.map((c, i) => {
      const r = rates[i]!;
      return [c.name, f2(r.median), `(${f2(r.min)}-${f2(r.max)})`, f2(r.median / ceil)];
    })));
    const [update, forward, , operator] = rates.slice(2).map((r) => r.median) as [number, number, number, number];
    const verdict = (ok: boolean): string => (ok ? 'MET' : 'NOT MET');
    console.log(`\ncheck: update, forward and the operator computed the float64 loops' values (within ${TOLERANCE.wasm}; dead counts equal)`);
    console.log(`target update >= 0.5 x ceiling: ${verdict(update >= 0.5 * ceil)} (${f2(update / ceil)})`);
    console.log(`target forward <= 1.2 x update (time): ${verdict(update / forward <= 1.2)} (${f2(update / forward)})`);
    console.log(`in-thread operator / update: ${f2(operator / update)} (the operator as fast as the class path: about 1)`);
    footer();
    return cases.slice(2).map((c, i) => ({ path: c.name, figure: `${f2(rates[i + 2]!.median)} GB/s`, ratio: f2(rates[i + 2]!.median / ceil) }));
  } finally {
    await ceiling.close();
  }
}

if (isMain(import.meta.url)) await run();
