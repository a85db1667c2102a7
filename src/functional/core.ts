/**
 * The metric protocol: a metric is a monoid over plain-data states.
 *
 * A metric's state is made of *parts*. A part is a shared state declaration (for example "fired
 * counts of 3 features in 2 components"): metrics that declare the same part (same `id`) can share
 * one pass over a batch, which is how `MetricCollection` reads a batch once per group. Every part
 * is a monoid of its own: `init()` is the identity, `merge` is associative, and
 * `fromBatch(batch, rows)` gives the partial state of a row range of a batch.
 *
 * @module
 */
import { batchError, describeValue, formatShape, mergeError, optionRangeError, optionTypeError } from '../errors.js';
import type { Tensor, TensorLike } from '../tensor.js';
import { jsFusedKernel } from '../kernels/js-fused.js';
import type { FeatureNeeds, FusedKernel, RowRange, ShardFlag, ShardNeeds, ShardStats } from '../kernels/types.js';
import type { BatchMerges } from './batch-merges.js';

export type { RowRange } from '../kernels/types.js';

/**
 * A batch: a plain object whose fields are tensors. Each metric reads the fields it needs and
 * ignores the rest (as the Python metrics' `**kwargs`); each metric class names the ones it needs
 * in its batch type ({@link LearnedBatch}, {@link ReconstructionBatch}, ...).
 */
export interface Batch {
  /** Learned activations (the SAE's hidden layer): `[batch, feature]` or `[batch, component, feature]`. */
  readonly learnedActivations?: TensorLike;
  /** Source activations (the SAE's input), same shape as `decodedActivations`. */
  readonly sourceActivations?: TensorLike;
  /** Decoded activations (the SAE's output), same shape as `sourceActivations`. */
  readonly decodedActivations?: TensorLike;
  /** Loss of the source model with no changes. */
  readonly sourceModelLoss?: TensorLike;
  /** Loss of the source model with the SAE's reconstruction spliced in. */
  readonly sourceModelLossWithReconstruction?: TensorLike;
  /** Loss of the source model with the activations zero-ablated. */
  readonly sourceModelLossWithZeroAblation?: TensorLike;
  /** Component the reconstruction-score losses belong to (default 0). */
  readonly componentIdx?: number;
  /**
   * The absolute index of the batch's first vector in the stream, for the indexed metrics
   * (`TopActivations`, `DeadFeaturesOverWindow`); default: right after the vectors already seen.
   */
  readonly firstVectorIndex?: number;
  readonly [field: string]: unknown;
}

/** A batch with learned activations: what L1, L0, the fired-count metrics and capacity read. */
export interface LearnedBatch extends Batch {
  readonly learnedActivations: TensorLike;
}

/** A batch with source and decoded activations: what `L2ReconstructionLoss` reads. */
export interface ReconstructionBatch extends Batch {
  readonly sourceActivations: TensorLike;
  readonly decodedActivations: TensorLike;
}

/** What `SparseAutoencoderLoss` reads: learned, source and decoded activations. */
export interface SparseAutoencoderBatch extends LearnedBatch {
  readonly sourceActivations: TensorLike;
  readonly decodedActivations: TensorLike;
}

/** What `ReconstructionScoreMetric` reads: the three source-model losses. */
export interface ReconstructionScoreBatch extends Batch {
  readonly sourceModelLoss: TensorLike;
  readonly sourceModelLossWithReconstruction: TensorLike;
  readonly sourceModelLossWithZeroAblation: TensorLike;
}

/**
 * What a stream of batches may carry into the operators and `fromBatches`: {@link Batch}'s fields,
 * each any `Tensor` (so that a `Subject<{ learnedActivations: Tensor }>` pipes in). A tensor that
 * is not float32 is refused at run time with an `InvalidBatchError` naming the field.
 */
export type BatchInput = { readonly [K in keyof Batch]: Batch[K] extends TensorLike | undefined ? TensorLike | Tensor : Batch[K] };

/** A metric's configuration as plain data: what two states must agree on to merge. */
export type MetricConfig = Readonly<Record<string, number | boolean | string | null>>;

/** How to rebuild a part in another thread: a factory name and its plain-data arguments. */
export interface PartRecipe {
  readonly kind: string;
  readonly args: readonly (number | string | null)[];
}

/** A shared state declaration. Parts with equal `id` compute equal states from equal batches. */
export interface StatePart<S> {
  /** Identity of the declaration, e.g. `firedCount(components=2,features=3)`. */
  readonly id: string;
  /** How to rebuild this part elsewhere (a worker thread). */
  readonly recipe: PartRecipe;
  /** The batch fields the part reads. */
  readonly reads: readonly string[];
  /** The shard statistics the part is made from, when it is made from the fused pass. */
  readonly needs?: ShardNeeds;
  /** The partial state of `rows` of `batch` from the fused pass's statistics (parts with `needs`). */
  fromStats?(stats: ShardStats, rows: RowRange, batch: Batch): S;
  /** The identity state. */
  init(): S;
  /** The partial state of `rows` of an already validated batch. Never mutates the batch. */
  fromBatch(batch: Batch, rows: RowRange): S;
  /** Associative merge; `a` comes before `b` for ordered parts. Never mutates its arguments. */
  merge(a: S, b: S): S;
  /**
   * `merge(a, b)` for a partial `b` that nothing reads afterwards (a kernel's fresh output): the
   * result may take `b`'s memory, saving an allocation a batch. The same bits as `merge`.
   */
  mergeOwned?(a: S, b: S): S;
  /**
   * A reason why `value` is not a possible state of this part, or `undefined` when it is. A reason
   * that starts with a field path (`.vectors must be ...`, `.chunks[2] must ...`) names a field
   * inside the part. `value` comes from elsewhere (decoded text, another thread): every field must
   * be checked, and a state that passes must compute and re-encode without error.
   */
  invalid(value: unknown): string | undefined;
}

/** A metric's state: which metric and configuration it belongs to, and its parts. Plain data. */
export interface MetricState<P extends object = Record<string, unknown>> {
  readonly metric: string;
  readonly config: MetricConfig;
  readonly parts: P;
}

/**
 * The pure definition of a metric (torchmetrics' functional half): all the math, no mutable state.
 * `init`, `update`, `merge` and `compute` never mutate their arguments.
 */
export interface MetricDefinition<S extends MetricState<object> = MetricState, R = unknown> {
  /** The metric's class name, e.g. `L1AbsoluteLoss`. */
  readonly metric: string;
  /** The configuration states must agree on to merge. */
  readonly config: MetricConfig;
  /** The parts of the state, by key, each with the declaration `id` a collection groups by. */
  readonly parts: Readonly<Record<string, StatePart<unknown>>>;
  /** The identity state: `merge(init(), s)` equals `s`. */
  init(): S;
  /**
   * Checks a batch (and, for ordered parts, that it fits `state`) and returns its number of rows.
   *
   * @throws {InvalidBatchError} naming the metric, the field and the shapes.
   */
  validate(batch: Batch, state?: S): number;
  /** The partial state of each part for `rows` of a batch that {@link validate} accepted. */
  partials(batch: Batch, rows: RowRange): Record<string, unknown>;
  /** Merges partial part states (from {@link partials}) into `state`. */
  fold(state: S, partials: Readonly<Record<string, unknown>>): S;
  /**
   * Declares `state`'s part values to `merges` (see `BatchMerges.expect`).
   *
   * @internal
   */
  expectMerges(state: S, merges: BatchMerges): void;
  /**
   * {@link fold} of a batch's partials, each part merged by `merges` (shared between the metrics
   * of a collection).
   *
   * @internal
   */
  foldMerges(state: S, merges: BatchMerges): S;
  /** `fold(state, partials(batch, rows))` after `validate(batch, state)`; `rows` defaults to all. */
  update(state: S, batch: Batch, rows?: RowRange): S;
  /** Associative merge of two states of this metric and configuration. */
  merge(a: S, b: S): S;
  /** The metric's value; the state is not changed. */
  compute(state: S): R;
  /**
   * `compute` of state parts without checking them, for parts this package built: a metric's own
   * state's, or a batch's partials (then it is `compute(fold(init(), partials))`, without the copy).
   *
   * @internal
   */
  computeParts(parts: Readonly<Record<string, unknown>>): R;
  /**
   * Checks that `value` is a state of this metric and configuration.
   *
   * @throws {StateMergeError} when it is not.
   */
  assertState(value: unknown, what?: string): asserts value is S;
}

/** The state type of a definition. */
export type StateOf<D> = D extends MetricDefinition<infer S, unknown> ? S : never;
/** The result type of a definition. */
export type ResultOf<D> = D extends MetricDefinition<MetricState<object>, infer R> ? R : never;

/** The spec {@link defineMetric} builds a definition from. */
export interface MetricSpec<P extends object, R> {
  readonly metric: string;
  readonly config: MetricConfig;
  readonly parts: { readonly [K in keyof P]: StatePart<P[K]> };
  validate(batch: Batch, state?: MetricState<P>): number;
  compute(parts: P): R;
  /**
   * A reason why parts that are each possible cannot be in one state (they were folded from the
   * same batches and disagree), or `undefined`. Called after every part passed its own check.
   */
  invalid?(parts: P): string | undefined;
}

// ---------------------------------------------------------------------------------------------
// States from elsewhere

/**
 * How deeply a state may nest, the state object itself being level 1 (a built-in metric's state
 * nests 5 deep). Deeper states are refused by `decodeState`, `loadState` and `mergeState`.
 */
export const MAX_STATE_DEPTH = 32;

/** Keys that would reach an object's prototype if copied by assignment: never a state field. */
const PROTOTYPE_KEYS: ReadonlySet<string> = new Set(['__proto__', 'constructor', 'prototype']);

/** The fields of a state object. */
const STATE_FIELDS = ['metric', 'config', 'parts'] as const;

/** `path.key`, or `path["key"]` for a key that is not an identifier (`key` alone when `path` is empty). */
export function fieldPath(path: string, key: string): string {
  if (!/^[A-Za-z_$][\w$]*$/.test(key)) return `${path}[${JSON.stringify(key)}]`;
  return path === '' ? key : `${path}.${key}`;
}

/** Whether `value` is a plain object: its prototype is `Object.prototype` or null. */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value) as unknown;
  return proto === Object.prototype || proto === null;
}

function notPlainObject(value: unknown): string | undefined {
  return isPlainObject(value) ? undefined : `must be a plain object, got ${describeValue(value)}`;
}

/**
 * The first own key of `value` that is not one of `keys` (a prototype key or an unknown one), as
 * `.key` (or `["key"]`) and a reason, or undefined.
 */
export function unknownKey(
  value: object,
  keys: readonly string[],
  what = `a field (fields: ${keys.join(', ')})`,
): { field: string; reason: string } | undefined {
  for (const k of Object.keys(value)) {
    if (PROTOTYPE_KEYS.has(k)) return { field: fieldPath('*', k).slice(1), reason: 'is a prototype key, not a field' };
    if (!keys.includes(k)) return { field: fieldPath('*', k).slice(1), reason: `is not ${what}` };
  }
  return undefined;
}

const TYPED_ARRAY_TAG = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(Float32Array.prototype), Symbol.toStringTag)
  ?.get as (this: unknown) => string | undefined;

/**
 * The element type of a real typed array (`'Float32Array'`, ...), read from its internal slot, so
 * that neither a subclass nor an object that only inherits from a typed array can fake it.
 */
export function typedArrayName(value: unknown): string | undefined {
  return typeof value === 'object' && value !== null ? TYPED_ARRAY_TAG.call(value) : undefined;
}

/**
 * A copy of a state from elsewhere as fresh plain data, each field read once (a getter runs once,
 * and what is then checked is what is used): plain objects and arrays, `Float64Array` and
 * `Float32Array` (copied, a subclass or a shared buffer becoming a plain array), numbers, strings,
 * booleans, null and undefined.
 *
 * @throws the error `fail(field, reason)` builds, for a prototype key, nesting deeper than
 *   {@link MAX_STATE_DEPTH}, or anything else.
 */
export function copyStateData(value: unknown, fail: (field: string, reason: string) => Error, path = '', depth = 1): unknown {
  if (value === null || value === undefined) return value;
  const type = typeof value;
  if (type === 'number' || type === 'string' || type === 'boolean') return value;
  if (type === 'object') {
    if (depth > MAX_STATE_DEPTH) throw fail(path, `is nested more than ${MAX_STATE_DEPTH} levels deep`);
    const typed = typedArrayName(value);
    if (typed === 'Float64Array') return new Float64Array(value as Float64Array);
    if (typed === 'Float32Array') return new Float32Array(value as Float32Array);
    if (Array.isArray(value) && Object.getPrototypeOf(value) === Array.prototype) {
      // The length read once (a Proxy's could grow with every read); a hole stops the copy at once,
      // so a sparse array of length 2^32 - 1 is not walked.
      const n = value.length;
      const out: unknown[] = [];
      for (let i = 0; i < n; i++) {
        if (!(i in value)) throw fail(`${path}[${i}]`, 'is a hole in a sparse array (a state holds none)');
        out.push(copyStateData(value[i], fail, `${path}[${i}]`, depth + 1));
      }
      return out;
    }
    if (typed === undefined && isPlainObject(value)) {
      const out: Record<string, unknown> = {};
      for (const k of Object.keys(value)) {
        const field = fieldPath(path, k);
        if (PROTOTYPE_KEYS.has(k)) throw fail(field, 'is a prototype key, not a field');
        out[k] = copyStateData(value[k], fail, field, depth + 1);
      }
      return out;
    }
  }
  throw fail(
    path,
    `must be plain data (objects, arrays, Float64Array, Float32Array, numbers, strings, booleans, null), got ${describeValue(value)}`,
  );
}

/** Stable text of a config for comparison and messages. */
export function configKey(config: MetricConfig): string {
  return JSON.stringify(Object.keys(config).sort().map((k) => [k, config[k]]));
}

function describeConfig(config: MetricConfig): string {
  return `{ ${Object.keys(config)
    .map((k) => `${k}: ${JSON.stringify(config[k])}`)
    .join(', ')} }`;
}

/** Builds a {@link MetricDefinition} from its parts, validation and compute. */
export function defineMetric<P extends object, R>(spec: MetricSpec<P, R>): MetricDefinition<MetricState<P>, R> {
  type S = MetricState<P>;
  const keys = Object.keys(spec.parts) as (keyof P & string)[];
  const parts = spec.parts as unknown as Record<string, StatePart<unknown>>;
  const make = (values: Record<string, unknown>): S =>
    Object.freeze({ metric: spec.metric, config: spec.config, parts: Object.freeze(values) as P });

  const fail = (what: string, field: string, reason: string): never => {
    throw mergeError(spec.metric, `${field === '' ? what : `${what}.${field}`} ${reason}`, field === '' ? undefined : field);
  };

  const assertState: (value: unknown, what?: string) => asserts value is S = (value, what = 'state') => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      fail(what, '', `must be a state object, got ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}`);
    }
    const plain = notPlainObject(value);
    if (plain !== undefined) fail(what, '', plain);
    const s = value as Partial<MetricState>;
    if (s.metric !== spec.metric) {
      const got = typeof s.metric === 'string' || s.metric === undefined ? String(s.metric) : describeValue(s.metric);
      throw mergeError(spec.metric, `cannot merge a state of ${got} into ${spec.metric} (metric differs)`, 'metric');
    }
    checkConfig(s.config, what);
    const unknown = unknownKey(value as object, STATE_FIELDS);
    if (unknown !== undefined) fail(what, unknown.field.replace(/^\./, ''), unknown.reason);
    const values = s.parts as Record<string, unknown> | undefined;
    if (typeof values !== 'object' || values === null || Array.isArray(values)) fail(what, 'parts', 'must be an object');
    const plainParts = notPlainObject(values);
    if (plainParts !== undefined) fail(what, 'parts', plainParts);
    const unknownPart = unknownKey(values as object, keys, `a part of ${spec.metric} (parts: ${keys.join(', ')})`);
    if (unknownPart !== undefined) fail(what, `parts${unknownPart.field}`, unknownPart.reason);
    for (const k of keys) {
      if (!Object.hasOwn(values as object, k)) fail(what, `parts.${k}`, 'is missing');
      const reason = parts[k]?.invalid((values as Record<string, unknown>)[k]);
      if (reason !== undefined) {
        const inner = /^((?:\.[A-Za-z_$][\w$]*|\[\d+\])+) ([^]*)$/.exec(reason);
        fail(what, `parts.${k}${inner?.[1] ?? ''}`, inner?.[2] ?? reason);
      }
    }
    const together = spec.invalid?.(values as P);
    if (together !== undefined) fail(what, 'parts', together);
  };

  const checkConfig = (config: unknown, what: string): void => {
    const differ = (field: string, got: string): never => {
      throw mergeError(
        spec.metric,
        `cannot merge states of different configurations: ${describeConfig(spec.config)} and ${got} (${field} differs)`,
        field,
      );
    };
    if (typeof config !== 'object' || config === null || Array.isArray(config)) differ('config', String(config));
    const plain = notPlainObject(config);
    if (plain !== undefined) fail(what, 'config', plain);
    const c = config as Record<string, unknown>;
    for (const k of Object.keys(c)) {
      if (PROTOTYPE_KEYS.has(k)) fail(what, `config.${k}`, 'is a prototype key, not an option');
      const v = c[k];
      if (v !== null && typeof v !== 'number' && typeof v !== 'boolean' && typeof v !== 'string') {
        fail(what, fieldPath('config', k), `must be a number, boolean, string or null, got ${describeValue(v)}`);
      }
    }
    // Equal values (=== , so 0 and -0 agree and NaN never does) under the same option names.
    const names = [...new Set([...Object.keys(spec.config), ...Object.keys(c)])].sort();
    const first = names.find((k) => !Object.hasOwn(c, k) || !Object.hasOwn(spec.config, k) || c[k] !== spec.config[k]);
    if (first !== undefined) differ(fieldPath('config', first), describeConfig(c as MetricConfig));
  };

  const partials = (batch: Batch, rows: RowRange): Record<string, unknown> => {
    const byId = computePartials(Object.values(parts), batch, rows);
    const out: Record<string, unknown> = {};
    for (const k of keys) out[k] = byId.get((parts[k] as StatePart<unknown>).id);
    return out;
  };

  const foldWith = (state: S, merge: (part: StatePart<unknown>, own: unknown, k: string) => unknown): S => {
    const values: Record<string, unknown> = {};
    const own = state.parts as Record<string, unknown>;
    for (const k of keys) {
      try {
        values[k] = merge(parts[k] as StatePart<unknown>, own[k], k);
      } catch (error) {
        throw mergeError(spec.metric, `cannot merge ${k}: ${(error as Error).message}`, `parts.${k}`);
      }
    }
    return make(values);
  };
  const fold = (state: S, incoming: Readonly<Record<string, unknown>>): S =>
    foldWith(state, (part, own, k) => part.merge(own, incoming[k]));

  return Object.freeze({
    metric: spec.metric,
    config: spec.config,
    parts: Object.freeze({ ...parts }),
    init(): S {
      const values: Record<string, unknown> = {};
      for (const k of keys) values[k] = (parts[k] as StatePart<unknown>).init();
      return make(values);
    },
    validate(batch: Batch, state?: S): number {
      return spec.validate(batch, state);
    },
    partials,
    fold,
    expectMerges(state: S, merges: BatchMerges): void {
      const own = state.parts as Record<string, unknown>;
      for (const k of keys) merges.expect(parts[k] as StatePart<unknown>, own[k]);
    },
    foldMerges: (state: S, merges: BatchMerges): S => foldWith(state, (part, own) => merges.merge(part, own)),
    update(state: S, input: Batch, rows?: RowRange): S {
      assertState(state);
      const batch = snapshotBatch(input, readsOf(parts));
      const n = spec.validate(batch, state);
      const range = rows ?? { start: 0, end: n };
      if (
        !Number.isSafeInteger(range.start) ||
        !Number.isSafeInteger(range.end) ||
        range.start < 0 ||
        range.end > n ||
        range.start >= range.end
      ) {
        throw batchError(
          spec.metric,
          'rows',
          `rows must be a non-empty range of whole rows within [0, ${n}), got [${range.start}, ${range.end})`,
        );
      }
      return fold(state, partials(batch, range));
    },
    merge(a: S, b: S): S {
      assertState(a, 'the receiving state');
      assertState(b, 'the incoming state');
      return fold(a, b.parts as Record<string, unknown>);
    },
    compute(state: S): R {
      assertState(state);
      return spec.compute(state.parts);
    },
    computeParts(values: Readonly<Record<string, unknown>>): R {
      return spec.compute(values as P);
    },
    assertState,
  });
}

// ---------------------------------------------------------------------------------------------
// Partial states of many parts from one shard: the union of what the parts need is computed by
// one fused pass, and each part is made from those statistics.

/** The partial state of one part, made from the JavaScript fused pass (the parts' `fromBatch`). */
export function fromFusedPass<S>(part: StatePart<S>, batch: Batch, rows: RowRange): S {
  const fromStats = part.fromStats as NonNullable<StatePart<S>['fromStats']>;
  return fromStats(jsFusedKernel(batch, rows, part.needs ?? {}), rows, batch);
}

/**
 * The union of the statistics that `parts` need from a shard pass. Of the per-feature requests,
 * flags are or-ed, `top` is the largest asked (a part asking fewer takes each feature's first
 * entries), and a `histogram` with a key other than the first one's asks for `positives` too
 * (that part bins the entries itself).
 */
export function shardNeeds(parts: Iterable<StatePart<unknown>>): ShardNeeds {
  const needs: { -readonly [K in ShardFlag]?: boolean } & { features?: FeatureNeeds } = {};
  let features: { -readonly [K in keyof FeatureNeeds]: FeatureNeeds[K] } | undefined;
  for (const part of parts) {
    const n = part.needs;
    if (n === undefined) continue;
    for (const k of Object.keys(n) as (keyof ShardNeeds)[]) if (k !== 'features' && n[k]) needs[k] = true;
    const f = n.features;
    if (f === undefined) continue;
    features ??= {};
    if (f.moments) features.moments = true;
    if (f.lastFired) features.lastFired = true;
    if (f.top !== undefined && !(f.top <= (features.top ?? 0))) features.top = f.top;
    if (f.histogram !== undefined) {
      if (features.histogram === undefined) features.histogram = f.histogram;
      else if (features.histogram.key !== f.histogram.key) needs.positives = true;
    }
  }
  if (features !== undefined) needs.features = features;
  return needs;
}

/**
 * The partial state of every distinct part (by `id`) for `rows` of a validated batch, with one
 * fused pass for all the parts that are made from shard statistics.
 */
export function computePartials(
  parts: Iterable<StatePart<unknown>>,
  batch: Batch,
  rows: RowRange,
  kernel: FusedKernel = jsFusedKernel,
): Map<string, unknown> {
  const distinct = new Map<string, StatePart<unknown>>();
  for (const part of parts) if (!distinct.has(part.id)) distinct.set(part.id, part);
  const needs = shardNeeds(distinct.values());
  const stats = Object.keys(needs).length > 0 ? kernel(batch, rows, needs) : {};
  const out = new Map<string, unknown>();
  for (const [id, part] of distinct) {
    out.set(id, part.fromStats ? part.fromStats(stats, rows, batch) : part.fromBatch(batch, rows));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Batch validation

/** A validated activations field. */
export interface Activations {
  readonly tensor: TensorLike;
  readonly rows: number;
  /** Components (1 when the input has no component axis). */
  readonly components: number;
  readonly features: number;
  readonly componentAxis: boolean;
}

/** The most axes a batch tensor may have (as NumPy 2's `NPY_MAXDIMS`). */
export const MAX_RANK = 64;

/** The fields of {@link Batch} that the built-in metrics read. */
const BATCH_FIELDS = [
  'learnedActivations',
  'sourceActivations',
  'decodedActivations',
  'sourceModelLoss',
  'sourceModelLossWithReconstruction',
  'sourceModelLossWithZeroAblation',
  'componentIdx',
] as const;

const READS = new WeakMap<object, readonly string[]>();

/** The batch fields `parts` declare they read (see `StatePart.reads`); read once per frozen record (a definition's). */
export function readsOf(parts: Readonly<Record<string, StatePart<unknown>>>): readonly string[] {
  const known = READS.get(parts);
  if (known !== undefined) return known;
  const reads = Object.freeze(Object.values(parts).flatMap((p) => [...p.reads]));
  if (Object.isFrozen(parts)) READS.set(parts, reads);
  return reads;
}

/** A `Float32Array` view of the same memory as a subclass instance, read through the internal slots. */
const baseView = (() => {
  const proto = Object.getPrototypeOf(Float32Array.prototype) as object;
  const get = (name: string) => Object.getOwnPropertyDescriptor(proto, name)?.get as (this: unknown) => unknown;
  const buffer = get('buffer');
  const byteOffset = get('byteOffset');
  const length = get('length');
  return (a: Float32Array): Float32Array =>
    new Float32Array(buffer.call(a) as ArrayBuffer, byteOffset.call(a) as number, length.call(a) as number);
})();

/** What a Float32Array inherits (`length`, `slice`, `buffer`, `Symbol.iterator`, ...), which an own property could shadow. */
const INHERITED: readonly PropertyKey[] = [
  ...new Set([Float32Array.prototype, Object.getPrototypeOf(Float32Array.prototype) as object, Object.prototype].flatMap((p) => Reflect.ownKeys(p))),
];

/** Whether reading `a` through its properties could differ from reading it through its internal slots. */
const overridden = (a: Float32Array): boolean =>
  Object.getPrototypeOf(a) !== Float32Array.prototype || INHERITED.some((k) => Object.hasOwn(a, k));

/** A tensor-like field read once: `data` and `shape` each read once, the shape copied. */
function snapshotField(value: unknown): unknown {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || ArrayBuffer.isView(value)) return value;
  if (!('data' in value) || !('shape' in value)) return value;
  let data = (value as { data: unknown }).data;
  const shape = (value as { shape: unknown }).shape;
  // A subclass, or own properties, may override slice() (which a metric uses to keep rows), the
  // length getter or the iterator: viewed as a plain Float32Array of the same memory, they cannot.
  if (typedArrayName(data) === 'Float32Array' && overridden(data as Float32Array)) {
    data = baseView(data as Float32Array);
  }
  if (!Array.isArray(shape)) return Object.freeze({ data, shape });
  // The length read once (a Proxy's could grow with every read), and no further than one past the
  // rank limit, for validation to refuse: a sparse shape of length 2^32 - 1 is not walked.
  const n = Math.min(shape.length, MAX_RANK + 1);
  const copy: unknown[] = [];
  for (let i = 0; i < n; i++) copy.push(shape[i]);
  return Object.freeze({ data, shape: Object.freeze(copy) });
}

const kept: unknown[] = [];

/**
 * Keeps `value` alive for good, so that its hidden class survives garbage collection. V8 discards
 * optimized code whose hidden classes die ("weak objects"); the classes of objects that live only
 * during a call (a batch's snapshot, its merges) die at every collection between batches, and the
 * code reading them was deoptimized and compiled again after each.
 *
 * @internal
 */
export function keepAlive<T>(value: T): T {
  kept.push(value);
  return value;
}

keepAlive(snapshotField({ data: new Float32Array(1), shape: [1] }));

/**
 * The batch as it is at hand-over: each field read exactly once (a getter runs once) into a new
 * plain object, tensor fields as `{ data, shape }` with the same `data` (not copied) and a copy of
 * `shape`. Everything after (validation, the partial states, a worker pool) reads the snapshot,
 * so a field that changes between reads cannot make validation and computation disagree.
 * Anything that is not a batch object is returned as it is, for validation to refuse.
 *
 * Reads the batch's own enumerable fields, and `fields` (with those of {@link Batch}) where they
 * are inherited.
 */
export function snapshotBatch(batch: unknown, fields: Iterable<string> = []): Batch {
  if (typeof batch !== 'object' || batch === null || Array.isArray(batch) || ArrayBuffer.isView(batch)) return batch as Batch;
  if ('shape' in batch && 'data' in batch) return batch as Batch; // a tensor passed as a batch: refused by validation
  const out: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
  const source = batch as Record<string, unknown>;
  for (const k of Object.keys(source)) out[k] = snapshotField(source[k]);
  for (const k of BATCH_FIELDS) if (!Object.hasOwn(out, k) && k in source) out[k] = snapshotField(source[k]);
  for (const k of fields) if (!Object.hasOwn(out, k) && k in source) out[k] = snapshotField(source[k]);
  return Object.freeze(out) as Batch;
}

/** Checks that `batch` is an object; returns it. `example` names a field the metric reads, for the message. */
export function checkBatch(metric: string, batch: unknown, example = 'learnedActivations'): Batch {
  if (typeof batch !== 'object' || batch === null || Array.isArray(batch) || ArrayBuffer.isView(batch)) {
    throw batchError(
      metric,
      'batch',
      `a batch must be a plain object of tensors (e.g. { ${example} }), got ${describeValue(batch)}`,
    );
  }
  if (batch instanceof Object && 'shape' in batch && 'data' in batch) {
    throw batchError(
      metric,
      'batch',
      `a batch must be a plain object of tensors, got a tensor; pass { ${example}: t } (or the field the metric reads)`,
    );
  }
  return batch as Batch;
}

/** Reads `batch[field]`, checking it is a float32 tensor whose shape matches its data. */
export function checkTensorField(metric: string, batch: Batch, field: string, what: string): TensorLike {
  const value = batch[field];
  if (value === undefined && !(field in batch)) {
    const present = Object.keys(batch);
    throw batchError(
      metric,
      field,
      `the batch must have a ${field} field (${what}), got ${present.length ? `fields ${present.join(', ')}` : 'an empty batch object'}`,
    );
  }
  if (typeof value !== 'object' || value === null || !('data' in value) || !('shape' in value)) {
    throw batchError(metric, field, `${field} must be a Tensor (see tensor()), got ${describeValue(value)}`);
  }
  const t = value as { data: unknown; shape: unknown };
  // The internal slot, not instanceof: a Proxy or an object inheriting from Float32Array.prototype has no elements of its own.
  const name = typedArrayName(t.data);
  if (name !== 'Float32Array') {
    const kind =
      name !== undefined
        ? name
        : t.data instanceof Float32Array
          ? 'an object that only inherits from Float32Array (a Proxy or Object.create)'
          : Array.isArray(t.data)
            ? 'an Array'
            : typeof t.data;
    throw batchError(metric, field, `${field} must hold float32 data (a Float32Array), got ${kind}`);
  }
  const shape = t.shape;
  if (Array.isArray(shape) && shape.length > MAX_RANK) throw batchError(metric, field, `${field}.shape has more than ${MAX_RANK} axes`);
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw batchError(metric, field, `${field}.shape must be an array of non-negative integers, got ${String(shape)}`);
  }
  let size = 1;
  for (const d of shape as number[]) size *= d;
  const length = (t.data as Float32Array).length;
  if (size !== length) {
    throw batchError(
      metric,
      field,
      `${field} has shape ${formatShape(shape as number[])} (${size} elements) but ${length} data elements`,
    );
  }
  return value as TensorLike;
}

/**
 * Reads and checks an activations field.
 *
 * - `numComponents` a number: rank 3 `[batch, numComponents, feature]`, or rank 2 when it is 1.
 * - `numComponents` undefined: rank 2 only (the metric was created without a component axis).
 * - `numComponents` `'any'`: rank 2 or 3 with any component count.
 */
export function checkActivations(
  metric: string,
  batch: Batch,
  field: string,
  numComponents: number | undefined | 'any',
  features?: { count: number; option: string },
): Activations {
  const t = checkTensorField(metric, batch, field, 'a Tensor of shape [batch, feature] or [batch, component, feature]');
  const shape = t.shape;
  if (shape.length !== 2 && shape.length !== 3) {
    throw batchError(
      metric,
      field,
      `${field} must have rank 2 [batch, feature] or rank 3 [batch, component, feature], got shape ${formatShape(shape)}`,
    );
  }
  const componentAxis = shape.length === 3;
  if (numComponents !== 'any') {
    if (componentAxis && numComponents === undefined) {
      throw batchError(
        metric,
        field,
        `${field} has a component axis but numComponents is not set; pass numComponents: ${shape[1]} or a [batch, feature] tensor, got shape ${formatShape(shape)}`,
      );
    }
    if (componentAxis && shape[1] !== numComponents) {
      throw batchError(
        metric,
        field,
        `${field} must have ${numComponents} component${numComponents === 1 ? '' : 's'} on axis 1 (numComponents), got shape ${formatShape(shape)}`,
      );
    }
    if (!componentAxis && numComponents !== undefined && numComponents !== 1) {
      throw batchError(
        metric,
        field,
        `${field} has no component axis but numComponents is ${numComponents}; expected shape [batch, ${numComponents}, feature], got shape ${formatShape(shape)}`,
      );
    }
  }
  const rows = shape[0] as number;
  const nFeatures = shape[shape.length - 1] as number;
  if (rows === 0) throw batchError(metric, field, `${field} is an empty batch (no activation vectors), got shape ${formatShape(shape)}`);
  if (componentAxis && shape[1] === 0) throw batchError(metric, field, `${field} has no components, got shape ${formatShape(shape)}`);
  if (nFeatures === 0) throw batchError(metric, field, `${field} has no features on its last axis, got shape ${formatShape(shape)}`);
  if (features !== undefined && nFeatures !== features.count) {
    throw batchError(
      metric,
      field,
      `${field} must have ${features.count} features on its last axis (${features.option}), got shape ${formatShape(shape)}`,
    );
  }
  return { tensor: t, rows, components: componentAxis ? (shape[1] as number) : 1, features: nFeatures, componentAxis };
}

// ---------------------------------------------------------------------------------------------
// Option validation

/** Checks that `options` is undefined or an object with only `known` keys; returns it. */
export function checkOptions<T extends object>(metric: string, options: T | undefined, known: readonly string[]): Partial<T> {
  if (options === undefined) return {};
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new TypeError(`${metric}: options must be an object, got ${describeValue(options)}`);
  }
  for (const k of Object.keys(options)) {
    if (!known.includes(k)) {
      throw new TypeError(
        `${metric}: unknown option ${k} (${known.length ? `known options: ${known.join(', ')}` : 'it takes no options'})`,
      );
    }
  }
  return options;
}

/** The option's value, or `fallback` when it is absent (`undefined`; an explicit `null` is checked like any value). */
export function orDefault<T>(value: T | undefined, fallback: T): T {
  return value === undefined ? fallback : value;
}

/** A positive integer option. */
export function positiveInteger(metric: string, option: string, value: unknown): number {
  if (typeof value !== 'number') throw optionTypeError(metric, option, 'a positive integer', value);
  if (!Number.isSafeInteger(value) || value <= 0) throw optionRangeError(metric, option, 'a positive integer', value);
  return value;
}

/** A boolean option. */
export function booleanOption(metric: string, option: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw optionTypeError(metric, option, 'a boolean', value);
  return value;
}

/** A number option within `[min, max]` (`exclusiveMin` excludes `min`); NaN is out of range. */
export function numberInRange(
  metric: string,
  option: string,
  value: unknown,
  range: { min: number; max: number; exclusiveMin?: boolean; expected: string },
): number {
  if (typeof value !== 'number') throw optionTypeError(metric, option, range.expected, value);
  const low = range.exclusiveMin ? value <= range.min : value < range.min;
  if (Number.isNaN(value) || low || value > range.max) throw optionRangeError(metric, option, range.expected, value);
  return value;
}
