/**
 * The stateful metric class: a torchmetrics-style facade over a pure {@link MetricDefinition}.
 * It holds a state and nothing else; all the math is in `src/functional/`.
 *
 * @module
 */
import { mergeError } from '../errors.js';
import { decodeState, encodeState } from '../encoding.js';
import type { Batch, MetricDefinition, MetricState, StatePart } from '../functional/core.js';

/** Which state parts to evaluate over how many rows of a batch: one entry per row count. */
export type BatchPlan = readonly { readonly rows: number; readonly parts: readonly StatePart<unknown>[] }[];

/**
 * Base class of every metric. Subclasses only choose a definition.
 *
 * - `update(batch)` folds a batch into the state; `forward(batch)` does the same and returns the
 *   value of that batch alone; `compute()` returns the accumulated value, cached until the state
 *   next changes.
 * - A rejected batch throws before the state changes.
 * - `state()`, `loadState()`, `mergeState()` and `encodeState()` move states between metrics,
 *   threads, processes and machines.
 */
export abstract class Metric<S extends MetricState<object> = MetricState, R = unknown> {
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
   * Folds a batch into the state.
   *
   * @throws {InvalidBatchError} when the batch is rejected; the state is then unchanged.
   */
  update(batch: Batch): void {
    this.#set(this.#definition.update(this.#state, batch), 1);
  }

  /**
   * Folds a batch into the state and returns the metric's value on this batch alone (torchmetrics'
   * `forward`).
   *
   * @throws {InvalidBatchError} when the batch is rejected; the state is then unchanged.
   */
  forward(batch: Batch): R {
    const rows = this.validateBatch(batch);
    return this.applyPartials(this.#definition.partials(batch, { start: 0, end: rows }), true) as R;
  }

  /**
   * Validates a batch and says which state parts must be evaluated over how many rows.
   *
   * @throws {InvalidBatchError} when the batch is rejected.
   * @internal
   */
  prepareBatch(batch: Batch): BatchPlan {
    return [{ rows: this.validateBatch(batch), parts: Object.values(this.#definition.parts) }];
  }

  /**
   * Folds evaluated partial states, by part id, into the state (see {@link prepareBatch}); with
   * `withValue`, returns the value of those partials alone.
   *
   * @internal
   */
  applyPartialsById(byId: ReadonlyMap<string, unknown>, withValue: boolean): R | undefined {
    const partials: Record<string, unknown> = {};
    for (const [name, part] of Object.entries(this.#definition.parts)) partials[name] = byId.get(part.id);
    return this.applyPartials(partials, withValue);
  }

  /**
   * Checks a batch against the options and the current state; returns its number of rows.
   *
   * @throws {InvalidBatchError} when the batch is rejected.
   * @internal
   */
  validateBatch(batch: Batch): number {
    return this.#definition.validate(batch, this.#state);
  }

  /**
   * Folds partial part states (computed once per batch by a collection or a worker) into the
   * state; with `withValue`, returns the value of those partials alone.
   *
   * @internal
   */
  applyPartials(partials: Readonly<Record<string, unknown>>, withValue: boolean): R | undefined {
    const d = this.#definition;
    const value = withValue ? d.compute(d.fold(d.init(), partials)) : undefined;
    this.#set(d.fold(this.#state, partials), 1);
    return value;
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
    const value = this.#definition.compute(this.#state);
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
   * Merges another metric of the same class and options, or a state of it, into this one (the
   * incoming values come after this metric's own in ordered states).
   *
   * @throws {StateMergeError} for a different metric or configuration; this metric is then unchanged.
   */
  mergeState(other: Metric<S, unknown> | S): void {
    if (other instanceof Metric) {
      if (other.#definition.metric !== this.#definition.metric) {
        throw mergeError(this.#definition.metric, `cannot merge a ${other.#definition.metric} into a ${this.#definition.metric}`);
      }
      this.#set(this.#definition.merge(this.#state, other.#state), other.#updateCount);
      return;
    }
    this.#set(this.#definition.merge(this.#state, other), 0);
  }

  /** A plain-data snapshot of the state (a deep copy: later updates do not change it). */
  state(): S {
    return structuredClone(this.#state);
  }

  /**
   * Replaces the state with `state` (a snapshot from {@link state}, or text from
   * {@link encodeState}). The update count is kept.
   *
   * @throws {StateMergeError} when it is a state of another metric or configuration.
   * @throws {StateDecodeError} when the text cannot be decoded.
   */
  loadState(state: S | string): void {
    const value: unknown = typeof state === 'string' ? decodeState(state) : state;
    this.#definition.assertState(value);
    this.#set(structuredClone(value), 0);
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
