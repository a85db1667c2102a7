/**
 * Several metrics updated together from one batch, with shared state computed once.
 *
 * @module
 */
import { Metric, type BatchPlan, type StagedChange } from './metrics/metric.js';
import { batchError, describeValue, mergeError, StateDecodeError, StateMergeError } from './errors.js';
import { isPlainObject, readsOf, snapshotBatch, type Batch, type MetricDefinition, type MetricState, type StatePart } from './functional/core.js';
import { BatchMerges } from './functional/batch-merges.js';
import { Tensor } from './tensor.js';
import { defaultExecutor } from './pool/executor.js';

/** The state parts a metric declares. */
function partsOf(metric: AnyMetric): StatePart<unknown>[] {
  return Object.values(metric.definition.parts as Readonly<Record<string, StatePart<unknown>>>);
}

/** Any metric whose value is a tensor or a record of tensors (as a classwise wrapper's). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyMetric = Metric<any, Tensor | Readonly<Record<string, Tensor>>>;

/** The value type of a metric. */
export type MetricResult<M> = M extends { compute(): infer R } ? R : never;

/**
 * What a collection's `forward` and `compute` return: each metric's value under its key, with
 * record values (a classwise wrapper's) flattened into the top level, as torchmetrics does: when
 * any flattened key would be duplicated, every key of every record becomes `<collectionKey>_<key>`.
 * The keys are exact (a misspelled key does not compile); a wrapper's flattened keys
 * (`'prefix/name'`, or `'key_prefix/name'`) are known only at run time, and typed as
 * `` `${string}/${string}` `` when the collection holds one.
 */
export type CollectionResult<M extends Record<string, AnyMetric>> = string extends keyof M
  ? // A collection whose keys are not known to the compiler: any key.
    Readonly<Record<string, Tensor>>
  : {
      readonly [K in keyof M as MetricResult<M[K]> extends Tensor ? K : never]: MetricResult<M[K]>;
    } & ([RecordKeys<M, 'wrapper'>] extends [never] ? unknown : Readonly<Record<`${string}/${string}`, Tensor>>) & {
      // A record of known keys (TopActivations'): each key flattened as it is, or as `<collectionKey>_<key>`.
      readonly [P in FlatKeys<M>]?: Tensor;
    };

/** The keys of `M` whose metric gives a record: a wrapper's (keys known at run time only) or one of known keys. */
type RecordKeys<M, Kind extends 'wrapper' | 'known'> = {
  [K in keyof M]: MetricResult<M[K]> extends Tensor
    ? never
    : `${string}/${string}` extends keyof MetricResult<M[K]>
      ? Kind extends 'wrapper'
        ? K
        : never
      : Kind extends 'known'
        ? K
        : never;
}[keyof M];

/** The flattened keys of the records of known keys in `M`. */
type FlatKeys<M> = {
  [K in RecordKeys<M, 'known'>]: (keyof MetricResult<M[K]> & string) | `${K & string}_${keyof MetricResult<M[K]> & string}`;
}[RecordKeys<M, 'known'>];

/** The batch type a metric or collection takes: the fields it needs are required. */
export type BatchOf<T> = T extends MetricCollection<infer M>
  ? CollectionBatch<M>
  : T extends Metric<infer _S, infer _R, infer B extends Batch>
    ? B
    : Batch;

type Intersection<U> = (U extends unknown ? (x: U) => void : never) extends (x: infer I) => void ? I : never;

/** What a collection takes: a batch with every field any of its metrics needs. */
export type CollectionBatch<M extends Record<string, AnyMetric>> = Intersection<{ [K in keyof M]: BatchOf<M[K]> }[keyof M]> & Batch;

const NAME = 'MetricCollection';

/**
 * A named group of metrics that take the same batches. Metrics that declare the same state part
 * (the fired-count family `NeuronActivityMetric` / `NeuronFiredCountMetric` /
 * `FeatureDensityMetric`; the sums behind `L1AbsoluteLoss`, `L2ReconstructionLoss` and
 * `SparseAutoencoderLoss`) are grouped by that declaration, and each part is computed from a batch
 * once, whatever the number of metrics that use it.
 *
 * Every change is atomic: `update`, `forward` and `mergeState` apply to every metric or to none.
 * A batch is validated by every metric before any state changes, and each metric's new state is
 * computed before any is applied, so a rejected batch, or a metric whose count would pass 2^53,
 * leaves every metric (state and update count) as it was.
 *
 * @throws {TypeError} when `metrics` is not a non-empty record of sae-metrics metrics.
 * @example
 * ```ts
 * const metrics = new MetricCollection({
 *   l1: new L1AbsoluteLoss(),
 *   dead: new NeuronActivityMetric({ numLearnedFeatures: 3 }),
 * });
 * metrics.update({ learnedActivations: tensor([[1, 0, 1], [0, 0, 0]]) });
 * metrics.compute(); // { l1: tensor(1), dead: tensor(1) }
 * ```
 */
export class MetricCollection<M extends Record<string, AnyMetric> = Record<string, AnyMetric>> {
  /** The metrics, by key. */
  readonly metrics: Readonly<M>;
  /** The metrics in key order, and what a batch needs of them (rebuilt when a definition changes). */
  readonly #list: readonly AnyMetric[];
  #layout: Layout | undefined;

  constructor(metrics: M) {
    if (typeof metrics !== 'object' || metrics === null || Array.isArray(metrics)) {
      throw new TypeError(`${NAME}: metrics must be a record of metrics by name, got ${describeValue(metrics)}`);
    }
    const entries = Object.entries(metrics);
    if (entries.length === 0) throw new TypeError(`${NAME}: metrics must hold at least one metric, got an empty record`);
    for (const [key, metric] of entries) {
      if (!(metric instanceof Metric)) {
        throw new TypeError(`${NAME}: metrics.${key} must be a sae-metrics Metric, got ${describeValue(metric)}`);
      }
    }
    if (new Set(entries.map(([, m]) => m)).size !== entries.length) {
      throw new TypeError(`${NAME}: each metric may appear once; clone() a metric to use it under two keys`);
    }
    this.metrics = Object.freeze({ ...metrics });
    this.#list = Object.freeze(Object.values(this.metrics));
  }

  /** The fields the metrics read and their parts, for the metrics' current definitions. */
  #currentLayout(): Layout {
    const list = this.#list;
    const layout = this.#layout;
    if (layout !== undefined && list.every((m, i) => m.definition === layout.definitions[i])) return layout;
    const definitions = list.map((m) => m.definition);
    return (this.#layout = {
      definitions,
      reads: [...new Set(definitions.flatMap((d) => readsOf(d.parts)))],
      parts: definitions.flatMap((d) => Object.values(d.parts as Readonly<Record<string, StatePart<unknown>>>)),
    });
  }

  /** The metric keys. */
  keys(): string[] {
    return Object.keys(this.metrics);
  }

  /**
   * The compute groups: keys of metrics that share at least one state part, transitively (as
   * torchmetrics' `compute_groups`), in key order.
   */
  get computeGroups(): string[][] {
    const keys = this.keys();
    const parent = keys.map((_, i) => i);
    const find = (i: number): number => (parent[i] === i ? i : (parent[i] = find(parent[i] as number)));
    const owner = new Map<string, number>();
    keys.forEach((key, i) => {
      for (const part of Object.values((this.metrics[key] as AnyMetric).definition.parts)) {
        const j = owner.get(part.id);
        if (j === undefined) owner.set(part.id, i);
        else parent[find(i)] = find(j);
      }
    });
    const groups = new Map<number, string[]>();
    keys.forEach((key, i) => {
      const root = find(i);
      groups.set(root, [...(groups.get(root) ?? []), key]);
    });
    return [...groups.values()];
  }

  /**
   * The batch as it is now, each field that any metric reads read once (see `snapshotBatch` in
   * `sae-metrics/functional`).
   *
   * @internal
   */
  snapshotBatch(batch: Batch): Batch {
    return snapshotBatch(batch, this.#currentLayout().reads);
  }

  /**
   * Snapshots a batch (each field read once), validates it with every metric (so that a rejected
   * batch changes none) and groups the distinct state parts by the number of rows their metrics
   * read (in practice one group). With `againstState` false, only what does not depend on the
   * metrics' states is checked.
   *
   * @throws {InvalidBatchError} when any metric rejects the batch.
   * @internal
   */
  prepareBatch(batch: Batch, againstState = true): BatchPlan {
    if (typeof batch !== 'object' || batch === null) {
      throw batchError(NAME, 'batch', `a batch must be a plain object of tensors, got ${describeValue(batch)}`);
    }
    const layout = this.#currentLayout();
    const b = snapshotBatch(batch, layout.reads);
    const rows = this.#list.map((metric) => metric.validateBatch(b, againstState));
    if (rows.every((n) => n === rows[0])) return [{ rows: rows[0] as number, parts: layout.parts, batch: b }];
    const byRows = new Map<number, StatePart<unknown>[]>();
    this.#list.forEach((metric, i) => {
      const n = rows[i] as number;
      byRows.set(n, [...(byRows.get(n) ?? []), ...partsOf(metric)]);
    });
    return [...byRows].map(([n, parts]) => ({ rows: n, parts, batch: b }));
  }

  /**
   * Folds evaluated partial states, by part id, into every metric or, when any metric refuses
   * (a count past 2^53 - 1), into none; with `withValues`, returns each metric's value on those
   * partials alone (flattened).
   *
   * @throws {StateMergeError} when a metric refuses; no metric is then changed.
   * @internal
   */
  applyPartialsById(byId: ReadonlyMap<string, unknown>, withValues: boolean): CollectionResult<M> | undefined {
    return this.#applyMerged(byId, withValues, false);
  }

  /**
   * {@link applyPartialsById}, each distinct merge of a part done once and its result shared by
   * the metrics whose part held the same value (a compute group). With `owned`, the partials are
   * the executor's fresh ones, which a merge may take the memory of.
   */
  #applyMerged(byId: ReadonlyMap<string, unknown>, withValues: boolean, owned: boolean): CollectionResult<M> | undefined {
    // The values first, while the partials are as the executor made them.
    let values: Record<string, Tensor | Readonly<Record<string, Tensor>>> | undefined;
    if (withValues) {
      values = {};
      for (const [key, metric] of Object.entries(this.metrics)) put(values, key, metric.valueOfPartialsById(byId));
    }
    const merges = new BatchMerges(byId, owned);
    for (const metric of this.#list) metric.expectMerges(merges);
    this.#stageAll((metric) => metric.stageMerges(merges));
    return values === undefined ? undefined : (flatten(values) as CollectionResult<M>);
  }

  /** Stages a change of every metric, then applies them all: every metric changes, or none. */
  #stageAll<V>(stage: (metric: AnyMetric, key: string) => StagedChange<V>): [string, StagedChange<V>][] {
    const staged = Object.entries(this.metrics).map(([key, metric]): [string, StagedChange<V>] => [key, stage(metric, key)]);
    for (const [, change] of staged) change.apply();
    return staged;
  }

  #fold(batch: Batch, withValues: boolean): CollectionResult<M> | undefined {
    const byId = new Map<string, unknown>();
    // Through the default in-thread executor: the operators' shard plan and backend, so their bits.
    for (const { rows, parts, batch: b } of this.prepareBatch(batch)) {
      for (const [id, partial] of defaultExecutor().evaluate(parts, b, rows)) byId.set(id, partial);
    }
    return this.#applyMerged(byId, withValues, true);
  }

  /**
   * Folds a batch into every metric, computing each shared state part once.
   *
   * @throws {InvalidBatchError} when any metric rejects the batch; no metric is then changed.
   * @throws {StateMergeError} when a metric's count would pass 2^53 - 1; no metric is then changed.
   */
  update(batch: CollectionBatch<M>): void {
    this.#fold(batch, false);
  }

  /**
   * Folds a batch into every metric and returns each metric's value on this batch alone.
   *
   * @throws {InvalidBatchError} when any metric rejects the batch; no metric is then changed.
   * @throws {StateMergeError} when a metric's count would pass 2^53 - 1; no metric is then changed.
   */
  forward(batch: CollectionBatch<M>): CollectionResult<M> {
    return this.#fold(batch, true) as CollectionResult<M>;
  }

  /**
   * Merges another collection with the same keys, or a record of states by key (each a metric, a
   * state object or encoded text, as a metric's `mergeState` takes), into every metric, or into
   * none when any state is refused.
   *
   * @throws {StateMergeError} when the keys differ or a metric refuses its state (naming the key
   *   and the field); no metric is then changed.
   * @throws {StateDecodeError} when a state's text cannot be decoded; no metric is then changed.
   * @example
   * ```ts
   * const make = () => new MetricCollection({ l0: new L0NormMetric(), l1: new L1AbsoluteLoss() });
   * const a = make();
   * a.update({ learnedActivations: tensor([[1, 0, 2]]) });
   * const b = make();
   * b.update({ learnedActivations: tensor([[1, 1, 1]]) });
   * a.mergeState(structuredClone(b.state()));
   * a.compute(); // { l0: tensor(2.5), l1: tensor(3) }
   * ```
   */
  mergeState(other: MetricCollection<M> | Readonly<Record<string, AnyMetric | MetricState | string>>): void {
    const incoming: Readonly<Record<string, unknown>> = other instanceof MetricCollection ? other.metrics : other;
    if (!isPlainObject(incoming) && !(other instanceof MetricCollection)) {
      throw mergeError(NAME, `other must be a MetricCollection or a record of states by key, got ${describeValue(other)}`);
    }
    const keys = this.keys();
    const theirs = Object.keys(incoming);
    const extra = theirs.find((k) => !keys.includes(k));
    if (extra !== undefined) throw mergeError(NAME, `${extra} is not a key of this collection (keys: ${keys.join(', ')})`, extra);
    const missing = keys.find((k) => !Object.hasOwn(incoming, k));
    if (missing !== undefined) throw mergeError(NAME, `the incoming states have no ${missing} (keys: ${keys.join(', ')})`, missing);
    this.#stageAll((metric, key) => {
      try {
        return metric.stageMerge(incoming[key] as AnyMetric);
      } catch (error) {
        throw underKey(key, error);
      }
    });
  }

  /** Each metric's state by key (plain data; see a metric's `state()`). */
  state(): Record<keyof M & string, MetricState> {
    const out: Record<string, MetricState> = {};
    for (const [key, metric] of Object.entries(this.metrics)) put(out, key, metric.state() as MetricState);
    return out as Record<keyof M & string, MetricState>;
  }

  /** Each metric's accumulated value (cached per metric). */
  compute(): CollectionResult<M> {
    const values: Record<string, Tensor | Readonly<Record<string, Tensor>>> = {};
    for (const [key, metric] of Object.entries(this.metrics)) put(values, key, metric.compute());
    return flatten(values) as CollectionResult<M>;
  }

  /** Resets every metric. */
  reset(): void {
    for (const metric of Object.values(this.metrics)) metric.reset();
  }

  /** An independent copy of the collection and every metric in it. */
  clone(): MetricCollection<M> {
    const copy: Record<string, AnyMetric> = {};
    for (const [key, metric] of Object.entries(this.metrics)) put(copy, key, metric.clone());
    return new MetricCollection(copy as M);
  }
}

/** What a batch needs of a collection's metrics: the fields they read and their parts. */
interface Layout {
  readonly definitions: readonly MetricDefinition<MetricState<object>, unknown>[];
  readonly reads: readonly string[];
  readonly parts: readonly StatePart<unknown>[];
}

/** A metric's refusal of its incoming state, with the collection key in the message and the field. */
function underKey(key: string, error: unknown): unknown {
  const field = (e: { field: string | undefined }): string => (e.field === undefined ? key : `${key}.${e.field}`);
  if (error instanceof StateMergeError) return new StateMergeError(NAME, `${key}: ${error.message}`, field(error));
  if (error instanceof StateDecodeError) {
    return new StateDecodeError(`${key}: ${error.message.replace(/^decodeState: /, '')}`, { cause: error, field: field(error) });
  }
  return error;
}

/**
 * Flattens record values (a classwise wrapper's) into the top level, as torchmetrics'
 * `MetricCollection` does: when any flattened key would be duplicated (two records sharing a key,
 * or a record key equal to a plain metric's key), every key of every record becomes
 * `<collectionKey>_<key>`; plain values keep their collection key. A key that still clashes after
 * that takes the later value, as a Python dict does.
 */
function flatten(values: Record<string, Tensor | Readonly<Record<string, Tensor>>>): Record<string, Tensor> {
  // Only record values can bring duplicate keys: without any, the values are already flat.
  let records = false;
  for (const key of Object.keys(values)) if (!((values[key] as unknown) instanceof Tensor)) records = true;
  if (!records) return values as Record<string, Tensor>;
  const seen = new Set<string>();
  let duplicates = false;
  for (const [key, value] of Object.entries(values)) {
    for (const k of value instanceof Tensor ? [key] : Object.keys(value)) {
      if (seen.has(k)) duplicates = true;
      seen.add(k);
    }
  }
  const out: Record<string, Tensor> = {};
  for (const [key, value] of Object.entries(values)) {
    if (value instanceof Tensor) put(out, key, value);
    else for (const [inner, v] of Object.entries(value)) put(out, duplicates ? `${key}_${inner}` : inner, v);
  }
  return out;
}

/** `out[key] = value` as an own key, even for a key such as `__proto__` (which assignment takes as the prototype). */
function put<V>(out: Record<string, V>, key: string, value: V): void {
  if (!(key in Object.prototype)) out[key] = value;
  else Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true });
}
