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

  it('says so when the memory cannot grow that far', () => {
    const arena = new WasmArena(new WebAssembly.Memory({ initial: 1, maximum: 2, shared: true }));
    expect(() => arena.allocate(10 * 65536)).toThrow(/^MetricPool: cannot grow the shared WebAssembly memory by 655360 bytes/);
  });
});
