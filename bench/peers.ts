/**
 * How does the default path compare with what users would otherwise run: PyTorch on the CPU
 * (1 and 2 threads; idiomatic ops, `X.abs().sum(-1)`, `(X != 0).sum(-1)`, `(X > 0).sum(0)`,
 * `((D - S) ** 2).mean(-1)`) and TensorFlow.js (cpu, wasm), on the same large and small batches?
 * PyTorch needs `python3` with torch (Debian: apt-get install python3-torch); without it its rows
 * are skipped and the bench says why. Set SAE_METRICS_PYTHON to choose the interpreter.
 * Run: node --expose-gc --import tsx bench/peers.ts
 *
 * @module
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  agree, batchOf, bytesOf, f0, f2, footer, header, isMain, LARGE, L1_COEFFICIENT, measure, ordinaryArrays, rate, referenceValues, saeMetrics, SMALL,
  summary, table, TOLERANCE, valuesOf, type Arrays, type Values, type Case, type ReadmeRow, type Size,
} from './harness.js';
import { disposeTensors, initTfjs, tfjsFromArrays, tfjsFromTensors, toTensors, useTfjsBackend, type TfjsTensors } from './tfjs.js';

/** Small batches per timed repetition; rows of a large batch tfjs's cpu backend reads (about 4 s a whole batch). */
const SMALL_N = 256;
const TFJS_CPU_ROWS = 256;

/** A python that imports torch: SAE_METRICS_PYTHON, Debian's /usr/bin/python3, or python3 on PATH. */
function findPython(): { python: string } | { reason: string } {
  const candidates = [process.env.SAE_METRICS_PYTHON, '/usr/bin/python3', 'python3'].filter((p): p is string => !!p);
  for (const python of candidates) {
    const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
    if (probe.status === 0) return { python };
  }
  return { reason: `no python with torch (tried ${candidates.join(', ')}; Debian: apt-get install python3-torch)` };
}

interface TorchResult {
  readonly torch: string;
  readonly times: Record<string, number[]>;
  readonly values: { abs: number; nonZero: number; fired: number[]; mse: number };
}

function runTorch(python: string, large: Arrays, small: Arrays): TorchResult {
  const dir = mkdtempSync(join(tmpdir(), 'sae-bench-'));
  try {
    const files = (name: string, a: Arrays, size: Size, count: number) => {
      for (const k of ['learned', 'source', 'decoded'] as const) writeFileSync(join(dir, `${name}-${k}.f32`), a[k]);
      const at = (k: string): string => join(dir, `${name}-${k}.f32`);
      return { learned: at('learned'), source: at('source'), decoded: at('decoded'), rows: size.rows, learned_features: size.learned, source_features: size.source, count };
    };
    const spec = { repeats: 7, threads: [1, 2], batches: { large: files('large', large, LARGE, 1), small: files('small', small, SMALL, SMALL_N) } };
    writeFileSync(join(dir, 'spec.json'), JSON.stringify(spec));
    const script = fileURLToPath(new URL('./torch-peer.py', import.meta.url));
    const child = spawnSync(python, [script, join(dir, 'spec.json')], { encoding: 'utf8', maxBuffer: 1 << 26 });
    if (child.status !== 0) throw new Error(`bench: ${script} failed: ${child.stderr}`);
    return JSON.parse(child.stdout.trim().split('\n').pop() as string) as TorchResult;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export async function run(): Promise<ReadmeRow[]> {
  header('peers: PyTorch CPU and TensorFlow.js against collection.update, same batches', [
    `one large batch (learned 2048 x 16384, source and decoded 2048 x 4096 float32) and ${SMALL_N} small ones (64 x 4096, 64 x 1024) a repetition;`,
    '7 repetitions, median: GB/s of the three arrays (large), us per batch (small)',
  ]);
  const large = ordinaryArrays(LARGE, 1);
  const small = ordinaryArrays(SMALL, 11);
  const metrics = saeMetrics(LARGE.learned);
  const smallMetrics = saeMetrics(SMALL.learned);
  const largeBatch = batchOf(large, LARGE);
  const smallBatch = batchOf(small, SMALL);
  const tf = await initTfjs();
  const cut = (a: Arrays, rows: number): Arrays => ({
    learned: a.learned.subarray(0, rows * LARGE.learned),
    source: a.source.subarray(0, rows * LARGE.source),
    decoded: a.decoded.subarray(0, rows * LARGE.source),
  });
  const cases: { case: Case; bytes: number; perBatch?: number }[] = [
    { case: { name: 'collection.update, large batch', run: () => (metrics.reset(), metrics.update(largeBatch)) }, bytes: bytesOf(LARGE) },
    { case: { name: 'collection.update, small batch', run: () => (smallMetrics.reset(), Array.from({ length: SMALL_N }, () => smallMetrics.update(smallBatch))) }, bytes: 0, perBatch: SMALL_N },
  ];
  const skipped: string[] = [];
  let tfjsWasm: Values | undefined;
  let heap: TfjsTensors[] = [];
  if (tf.available.cpu.ok) {
    const part = cut(large, TFJS_CPU_ROWS);
    cases.push({
      case: { name: `TensorFlow.js ${tf.version} cpu, large batch (first ${TFJS_CPU_ROWS} rows)`, prepare: () => useTfjsBackend('cpu'), run: () => tfjsFromArrays([part], TFJS_CPU_ROWS, LARGE.learned, LARGE.source, L1_COEFFICIENT) },
      bytes: bytesOf({ ...LARGE, rows: TFJS_CPU_ROWS }),
    });
  } else skipped.push(`TensorFlow.js cpu: not run (${tf.available.cpu.reason})`);
  if (tf.available.wasm.ok) {
    cases.push({
      case: {
        name: `TensorFlow.js ${tf.version} wasm, large batch`,
        prepare: () => useTfjsBackend('wasm'),
        run: async () => void (tfjsWasm = await tfjsFromArrays([large], LARGE.rows, LARGE.learned, LARGE.source, L1_COEFFICIENT)),
      },
      bytes: bytesOf(LARGE),
    });
    await useTfjsBackend('wasm');
    heap = [toTensors(large, LARGE.rows, LARGE.learned, LARGE.source)];
    cases.push({
      case: { name: `TensorFlow.js ${tf.version} wasm, large batch already in its heap`, prepare: () => useTfjsBackend('wasm'), run: () => tfjsFromTensors(heap, LARGE.rows, L1_COEFFICIENT) },
      bytes: bytesOf(LARGE),
    });
  } else skipped.push(`TensorFlow.js wasm: not run (${tf.available.wasm.reason})`);
  let times;
  try {
    times = await measure(cases.map((c) => c.case));
  } finally {
    if (heap.length > 0) {
      await useTfjsBackend('wasm');
      disposeTensors(heap);
    }
  }
  const want = referenceValues([large], LARGE);
  agree('collection.update', valuesOf(metrics.compute()), want, TOLERANCE.wasm);
  if (tfjsWasm !== undefined) agree('TensorFlow.js wasm', tfjsWasm, want, TOLERANCE.f32);

  const lines: string[][] = [];
  const rows: ReadmeRow[] = [];
  const add = (name: string, ms: { median: number; min: number; max: number }, bytes: number, perBatch?: number): void => {
    if (perBatch !== undefined) {
      const us = (x: number): string => f0((x * 1000) / perBatch);
      lines.push([name, `${us(ms.median)} us`, `(${us(ms.min)}-${us(ms.max)})`]);
      rows.push({ path: `peers: ${name}`, figure: `${us(ms.median)} us` });
    } else {
      const r = rate(ms, bytes);
      lines.push([name, `${f2(r.median)} GB/s`, `(${f2(r.min)}-${f2(r.max)})`]);
      rows.push({ path: `peers: ${name}`, figure: `${f2(r.median)} GB/s` });
    }
  };
  cases.forEach((c, i) => add(c.case.name, times[i]!, c.bytes, c.perBatch));

  const python = findPython();
  if ('python' in python) {
    const t = runTorch(python.python, large, small);
    const v = t.values;
    const n = LARGE.rows;
    const density = Float64Array.from(v.fired, (c) => c / n);
    agree('PyTorch', { l1: v.abs / n, l2: v.mse / n, sae: v.mse / n + (L1_COEFFICIENT * v.abs) / n, l0: v.nonZero / n, dead: v.fired.filter((c) => c === 0).length, density }, want, TOLERANCE.f32);
    for (const threads of [1, 2]) {
      const s = (key: string) => summary((t.times[key] ?? []).map((sec) => sec * 1000));
      add(`PyTorch ${t.torch} CPU, ${threads} thread${threads > 1 ? 's' : ''}, large batch`, s(`large/${threads}`), bytesOf(LARGE));
      add(`PyTorch ${t.torch} CPU, ${threads} thread${threads > 1 ? 's' : ''}, small batch`, s(`small/${threads}`), 0, SMALL_N);
    }
  } else skipped.push(`PyTorch: not run (${python.reason})`);

  console.log(table(['path', 'median', '(min-max)'], lines));
  for (const s of skipped) console.log(s);
  console.log(`\ncheck: collection.update within ${TOLERANCE.wasm}, PyTorch and TensorFlow.js within ${TOLERANCE.f32} of the float64 loops (dead counts equal)`);
  footer();
  return rows;
}

if (isMain(import.meta.url)) await run();
