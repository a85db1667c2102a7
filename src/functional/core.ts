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
import type { TensorLike } from '../tensor.js';
import type { ShardNeeds, ShardStats } from '../kernels/types.js';
import { computePartials } from '../kernels/partials.js';

/**
 * A batch: a plain object whose fields are tensors. Each metric reads the fields it needs and
 * ignores the rest (as the Python metrics' `**kwargs`).
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
  readonly [field: string]: unknown;
}

/** A half-open range of rows `[start, end)` along a batch's first axis. */
export interface RowRange {
  readonly start: number;
  readonly end: number;
}

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
  /** A reason why `value` is not a valid state of this part, or `undefined` when it is. */
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
  /** `fold(state, partials(batch, rows))` after `validate(batch, state)`; `rows` defaults to all. */
  update(state: S, batch: Batch, rows?: RowRange): S;
  /** Associative merge of two states of this metric and configuration. */
  merge(a: S, b: S): S;
  /** The metric's value; the state is not changed. */
  compute(state: S): R;
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
  const key = configKey(spec.config);
  const make = (values: Record<string, unknown>): S =>
    Object.freeze({ metric: spec.metric, config: spec.config, parts: Object.freeze(values) as P });

  const assertState: (value: unknown, what?: string) => asserts value is S = (value, what = 'state') => {
    if (typeof value !== 'object' || value === null) {
      throw mergeError(spec.metric, `${what} must be a state object, got ${value === null ? 'null' : typeof value}`);
    }
    const s = value as Partial<MetricState>;
    if (s.metric !== spec.metric) {
      throw mergeError(spec.metric, `cannot merge a state of ${String(s.metric)} into ${spec.metric}`);
    }
    if (typeof s.config !== 'object' || s.config === null || configKey(s.config) !== key) {
      throw mergeError(
        spec.metric,
        `cannot merge states of different configurations: ${describeConfig(spec.config)} and ${
          typeof s.config === 'object' && s.config !== null ? describeConfig(s.config) : String(s.config)
        }`,
      );
    }
    const values = s.parts as Record<string, unknown> | undefined;
    if (typeof values !== 'object' || values === null) {
      throw mergeError(spec.metric, `${what}.parts must be an object`);
    }
    for (const k of keys) {
      const reason = parts[k]?.invalid(values[k]);
      if (reason !== undefined) throw mergeError(spec.metric, `${what}.parts.${k} ${reason}`);
    }
  };

  const partials = (batch: Batch, rows: RowRange): Record<string, unknown> => {
    const byId = computePartials(Object.values(parts), batch, rows);
    const out: Record<string, unknown> = {};
    for (const k of keys) out[k] = byId.get((parts[k] as StatePart<unknown>).id);
    return out;
  };

  const fold = (state: S, incoming: Readonly<Record<string, unknown>>): S => {
    const values: Record<string, unknown> = {};
    const own = state.parts as Record<string, unknown>;
    for (const k of keys) {
      try {
        values[k] = (parts[k] as StatePart<unknown>).merge(own[k], incoming[k]);
      } catch (error) {
        throw mergeError(spec.metric, `cannot merge ${k}: ${(error as Error).message}`);
      }
    }
    return make(values);
  };

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
    update(state: S, batch: Batch, rows?: RowRange): S {
      assertState(state);
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
    assertState,
  });
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
  if (!(t.data instanceof Float32Array)) {
    const kind = ArrayBuffer.isView(t.data) ? t.data.constructor.name : Array.isArray(t.data) ? 'an Array' : typeof t.data;
    throw batchError(metric, field, `${field} must hold float32 data (a Float32Array), got ${kind}`);
  }
  const shape = t.shape;
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw batchError(metric, field, `${field}.shape must be an array of non-negative integers, got ${String(shape)}`);
  }
  let size = 1;
  for (const d of shape as number[]) size *= d;
  if (size !== t.data.length) {
    throw batchError(
      metric,
      field,
      `${field} has shape ${formatShape(shape as number[])} (${size} elements) but ${t.data.length} data elements`,
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
  const got = formatShape(shape);
  if (shape.length !== 2 && shape.length !== 3) {
    throw batchError(
      metric,
      field,
      `${field} must have rank 2 [batch, feature] or rank 3 [batch, component, feature], got shape ${got}`,
    );
  }
  const componentAxis = shape.length === 3;
  if (numComponents !== 'any') {
    if (componentAxis && numComponents === undefined) {
      throw batchError(
        metric,
        field,
        `${field} has a component axis but numComponents is not set; pass numComponents: ${shape[1]} or a [batch, feature] tensor, got shape ${got}`,
      );
    }
    if (componentAxis && shape[1] !== numComponents) {
      throw batchError(
        metric,
        field,
        `${field} must have ${numComponents} component${numComponents === 1 ? '' : 's'} on axis 1 (numComponents), got shape ${got}`,
      );
    }
    if (!componentAxis && numComponents !== undefined && numComponents !== 1) {
      throw batchError(
        metric,
        field,
        `${field} has no component axis but numComponents is ${numComponents}; expected shape [batch, ${numComponents}, feature], got shape ${got}`,
      );
    }
  }
  const rows = shape[0] as number;
  const nFeatures = shape[shape.length - 1] as number;
  if (rows === 0) throw batchError(metric, field, `${field} is an empty batch (no activation vectors), got shape ${got}`);
  if (componentAxis && shape[1] === 0) throw batchError(metric, field, `${field} has no components, got shape ${got}`);
  if (nFeatures === 0) throw batchError(metric, field, `${field} has no features on its last axis, got shape ${got}`);
  if (features !== undefined && nFeatures !== features.count) {
    throw batchError(
      metric,
      field,
      `${field} must have ${features.count} features on its last axis (${features.option}), got shape ${got}`,
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
