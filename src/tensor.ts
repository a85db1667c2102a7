/**
 * A small row-major tensor: a typed array and a shape.
 *
 * Inputs (activations, losses) are `float32`, as in PyTorch. Results are `float64` (sums are
 * accumulated in float64, so a result is never less exact than its float32 counterpart) or
 * `int64` for counts, which hold exact integers (stored in a `Float64Array`, exact up to 2^53).
 *
 * @module
 */
import { describeValue, formatShape } from './errors.js';

/** The element types a {@link Tensor} can have. */
export type DType = 'float32' | 'float64' | 'int64';

/** The typed array behind each {@link DType}. */
export interface DTypeArrays {
  float32: Float32Array;
  float64: Float64Array;
  int64: Float64Array;
}

/** Nested arrays of numbers, as `toArray()` returns and `tensor()` accepts. A 0-d tensor is a number. */
export type NestedArray = number | NestedArray[];

/**
 * What a metric accepts as a batch field: a {@link Tensor}, or any object with a `Float32Array`
 * `data` and a `shape` (a tensor that crossed a thread boundary by structured clone loses its class).
 */
export interface TensorLike {
  readonly data: Float32Array;
  readonly shape: readonly number[];
}

/** Number of elements of a shape. */
export function shapeSize(shape: readonly number[]): number {
  let size = 1;
  for (const d of shape) size *= d;
  return size;
}

function checkShape(fn: string, shape: readonly number[]): void {
  if (!Array.isArray(shape)) throw new TypeError(`${fn}: shape must be an array of integers, got ${describeValue(shape)}`);
  for (const d of shape) {
    if (!Number.isSafeInteger(d) || d < 0) {
      throw new RangeError(`${fn}: shape must hold non-negative integers, got ${formatShape(shape)}`);
    }
  }
}

/**
 * A row-major tensor: `data[i0 * stride0 + i1 * stride1 + ...]` with strides from `shape`.
 *
 * @example
 * ```ts
 * const t = tensor([[1, 2], [3, 4]]);
 * t.shape;     // [2, 2]
 * t.toArray(); // [[1, 2], [3, 4]]
 * ```
 */
export class Tensor<D extends DType = DType> {
  /** The elements, row-major. */
  readonly data: DTypeArrays[D];
  /** The size of each axis. `[]` for a 0-d (scalar) tensor. */
  readonly shape: readonly number[];
  /** The element type. */
  readonly dtype: D;

  /**
   * Wraps `data` (not copied) with `shape`.
   *
   * @throws {RangeError} when the shape does not hold `data.length` elements.
   */
  constructor(data: DTypeArrays[D], shape: readonly number[], dtype: D) {
    checkShape('Tensor', shape);
    if (shapeSize(shape) !== data.length) {
      throw new RangeError(
        `Tensor: shape ${formatShape(shape)} holds ${shapeSize(shape)} elements, but data has ${data.length}`,
      );
    }
    this.data = data;
    this.shape = Object.freeze([...shape]);
    this.dtype = dtype;
  }

  /** Number of axes. */
  get ndim(): number {
    return this.shape.length;
  }

  /** Number of elements. */
  get size(): number {
    return this.data.length;
  }

  /**
   * The single element of a tensor with exactly one element (as `torch.Tensor.item()`).
   *
   * @throws {RangeError} when the tensor does not have exactly one element.
   */
  item(): number {
    if (this.data.length !== 1) {
      throw new RangeError(`Tensor.item: the tensor must have exactly one element, got shape ${formatShape(this.shape)}`);
    }
    return this.data[0] as number;
  }

  /** The elements as nested arrays of numbers (a number for a 0-d tensor). */
  toArray(): NestedArray {
    const data = this.data;
    const shape = this.shape;
    if (shape.length === 0) return data[0] as number;
    const build = (axis: number, offset: number): NestedArray[] => {
      const n = shape[axis] as number;
      const out: NestedArray[] = new Array<NestedArray>(n);
      if (axis === shape.length - 1) {
        for (let i = 0; i < n; i++) out[i] = data[offset + i] as number;
        return out;
      }
      const stride = shapeSize(shape.slice(axis + 1));
      for (let i = 0; i < n; i++) out[i] = build(axis + 1, offset + i * stride);
      return out;
    };
    return build(0, 0);
  }

  /** `tensor([1.5, 2], dtype=float64)`, like PyTorch's repr. */
  toString(): string {
    return `tensor(${JSON.stringify(this.toArray())}, shape=${formatShape(this.shape)}, dtype=${this.dtype})`;
  }

  /** What `JSON.stringify` writes: the values as nested arrays, a number for a 0-d tensor (as `toArray()`). */
  toJSON(): NestedArray {
    return this.toArray();
  }
}

// What `console.log` and `util.inspect` show (Node's `util.inspect.custom`, by its registered
// symbol, so that the type declarations need no Node types): see displayTensor.
Object.defineProperty(Tensor.prototype, Symbol.for('nodejs.util.inspect.custom'), {
  value(this: Tensor): string {
    return displayTensor(this);
  },
});

/** Elements past which {@link displayTensor} summarises, and the entries it keeps at each end of an axis. */
const SUMMARY_THRESHOLD = 1000;
const EDGE_ITEMS = 3;

/**
 * What `console.log` and `util.inspect` show for a tensor, as the README's comments write values:
 * `tensor(1.25)`, `tensor([[1, 0], [0, 1]])`. Past 1000 elements, as PyTorch does, the first and
 * last 3 entries of each axis, and the shape: `tensor([0, 0, 0, ..., 0, 0, 1], shape=[4096])`.
 */
export function displayTensor(t: Tensor): string {
  const { data, shape } = t;
  const summarise = data.length > SUMMARY_THRESHOLD;
  const strides = shape.map((_, axis) => shapeSize(shape.slice(axis + 1)));
  const show = (axis: number, offset: number): string => {
    if (axis === shape.length) return String(data[offset]);
    const n = shape[axis] as number;
    const stride = strides[axis] as number;
    const items = (from: number, to: number): string[] => Array.from({ length: to - from }, (_, k) => show(axis + 1, offset + (from + k) * stride));
    const parts = summarise && n > 2 * EDGE_ITEMS ? [...items(0, EDGE_ITEMS), '...', ...items(n - EDGE_ITEMS, n)] : items(0, n);
    return `[${parts.join(', ')}]`;
  };
  return `tensor(${show(0, 0)}${summarise ? `, shape=${formatShape(shape)}` : ''})`;
}

function inferShape(nested: unknown): number[] {
  const shape: number[] = [];
  let level: unknown = nested;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0];
  }
  return shape;
}

function fillNested(nested: unknown, shape: readonly number[], out: Float32Array): void {
  let k = 0;
  const walk = (value: unknown, axis: number, path: string): void => {
    if (axis === shape.length) {
      if (typeof value !== 'number') {
        throw new TypeError(`tensor: every element must be a number, got ${describeValue(value)} at ${path || 'the top'}`);
      }
      out[k++] = value;
      return;
    }
    if (!Array.isArray(value) || value.length !== shape[axis]) {
      throw new RangeError(
        `tensor: nested arrays must be rectangular; expected length ${shape[axis]} at ${path || 'the top'}, got ${describeValue(value)}`,
      );
    }
    for (let i = 0; i < value.length; i++) walk(value[i], axis + 1, `${path}[${i}]`);
  };
  walk(nested, 0, '');
}

/**
 * Makes a row-major float32 {@link Tensor}.
 *
 * - `tensor(nested)`: from a number or nested arrays of numbers (copied).
 * - `tensor(data, shape)`: from a `Float32Array` (wrapped, not copied) and its shape. Another
 *   numeric typed array or a plain array is copied into a new `Float32Array`.
 *
 * @throws {TypeError} on a non-number element or a missing shape for typed data.
 * @throws {RangeError} on ragged nested arrays, or a shape that does not match the data length.
 * @example
 * ```ts
 * tensor([[1, 0, 1], [0, 1, 0]]).shape;             // [2, 3]
 * tensor(new Float32Array(6), [2, 1, 3]).shape;     // [2, 1, 3]
 * ```
 */
export function tensor(nested: NestedArray): Tensor<'float32'>;
export function tensor(data: Float32Array | ArrayLike<number>, shape: readonly number[]): Tensor<'float32'>;
export function tensor(input: NestedArray | ArrayLike<number>, shape?: readonly number[]): Tensor<'float32'> {
  if (shape !== undefined) {
    checkShape('tensor', shape);
    let data: Float32Array;
    if (input instanceof Float32Array) data = input;
    else if (ArrayBuffer.isView(input) || Array.isArray(input)) {
      if (input instanceof BigInt64Array || input instanceof BigUint64Array) {
        throw new TypeError('tensor: data must hold numbers, got a BigInt typed array');
      }
      data = Float32Array.from(input as ArrayLike<number>);
    } else {
      throw new TypeError(`tensor: data must be a Float32Array or an array of numbers, got ${describeValue(input)}`);
    }
    if (shapeSize(shape) !== data.length) {
      throw new RangeError(`tensor: shape ${formatShape(shape)} holds ${shapeSize(shape)} elements, but data has ${data.length}`);
    }
    return new Tensor(data, shape, 'float32');
  }
  if (ArrayBuffer.isView(input)) {
    throw new TypeError('tensor: a typed array needs its shape: tensor(data, shape)');
  }
  const inferred = inferShape(input);
  const data = new Float32Array(shapeSize(inferred));
  fillNested(input, inferred, data);
  return new Tensor(data, inferred, 'float32');
}

/** A float64 result tensor. */
export function float64(data: Float64Array, shape: readonly number[]): Tensor<'float64'> {
  return new Tensor(data, shape, 'float64');
}

/** An int64 result tensor (exact integers in a Float64Array). */
export function int64(data: Float64Array, shape: readonly number[]): Tensor<'int64'> {
  return new Tensor(data, shape, 'int64');
}

/**
 * torchmetrics' `_squeeze_if_scalar`: a tensor with exactly one element becomes 0-d; any other
 * tensor is returned as it is.
 */
export function squeezeIfScalar<D extends DType>(t: Tensor<D>): Tensor<D> {
  return t.size === 1 && t.ndim > 0 ? new Tensor(t.data, [], t.dtype) : t;
}
