/** Comparison helpers shared by several test files. */
import { Tensor } from '../../src/index.js';
import type { TensorLike } from '../../src/index.js';
import type { RefArray } from '../reference/index.js';

/** The float32 values of a tensor as a float64 reference array. */
export function ref(t: unknown): RefArray {
  const x = t as TensorLike;
  return { shape: [...x.shape], data: Array.from(x.data) };
}

/** The error `fn` throws; throws itself when `fn` does not throw. */
export function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the call to throw');
}

/** A result as comparable data: every tensor as dtype, shape and the hex of its bytes (bit for bit). */
export function bits(value: unknown): unknown {
  if (value instanceof Tensor) {
    const d = value.data;
    return { dtype: value.dtype, shape: [...value.shape], hex: Buffer.from(d.buffer, d.byteOffset, d.byteLength).toString('hex') };
  }
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, bits(v)]));
  }
  return value;
}

/**
 * How {@link difference} compares where `a` or `b` is a typed array: a path to the first
 * difference, or undefined.
 */
export type ViewDifference = (a: unknown, b: unknown, path: string) => string | undefined;

function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}

/** Typed arrays equal byte for byte (so NaN payloads, -0 and subnormals count). */
export const viewBytesDifference: ViewDifference = (a, b, path) => {
  if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b)) return `${path}: typed array vs other`;
  if (a.constructor !== b.constructor) return `${path}: ${a.constructor.name} vs ${b.constructor.name}`;
  const x = bytes(a);
  const y = bytes(b);
  if (x.length !== y.length) return `${path}: ${x.length} bytes vs ${y.length}`;
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) return `${path}: byte ${i} differs`;
  return undefined;
};

/** Typed arrays equal element by element with `Object.is` (NaN equals NaN, 0 differs from -0). */
export const viewElementsDifference: ViewDifference = (a, b, path) => {
  if (!ArrayBuffer.isView(a) || !ArrayBuffer.isView(b)) return `${path}: typed array vs ${ArrayBuffer.isView(a) ? typeof b : typeof a}`;
  if (a.constructor !== b.constructor) return `${path}: ${a.constructor.name} vs ${b.constructor.name}`;
  const x = a as unknown as ArrayLike<number>;
  const y = b as unknown as ArrayLike<number>;
  if (x.length !== y.length) return `${path}: length ${x.length} vs ${y.length}`;
  for (let i = 0; i < x.length; i++) if (!Object.is(x[i], y[i])) return `${path}[${i}]: ${x[i]} vs ${y[i]}`;
  return undefined;
};

/**
 * A path to the first difference between `a` and `b`, or undefined when they are deeply equal:
 * numbers with `Object.is`, typed arrays by `views`, arrays and plain objects (same keys) deeply.
 */
export function difference(a: unknown, b: unknown, views: ViewDifference, path = '$'): string | undefined {
  if (typeof a === 'number' || typeof b === 'number') {
    return typeof a === 'number' && typeof b === 'number' && Object.is(a, b) ? undefined : `${path}: ${String(a)} vs ${String(b)}`;
  }
  if (ArrayBuffer.isView(a) || ArrayBuffer.isView(b)) return views(a, b, path);
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b)) return `${path}: array vs non-array`;
    if (a.length !== b.length) return `${path}: length ${a.length} vs ${b.length}`;
    for (let i = 0; i < a.length; i++) {
      const d = difference(a[i], b[i], views, `${path}[${i}]`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (typeof a === 'object' && a !== null && typeof b === 'object' && b !== null) {
    const ka = Object.keys(a).sort();
    const kb = Object.keys(b).sort();
    if (ka.join() !== kb.join()) return `${path}: keys [${ka.join(', ')}] vs [${kb.join(', ')}]`;
    for (const k of ka) {
      const d = difference((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], views, `${path}.${k}`);
      if (d !== undefined) return d;
    }
    return undefined;
  }
  return a === b ? undefined : `${path}: ${String(a)} vs ${String(b)}`;
}
