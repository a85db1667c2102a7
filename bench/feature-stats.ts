/**
 * How long does a shard's per-feature statistics of fired entries take (the parts of
 * FeatureActivationStats, FeatureActivationHistogram, TopActivations k = 10 and
 * DeadFeaturesOverWindow): in JavaScript from the entries (`momentsOf`, `histogramOf`, `topOfShard`,
 * the last-fired rows, over the grouping by feature), against the WebAssembly pass (`featureStats`
 * on the entries where the positives pass wrote them, then the parts wrapping its results). Checks
 * that both give the same bits. One shard: the first 1024 rows of a large bench batch (1024 x 16384,
 * 1.8% fired), in this thread.
 * Run: node --expose-gc --import tsx bench/feature-stats.ts
 *
 * @module
 */
import { jsFusedKernel } from '../src/kernels/js-fused.js';
import { createChunkedWasmKernel } from '../src/kernels/wasm/chunked.js';
import { featureLayout, featureStatsAt, wasmModule, type FusedExports } from '../src/kernels/wasm/index.js';
import type { FusedKernel, PositiveEntries, ShardNeeds, ShardStats } from '../src/kernels/types.js';
import { shardNeeds, type Batch, type StatePart } from '../src/functional/core.js';
import { DeadFeaturesOverWindow, FeatureActivationHistogram, FeatureActivationStats, TopActivations } from '../src/index.js';
import { batchOf, f2, footer, header, isMain, LARGE, measure, ordinaryArrays, table, type Case, type ReadmeRow } from './harness.js';

const SHARD_ROWS = 1024;

function sameBits(a: unknown, b: unknown): boolean {
  if (ArrayBuffer.isView(a) && ArrayBuffer.isView(b)) {
    return Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.byteLength), Buffer.from(b.buffer, b.byteOffset, b.byteLength)) === 0;
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => sameBits((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k]));
  }
  return Object.is(a, b);
}

export async function run(): Promise<ReadmeRow[]> {
  header('per-feature statistics of a shard\'s fired entries (actstats, acthist, top k=10, deadwindow), this thread', [
    `one shard of ${SHARD_ROWS} x ${LARGE.learned} (the first rows of a large bench batch); medians of 7, ms`,
  ]);
  const batch = batchOf(ordinaryArrays(LARGE, 1), LARGE) as Batch;
  const rows = { start: 0, end: SHARD_ROWS };
  const o = { numLearnedFeatures: LARGE.learned };
  const metrics = [
    new FeatureActivationStats(o),
    new FeatureActivationHistogram(o),
    new TopActivations({ ...o, k: 10 }),
    new DeadFeaturesOverWindow({ ...o, windowVectors: 10_000_000 }),
  ];
  const byId = new Map<string, StatePart<unknown>>();
  for (const m of metrics) for (const p of Object.values(m.definition.parts)) if (p.needs?.features !== undefined) byId.set(p.id, p);
  const parts = [...byId.values()];
  const needs = shardNeeds(parts);
  const request = needs.features as NonNullable<ShardNeeds['features']>;
  const positives = jsFusedKernel(batch, rows, { positives: true }).positives as PositiveEntries;
  const entries = positives.values.length;
  console.log(`${entries} fired entries; parts: ${parts.map((p) => p.id.split('(')[0]).join(', ')}\n`);

  // The entries in a WebAssembly memory as a positives pass leaves them (u32 offsets, features, f32 values).
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  const exports = new WebAssembly.Instance(wasmModule('local'), { env: { memory } }).exports as unknown as FusedExports;
  const vectors = positives.offsets.length - 1;
  const at = { offsets: 0, features: 4 * (vectors + 16), values: 0, vectors, total: entries };
  at.values = at.features + 4 * entries + 64;
  const scratch = at.values + 4 * entries + 64;
  memory.grow(Math.ceil((scratch + featureLayout(LARGE.learned, entries, request).bytes) / 65536));
  new Uint32Array(memory.buffer, 0, vectors).set(positives.offsets.subarray(0, vectors));
  new Uint32Array(memory.buffer, at.features, entries).set(positives.features);
  new Float32Array(memory.buffer, at.values, entries).set(positives.values);

  const fromStats = (stats: ShardStats) => parts.map((p) => p.fromStats?.(stats, rows, batch));
  const chunked = createChunkedWasmKernel();
  const learned = { abs: true, nonZero: true, fired: true };
  const oldNeeds = { ...learned, positives: true };
  const newNeeds = { ...learned, features: request };
  const viaKernel = (kernel: FusedKernel, n: ShardNeeds) => fromStats(kernel(batch, rows, n));
  if (!sameBits(viaKernel(chunked, newNeeds), viaKernel(chunked, oldNeeds))) throw new Error('bench: the WebAssembly per-feature statistics differ from the JavaScript parts\'');

  let sink = 0;
  const cases: Case[] = [
    { name: 'JavaScript: the parts from the entries (grouping, moments, histogram, top, last-fired)', run: () => (sink += fromStats({ positives: { ...positives } }).length) },
    { name: 'WebAssembly: featureStats on the entries in memory, results copied out', run: () => (sink += Object.keys(featureStatsAt(exports, () => memory.buffer, at, 1, LARGE.learned, request, scratch)).length) },
    { name: 'in-thread kernel (abs, nonZero, fired, positives), then the JavaScript parts', run: () => (sink += viaKernel(chunked, oldNeeds).length) },
    { name: 'in-thread kernel (abs, nonZero, fired, features), then the parts wrap', run: () => (sink += viaKernel(chunked, newNeeds).length) },
    { name: 'in-thread kernel (abs, nonZero, fired) alone', run: () => (sink += Object.keys(chunked(batch, rows, learned)).length) },
  ];
  const times = await measure(cases, 7);
  console.log(
    table(
      ['case', 'ms', '(min-max)', 'ns/entry'],
      cases.map((c, i) => {
        const t = times[i]!;
        return [c.name, f2(t.median), `(${f2(t.min)}-${f2(t.max)})`, f2((t.median * 1e6) / entries)];
      }),
    ),
  );
  if (sink < 0) console.log(sink);
  footer();
  return [{ path: 'per-feature statistics of a 1024 x 16384 shard (WebAssembly)', figure: `${f2(times[1]!.median)} ms`, ratio: `${f2(times[0]!.median / times[1]!.median)}x faster than JavaScript` }];
}

if (isMain(import.meta.url)) await run();
