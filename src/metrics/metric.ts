/**
 * The stateful metric class: a torchmetrics-style facade over a pure {@link MetricDefinition}.
 * It holds a state and nothing else; all the math is in `src/functional/`.
 *
 * @module
 */
import { mergeError } from '../errors.js';
import { decodeState, encodeState } from '../encoding.js';
import { copyStateData, readsOf, snapshotBatch } from '../functional/core.js';
import { defaultExecutor } from '../pool/executor.js';
import type { Batch, MetricDefinition, MetricState, StatePart } from '../functional/core.js';
import { BatchMerges } from '../functional/batch-merges.js';

/**
 * Which state parts to evaluate over how many rows of a batch: one entry per row count. `batch` is
 * the batch as it was at hand-over (each field read once): evaluate that, not the caller's object.
 */
export type BatchPlan = readonly {
  readonly rows: number;
  readonly parts: readonly StatePart<unknown>[];
  readonly batch: Batch;
}[];

/**
 * A change to a metric computed but not applied yet: `apply()` applies it and cannot fail, so a
 * collection applies a change to every metric or to none.
 *
 * @internal
 */
export interface StagedChange<V> {
  readonly value: V;
  apply(): void;
}

/**
 * Base class of every metric. Subclasses only choose a definition, and the batch type `B` that
 * names the fields they need (so that a batch without them does not compile).
 *
 * - `update(batch)` folds a batch into the state; `forward(batch)` does the same and returns the
 *   value of that batch alone; `compute()` returns the accumulated value, cached until the state
 *   next changes.
 * - A rejected batch throws before the state changes.
 * - `state()`, `loadState()`, `mergeState()` and `encodeState()` move states between metrics,
 *   threads, processes and machines.
 */
export abstract class Metric<S extends MetricState<object> = MetricState, R = unknown, B extends Batch = Batch> {
  #definition: MetricDefinition<S, R>;
  #state: S;
  #cached: { readonly value: R } | undefined;
  #updateCount = 0;
  #touched = false;
  #warned = false;
  #args: readonly unknown[];

  /**
   * @param definition the pure definition this metric runs.
   * @param args the subclass's constructor arguments, to build a blank copy in {@link clone}.
   */
  protected constructor(definition: MetricDefinition<S, R>, args: readonly unknown[]) {
    this.#definition = definition;
    this.#state = definition.init();
    this.#args = args;
  }

  /** A new metric of the same class and constructor arguments, with the identity state. */
  protected blank(): this {
    return Reflect.construct(this.constructor, this.#args) as this;
  }

  /** The pure definition (`init`, `update`, `merge`, `compute`) this metric runs. */
  get definition(): MetricDefinition<S, R> {
    return this.#definition;
  }

  /** How many times `update` or `forward` ran since creation or the last `reset` (plus merged-in counts). */
  get updateCount(): number {
    return this.#updateCount;
  }

  /** Replaces the definition and constructor arguments (an option changed) and resets the state. */
  protected redefine(definition: MetricDefinition<S, R>, args: readonly unknown[]): void {
    this.#definition = definition;
    this.#args = args;
    this.reset();
  }

  #set(state: S, updates: number): void {
    this.#state = state;
    this.#cached = undefined;
    this.#updateCount += updates;
    this.#touched = true;
  }

  /**
   * Folds a batch into the state. The batch's fields are read once, when it is handed over.
   *
   * @throws {InvalidBatchError} when the batch is rejected; the state is then unchanged.
   */
  update(batch: B): void {
    this.#stageBatch(this.snapshotBatch(batch), false).apply();
  }

  /**
   * Folds a batch into the state and returns the metric's value on this batch alone (torchmetrics'
   * `forward`).
   *
   * @throws {InvalidBatchError} when the batch is rejected; the state is then unchanged.
   */
  forward(batch: B): R {
    const staged = this.#stageBatch(this.snapshotBatch(batch), true);
    staged.apply();
    return staged.value as R;
  }

  /**
   * A snapshot's partial states through the default in-thread executor (the operators' shard plan
   * and backend, so their bits), staged.
   */
  #stageBatch(b: Batch, withValue: boolean): StagedChange<R | undefined> {
    const rows = this.validateBatch(b);
    const byId = defaultExecutor().evaluate(Object.values(this.#definition.parts), b, rows);
    // The value first: the merge may then take the executor's fresh partials' memory.
    const value = withValue ? this.valueOfPartialsById(byId) : undefined;
    const merges = new BatchMerges(byId, true);
    this.expectMerges(merges);
    const staged = this.stageMerges(merges);
    return { value, apply: staged.apply };
  }

  /**
   * The batch as it is now, each field read once (see `snapshotBatch` in `sae-metrics/functional`).
   *
   * @internal
   */
  snapshotBatch(batch: Batch): Batch {
    return snapshotBatch(batch, readsOf(this.#definition.parts));
  }

  /**
   * Snapshots and validates a batch, and says which state parts must be evaluated over how many
   * rows of the snapshot (`plan[i].batch`). With `againstState` false, only what does not depend
   * on the state is checked (the batch will meet a state that is not this one yet).
   *
   * @throws {InvalidBatchError} when the batch is rejected.
   * @internal
   */
  prepareBatch(batch: Batch, againstState = true): BatchPlan {
    const b = this.snapshotBatch(batch);
    return [{ rows: this.validateBatch(b, againstState), parts: Object.values(this.#definition.parts), batch: b }];
  }

  /**
   * Folds evaluated partial states, by part id, into the state (see {@link prepareBatch}); with
   * `withValue`, returns the value of those partials alone.
   *
   * @internal
   */
  applyPartialsById(byId: ReadonlyMap<string, unknown>, withValue: boolean): R | undefined {
    const staged = this.stagePartialsById(byId, withValue);
    staged.apply();
    return staged.value;
  }

  /**
   * {@link applyPartialsById}, computed but not applied.
   *
   * @throws {StateMergeError} when a count would pass 2^53 - 1; nothing is then staged.
   * @internal
   */
  stagePartialsById(byId: ReadonlyMap<string, unknown>, withValue: boolean): StagedChange<R | undefined> {
    return this.stagePartials(this.#byKey(byId), withValue);
  }

  #byKey(byId: ReadonlyMap<string, unknown>): Record<string, unknown> {
    const partials: Record<string, unknown> = {};
    for (const [name, part] of Object.entries(this.#definition.parts)) partials[name] = byId.get(part.id);
    return partials;
  }

  /**
   * The value of a batch's partial states (by part id) alone: `forward`'s value.
   *
   * @internal
   */
  valueOfPartialsById(byId: ReadonlyMap<string, unknown>): R {
    // The partials are this package's own (a kernel's): no check, no fold into the identity.
    return this.#definition.computeParts(this.#byKey(byId));
  }

  /**
   * Declares this metric's part values to a batch's merges (before {@link stageMerges}).
   *
   * @internal
   */
  expectMerges(merges: BatchMerges): void {
    this.#definition.expectMerges(this.#state, merges);
  }

  /**
   * The state with a batch's partials merged in by `merges` (shared with the other metrics of a
   * collection), computed but not applied.
   *
   * @throws {StateMergeError} when a count would pass 2^53 - 1; nothing is then staged.
   * @internal
   */
  stageMerges(merges: BatchMerges): StagedChange<void> {
    const state = this.#definition.foldMerges(this.#state, merges);
    return { value: undefined, apply: () => this.#set(state, 1) };
  }

  /**
   * Checks a batch (a snapshot, see {@link snapshotBatch}) against the options and, unless
   * `againstState` is false, the current state; returns its number of rows.
   *
   * @throws {InvalidBatchError} when the batch is rejected.
   * @internal
   */
  validateBatch(batch: Batch, againstState = true): number {
    return this.#definition.validate(batch, againstState ? this.#state : undefined);
  }

  /**
   * Folds partial part states (computed once per batch by a collection or a worker) into the
   * state; with `withValue`, returns the value of those partials alone.
   *
   * @internal
   */
  applyPartials(partials: Readonly<Record<string, unknown>>, withValue: boolean): R | undefined {
    const staged = this.stagePartials(partials, withValue);
    staged.apply();
    return staged.value;
  }

  /** {@link applyPartials}, computed but not applied. */
  private stagePartials(partials: Readonly<Record<string, unknown>>, withValue: boolean): StagedChange<R | undefined> {
    const d = this.#definition;
    // The partials are this package's own (a kernel's): no check, no fold into the identity.
    const value = withValue ? d.computeParts(partials) : undefined;
    const state = d.fold(this.#state, partials);
    return { value, apply: () => this.#set(state, 1) };
  }

  /**
   * The accumulated value. Cached until the next `update`, `forward`, `mergeState`, `loadState` or
   * `reset`. Called before anything was folded in, it emits a warning once and still returns.
   */
  compute(): R {
    if (this.#cached !== undefined) return this.#cached.value;
    if (!this.#touched && !this.#warned) {
      this.#warned = true;
      process.emitWarning(
        `${this.#definition.metric}: compute() was called before update(); the metric states have not been updated yet`,
        { code: 'SAE_METRICS_COMPUTE_BEFORE_UPDATE' },
      );
    }
    // The state was checked when it came in (loadState, mergeState) or built here.
    const value = this.#definition.computeParts(this.#state.parts as Readonly<Record<string, unknown>>);
    this.#cached = { value };
    return value;
  }

  /** Returns the state to the identity and the update count to 0. */
  reset(): void {
    this.#state = this.#definition.init();
    this.#cached = undefined;
    this.#updateCount = 0;
    this.#touched = false;
  }

  /**
   * Merges another metric of the same class and options, or a state of it (an object from
   * {@link state}, or text from {@link encodeState}), into this one (the incoming values come
   * after this metric's own in ordered states). A state from elsewhere is checked as untrusted
   * input: every field, read once.
   *
   * @throws {StateMergeError} for a different metric or configuration, or a state that is not a
   *   possible state of this metric (naming the field); this metric is then unchanged.
   * @throws {StateDecodeError} when text cannot be decoded; this metric is then unchanged.
   */
  mergeState(other: Metric<S, unknown> | S | string): void {
    this.stageMerge(other).apply();
  }

  /**
   * {@link mergeState}, computed but not applied.
   *
   * @internal
   */
  stageMerge(other: Metric<S, unknown> | S | string): StagedChange<void> {
    if (other instanceof Metric) {
      if (other.#definition.metric !== this.#definition.metric) {
        throw mergeError(this.#definition.metric, `cannot merge a ${other.#definition.metric} into a ${this.#definition.metric} (metric differs)`, 'metric');
      }
      const state = this.#definition.merge(this.#state, other.#state);
      const updates = other.#updateCount;
      return { value: undefined, apply: () => this.#set(state, updates) };
    }
    const state = this.#definition.merge(this.#state, this.#incoming(other, 'the incoming state'));
    return { value: undefined, apply: () => this.#set(state, 0) };
  }

  /** A state from elsewhere as fresh plain data (decoded, or copied with each field read once); not yet checked. */
  #incoming(state: S | string, what: string): S {
    if (typeof state === 'string') return decodeState(state) as S;
    const metric = this.#definition.metric;
    return copyStateData(state, (field, reason) =>
      mergeError(metric, `${field === '' ? what : `${what}.${field}`} ${reason}`, field === '' ? undefined : field),
    ) as S;
  }

  /** A plain-data snapshot of the state (a deep copy: later updates do not change it). */
  state(): S {
    return structuredClone(this.#state);
  }

  /**
   * Replaces the state with `state` (a snapshot from {@link state}, or text from
   * {@link encodeState}), checked as untrusted input. The update count is kept.
   *
   * @throws {StateMergeError} when it is a state of another metric or configuration, or not a
   *   possible state of this metric (naming the field); this metric is then unchanged.
   * @throws {StateDecodeError} when the text cannot be decoded; this metric is then unchanged.
   */
  loadState(state: S | string): void {
    const value = this.#incoming(state, 'state');
    this.#definition.assertState(value);
    this.#set(value, 0);
  }

  /** The state as versioned JSON text (see `decodeState`). Counts and float64 sums survive exactly. */
  encodeState(): string {
    return encodeState(this.#state);
  }

  /** Takes the state, update count and cache of `other`, a metric with the same definition of state. */
  protected adopt(other: Metric<S, unknown>): void {
    this.#definition.assertState(other.#state);
    this.#state = other.#state;
    this.#updateCount = other.#updateCount;
    this.#touched = other.#touched;
    this.#warned = other.#warned;
    this.#cached = undefined;
  }

  /** An independent copy: same options, state and update count. */
  clone(): this {
    const copy = this.blank();
    copy.adopt(this);
    copy.#cached = this.#cached;
    return copy;
  }
}
