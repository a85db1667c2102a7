/**
 * Reads rows of a tensor stored in a file straight into float32 memory: float32 data with no copy
 * (the file's bytes land in the destination's own bytes), float16 and bfloat16 through one reused
 * scratch buffer and an exact conversion, float64 through the scratch buffer rounded to the
 * nearest float32 (the metrics take float32; values past float32's range become infinite).
 *
 * @module
 */
import { endianness } from 'node:os';
import { DTYPE_BYTES, readExactly, type TensorRef } from './formats.js';
import { decodeBFloat16, decodeFloat16 } from './half.js';

const BIG_ENDIAN_HOST = endianness() === 'BE';

/** Reads row ranges of one stored tensor (rows along its first axis). */
export class RowReader {
  readonly ref: TensorRef;
  /** Elements per row (the product of every axis but the first). */
  readonly rowElements: number;
  /** Bytes per row in the file. */
  readonly rowBytes: number;
  #scratch: Uint8Array | undefined;

  constructor(ref: TensorRef) {
    this.ref = ref;
    this.rowElements = ref.shape.slice(1).reduce((a, b) => a * b, 1);
    this.rowBytes = this.rowElements * DTYPE_BYTES[ref.dtype];
  }

  /**
   * Reads rows `[start, start + rows)` into the first `rows * rowElements` elements of `into`.
   * Returns the bytes read from the file.
   *
   * @throws {CliError} when the file ends early (it shrank after its header was checked).
   * @throws {RangeError} when the range is outside the tensor or `into` is too short.
   */
  async read(start: number, rows: number, into: Float32Array): Promise<number> {
    const total = this.ref.shape[0] as number;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(rows) || start < 0 || rows < 0 || start + rows > total) {
      throw new RangeError(`RowReader.read: rows [${start}, ${start + rows}) are outside the tensor's ${total} rows`);
    }
    const n = rows * this.rowElements;
    if (into.length < n) throw new RangeError(`RowReader.read: into holds ${into.length} elements, fewer than ${n}`);
    const bytes = rows * this.rowBytes;
    const position = this.ref.offset + start * this.rowBytes;
    const what = `rows ${start} to ${start + rows} of ${this.ref.name === undefined ? 'the array' : `tensor ${JSON.stringify(this.ref.name)}`}`;
    if (this.ref.dtype === 'F32') {
      const target = new Uint8Array(into.buffer, into.byteOffset, bytes);
      await readExactly(this.ref.handle, this.ref.path, target, 0, bytes, position, what);
      if (BIG_ENDIAN_HOST) Buffer.from(target.buffer, target.byteOffset, bytes).swap32();
      return bytes;
    }
    if (this.#scratch === undefined || this.#scratch.length < bytes) this.#scratch = new Uint8Array(new ArrayBuffer(bytes));
    const scratch = this.#scratch;
    await readExactly(this.ref.handle, this.ref.path, scratch, 0, bytes, position, what);
    if (this.ref.dtype === 'F64') {
      if (BIG_ENDIAN_HOST) Buffer.from(scratch.buffer, 0, bytes).swap64();
      into.set(new Float64Array(scratch.buffer, 0, n));
      return bytes;
    }
    if (BIG_ENDIAN_HOST) Buffer.from(scratch.buffer, 0, bytes).swap16();
    const halves = new Uint16Array(scratch.buffer, 0, n);
    if (this.ref.dtype === 'F16') decodeFloat16(halves, into);
    else decodeBFloat16(halves, into);
    return bytes;
  }
}
