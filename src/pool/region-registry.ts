/**
 * The regions of a pool's shared WebAssembly memory that its workers' kernels take for themselves
 * (room for a shard's fired entries and their per-feature statistics, sized by each shard's density,
 * so not lent per shard as the scratch space is), listed in a small `SharedArrayBuffer` that every
 * thread reads: a slot per region, with the thread that owns it. A region is never handed out twice
 * at once; one that its thread gave back, or whose thread has exited (the pool gives back a thread's
 * regions when its `exit` event comes), goes to the next thread that needs as much, before the
 * memory grows. A WebAssembly memory never shrinks: without this, every thread that exits would
 * leave its regions behind for the life of the pool.
 *
 * Slot i is three int32 at 3i: its owner (-1 never used, 0 free, else a thread id; worker ids start
 * at 1), its first page and its pages. A slot's region never changes once written.
 *
 * @module
 */
import { growPages, type RegionSource } from '../kernels/wasm/index.js';
import { viewReaching } from './shared-memory.js';

const PAGE = 65536;
/** Slots: 12 KiB; a kernel holds three regions (four while one grows), and the pool keeps its thread count. */
const SLOTS = 1024;
const NEVER = -1;
const FREE = 0;

/** The shared list of the workers' regions (made by the pool, read by every thread). */
export class RegionRegistry {
  /** What the workers receive. */
  readonly buffer: SharedArrayBuffer;
  readonly #slots: Int32Array;

  constructor() {
    this.buffer = new SharedArrayBuffer(3 * SLOTS * 4);
    this.#slots = new Int32Array(this.buffer);
    for (let i = 0; i < SLOTS; i++) this.#slots[3 * i] = NEVER;
  }

  /** Frees the regions of a thread that has exited (none of its code runs any more). */
  releaseThread(threadId: number): void {
    if (threadId <= 0) return;
    for (let i = 0; i < SLOTS; i++) Atomics.compareExchange(this.#slots, 3 * i, threadId, FREE);
  }

  /** Bytes of the regions listed: owned by a thread, and free. */
  usage(): { readonly owned: number; readonly free: number } {
    let owned = 0;
    let free = 0;
    for (let i = 0; i < SLOTS; i++) {
      const owner = Atomics.load(this.#slots, 3 * i);
      const bytes = Atomics.load(this.#slots, 3 * i + 2) * PAGE;
      if (owner === FREE) free += bytes;
      else if (owner > 0) owned += bytes;
    }
    return { owned, free };
  }
}

/**
 * The region source of the thread `threadId` (> 0) over `buffer` (a {@link RegionRegistry}'s): the
 * smallest free region that holds `bytes`, else pages grown from `memory` and listed as this
 * thread's (unlisted when every slot is taken: then never reused, as without a registry).
 */
export function registryRegions(buffer: SharedArrayBuffer, memory: WebAssembly.Memory, threadId: number): RegionSource {
  const slots = new Int32Array(buffer);
  const count = Math.floor(slots.length / 3);
  const mine = new Map<number, number>();
  return {
    take(bytes, want) {
      const need = Math.ceil(bytes / PAGE);
      for (;;) {
        let best = -1;
        let bestPages = Infinity;
        for (let i = 0; i < count; i++) {
          if (Atomics.load(slots, 3 * i) !== FREE) continue;
          const pages = Atomics.load(slots, 3 * i + 2);
          if (pages >= need && pages < bestPages) {
            best = i;
            bestPages = pages;
          }
        }
        if (best < 0) break;
        // Another thread may take it first: look again.
        if (Atomics.compareExchange(slots, 3 * best, FREE, threadId) !== FREE) continue;
        const start = Atomics.load(slots, 3 * best + 1) * PAGE;
        mine.set(start, best);
        // Another thread grew the memory for it: this thread's view may not reach it yet.
        viewReaching(memory, start + bestPages * PAGE);
        return { start, size: bestPages * PAGE };
      }
      const pages = Math.ceil(want / PAGE);
      const first = growPages(memory, pages);
      for (let i = 0; i < count; i++) {
        if (Atomics.compareExchange(slots, 3 * i, NEVER, threadId) !== NEVER) continue;
        Atomics.store(slots, 3 * i + 1, first);
        Atomics.store(slots, 3 * i + 2, pages);
        mine.set(first * PAGE, i);
        break;
      }
      return { start: first * PAGE, size: pages * PAGE };
    },
    give(start) {
      const i = mine.get(start);
      if (i === undefined) return;
      mine.delete(start);
      Atomics.store(slots, 3 * i, FREE);
    },
  };
}
