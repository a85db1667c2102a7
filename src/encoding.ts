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
import { createHash } from 'node:crypto';
import { describeValue, mergeError, StateDecodeError } from './errors.js';
import { fieldPath, MAX_STATE_DEPTH, typedArrayName, unknownKey } from './functional/core.js';
import type { MetricDefinition, MetricState } from './functional/core.js';
import { treeMerge } from './pool/plan.js';

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

/** The `format` of a shard's encoded state ({@link encodeShardState}). */
export const SHARD_STATE_FORMAT = 'sae-metrics/state-shard';
/** The version of the shard encoding this build writes and reads. */
export const SHARD_STATE_VERSION = 1;

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

/** Shard `index` of `count` of some work, counted from 0. */
export interface ShardIndex {
  readonly index: number;
  readonly count: number;
}

function checkShard(fn: string, shard: ShardIndex): void {
  const { index, count } = shard;
  if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`${fn}: shard.count must be a positive integer, got ${describeValue(count)}`);
  if (!Number.isSafeInteger(index) || index < 0 || index >= count) {
    throw new RangeError(`${fn}: shard.index must be an integer in [0, ${count}) (counted from 0), got ${describeValue(index)}`);
  }
}

/**
 * Encodes the state of shard `index` of `count` (a part of some work cut into `count` parts, each
 * computed anywhere) as versioned JSON text with a SHA-256 checksum of the state, for
 * {@link mergeEncodedStates}.
 *
 * @throws {RangeError} when `shard` is not an index in `[0, count)`.
 */
export function encodeShardState(state: MetricState<object>, shard: ShardIndex): string {
  checkShard('encodeShardState', shard);
  const text = encodeState(state);
  return `{"format":${JSON.stringify(SHARD_STATE_FORMAT)},"version":${SHARD_STATE_VERSION},"index":${shard.index},"count":${shard.count},"sha256":"${sha256(text)}","state":${text}}`;
}

/**
 * Merges the encoded states of the `count` shards of some work (texts from
 * {@link encodeShardState}, in any order) into one state of `metric` (a metric or its definition),
 * after checking, as `sae-metrics merge` does, that they make one whole: each text decodes and its
 * checksum matches, each state belongs to `metric` and its configuration, all say the same
 * `count`, and every index from 0 to `count - 1` comes exactly once. The states merge in index
 * order through a fixed balanced tree (the pool's), so the result is the same bits whatever order
 * the texts arrive in. Nothing is changed when a check fails.
 *
 * @throws {StateDecodeError} naming the text (`texts[2]`): not a shard encoding, a newer version,
 *   a checksum that does not match, a state that does not decode.
 * @throws {StateMergeError} naming the text: another metric or configuration, another count, a
 *   duplicate or a missing index.
 * @example
 * ```ts
 * const texts = [[[1, 0, 1]], [[1, 1, 1]]].map((rows, index) => {
 *   const m = new L0NormMetric();
 *   m.update({ learnedActivations: tensor(rows) });
 *   return encodeShardState(m.state(), { index, count: 2 });
 * });
 * const whole = new L0NormMetric();
 * whole.loadState(mergeEncodedStates(whole, texts.reverse()));
 * whole.compute().item(); // 2.5
 * ```
 */
export function mergeEncodedStates<S extends MetricState<object>>(
  metric: MetricDefinition<S, unknown> | { readonly definition: MetricDefinition<S, unknown> },
  texts: readonly string[],
): S {
  const fn = 'mergeEncodedStates';
  const definition: MetricDefinition<S, unknown> = 'definition' in metric ? metric.definition : metric;
  if (!Array.isArray(texts) || texts.length === 0) throw new TypeError(`${fn}: texts must be a non-empty array of encoded shard states, got ${describeValue(texts)}`);
  const decodeFail = (i: number, reason: string, cause?: unknown): StateDecodeError =>
    new StateDecodeError(`texts[${i}] ${reason}`, { function: fn, field: `texts[${i}]`, ...(cause === undefined ? {} : { cause }) });
  const shards = texts.map((text, i) => {
    if (typeof text !== 'string') throw decodeFail(i, `must be a string, got ${describeValue(text)}`);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (error) {
      throw decodeFail(i, 'is not JSON (truncated or corrupted?)', error);
    }
    const o = (typeof raw === 'object' && raw !== null && !Array.isArray(raw) ? raw : {}) as Record<string, unknown>;
    if (o.format !== SHARD_STATE_FORMAT) {
      throw decodeFail(i, `is not an encoded shard state (format ${describeValue(o.format)}, not ${JSON.stringify(SHARD_STATE_FORMAT)}; encode states with encodeShardState)`);
    }
    if (typeof o.version === 'number' && o.version > SHARD_STATE_VERSION) {
      throw decodeFail(i, `is version ${o.version} of ${SHARD_STATE_FORMAT}, newer than this build reads (${SHARD_STATE_VERSION})`);
    }
    if (o.version !== SHARD_STATE_VERSION) throw decodeFail(i, `has version ${describeValue(o.version)}; this build reads version ${SHARD_STATE_VERSION}`);
    const unknown = unknownKey(o, ['format', 'version', 'index', 'count', 'sha256', 'state']);
    if (unknown !== undefined) throw decodeFail(i, `${unknown.field.replace(/^\./, '')} ${unknown.reason}`);
    const stateText = JSON.stringify(o.state);
    if (o.sha256 !== sha256(stateText ?? '')) throw decodeFail(i, 'is corrupted: the SHA-256 of its state does not match the one it carries');
    let state: MetricState;
    try {
      state = decodeState(stateText);
    } catch (error) {
      throw decodeFail(i, `has a state that does not decode: ${(error as Error).message}`, error);
    }
    const { index, count } = o;
    if (!Number.isSafeInteger(count) || (count as number) < 1 || !Number.isSafeInteger(index) || (index as number) < 0 || (index as number) >= (count as number)) {
      throw decodeFail(i, `has no shard index in [0, count): index ${describeValue(index)}, count ${describeValue(count)}`);
    }
    try {
      definition.assertState(state, `texts[${i}]`);
    } catch (error) {
      // Named by the text, as every other refusal here.
      const message = (error as Error).message.replace(`${definition.metric}: `, '');
      throw mergeError(definition.metric, message.startsWith(`texts[${i}]`) ? message : `texts[${i}]: ${message}`, `texts[${i}]`);
    }
    return { i, index: index as number, count: count as number, state: state as S };
  });
  const first = shards[0] as (typeof shards)[number];
  const byIndex = new Map<number, (typeof shards)[number]>();
  for (const s of shards) {
    if (s.count !== first.count) {
      throw mergeError(definition.metric, `texts[${s.i}] is shard ${s.index} of ${s.count}, but texts[0] is of ${first.count}: the shards of different counts overlap or leave gaps`, `texts[${s.i}]`);
    }
    const seen = byIndex.get(s.index);
    if (seen !== undefined) throw mergeError(definition.metric, `texts[${s.i}] is shard ${s.index} of ${s.count} again (texts[${seen.i}] is too)`, `texts[${s.i}]`);
    byIndex.set(s.index, s);
  }
  for (let index = 0; index < first.count; index++) {
    if (!byIndex.has(index)) throw mergeError(definition.metric, `shard ${index} of ${first.count} is missing (${byIndex.size} of ${first.count} given)`);
  }
  const ordered = [...byIndex.keys()].sort((a, b) => a - b).map((k) => (byIndex.get(k) as (typeof shards)[number]).state);
  return treeMerge(ordered, (a, b) => definition.merge(a, b));
}
