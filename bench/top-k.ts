/**
 * Does TopActivations' per-shard top cost WebAssembly more than JavaScript at any k? A shard's
 * best k entries a feature by `featureStats` (top alone, on the entries where a positives pass
 * leaves them, results copied out) against the JavaScript parts from the same entries
 * (`topOfShard`, the js kernel's path for top alone, and `topByFeature`, its path beside other
 * per-feature parts), checked to give the same bits. Shards: 4096 x 4096 with 64 features firing
 * on every row (random values, and values rising with the row: every entry beats those kept) at
 * k = 10, 100, 1000, 4096; the first 1024 rows of a large bench batch (1024 x 16384, 1.8% fired)
 * at k = 10, 100, 1000.
 * Run: node --expose-gc --import tsx bench/top-k.ts
 *
 * @module
 */
import { jsFusedKernel } from '../src/kernels/js-fused.js';
import { featureLayout, featureStatsAt, wasmModule, type FusedExports } from '../src/kernels/wasm/index.js';
import type { FeatureStats, PositiveEntries } from '../src/kernels/types.js';
import type { Batch } from '../src/functional/core.js';
import { topByFeature, topOfShard, type ShardTop } from '../src/functional/parts/top-of-shard.js';
import { batchOf, f2, footer, header, isMain, LARGE, measure, ordinaryArrays, table, type Case, type ReadmeRow } from './harness.js';
import { seededRandom as mulberry32 } from '../examples/random.js';

interface Shard {
  readonly name: string;
  readonly features: number;
  readonly positives: PositiveEntries;
  readonly ks: readonly number[];
}

/** `rows` rows of `features` features, the first `firing` firing on every row (`rising`: value grows with the row). */
function everyRow(rows: number, features: number, firing: number, rising: boolean, seed: number): PositiveEntries {
  const r = mulberry32(seed);
  const offsets = new Float64Array(rows + 1);
  const feats = new Uint32Array(rows * firing);
  const values = new Float32Array(rows * firing);
  let i = 0;
  for (let row = 0; row < rows; row++) {
    offsets[row] = i;
    for (let f = 0; f < firing; f++) {
      feats[i] = f;
      values[i++] = rising ? 1 + row + r() * 0.5 : 1e-3 + r();
    }
  }
  offsets[rows] = i;
  return { offsets, features: feats, values };
}

function benchShard(): PositiveEntries {
  const batch = batchOf(ordinaryArrays(LARGE, 1), LARGE) as Batch;
  return jsFusedKernel(batch, { start: 0, end: 1024 }, { positives: true }).positives as PositiveEntries;
}

function sameTop(a: FeatureStats['top'], b: ShardTop): boolean {
  const bytes = (x: ArrayBufferView) => Buffer.from(x.buffer, x.byteOffset, x.byteLength);
  return a !== undefined && bytes(a.counts).equals(bytes(b.counts)) && bytes(a.values).equals(bytes(b.values)) && bytes(a.rows).equals(bytes(b.rows));
}

export async function run(): Promise<ReadmeRow[]> {
  header('TopActivations per shard at large k: WebAssembly featureStats against the JavaScript parts, this thread', [
    'medians of 5, ms; the entries computed once, untimed',
  ]);
  const shards: Shard[] = [
    { name: '4096 x 4096, 64 fire every row, random', features: 4096, positives: everyRow(4096, 4096, 64, false, 7), ks: [10, 100, 1000, 4096] },
    { name: '4096 x 4096, 64 fire every row, rising', features: 4096, positives: everyRow(4096, 4096, 64, true, 8), ks: [10, 100, 1000, 4096] },
    { name: '1024 x 16384, 1.8% (bench batch)', features: LARGE.learned, positives: benchShard(), ks: [10, 100, 1000] },
  ];
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  const exports = new WebAssembly.Instance(wasmModule('local'), { env: { memory } }).exports as unknown as FusedExports;
  const rows: string[][] = [];
  const readme: ReadmeRow[] = [];
  let sink = 0;
  for (const s of shards) {
    const p = s.positives;
    const entries = p.values.length;
    const vectors = p.offsets.length - 1;
    const at = { offsets: 0, features: 16 * Math.ceil((4 * vectors + 4) / 16), values: 0, vectors, total: entries };
    at.values = at.features + 16 * Math.ceil((4 * entries) / 16);
    const scratch = at.values + 16 * Math.ceil((4 * entries) / 16);
    const need = scratch + featureLayout(s.features, entries, { top: Math.max(...s.ks) }).bytes;
    if (need > memory.buffer.byteLength) memory.grow(Math.ceil((need - memory.buffer.byteLength) / 65536));
    new Uint32Array(memory.buffer, 0, vectors).set(p.offsets.subarray(0, vectors));
    new Uint32Array(memory.buffer, at.features, entries).set(p.features);
    new Float32Array(memory.buffer, at.values, entries).set(p.values);
    for (const k of s.ks) {
      const wasm = () => featureStatsAt(exports, () => memory.buffer, at, 1, s.features, { top: k }, scratch).top;
      if (!sameTop(wasm(), topOfShard({ ...p }, s.features, 1, k))) throw new Error(`bench: the WebAssembly top differs from the JavaScript parts' (${s.name}, k = ${k})`);
      const cases: Case[] = [
        { name: 'js topOfShard', run: () => (sink += topOfShard({ ...p }, s.features, 1, k).values.length) },
        { name: 'js topByFeature', run: () => (sink += topByFeature({ ...p }, s.features, 1, k).values.length) },
        { name: 'wasm featureStats', run: () => (sink += wasm()?.values.length ?? 0) },
      ];
      const t = await measure(cases, 5);
      const [js, byFeature, w] = t.map((x) => x.median) as [number, number, number];
      rows.push([s.name, String(k), String(entries), f2(js), f2(byFeature), f2(w), f2(w / Math.min(js, byFeature))]);
      if (s.features === 4096 && k === 4096 && !s.name.endsWith('rising')) {
        readme.push({ path: 'top k = 4096 of a 4096 x 4096 shard, 64 features firing every row (WebAssembly)', figure: `${f2(w)} ms`, ratio: `${f2(js / w)}x faster than JavaScript` });
      }
    }
  }
  console.log(table(['shard', 'k', 'entries', 'js topOfShard', 'js topByFeature', 'wasm', 'wasm / best js'], rows));
  if (sink < 0) console.log(sink);
  footer();
  return readme;
}

if (isMain(import.meta.url)) await run();
