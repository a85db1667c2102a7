/**
 * How fast is each backend through the pool, and which design suits gpu.js's GL modes? The six
 * metrics over the large batches (from `pool.allocate`, shards of 1024 rows) on pools of every
 * backend, with three designs for the GL modes:
 * - one GL process per pool, running the kernels of every worker's shards (`src/pool/gl-host.ts`,
 *   what the pool does), at 1, 2 and 4 workers;
 * - gpu.js in the worker thread, the earlier design (1 worker: `gl` loads in one thread only);
 * - one GL process per worker thread (`gl-process-per-worker.ts`), at 2 and 4 workers.
 * It checks that the gpu.js pools agree bit for bit and every pool agrees with the float64 loops;
 * it asserts nothing about speed. The GL rows need a display (run under `xvfb-run -a`); without
 * one they say why they cannot run.
 * Run: node --import tsx bench/gpujs-pool.ts (npm run bench:gpujs)
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import { from, lastValueFrom } from 'rxjs';
import { createMetricPool, reduceMetric, type Batch, type MetricPool, type MetricPoolOptions, type Tensor } from '../src/index.js';
import { blockerText } from '../src/kernels/gpujs/gpu.js';
import { gpujsBlocker } from '../src/kernels/gpujs/index.js';
import {
  agree, allocatedBatch, bytesOf, f2, footer, header, LARGE, measure, ordinaryArrays, rate, referenceValues, saeMetrics, table, TOLERANCE, valuesOf,
  type Arrays, type Case,
} from './harness.js';

const here = (path: string): string => fileURLToPath(new URL(path, import.meta.url));

interface Row {
  readonly name: string;
  readonly options: MetricPoolOptions;
}

const gl = { backend: 'gpujs', gpujsMode: 'gpu' } as const;
const ROWS: readonly Row[] = [
  ...[1, 2, 4].map((workers) => ({ name: `gpujs gpu, GL process per pool, ${workers} worker(s)`, options: { ...gl, workers } })),
  { name: 'gpujs gpu, in the worker thread, 1 worker', options: { ...gl, workers: 1, filename: here('../workers/metric-worker.ts') } },
  ...[2, 4].map((workers) => ({ name: `gpujs gpu, GL process per worker, ${workers} workers`, options: { ...gl, workers, filename: here('./gl-process-per-worker.ts') } })),
  { name: 'gpujs webasm, 2 workers', options: { backend: 'gpujs', gpujsMode: 'webasm', workers: 2 } },
  { name: 'gpujs cpu, 2 workers', options: { backend: 'gpujs', gpujsMode: 'cpu', workers: 2 } },
  { name: 'wasm, 2 workers', options: { backend: 'wasm', workers: 2 } },
  { name: 'js, 2 workers', options: { backend: 'js', workers: 2 } },
];

const bits = (r: Record<string, Tensor>): string =>
  Object.entries(r)
    .map(([k, t]) => `${k}:${Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('base64')}`)
    .join(';');

header('gpujs-pool: reduceMetric(collection, { pool }) on every backend, and the designs of gpu.js GL modes', [
  'learned 2048 x 16384, source and decoded 2048 x 4096 float32; 2 batches a run; shards of 1024 rows; GB/s of the three arrays',
]);
const arrays = [ordinaryArrays(LARGE, 1), ordinaryArrays(LARGE, 2)];
const live: { row: Row; pool: MetricPool; batches: Batch[]; result?: Record<string, Tensor> }[] = [];
for (const row of ROWS) {
  const blocked = row.options.backend === 'gpujs' ? gpujsBlocker(row.options.gpujsMode ?? 'gpu') : undefined;
  if (blocked !== undefined) {
    console.log(`${row.name}: cannot run here: ${blockerText(blocked)}`);
    continue;
  }
  const pool = createMetricPool({ shardRows: 1024, ...row.options });
  live.push({ row, pool, batches: arrays.map((a) => allocatedBatch(pool, a)) });
}
try {
  const cases: Case[] = live.map((l) => ({
    name: l.row.name,
    run: async () => {
      l.result = (await lastValueFrom(from(l.batches).pipe(reduceMetric(saeMetrics(LARGE.learned), { pool: l.pool })))) as Record<string, Tensor>;
    },
  }));
  const rates = (await measure(cases)).map((t) => rate(t, 2 * bytesOf(LARGE)));
  console.log(table(['pool', 'GB/s', '(min-max)'], live.map((l, i) => [l.row.name, f2(rates[i]!.median), `(${f2(rates[i]!.min)}-${f2(rates[i]!.max)})`])));
  const want = referenceValues(arrays, LARGE);
  for (const l of live) agree(l.row.name, valuesOf(l.result as Record<string, Tensor>), want, TOLERANCE[l.row.options.backend === 'wasm' ? 'wasm' : l.row.options.backend === 'js' ? 'f64' : 'f32']);
  const gpu = live.filter((l) => l.row.options.gpujsMode === 'gpu');
  const same = gpu.every((l) => bits(l.result as Record<string, Tensor>) === bits(gpu[0]?.result as Record<string, Tensor>));
  console.log(`\ncheck: every pool computed the float64 loops' values (within its tolerance); the ${gpu.length} gpu.js GL pools ${same ? 'agree bit for bit' : 'DISAGREE'}`);
  footer();
} finally {
  await Promise.all(live.map((l) => l.pool.close()));
}
