/**
 * The workers' region list when all its slots are taken (more regions than it lists): a region
 * past the list is still the taker's alone (grown, never handed out again), nothing throws, and
 * the regions listed are still reused once their threads are gone.
 */
import { describe, expect, it } from 'vitest';
import { RegionRegistry, registryRegions } from '../../src/pool/region-registry.js';
import { mulberry32 } from '../support/random.js';

const PAGE = 65536;

describe('RegionRegistry with every slot taken', () => {
  it('1100 threads holding a region each, then all released: no two regions overlap, listed ones are reused', () => {
    const r = mulberry32(0x511075);
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const registry = new RegionRegistry();
    const slots = new Int32Array(registry.buffer).length / 3;
    const held: { start: number; size: number; id: number }[] = [];
    for (let id = 1; id <= slots + 76; id++) {
      const source = registryRegions(registry.buffer, memory, id);
      const bytes = 1 + Math.floor(r() * 2 * PAGE);
      const region = source.take(bytes, bytes);
      expect(region.size).toBeGreaterThanOrEqual(bytes);
      held.push({ ...region, id });
      // A thread past the list gives back what it cannot list: nothing happens.
      if (id > slots) source.give(region.start);
    }
    const sorted = [...held].sort((a, b) => a.start - b.start);
    for (let i = 1; i < sorted.length; i++) {
      const a = sorted[i - 1] as { start: number; size: number };
      expect(a.start + a.size, `regions ${i - 1} and ${i}`).toBeLessThanOrEqual((sorted[i] as { start: number }).start);
    }
    const listedBytes = held.slice(0, slots).reduce((n, h) => n + h.size, 0);
    expect(registry.usage()).toEqual({ owned: listedBytes, free: 0 });
    for (const h of held) registry.releaseThread(h.id);
    expect(registry.usage()).toEqual({ owned: 0, free: listedBytes });
    // A new thread takes listed regions, the smallest that fits, before the memory grows.
    const size = memory.buffer.byteLength;
    const next = registryRegions(registry.buffer, memory, 5000);
    const got = next.take(PAGE + 1, PAGE + 1);
    expect(held.slice(0, slots).some((h) => h.start === got.start)).toBe(true);
    expect(got.size).toBe(2 * PAGE);
    expect(memory.buffer.byteLength).toBe(size);
    // A region past the list was never listed: not handed out again.
    const unlisted = new Set(held.slice(slots).map((h) => h.start));
    for (let i = 0; i < 300; i++) expect(unlisted.has(next.take(PAGE, PAGE).start)).toBe(false);
  });
});
