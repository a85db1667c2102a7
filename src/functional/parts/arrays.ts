/**
 * Small helpers shared by the state parts: elementwise float64 sums and state checks.
 *
 * @module
 */
import { describeValue } from '../../errors.js';
import { isPlainObject, unknownKey } from '../core.js';

/** `a + b` elementwise, in a new array. */
export function addF64(a: Float64Array, b: Float64Array): Float64Array {
  const out = new Float64Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = (a[i] as number) + (b[i] as number);
  return out;
}

/**
 * `a + b` for exact integer counts.
 *
 * @throws {RangeError} when the sum is past 2^53 - 1, where counts would stop being exact.
 */
export function addCount(a: number, b: number): number {
  const sum = a + b;
  if (!Number.isSafeInteger(sum)) throw new RangeError(`counts past 2^53 - 1 (${a} + ${b}) would not be exact`);
  return sum;
}

/**
 * `a + b` elementwise for exact integer counts, in a new array or in `out` (which may be `a` or
 * `b`); see {@link addCount}.
 */
export function addCounts(a: Float64Array, b: Float64Array, out: Float64Array = new Float64Array(a.length)): Float64Array {
  // Counts are safe integers: their sum is one exactly when it is at most 2^53 - 1 (this loop runs
  // per batch over every feature, so the test is a compare, not a call).
  for (let i = 0; i < a.length; i++) {
    const sum = (a[i] as number) + (b[i] as number);
    if (!(sum <= Number.MAX_SAFE_INTEGER)) addCount(a[i] as number, b[i] as number);
    out[i] = sum;
  }
  return out;
}

/**
 * The reason `value` is not a plain object with exactly the given keys, or undefined. Reasons name
 * the field (`.vectors is missing`), as `StatePart.invalid` does.
 */
export function notRecord(value: unknown, keys: readonly string[]): string | undefined {
  if (!isPlainObject(value)) return `must be an object with ${keys.join(', ')}, got ${describeValue(value)}`;
  const unknown = unknownKey(value, keys);
  if (unknown !== undefined) return `${unknown.field} ${unknown.reason}`;
  for (const k of keys) if (!Object.hasOwn(value, k)) return `.${k} is missing`;
  return undefined;
}

/** The reason `value` is not a Float64Array of `length`, or undefined. */
export function notF64(value: unknown, length: number, name: string): string | undefined {
  if (!(value instanceof Float64Array)) return `.${name} must be a Float64Array, got ${describeValue(value)}`;
  if (value.length !== length) return `.${name} must have ${length} elements, got ${value.length}`;
  return undefined;
}

/** The reason `value` is not a Float64Array of exact non-negative integers of `length`, or undefined. */
export function notCounts(value: unknown, length: number, name: string): string | undefined {
  const reason = notF64(value, length, name);
  if (reason !== undefined) return reason;
  const a = value as Float64Array;
  for (let i = 0; i < a.length; i++) {
    const v = a[i] as number;
    if (!Number.isSafeInteger(v) || v < 0) {
      return `.${name} must hold exact non-negative integer counts (below 2^53), got ${v} at index ${i}`;
    }
  }
  return undefined;
}

/** The reason `value` is not a count of vectors, or undefined. */
export function notCount(value: unknown, name: string): string | undefined {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0
    ? undefined
    : `.${name} must be a non-negative integer below 2^53, got ${describeValue(value)}`;
}

/**
 * The reason `values`, sums or values of a non-negative quantity (an absolute sum, a squared
 * error), hold a negative value, or undefined. NaN and +Infinity are possible (from NaN and
 * infinite activations); -Infinity and negative numbers are not.
 */
export function notNonNegative(values: Float64Array, name: string, what: string): string | undefined {
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (v < 0) return `.${name} cannot be negative (${what}), got ${v} at index ${i}`;
  }
  return undefined;
}

/** The reason `values` are not all 0 when there are no vectors, or undefined. */
export function notZeroWithoutVectors(values: Float64Array, vectors: number, name: string): string | undefined {
  if (vectors !== 0) return undefined;
  for (let i = 0; i < values.length; i++) {
    const v = values[i] as number;
    if (v !== 0) return `.${name} must be 0 while vectors is 0 (nothing was counted), got ${v} at index ${i}`;
  }
  return undefined;
}

/** Concatenates typed-array chunks into one new array of the same type. */
export function concat<T extends Float64Array | Float32Array>(chunks: readonly T[], make: (length: number) => T): T {
  let n = 0;
  for (const c of chunks) n += c.length;
  const out = make(n);
  let k = 0;
  for (const c of chunks) {
    out.set(c, k);
    k += c.length;
  }
  return out;
}
