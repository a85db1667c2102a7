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
import { StateDecodeError } from './errors.js';
import type { MetricState } from './functional/core.js';

/** The `format` field of an encoded state. */
export const STATE_FORMAT = 'sae-metrics/state';
/** The version of the encoding this build writes and reads. */
export const STATE_VERSION = 1;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;
const TYPED = { Float64Array, Float32Array } as const;
type TypedName = keyof typeof TYPED;

function bytesLE(a: Float64Array | Float32Array): Buffer {
  const bytes = Buffer.from(a.buffer, a.byteOffset, a.byteLength);
  if (LITTLE_ENDIAN) return bytes;
  const copy = Buffer.from(bytes);
  if (a instanceof Float64Array) copy.swap64();
  else copy.swap32();
  return copy;
}

function encodeValue(value: unknown): unknown {
  if (value instanceof Float64Array || value instanceof Float32Array) {
    return { $typed: value.constructor.name, base64: bytesLE(value).toString('base64') };
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

function decodeValue(value: unknown, path: string): unknown {
  if (Array.isArray(value)) return value.map((v, i) => decodeValue(v, `${path}[${i}]`));
  if (typeof value !== 'object' || value === null) return value;
  const o = value as Record<string, unknown>;
  if ('$typed' in o) {
    const name = o.$typed as TypedName;
    const ctor = TYPED[name];
    if (ctor === undefined || typeof o.base64 !== 'string') {
      throw new StateDecodeError(`${path} is not a Float64Array or Float32Array encoding`);
    }
    if (!/^[A-Za-z0-9+/]*={0,2}$/.test(o.base64) || o.base64.length % 4 !== 0) {
      throw new StateDecodeError(`${path}.base64 is not valid base64`);
    }
    const bytes = Buffer.from(o.base64, 'base64');
    if (bytes.length % ctor.BYTES_PER_ELEMENT !== 0) {
      throw new StateDecodeError(`${path} has ${bytes.length} bytes, not a whole number of ${name} elements`);
    }
    const copy = new Uint8Array(bytes);
    const buf = Buffer.from(copy.buffer);
    if (!LITTLE_ENDIAN) {
      if (ctor === Float64Array) buf.swap64();
      else buf.swap32();
    }
    return new ctor(copy.buffer, 0, bytes.length / ctor.BYTES_PER_ELEMENT);
  }
  if ('$number' in o) {
    const n = Number(o.$number);
    if (!['NaN', 'Infinity', '-Infinity'].includes(String(o.$number))) {
      throw new StateDecodeError(`${path} is not a non-finite number encoding`);
    }
    return n;
  }
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(o)) out[k] = decodeValue(v, `${path}.${k}`);
  return out;
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
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (error) {
    throw new StateDecodeError('the text is not JSON', { cause: error });
  }
  if (typeof raw !== 'object' || raw === null) throw new StateDecodeError('the text is not an encoded state object');
  const o = raw as Record<string, unknown>;
  if (o.format !== STATE_FORMAT) {
    throw new StateDecodeError(`format must be ${JSON.stringify(STATE_FORMAT)}, got ${JSON.stringify(o.format)}`);
  }
  if (o.version !== STATE_VERSION) {
    throw new StateDecodeError(`version ${JSON.stringify(o.version)} is not supported (this build reads version ${STATE_VERSION})`);
  }
  if (typeof o.metric !== 'string') throw new StateDecodeError('metric must be a string');
  if (typeof o.config !== 'object' || o.config === null) throw new StateDecodeError('config must be an object');
  if (typeof o.parts !== 'object' || o.parts === null) throw new StateDecodeError('parts must be an object');
  return {
    metric: o.metric,
    config: o.config as MetricState['config'],
    parts: decodeValue(o.parts, 'parts') as Record<string, unknown>,
  };
}
