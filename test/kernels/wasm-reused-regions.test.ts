/**
 * A pool's workers reuse the regions of the shared memory that threads before them took (room for
 * fired entries and their per-feature statistics, src/pool/region-registry.ts), and the blocks of
 * scratch the pool lends: whatever a thread left there (it may have exited in the middle of a
 * shard) must not reach the numbers. Every free region and the lent scratch are filled with seeded
 * garbage before each shard, a new thread takes them, and the full metric set's partial states are
 * compared bit for bit with a kernel whose memory is fresh (zeros).
 */
import { describe, expect, it } from 'vitest';
import { computePartials, type Batch, type StatePart } from '../../src/functional/core.js';
import { createWasmKernel } from '../../src/kernels/wasm/index.js';
import { RegionRegistry, registryRegions } from '../../src/pool/region-registry.js';
import { fullSet } from '../support/full-set.js';
import { mulberry32 } from '../support/random.js';

const PAGE = 65536;

/** Partial states as comparable data: typed arrays as the hex of their bytes. */
function hex(value: unknown): unknown {
  if (ArrayBuffer.isView(value)) return `${value.constructor.name}:${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`;
  if (value instanceof Map) return [...value.entries()].map(([k, v]) => [k, hex(v)]);
  if (Array.isArray(value)) return value.map(hex);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, hex(v)]));
  if (typeof value === 'number' && Number.isNaN(value)) return 'NaN';
  return value;
}

function partsOf(features: number, dim: number, components: number | undefined): StatePart<unknown>[] {
  const set = fullSet(features, dim, components);
  return Object.values(set.metrics).flatMap((m) => Object.values(m.definition.parts as Record<string, StatePart<unknown>>));
}

/** Garbage: random bytes, NaN and infinity patterns, huge counts. */
function spoil(memory: WebAssembly.Memory, start: number, bytes: number, r: () => number): void {
  const words = new Uint32Array(memory.buffer, start, bytes >>> 2);
  const kind = Math.floor(r() * 4);
  const fill = [0xffffffff, 0x7fc00001, 0x7f800000, 0x00000001][kind] as number;
  words.fill(fill);
  for (let i = 0; i < words.length; i += 1 + Math.floor(r() * 64)) words[i] = (r() * 2 ** 32) >>> 0;
}

describe('wasm kernel on reused regions and scratch full of garbage', () => {
  it('the full set\'s partial states are the bits of a kernel on fresh memory, seeded sparse and dense shards, rank 2 and 3', () => {
    const r = mulberry32(0x5eed_4e9);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const registry = new RegionRegistry();
    const fresh = createWasmKernel(new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true }));
    // Room for the largest batch (40 rows, 3 components, 2000 features) and for the lent scratch, once.
    const BATCH_PAGES = 64;
    const LENT = 16 * PAGE;
    const area = memory.grow(BATCH_PAGES) * PAGE;
    const lent = memory.grow(LENT / PAGE) * PAGE;
    const freshArea = fresh.memory.grow(BATCH_PAGES) * PAGE;
    // A thread that takes regions of assorted sizes and leaves (as one that exits mid-shard does).
    const dirty = registryRegions(registry.buffer, memory, 1);
    for (let i = 0; i < 24; i++) dirty.take(1 + Math.floor(r() * 24 * PAGE), 1);
    registry.releaseThread(1);
    let thread = 2;
    let compared = 0;
    for (let round = 0; round < 24; round++) {
      const components = r() < 0.4 ? 1 + Math.floor(r() * 3) : undefined;
      const features = [7, 64, 300, 2000][Math.floor(r() * 4)] as number;
      const dim = 1 + Math.floor(r() * 9);
      const rows = 1 + Math.floor(r() * 40);
      const density = [0.002, 0.05, 0.5, 1][Math.floor(r() * 4)] as number;
      const c = components ?? 1;
      const shape = components === undefined ? [rows, features] : [rows, components, features];
      const pairShape = components === undefined ? [rows, dim] : [rows, components, dim];
      const n = rows * c * features;
      const m = rows * c * dim;
      // Three tensors and the lent scratch, each in a block of its own.
      const at = area;
      const learned = new Float32Array(memory.buffer, at, n);
      for (let i = 0; i < n; i++) learned[i] = r() < density ? Math.fround(r() < 0.05 ? 2 ** -140 : r() * 4) : r() < 0.1 ? -r() : 0;
      const source = new Float32Array(memory.buffer, at + 4 * n + 64, m);
      const decoded = new Float32Array(memory.buffer, at + 4 * (n + m) + 128, m);
      for (let i = 0; i < m; i++) {
        source[i] = r() - 0.5;
        decoded[i] = r() - 0.5;
      }
      const batch: Batch = {
        learnedActivations: { data: learned, shape },
        sourceActivations: { data: source, shape: pairShape },
        decodedActivations: { data: decoded, shape: pairShape },
      };
      const parts = partsOf(features, dim, components);
      const start = Math.floor(r() * rows);
      const range = r() < 0.5 ? { start: 0, end: rows } : { start, end: rows };
      const view = (from: Float32Array, offset: number): Float32Array => {
        const v = new Float32Array(fresh.memory.buffer, freshArea + offset, from.length);
        v.set(from);
        return v;
      };
      const freshBatch: Batch = {
        learnedActivations: { data: view(learned, 0), shape },
        sourceActivations: { data: view(source, 4 * n + 64), shape: pairShape },
        decodedActivations: { data: view(decoded, 4 * (n + m) + 128), shape: pairShape },
      };
      const want = hex(computePartials(parts, freshBatch, range, fresh.fused));
      // Each free region spoilt, then a new thread's kernel takes them; half the shards on lent scratch, spoilt too.
      const slots = new Int32Array(registry.buffer);
      for (let i = 0; i < slots.length / 3; i++) {
        if (Atomics.load(slots, 3 * i) === 0) spoil(memory, slots[3 * i + 1]! * PAGE, slots[3 * i + 2]! * PAGE, r);
      }
      const id = thread++;
      const kernel = createWasmKernel(memory, undefined, registryRegions(registry.buffer, memory, id));
      if (r() < 0.5) {
        spoil(memory, lent, LENT, r);
        kernel.useScratch({ byteOffset: lent, byteLength: LENT });
      }
      // Twice: the second shard finds the first one's leftovers in the same regions.
      for (let pass = 0; pass < 2; pass++) {
        const got = hex(computePartials(parts, batch, range, kernel.fused));
        expect(got, `round ${round}: [${shape.join(', ')}] density ${density}, rows [${range.start}, ${range.end}), pass ${pass}`).toEqual(want);
        compared++;
      }
      registry.releaseThread(id);
    }
    expect(compared).toBe(48);
  }, 30_000);
});
