/**
 * The arena when a worker's kernel grows the shared memory at the same time (the WebAssembly
 * pass grows its own room for a shard's positive entries): the pages the arena gets may not join
 * its free tail, and the block it hands out must still be whole, inside the memory, and clear of
 * the pages the other grower got.
 */
import { describe, expect, it } from 'vitest';
import { WasmArena } from '../../src/pool/wasm-arena.js';

const PAGE = 65536;

describe('WasmArena with another thread growing the memory', () => {
  for (const tailUse of [0, 1000, PAGE + 7]) {
    it(`hands out a whole block clear of the other grower's pages (free tail less ${tailUse} bytes)`, () => {
      const arena = new WasmArena();
      const memory = arena.memory;
      if (tailUse > 0) arena.allocate(tailUse);
      const before = memory.buffer.byteLength;
      // The next grow is preceded by one of another thread's: 3 pages that are not the arena's.
      const grow = memory.grow.bind(memory);
      let other: number | undefined;
      Object.defineProperty(memory, 'grow', {
        configurable: true,
        value: (pages: number) => {
          if (other === undefined) other = grow(3) * PAGE;
          return grow(pages);
        },
      });
      const size = before + 12_345; // more than the free tail: the arena must grow
      const offset = arena.allocate(size);
      expect(other).toBe(before);
      const end = memory.buffer.byteLength;
      expect(offset % 64).toBe(0);
      expect(offset + size).toBeLessThanOrEqual(end);
      const clear = offset + size <= (other as number) || offset >= (other as number) + 3 * PAGE;
      expect(clear, `block [${offset}, ${offset + size}) and the other grower's pages [${other}, ${(other as number) + 3 * PAGE})`).toBe(true);
      // The free space before the other grower's pages is still usable.
      const small = arena.allocate(64);
      expect(small + 64 <= (other as number) || small >= (other as number) + 3 * PAGE).toBe(true);
    });
  }
});
