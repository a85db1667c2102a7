/**
 * A region reused from the workers' list was grown by another thread: this thread's view of the
 * shared memory (`memory.buffer`) can keep its old length until V8 delivers the growth. Taking
 * the region must leave a view that reaches it. The lag cannot be produced on demand, so a memory
 * whose `buffer` keeps its old length until `grow` is called stands in for it.
 */
import { describe, expect, it } from 'vitest';
import { RegionRegistry, registryRegions } from '../../src/pool/region-registry.js';

const PAGE = 65536;

describe('a region reused from the list, grown by another thread', () => {
  it('is reachable through this thread’s view of the memory once taken', () => {
    const real = new WebAssembly.Memory({ initial: 1, maximum: 64, shared: true });
    const registry = new RegionRegistry();
    // Thread 1 grows a 3-page region and exits.
    const first = registryRegions(registry.buffer, real, 1).take(3 * PAGE, 3 * PAGE);
    registry.releaseThread(1);
    // Thread 2's view still shows the memory as it was before thread 1 grew it.
    const old = new SharedArrayBuffer(PAGE);
    let caughtUp = false;
    const lagging = {
      get buffer() {
        return caughtUp ? real.buffer : old;
      },
      grow(n: number) {
        caughtUp = true;
        return real.grow(n);
      },
    } as unknown as WebAssembly.Memory;
    const taken = registryRegions(registry.buffer, lagging, 2).take(2 * PAGE, 2 * PAGE);
    expect(taken).toEqual(first);
    expect(taken.start).toBe(PAGE);
    expect(lagging.buffer.byteLength).toBeGreaterThanOrEqual(taken.start + taken.size);
    // The memory did not grow for it: the region was reused.
    expect(real.buffer.byteLength).toBe(4 * PAGE);
  });
});
