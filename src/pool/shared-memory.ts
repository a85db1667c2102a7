/**
 * Float32 tensors in shared memory: a shard handed to a worker is a view, never a copy.
 *
 * @module
 */
import { describeValue, formatShape } from '../errors.js';
import { shapeSize, Tensor, type TensorLike } from '../tensor.js';

/**
 * The length of this thread's view of a shared `memory`, refreshed with `grow(0)` when it does not
 * reach byte `end`: another thread may have grown the memory, and V8 delivers a growth to each
 * thread's `memory.buffer` late. Shorter than `end` only when the memory is.
 */
export function viewReaching(memory: WebAssembly.Memory, end: number): number {
  if (memory.buffer.byteLength < end) memory.grow(0);
  return memory.buffer.byteLength;
}

/** A float32 tensor whose data lives in a `SharedArrayBuffer`, as plain data a worker can receive. */
export interface SharedTensor {
  readonly buffer: SharedArrayBuffer;
  readonly byteOffset: number;
  readonly length: number;
  readonly shape: readonly number[];
}

/**
 * A zero-filled float32 tensor backed by a new `SharedArrayBuffer`.
 *
 * @throws {RangeError} when the shape is not a list of non-negative integers.
 */
export function allocateShared(shape: readonly number[]): Tensor<'float32'> {
  const size = checkAllocationShape(shape);
  return new Tensor(new Float32Array(new SharedArrayBuffer(size * Float32Array.BYTES_PER_ELEMENT)), shape, 'float32');
}

/**
 * Checks a shape for `allocate`; returns its number of elements.
 *
 * @throws {TypeError} when it is not an array; {RangeError} when it holds other than non-negative integers.
 */
export function checkAllocationShape(shape: readonly number[]): number {
  if (!Array.isArray(shape)) {
    throw new TypeError(`allocate: shape must be an array of non-negative integers, got ${describeValue(shape)}`);
  }
  if (!shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new RangeError(`allocate: shape must hold non-negative integers, got ${formatShape(shape)}`);
  }
  return shapeSize(shape);
}

/**
 * The tensor as a shared view: itself when already shared, else one copy into shared memory —
 * into `staging(byteLength)` when given (a reused buffer: a new one costs a page fault per page on
 * first write), else into a new `SharedArrayBuffer`.
 */
export function toShared(t: TensorLike, staging?: (byteLength: number) => SharedArrayBuffer): SharedTensor {
  let data = t.data;
  if (!(data.buffer instanceof SharedArrayBuffer)) {
    const buffer = staging?.(data.byteLength) ?? new SharedArrayBuffer(data.byteLength);
    const copy = new Float32Array(buffer, 0, data.length);
    copy.set(data);
    data = copy;
  }
  return { buffer: data.buffer as SharedArrayBuffer, byteOffset: data.byteOffset, length: data.length, shape: [...t.shape] };
}

/** The float32 view a worker reads a shared tensor through. */
export function fromShared(s: SharedTensor): TensorLike {
  const data = new Float32Array(s.buffer, s.byteOffset, s.length);
  if (shapeSize(s.shape) !== data.length) {
    throw new RangeError(`fromShared: shape ${formatShape(s.shape)} does not hold ${data.length} elements`);
  }
  return { data, shape: s.shape };
}
