/**
 * A versioned JSON encoding of metric states, to cross process and machine boundaries.
 *
 * ```json
 * { "format": "sae-metrics/state", "version": 1, "metric": "L1AbsoluteLoss", "config": {...}, "parts": {...} }
 * ```
 *
 * Typed arrays are stored as little-endian base64 (`{ "$typed": "Float64Array", "base64": "..." }`),
 * so every float64 sum and every integer count survives exactly; non-finite numbers as
 * `{ "$number": "NaN" }`.
 *
 * @module
 */
import { describeValue, StateDecodeError } from './errors.js';
import { fieldPath, MAX_STATE_DEPTH, typedArrayName, unknownKey } from './functional/core.js';
import type { MetricState } from './functional/core.js';

export { MAX_STATE_DEPTH };

/** The `format` field of an encoded state. */
export const STATE_FORMAT = 'sae-metrics/state';
/** The version of the encoding this build writes and reads. */
export const STATE_VERSION = 1;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const TYPED = { Float64Array, Float32Array } as const;
type TypedName = keyof typeof TYPED;
const ENVELOPE = ['format', 'version', 'metric', 'config', 'parts'] as const;

function bytesLE(a: Float64Array | Float32Array): Buffer {
  const bytes = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const copy = Buffer.from(bytes);
  if (a instanceof Float64Array) copy.swap64();
  else copy.swap32();
  return copy;
}

function encodeValue(value: unknown): unknown {
  // Named by the element type, not the constructor: a subclass is written (and read back) as its base.
  const typed = typedArrayName(value);
  if (typed === 'Float64Array' || typed === 'Float32Array') {
    const base = TYPED[typed];
    const a = Object.getPrototypeOf(value) === base.prototype ? (value as Float64Array | Float32Array) : new base(value as ArrayLike<number>);
    return { $typed: typed, base64: bytesLE(a).toString('base64') };
  }
  if (typeof value === 'number') return Number.isFinite(value) ? value : { $number: String(value) };
  if (Array.isArray(value)) return value.map(encodeValue);
  if (typeof value === 'object' && value !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) out[k] = encodeValue(v);
    return out;
  }
  return value;
}

const fail = (field: string, reason: string, cause?: unknown): StateDecodeError =>
  new StateDecodeError(`${field} ${reason}`, { field, ...(cause === undefined ? {} : { cause }) });

/** Refuses an own key of `o` that is not one of `keys` (by default, any prototype key). */
function onlyKeys(o: object, path: string, keys: readonly string[] = Object.keys(o)): void {
  const unknown = unknownKey(o, keys);
  if (unknown !== undefined) throw fail(`${path}${unknown.field}`.replace(/^\./, ''), unknown.reason);
}

function decodeTyped(o: Record<string, unknown>, path: string): Float64Array | Float32Array {
  onlyKeys(o, path, ['$typed', 'base64']);
  const name = o.$typed;
  if (typeof name !== 'string' || !Object.hasOwn(TYPED, name) || typeof o.base64 !== 'string') {
    throw fail(path, 'is not a Float64Array or Float32Array encoding');
  }
  const ctor = TYPED[name as TypedName];
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(o.base64) || o.base64.length % 4 !== 0) {
    throw fail(`${path}.base64`, 'is not valid base64');
  }
  const bytes = Buffer.from(o.base64, 'base64');
  if (bytes.length % ctor.BYTES_PER_ELEMENT !== 0) {
    throw fail(path, `has ${bytes.length} bytes, not a whole number of ${name} elements`);
  }
  // Unused bits after the last byte could hide data and would not re-encode to the same text.
  if (bytes.toString('base64') !== o.base64) throw fail(`${path}.base64`, 'is not canonical base64 (as encodeState writes it)');
  const copy = new Uint8Array(bytes);
  const buf = Buffer.from(copy.buffer);
  if (!LITTLE_ENDIAN) {
    if (ctor === Float64Array) buf.swap64();
    else buf.swap32();
  }
  return new ctor(copy.buffer, 0, bytes.length / ctor.BYTES_PER_ELEMENT);
}

/** `value` (parsed JSON) with typed arrays and non-finite numbers decoded; nesting and keys checked. */
function decodeValue(value: unknown, path: string, depth: number): unknown {
  if (typeof value === 'number') {
    // JSON.parse reads 1e999 as Infinity: non-finite numbers are written as { "$number": ... }.
    if (!Number.isFinite(value)) throw fail(path, 'is out of the float64 range (non-finite numbers are written as {"$number": ...})');
    return value;
  }
  if (typeof value !== 'object' || value === null) return value;
  if (depth > MAX_STATE_DEPTH) throw fail(path, `is nested more than ${MAX_STATE_DEPTH} levels deep`);
  if (Array.isArray(value)) return value.map((v, i) => decodeValue(v, `${path}[${i}]`, depth + 1));
  const o = value as Record<string, unknown>;
  if (Object.hasOwn(o, '$typed')) return decodeTyped(o, path);
  if (Object.hasOwn(o, '$number')) {
    onlyKeys(o, path, ['$number']);
    if (!['NaN', 'Infinity', '-Infinity'].includes(o.$number as string)) throw fail(path, 'is not a non-finite number encoding');
    return Number(o.$number);
  }
  onlyKeys(o, path);
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k] = decodeValue(v, fieldPath(path, k), depth + 1);
  return out;
}

/**
 * A state value (a part's state: numbers, typed arrays, nested records) as plain JSON data, the
 * way {@link encodeState} writes its parts. For envelopes of their own (the command's part files).
 *
 * @internal
 */
export function encodeStateValue(value: unknown): unknown {
  return encodeValue(value);
}

/**
 * The inverse of {@link encodeStateValue} on parsed JSON: typed arrays and non-finite numbers
 * decoded, nesting and keys checked. `path` names the value in errors.
 *
 * @internal
 * @throws {StateDecodeError} naming the field.
 */
export function decodeStateValue(value: unknown, path: string): unknown {
  return decodeValue(value, path, 1);
}

/**
 * Encodes a metric state as versioned JSON text.
 *
 * @example
 * ```ts
 * const worker = new L0NormMetric();
 * worker.update({ learnedActivations: tensor([[1, 0, 1]]) });
 * // text can cross a process or machine boundary
 * const text = encodeState(worker.state());
 * const main = new L0NormMetric();
 * main.update({ learnedActivations: tensor([[1, 1, 1]]) });
 * main.mergeState(decodeState(text));
 * main.compute().item(); // 2.5
 * ```
 */
export function encodeState(state: MetricState<object>): string {
  return JSON.stringify({
    format: STATE_FORMAT,
    version: STATE_VERSION,
    metric: state.metric,
    config: state.config,
    parts: encodeValue(state.parts),
  });
}

/**
 * Decodes a state written by {@link encodeState}. The result is plain data; a metric checks that
 * it belongs to it when it loads or merges it.
 *
 * @throws {StateDecodeError} on text that is not an encoded state of a known version.
 */
export function decodeState(text: string): MetricState {
  if (typeof text !== 'string') throw new StateDecodeError(`the text must be a string, got ${typeof text}`);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new StateDecodeError('the text is not JSON', { cause: error });
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new StateDecodeError('the text is not an encoded state object');
  const o = raw as Record<string, unknown>;
  onlyKeys(o, '');
  if (o.format !== STATE_FORMAT) {
    throw fail('format', `must be ${JSON.stringify(STATE_FORMAT)}, got ${describeValue(o.format)}`);
  }
  if (o.version !== STATE_VERSION) {
    throw fail('version', `${describeValue(o.version)} is not supported (this build reads version ${STATE_VERSION})`);
  }
  onlyKeys(o, '', ENVELOPE);
  if (typeof o.metric !== 'string') throw fail('metric', 'must be a string');
  if (typeof o.config !== 'object' || o.config === null || Array.isArray(o.config)) throw fail('config', 'must be an object');
  onlyKeys(o.config, 'config');
  for (const [k, v] of Object.entries(o.config)) {
    if (v !== null && typeof v !== 'boolean' && typeof v !== 'string' && !(typeof v === 'number' && Number.isFinite(v))) {
      throw fail(fieldPath('config', k), 'must be a finite number, a boolean, a string or null');
    }
  }
  if (typeof o.parts !== 'object' || o.parts === null || Array.isArray(o.parts)) throw fail('parts', 'must be an object');
  return {
    metric: o.metric,
    config: o.config as MetricState['config'],
    parts: decodeValue(o.parts, 'parts', 2) as Record<string, unknown>,
  };
}
