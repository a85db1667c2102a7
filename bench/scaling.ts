/**
 * How does the pool scale with its workers on a machine with many cores? A stream of large
 * pool-allocated batches through `reduceMetric(collection, { pool })` (wasm backend, shardRows
 * 1024) at each worker count, beside the read-only pass at as many threads and PyTorch CPU (if a
 * python with torch is found) computing the same statistics idiomatically at as many threads, all
 * measured in the same run on the same data. Not part of `npm run bench`: on a 2-core machine only
 * its first two rows exist.
 * Run: node --expose-gc --import tsx bench/scaling.ts [WORKERS,...]   (default 1,2,4,8,12,16, up to
 * the machine's cores)
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { from, lastValueFrom } from 'rxjs';
import { createMetricPool, reduceMetric, type Batch, type MetricPool, type Tensor } from '../src/index.js';
import { WasmArena } from '../src/pool/wasm-arena.js';
import {
  agree, allocatedBatch, arenaArrays, bytesOf, copyInto, f2, footer, header, LARGE, measure, ordinaryArrays, rate, referenceValues, saeMetrics, summary, table,
  TOLERANCE, valuesOf, type Arrays,
} from './harness.js';
import { evaluationMetrics } from './sae-eval.js';
import { WasmReaders } from './wasm-readers.js';

const STREAM = 16;
const REPS = 5;

/** PyTorch CPU's seconds per large batch at each thread count (torch-peer.py), or why not. */
function torchTimes(arrays: Arrays, threads: readonly number[]): Map<number, number[]> | string {
  const python = [process.env.SAE_METRICS_PYTHON, 'python3', '/usr/bin/python3'].find(
    (p) => p !== undefined && spawnSync(p, ['-c', 'import torch'], { encoding: 'utf8' }).status === 0,
  );
  if (python === undefined) return 'no python with torch';
  const dir = mkdtempSync(join(tmpdir(), 'sae-scaling-'));
  try {
    const at = (k: keyof Arrays): string => join(dir, `${k}.f32`);
    for (const k of ['learned', 'source', 'decoded'] as const) writeFileSync(at(k), arrays[k]);
    const large = { learned: at('learned'), source: at('source'), decoded: at('decoded'), rows: LARGE.rows, learned_features: LARGE.learned, source_features: LARGE.source, count: 4 };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify({ repeats: REPS, threads, batches: { large } }));
    const script = fileURLToPath(new URL('./torch-peer.py', import.meta.url));
    const child = spawnSync(python, [script, join(dir, 'spec.json')], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (child.status !== 0) return `torch-peer.py failed: ${child.stderr.trim().split('\n').pop() ?? ''}`;
    const result = JSON.parse(child.stdout.trim().split('\n').pop() as string) as { torch: string; times: Record<string, number[]> };
    return new Map(threads.map((t) => [t, (result.times[`large/${t}`] ?? []).map((s) => s / 4)]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const cores = availableParallelism();
  const asked = process.argv[2]?.split(',').map(Number) ?? [1, 2, 4, 8, 12, 16];
  const counts = asked.filter((n) => Number.isInteger(n) && n >= 1 && n <= cores);
  header(`pool scaling: reduceMetric(collection, { pool }) at ${counts.join(', ')} workers (wasm backend, shardRows 1024)`, [
    `learned 2048 x 16384 (1.8% fired), source and decoded 2048 x 4096 float32, pool-allocated; a stream of ${STREAM}; GB/s of the three arrays; medians of ${REPS}`,
  ]);
  const arrays = [ordinaryArrays(LARGE, 1), ordinaryArrays(LARGE, 2)];
  const want = referenceValues(arrays, LARGE);
  const bytes = STREAM * bytesOf(LARGE);
  const arena = new WasmArena();
  const inArena = arrays.flatMap((b) => {
    const a = copyInto(arenaArrays(arena, LARGE), b);
    return [a.learned, a.source, a.decoded];
  });
  const rows: string[][] = [];
  const one: Record<string, number> = {};
  for (const n of counts) {
    const readers = new WasmReaders(n, arena.memory);
    const pool = createMetricPool({ workers: n, backend: 'wasm' });
    try {
      const batches = arrays.map((a) => allocatedBatch(pool, a));
      const stream = Array.from({ length: STREAM }, (_, i) => batches[i % 2] as Batch);
      let six: Record<string, Tensor> | undefined;
      const [read, pooled, full] = await measure(
        [
          { name: 'read', run: async () => void (await readers.read(Array.from({ length: STREAM / 2 }, () => inArena).flat())) },
          { name: 'six', run: async () => void (six = (await lastValueFrom(from(stream).pipe(reduceMetricOf(pool, false)))) as Record<string, Tensor>) },
          { name: 'full', run: async () => void (await lastValueFrom(from(stream).pipe(reduceMetricOf(pool, true)))) },
        ],
        REPS,
      );
      agree(`${n} workers`, valuesOf(six as Record<string, Tensor>), want, TOLERANCE.wasm);
      const [r, p, f] = [rate(read!, bytes).median, rate(pooled!, bytes).median, rate(full!, bytes).median];
      if (n === counts[0]) Object.assign(one, { r, p, f });
      rows.push([String(n), f2(r), f2(p), f2(p / r), f2(p / (one.p as number)), f2(f), f2(f / r)]);
      console.log(rows[rows.length - 1]!.join('  '));
    } finally {
      await Promise.all([pool.close(), readers.close()]);
    }
  }
  console.log(`\n${table(['workers', 'read GB/s', 'six GB/s', 'six / read', `six x ${counts[0]} worker${counts[0] === 1 ? '' : 's'}`, 'full set GB/s', 'full / read'], rows)}`);
  const torch = torchTimes(arrays[0] as Arrays, counts);
  if (typeof torch === 'string') console.log(`\nPyTorch CPU: not measured (${torch})`);
  else {
    console.log(`\nPyTorch CPU (the six's statistics, idiomatic ops), same data:`);
    console.log(table(['threads', 'GB/s'], counts.map((n) => [String(n), f2(bytesOf(LARGE) / 1e9 / summary(torch.get(n) ?? []).median)])));
  }
  footer();
}

function reduceMetricOf(pool: MetricPool, full: boolean) {
  return reduceMetric(saeMetrics(LARGE.learned, full ? evaluationMetrics() : {}), { pool });
}

await main();
