/**
 * Shared buffers kept for reuse (off the wasm backend: copies of finished batches, data of released
 * tensors), by size, at most `limit` in all: past it, a buffer of the size used longest ago goes
 * (to the garbage collector). A stream of batches of one shape reuses its few buffers; one whose
 * batches all differ in size keeps no more than `limit` of them.
 *
 * @module
 */
export class SpareBuffers {
  /** By size, the size used last at the end (a Map keeps insertion order). */
  readonly #bySize = new Map<number, SharedArrayBuffer[]>();
  #count = 0;
  #bytes = 0;

  /** @param limit buffers kept in all; @param perSize buffers kept of one size. */
  constructor(readonly limit: number, readonly perSize: number) {}

  /** Bytes of the buffers kept. */
  get bytes(): number {
    return this.#bytes;
  }

  /** A kept buffer of `bytes` bytes, or undefined. */
  take(bytes: number): SharedArrayBuffer | undefined {
    const list = this.#bySize.get(bytes);
    const buffer = list?.pop();
    if (buffer === undefined) return undefined;
    if ((list as SharedArrayBuffer[]).length === 0) this.#bySize.delete(bytes);
    this.#count--;
    this.#bytes -= bytes;
    return buffer;
  }

  /** Keeps `buffer` for reuse (unless as many of its size are kept already). */
  give(buffer: SharedArrayBuffer): void {
    const size = buffer.byteLength;
    const list = this.#bySize.get(size) ?? [];
    this.#bySize.delete(size);
    this.#bySize.set(size, list);
    if (list.length >= this.perSize) return;
    list.push(buffer);
    this.#count++;
    this.#bytes += size;
    while (this.#count > this.limit) {
      const [oldest, buffers] = this.#bySize.entries().next().value as [number, SharedArrayBuffer[]];
      buffers.pop();
      if (buffers.length === 0) this.#bySize.delete(oldest);
      this.#count--;
      this.#bytes -= oldest;
    }
  }

  clear(): void {
    this.#bySize.clear();
    this.#count = 0;
    this.#bytes = 0;
  }
}
