/**
 * A shard with more fired entries than `lastFiredRoom` (1 value in 8, at least 2^17) whose parts ask only for the
 * last-fired rows (deadwindow) has them found by a scan of its values (src/kernels/wasm/dense.ts),
 * not from its entries: through both WebAssembly kernels the same bits as the JavaScript kernel's,
 * on seeded dense and sparse shards in random order with hostile values, and the pool kernel's
 * memory grows by the capped room (a byte a value, at least 1 MiB of entries), not by 8 bytes an entry.
 */
import { describe, expect, it } from 'vitest';
import { computePartials, shardNeeds, type Batch, type StatePart } from '../../src/functional/core.js';
import { firedCountPart } from '../../src/functional/parts/fired-count.js';
import { lastFiredPart } from '../../src/functional/parts/last-fired.js';
import { nonZeroCountPart } from '../../src/functional/parts/non-zero-count.js';
import { jsFusedKernel } from '../../src/kernels/js-fused.js';
import { createChunkedWasmKernel } from '../../src/kernels/wasm/chunked.js';
import { lastFiredOnly, lastFiredRoom } from '../../src/kernels/wasm/dense.js';
import { createWasmKernel } from '../../src/kernels/wasm/index.js';
import { difference, viewBytesDifference } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';

const PAGE = 65536;
/** Not fired (`x > 0` is false): 0, -0, negatives, NaN, -Infinity. */
const QUIET = [0, -0, -1, -1e-45, Number.NaN, -Infinity];
/** Fired: subnormals, the largest float32, +Infinity, ordinary values. */
const LOUD = [1e-45, 1e-40, 3.4028234663852886e38, Infinity, 1, 0.25, 7];

/** Seeded values of `n`, each fired with probability `density`, hostile on both sides. */
function values(seed: number, n: number, density: number): Float32Array {
  const random = mulberry32(seed);
  const x = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const fired = random() < density;
    const pick = random();
    if (fired) x[i] = pick < 0.1 ? (LOUD[Math.floor(random() * LOUD.length)] as number) : 0.5 + pick;
    else x[i] = pick < 0.3 ? (QUIET[Math.floor(random() * QUIET.length)] as number) : -pick;
  }
  return x;
}

function same(got: unknown, want: unknown, what: string): void {
  const d = difference(got, want, viewBytesDifference);
  if (d !== undefined) expect.fail(`${what}: ${d}`);
}

interface Shape {
  readonly rows: number;
  readonly components: number | undefined;
  readonly features: number;
  readonly density: number;
}

const SHAPES: Shape[] = [
  // One wide row, every value fired (2^20 entries).
  { rows: 1, components: undefined, features: 2 ** 20, density: 1 },
  { rows: 1024, components: undefined, features: 700, density: 0.9 },
  { rows: 300, components: 2, features: 1000, density: 0.5 },
  { rows: 77, components: 3, features: 999, density: 0.97 },
  // Sparse: under the cap, from the entries.
  { rows: 200, components: undefined, features: 3000, density: 0.01 },
  { rows: 5, components: 2, features: 40, density: 0.3 },
];

describe('deadwindow on a dense shard: its last-fired rows by a scan, the same bits as the JavaScript kernel', () => {
  it('asks for the scan only when the last-fired rows are all that is made from the entries', () => {
    expect(lastFiredOnly({ features: { lastFired: true } })).toBe(true);
    expect(lastFiredOnly({ fired: true, abs: true, nonZero: true, features: { lastFired: true } })).toBe(true);
    expect(lastFiredOnly({ positives: true, features: { lastFired: true } })).toBe(false);
    expect(lastFiredOnly({ features: { lastFired: true, moments: true } })).toBe(false);
    expect(lastFiredOnly({ features: { lastFired: true, top: 1 } })).toBe(false);
    expect(lastFiredOnly({ features: { lastFired: true, histogram: { key: 'k', edgeBits: new Uint32Array(1) } } })).toBe(false);
    expect(lastFiredOnly({ fired: true })).toBe(false);
  });

  it('both WebAssembly kernels, seeded shards dense and sparse in random order, several row ranges, with and without the counts', () => {
    const random = mulberry32(1313);
    // Each shape twice, shuffled: a dense shard after a sparse one and the reverse (the room's guess follows the last shard).
    const order = [...SHAPES, ...SHAPES].map((s) => ({ s, key: random() })).sort((a, b) => a.key - b.key).map((o) => o.s);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const pool = createWasmKernel(memory);
    const chunked = createChunkedWasmKernel();
    const small = createChunkedWasmKernel({ chunkBytes: 4096 });
    let scanned = 0;
    let compared = 0;
    for (const [i, s] of order.entries()) {
      const shape = s.components === undefined ? [s.rows, s.features] : [s.rows, s.components, s.features];
      const data = values(7 * i + s.features, s.rows * (s.components ?? 1) * s.features, s.density);
      const plain: Batch = { learnedActivations: { data, shape } };
      const at = memory.grow(Math.ceil((4 * data.length + 64) / PAGE)) * PAGE;
      const view = new Float32Array(memory.buffer, at, data.length);
      view.set(data);
      const inMemory: Batch = { learnedActivations: { data: view, shape } };
      const partSets: StatePart<unknown>[][] = [
        [lastFiredPart(s.features, s.components)],
        [firedCountPart(s.features, s.components), lastFiredPart(s.features, s.components), nonZeroCountPart(s.components)],
      ];
      const start = Math.floor(random() * s.rows);
      for (const rows of [{ start: 0, end: s.rows }, { start, end: s.rows }, { start: 0, end: Math.max(1, start) }]) {
        const entries = s.density * (rows.end - rows.start) * (s.components ?? 1) * s.features;
        const dense = entries > 1.2 * lastFiredRoom((rows.end - rows.start) * (s.components ?? 1) * s.features);
        if (dense) scanned++;
        for (const parts of partSets) {
          const want = computePartials(parts, plain, rows, jsFusedKernel);
          for (const [name, kernel, batch] of [
            ['pool kernel', pool.fused, inMemory],
            ['chunked kernel', chunked, plain],
            ['chunked kernel, 4 KiB chunks', small, plain],
          ] as const) {
            // Past the cap, the rows come without the entries.
            if (dense) expect(kernel(batch, rows, shardNeeds(parts)).positives, `${name}: no entries handed out`).toBeUndefined();
            const got = computePartials(parts, batch, rows, kernel);
            for (const [id, w] of want) {
              same(got.get(id), w, `${name}, shard ${i} [${shape.join(', ')}] density ${s.density}, rows [${rows.start}, ${rows.end}), ${id}`);
              compared++;
            }
          }
        }
      }
    }
    expect(scanned).toBeGreaterThan(10);
    expect(compared).toBeGreaterThan(100);
  });

  it("the pool kernel's memory grows by its capped room for a dense shard, not by 8 bytes an entry", () => {
    for (const s of [
      { rows: 1024, features: 2048 },
      { rows: 1, features: 2 ** 21 },
    ]) {
      const n = s.rows * s.features;
      const data = values(s.features, n, 1);
      const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
      const at = memory.grow(Math.ceil((4 * n + 64) / PAGE)) * PAGE;
      new Float32Array(memory.buffer, at, n).set(data);
      const batch: Batch = { learnedActivations: { data: new Float32Array(memory.buffer, at, n), shape: [s.rows, s.features] } };
      const kernel = createWasmKernel(memory);
      const before = memory.buffer.byteLength;
      const parts = [firedCountPart(s.features, undefined), lastFiredPart(s.features, undefined)];
      const rows = { start: 0, end: s.rows };
      const want = computePartials(parts, { learnedActivations: { data, shape: [s.rows, s.features] } }, rows, jsFusedKernel);
      // Three shards: the second and third guess their room from the first's density.
      for (let pass = 0; pass < 3; pass++) {
        const got = computePartials(parts, batch, rows, kernel.fused);
        for (const [id, w] of want) same(got.get(id), w, `[${s.rows}, ${s.features}], pass ${pass}, ${id}`);
      }
      const grown = memory.buffer.byteLength - before;
      // The pass's own outputs (abs f64 a vector, fired u32 a feature) and twice the capped room
      // for entries (the first guess, then the capped one); the entries would be 8 bytes each.
      const room = 8 * s.rows + 4 * s.features + 2 * 8 * lastFiredRoom(n) + 4 * s.rows + 4 * PAGE;
      expect(grown, `[${s.rows}, ${s.features}]: grew ${grown} bytes, ${n} entries`).toBeLessThanOrEqual(room);
      expect(room).toBeLessThan(8 * n);
    }
  });
});
