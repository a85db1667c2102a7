/**
 * Blocks of one shared `WebAssembly.Memory`: the memory every worker's WebAssembly kernel imports,
 * so that a batch allocated here is read by the kernel where the producer wrote it.
 *
 * Space comes from `memory.grow`, which hands the caller a region no other thread can get (the
 * kernels in the workers take their scratch space the same way); this arena hands out blocks of
 * the regions it grew, first fit, 64-byte aligned, and coalesces them when freed.
 *
 * @module
 */

const PAGE = 65536;
const ALIGN = 64;

interface Block {
  offset: number;
  size: number;
}

/** A first-fit allocator over regions of a shared WebAssembly memory. */
export class WasmArena {
  /** The shared memory (imported by every worker's kernel). */
  readonly memory: WebAssembly.Memory;
  readonly #free: Block[] = [];
  readonly #used = new Map<number, number>();

  /** @param memory a shared memory; a new one of 16 MiB (growing up to 4 GiB) by default. */
  constructor(memory?: WebAssembly.Memory) {
    this.memory = memory ?? new WebAssembly.Memory({ initial: 256, maximum: 65536, shared: true });
  }

  /** Bytes handed out and not freed. */
  get usedBytes(): number {
    let n = 0;
    for (const size of this.#used.values()) n += size;
    return n;
  }

  /**
   * A block of at least `bytes` bytes (64-byte aligned); grows the memory when no free block fits.
   *
   * @throws {RangeError} when the memory cannot grow that far (4 GiB in all).
   */
  allocate(bytes: number): number {
    const size = Math.max(ALIGN, Math.ceil(bytes / ALIGN) * ALIGN);
    let i = this.#free.findIndex((b) => b.size >= size);
    if (i < 0) {
      const pages = Math.ceil(size / PAGE);
      let start: number;
      try {
        start = this.memory.grow(pages) * PAGE;
      } catch (error) {
        throw new RangeError(
          `MetricPool: cannot grow the shared WebAssembly memory by ${pages * PAGE} bytes (it is ${this.memory.buffer.byteLength} bytes; 4 GiB at most)`,
          { cause: error },
        );
      }
      this.#insertFree({ offset: start, size: pages * PAGE });
      i = this.#free.findIndex((b) => b.size >= size);
    }
    const block = this.#free[i] as Block;
    const offset = block.offset;
    if (block.size === size) this.#free.splice(i, 1);
    else {
      block.offset += size;
      block.size -= size;
    }
    this.#used.set(offset, size);
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
    this.#insertFree({ offset, size });
  }

  /** A float32 view of `length` elements at `offset`, over the memory as it is now. */
  view(offset: number, length: number): Float32Array {
    return new Float32Array(this.memory.buffer, offset, length);
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
