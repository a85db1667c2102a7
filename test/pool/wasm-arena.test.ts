import { describe, expect, it } from 'vitest';
import { WasmArena } from '../../src/pool/wasm-arena.js';

describe('WasmArena', () => {
  it('hands out 64-byte-aligned, disjoint blocks inside its shared memory', () => {
    const arena = new WasmArena();
    expect(arena.memory.buffer).toBeInstanceOf(SharedArrayBuffer);
    const sizes = [1, 63, 64, 65, 4096, 100_000, 7];
    const blocks = sizes.map((n) => ({ offset: arena.allocate(n), n }));
    for (const { offset } of blocks) expect(offset % 64).toBe(0);
    const sorted = [...blocks].sort((a, b) => a.offset - b.offset);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1] as { offset: number; n: number };
      expect((sorted[i] as { offset: number }).offset).toBeGreaterThanOrEqual(prev.offset + prev.n);
    }
    for (const { offset, n } of blocks) expect(offset + n).toBeLessThanOrEqual(arena.memory.buffer.byteLength);
  });

  it('writes through one view are seen through another of the same block', () => {
    const arena = new WasmArena();
    const offset = arena.allocate(16);
    arena.view(offset, 4).set([1, 2, 3, 4]);
    expect(Array.from(arena.view(offset, 4))).toEqual([1, 2, 3, 4]);
  });

  it('grows the memory for a block larger than what is free', () => {
    const arena = new WasmArena();
    const before = arena.memory.buffer.byteLength;
    const offset = arena.allocate(before + 1);
    expect(arena.memory.buffer.byteLength).toBeGreaterThan(before);
    expect(offset + before + 1).toBeLessThanOrEqual(arena.memory.buffer.byteLength);
    expect(offset).toBeGreaterThanOrEqual(before); // the grown region: nobody else's
  });

  it('reuses freed blocks and coalesces neighbours', () => {
    const arena = new WasmArena();
    const a = arena.allocate(1024);
    const b = arena.allocate(1024);
    const c = arena.allocate(1024);
    arena.free(a);
    arena.free(b);
    // a and b together now make room for a block of 2048 at a's offset.
    expect(arena.allocate(2048)).toBe(a);
    arena.free(c);
    expect(arena.usedBytes).toBe(2048);
  });

  it('counts used bytes and refuses to free what it did not hand out', () => {
    const arena = new WasmArena();
    const a = arena.allocate(100);
    expect(arena.usedBytes).toBe(128);
    arena.free(a);
    expect(arena.usedBytes).toBe(0);
    expect(() => arena.free(a)).toThrow(new RangeError(`MetricPool: no allocated block at offset ${a}`));
  });

  it('says so when the memory cannot grow that far, and what to do', () => {
    const arena = new WasmArena(new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true }));
    arena.allocate(100);
    expect(() => arena.allocate(10 * 65536)).toThrow(
      new RangeError(
        'MetricPool: cannot grow the shared WebAssembly memory by 655360 bytes (it is 131072 bytes; 4 GiB at most; 128 bytes in use): give back tensors you no longer need with pool.release(tensor) (an unreferenced one is freed only when the garbage collector runs)',
      ),
    );
  });

  it('takes the smallest free block that fits (best fit), so a small block does not split a large hole', () => {
    const arena = new WasmArena();
    const big = arena.allocate(8192);
    arena.allocate(64); // keeps the holes apart
    const small = arena.allocate(128);
    arena.allocate(64);
    arena.free(big);
    arena.free(small);
    expect(arena.allocate(100)).toBe(small); // first fit would have split the big hole
    expect(arena.allocate(8192)).toBe(big);
  });

  it('grows by what a free block at the end of the memory lacks, and counts its peak', () => {
    const arena = new WasmArena();
    expect(arena.baseBytes).toBe(arena.memory.buffer.byteLength);
    const a = arena.allocate(65536 / 2);
    expect(arena.memory.buffer.byteLength - arena.baseBytes).toBe(65536); // one page, half free at the end
    arena.allocate(65536); // the free half and one more page, not two
    expect(arena.memory.buffer.byteLength - arena.baseBytes).toBe(2 * 65536);
    expect(arena.peakBytes).toBe(65536 + 65536 / 2);
    arena.free(a);
    expect(arena.usedBytes).toBe(65536);
    expect(arena.peakBytes).toBe(65536 + 65536 / 2);
  });

  it('calls reclaim() before it grows, and takes a block that reclaim freed', () => {
    let held: number | undefined;
    let calls = 0;
    const arena = new WasmArena(undefined, () => {
      calls++;
      if (held !== undefined) arena.free(held);
      held = undefined;
    });
    held = arena.allocate(65536); // grows: reclaim had nothing to free
    expect(calls).toBe(1);
    const size = arena.memory.buffer.byteLength;
    const again = arena.allocate(65536); // no free block fits: reclaim frees the held one
    expect(calls).toBe(2);
    expect(arena.memory.buffer.byteLength).toBe(size);
    expect(again).toBeGreaterThanOrEqual(arena.baseBytes);
  });
});
