/**
 * The workers' regions of a pool's shared memory (src/pool/region-registry.ts): a region is held by
 * one thread at a time; one given back, or whose thread exited, goes to the next thread that needs
 * as much before the memory grows; the smallest that fits is taken.
 */
import { describe, expect, it } from 'vitest';
import { RegionRegistry, registryRegions } from '../../src/pool/region-registry.js';

const PAGE = 65536;

function setup() {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  const registry = new RegionRegistry();
  return { memory, registry, thread: (id: number) => registryRegions(registry.buffer, memory, id) };
}

describe('RegionRegistry', () => {
  it('two threads get disjoint regions; the memory grows by what they asked for', () => {
    const { memory, registry, thread } = setup();
    const a = thread(1).take(1000, 3 * PAGE);
    const b = thread(2).take(PAGE + 1, 2 * PAGE);
    expect(a).toEqual({ start: PAGE, size: 3 * PAGE });
    expect(b).toEqual({ start: 4 * PAGE, size: 2 * PAGE });
    expect(memory.buffer.byteLength).toBe(6 * PAGE);
    expect(registry.usage()).toEqual({ owned: 5 * PAGE, free: 0 });
  });

  it("an exited thread's regions go to the next thread, smallest first, and are not handed out twice", () => {
    const { memory, registry, thread } = setup();
    const one = thread(1);
    const big = one.take(4 * PAGE, 4 * PAGE);
    const small = one.take(PAGE, PAGE);
    registry.releaseThread(1);
    expect(registry.usage()).toEqual({ owned: 0, free: 5 * PAGE });
    const two = thread(2);
    expect(two.take(100, 100)).toEqual(small);
    expect(two.take(2 * PAGE, 2 * PAGE)).toEqual(big);
    // Both held by thread 2: a third region grows the memory.
    const size = memory.buffer.byteLength;
    expect(two.take(100, 100).start).toBe(size);
    expect(registry.usage()).toEqual({ owned: 6 * PAGE, free: 0 });
  });

  it('a region given back is reused; releasing another thread leaves it held', () => {
    const { registry, thread } = setup();
    const one = thread(1);
    const two = thread(2);
    const r = one.take(PAGE, PAGE);
    registry.releaseThread(2);
    expect(two.take(PAGE, PAGE).start).not.toBe(r.start);
    one.give(r.start);
    expect(two.take(PAGE, PAGE)).toEqual(r);
    // Giving back what it does not hold changes nothing.
    one.give(r.start);
    expect(registry.usage()).toEqual({ owned: 2 * PAGE, free: 0 });
  });
});
