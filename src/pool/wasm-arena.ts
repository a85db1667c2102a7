/**
 * Blocks of one shared `WebAssembly.Memory`: the memory every worker's WebAssembly kernel imports,
 * so that a batch allocated here is read by the kernel where the producer wrote it.
 *
 * Space comes from `memory.grow`, which hands the caller a region no other thread can get (the
 * kernels in the workers take their scratch space the same way); this arena hands out blocks of
 * the regions it grew, best fit (so that small blocks do not split the holes that large ones
 * left), 64-byte aligned, and coalesces them when freed.
 *
 * @module
 */

const PAGE = 65536;
const ALIGN = 64;

interface Block {
  offset: number;
  size: number;
}

/** A best-fit allocator over regions of a shared WebAssembly memory. */
export class WasmArena {
  /** The shared memory (imported by every worker's kernel). */
  readonly memory: WebAssembly.Memory;
  readonly #free: Block[] = [];
  readonly #used = new Map<number, number>();

  readonly #reclaim: (() => void) | undefined;

  /**
   * @param memory a shared memory; a new one of 16 MiB (growing up to 4 GiB) by default.
   * @param reclaim called when no free block fits, before the memory grows: it may free blocks
   *   (the pool frees those of tensors that were garbage-collected), since memory never shrinks.
   */
  constructor(memory?: WebAssembly.Memory, reclaim?: () => void) {
    this.memory = memory ?? new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true });
    this.baseBytes = this.memory.buffer.byteLength;
    this.#reclaim = reclaim;
  }

  #usedBytes = 0;
  #peakBytes = 0;
  /** The memory's size when the arena was made (it hands out only regions it grew). */
  readonly baseBytes: number;

  /** Bytes handed out and not freed. */
  get usedBytes(): number {
    return this.#usedBytes;
  }

  /** The most bytes ever handed out at once. */
  get peakBytes(): number {
    return this.#peakBytes;
  }

  /**
   * A block of at least `bytes` bytes (64-byte aligned); grows the memory when no free block fits.
   *
   * @throws {RangeError} when the memory cannot grow that far (4 GiB in all).
   */
  allocate(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let i = this.#bestFit(size);
    if (i < 0 && this.#reclaim !== undefined) {
      this.#reclaim();
      i = this.#bestFit(size);
    }
    if (i < 0) {
      // A free block at the end of the memory joins the grown region: grow by what it lacks.
      const last = this.#free[this.#free.length - 1];
      const tail = last !== undefined && last.offset + last.size === this.memory.buffer.byteLength ? last.size : 0;
      let pages = Math.ceil((size - tail) / PAGE);
      let start = this.#grow(pages);
      if (tail > 0 && start !== (last as Block).offset + (last as Block).size) {
        // A worker's kernel grew the memory in between (its scratch space for positive entries):
        // the new pages do not join the free tail. They are free space all the same; the block
        // comes from pages of its own.
        this.#insertFree({ offset: start, size: pages * PAGE });
        pages = Math.ceil(size / PAGE);
        start = this.#grow(pages);
      }
      this.#insertFree({ offset: start, size: pages * PAGE });
      i = this.#bestFit(size);
    }
    const block = this.#free[i] as Block;
    const offset = block.offset;
    if (block.size === size) this.#free.splice(i, 1);
    else {
      block.offset += size;
      block.size -= size;
    }
    this.#used.set(offset, size);
    this.#usedBytes += size;
    this.#peakBytes = Math.max(this.#peakBytes, this.#usedBytes);
    return offset;
  }

  /**
   * Returns a block to the arena.
   *
   * @throws {RangeError} for an offset that is not an allocated block.
   */
  free(offset: number): void {
    const size = this.#used.get(offset);
    if (size === undefined) throw new RangeError(`MetricPool: no allocated block at offset ${offset}`);
    this.#used.delete(offset);
    this.#usedBytes -= size;
    this.#insertFree({ offset, size });
  }

  /** Grows the memory by `pages` pages; the byte offset of the first. */
  #grow(pages: number): number {
    try {
      return this.memory.grow(pages) * PAGE;
    } catch (error) {
      throw new RangeError(
        `MetricPool: cannot grow the shared WebAssembly memory by ${pages * PAGE} bytes (it is ${this.memory.buffer.byteLength} bytes; 4 GiB at most; ${this.usedBytes} bytes in use): give back tensors you no longer need with pool.release(tensor) (an unreferenced one is freed only when the garbage collector runs)`,
        { cause: error },
      );
    }
  }

  /** A float32 view of `length` elements at `offset`, over the memory as it is now. */
  view(offset: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, offset, length);
  }

  /** The index of the smallest free block of at least `size` bytes (the first of equals), or -1. */
  #bestFit(size: number): number {
    let best = -1;
    for (let i = 0; i < this.#free.length; i++) {
      const s = (this.#free[i] as Block).size;
      if (s >= size && (best < 0 || s < (this.#free[best] as Block).size)) best = i;
    }
    return best;
  }

  #insertFree(block: Block): void {
    const list = this.#free;
    let i = 0;
    while (i < list.length && (list[i] as Block).offset < block.offset) i++;
    list.splice(i, 0, block);
    // Coalesce with the next and the previous block when they touch.
    const next = list[i + 1];
    if (next && block.offset + block.size === next.offset) {
      block.size += next.size;
      list.splice(i + 1, 1);
    }
    const prev = list[i - 1];
    if (prev && prev.offset + prev.size === block.offset) {
      prev.size += block.size;
      list.splice(i, 1);
    }
  }
}
