/**
 * The frames that carry shard statistics between a pool's worker threads and its GL process
 * (see `gl-host.ts`): a little-endian `uint32` header length, the header as JSON, then the
 * payload, whose length the header gives. Arrays sit in the payload at offsets that are multiples
 * of 8, so that the receiver reads them through typed-array views of one buffer, without a copy.
 *
 * @module
 */

/** The statistics the GL process computes (arrays of float64); `GPUJS_NEEDS` names the same. */
export type GlStat = 'abs' | 'nonZero' | 'fired' | 'mse';
export const GL_STATS: readonly GlStat[] = ['abs', 'nonZero', 'fired', 'mse'];

/** An array in a frame's payload. */
export interface PayloadEntry {
  readonly name: string;
  /** Byte offset in the payload (a multiple of 8). */
  readonly offset: number;
  /** Elements. */
  readonly length: number;
  /** The tensor's shape, for request fields. */
  readonly shape?: readonly number[];
}

/** A frame's header: what it is, and where its arrays are. */
export interface FrameHeader {
  readonly id: number;
  readonly payloadBytes: number;
  readonly entries: readonly PayloadEntry[];
  /** Requests: the statistics to compute. */
  readonly needs?: Readonly<Record<string, boolean>>;
  /** Answers: why the statistics could not be computed (one line). */
  readonly error?: string;
}

/** A received frame: its header, and its payload in a buffer of its own (byte offset 0). */
export interface Frame {
  readonly header: FrameHeader;
  readonly payload: Buffer;
}

/** The arrays of a frame to send, each with its name (and shape, for tensors). */
export interface OutgoingArray {
  readonly name: string;
  readonly data: Float32Array | Float64Array;
  readonly shape?: readonly number[];
}

const ALIGN = 8;
const PAD = Buffer.alloc(ALIGN);

/**
 * The buffers of a frame, in order: prefix and header, then each array (a view of its memory,
 * not a copy) followed by its padding.
 */
export function encodeFrame(fields: Omit<FrameHeader, 'payloadBytes' | 'entries'>, arrays: readonly OutgoingArray[]): Buffer[] {
  const entries: PayloadEntry[] = [];
  const parts: Buffer[] = [];
  let offset = 0;
  for (const a of arrays) {
    entries.push({ name: a.name, offset, length: a.data.length, ...(a.shape === undefined ? {} : { shape: a.shape }) });
    parts.push(Buffer.from(a.data.buffer, a.data.byteOffset, a.data.byteLength));
    offset += a.data.byteLength;
    const pad = (ALIGN - (offset % ALIGN)) % ALIGN;
    if (pad > 0) parts.push(PAD.subarray(0, pad));
    offset += pad;
  }
  const header = Buffer.from(JSON.stringify({ ...fields, payloadBytes: offset, entries }));
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32LE(header.length, 0);
  return [prefix, header, ...parts];
}

/** The typed-array view of a payload entry, checked against the payload's bounds. */
export function entryView<T extends Float32Array | Float64Array>(
  frame: Frame,
  entry: PayloadEntry,
  type: { new (buffer: ArrayBufferLike, byteOffset: number, length: number): T; readonly BYTES_PER_ELEMENT: number },
): T {
  const { offset, length } = entry;
  const bytes = length * type.BYTES_PER_ELEMENT;
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length < 0 || offset % ALIGN !== 0 || offset + bytes > frame.payload.length) {
    throw new RangeError(`GL frame: array ${entry.name} (offset ${offset}, ${length} elements) is outside the payload of ${frame.payload.length} bytes`);
  }
  return new type(frame.payload.buffer, frame.payload.byteOffset + offset, length);
}

/**
 * Reassembles frames from the chunks of a stream: each payload is copied once, from the chunks
 * into a buffer of its own, from `allocate` (by default a new buffer; it must start at byte 0 of
 * its memory, so that views are aligned).
 */
export class FrameReader {
  #pending: Buffer[] = [];
  #pendingBytes = 0;
  #header: FrameHeader | undefined;
  #payload: Buffer | undefined;
  #filled = 0;

  constructor(
    readonly onFrame: (frame: Frame) => void,
    readonly allocate: (bytes: number) => Buffer = (bytes) => Buffer.allocUnsafeSlow(bytes),
  ) {}

  /** Whether part of a frame has been read, and not the rest. */
  get partial(): boolean {
    return this.#payload !== undefined || this.#pendingBytes > 0;
  }

  /** Takes the next chunk of the stream; calls `onFrame` for each frame it completes. */
  push(chunk: Buffer): void {
    let rest = chunk;
    while (rest.length > 0) {
      if (this.#payload !== undefined) {
        const n = Math.min(rest.length, this.#payload.length - this.#filled);
        rest.copy(this.#payload, this.#filled, 0, n);
        this.#filled += n;
        rest = rest.subarray(n);
        if (this.#filled === this.#payload.length) this.#emit();
        continue;
      }
      this.#pending.push(rest);
      this.#pendingBytes += rest.length;
      rest = Buffer.alloc(0);
      if (this.#pendingBytes < 4) return;
      const head = this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending);
      const headerBytes = head.readUInt32LE(0);
      if (head.length < 4 + headerBytes) {
        this.#pending = [head];
        return;
      }
      const header = JSON.parse(head.subarray(4, 4 + headerBytes).toString('utf8')) as FrameHeader;
      if (!Number.isSafeInteger(header.payloadBytes) || header.payloadBytes < 0) {
        throw new RangeError(`GL frame: bad payload size ${String(header.payloadBytes)}`);
      }
      this.#pending = [];
      this.#pendingBytes = 0;
      this.#header = header;
      this.#payload = this.allocate(header.payloadBytes);
      this.#filled = 0;
      rest = head.subarray(4 + headerBytes);
      if (header.payloadBytes === 0) this.#emit();
    }
  }

  #emit(): void {
    const frame = { header: this.#header as FrameHeader, payload: this.#payload as Buffer };
    this.#header = undefined;
    this.#payload = undefined;
    this.onFrame(frame);
  }
}
