/**
 * What the four metric operators share (as RxJS's `scan` and `reduce` share `scanInternals`): a
 * fresh copy of the metric per subscription, batches validated on arrival, evaluated in-thread or
 * on a pool through the same shard plan, and folded in arrival order.
 *
 * @module
 */
import { Observable, Subscriber, type OperatorFunction } from 'rxjs';
import { describeValue } from '../../errors.js';
import { typedArrayName, type Batch, type BatchInput } from '../../functional/core.js';
import { Metric, type BatchPlan } from '../../metrics/metric.js';
import { MetricCollection, type AnyMetric, type CollectionResult } from '../../collection.js';
import { inThreadExecutor, type ShardExecutor } from '../../pool/executor.js';
import { MetricPool } from '../../pool/metric-pool.js';
import { DEFAULT_SHARD_ROWS } from '../../pool/plan.js';
import { checkBackendOption, checkGpujsMode, type BackendOption, type GpujsMode } from '../../pool/backend.js';

/** Options every metric operator takes. */
export interface MetricOperatorOptions {
  /** Evaluate shards on this worker pool; without it, in the subscribing thread. */
  readonly pool?: MetricPool;
  /** Rows per shard in-thread (default 1024; with a pool, the pool's `shardRows`). */
  readonly shardRows?: number;
  /** The in-thread kernel (default `'auto'`, chosen as a pool chooses; with a pool, the pool's). */
  readonly backend?: BackendOption;
  /** The gpu.js mode of an in-thread `gpujs` backend. */
  readonly gpujsMode?: GpujsMode;
}

/** A metric or a collection: what an operator evaluates. */
export type MetricTarget = AnyMetric | MetricCollection;

/** The value a target computes. */
export type TargetResult<T> = T extends MetricCollection<infer M>
  ? CollectionResult<M>
  : T extends { compute(): infer R }
    ? R
    : never;

/** The mutable copy an operator works on, one per subscription. */
export interface Runner<R> {
  snapshotBatch(batch: Batch): Batch;
  prepareBatch(batch: Batch, againstState?: boolean): BatchPlan;
  applyPartialsById(byId: ReadonlyMap<string, unknown>, withValue: boolean): R | undefined;
  compute(): R;
  reset(): void;
}

/** What an operator does with each evaluated batch, and on completion. */
export interface Handlers<R, O> {
  batch(runner: Runner<R>, byId: ReadonlyMap<string, unknown>, rows: number, emit: (value: O) => void): void;
  complete?(runner: Runner<R>, emit: (value: O) => void): void;
}

/**
 * The operator's subscriber to its source, chained to the output subscriber as RxJS's own
 * operators chain theirs: when the output is closed (completed, errored, unsubscribed), this
 * subscriber is closed too, so a synchronous source stops being pulled at once.
 */
class SourceSubscriber extends Subscriber<Batch> {
  readonly #observer: { next(batch: Batch): void; error(error: unknown): void; complete(): void };

  constructor(
    destination: Subscriber<unknown>,
    observer: { next(batch: Batch): void; error(error: unknown): void; complete(): void },
  ) {
    super(destination);
    this.#observer = observer;
  }

  protected override _next(batch: Batch): void {
    this.#observer.next(batch);
  }

  protected override _error(error: unknown): void {
    try {
      this.#observer.error(error);
    } finally {
      this.unsubscribe();
    }
  }

  protected override _complete(): void {
    try {
      this.#observer.complete();
    } finally {
      this.unsubscribe();
    }
  }
}

/** Checks the operator's target and options when the operator is created. */
export function checkTarget(operator: string, target: unknown, options: unknown): void {
  if (!(target instanceof Metric) && !(target instanceof MetricCollection)) {
    throw new TypeError(`${operator}: metric must be a sae-metrics Metric or MetricCollection, got ${describeValue(target)}`);
  }
  if (options === undefined) return;
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${operator}: options must be an object, got ${describeValue(options)}`);
  }
  const o = options as Record<string, unknown>;
  if (o.pool !== undefined && !(o.pool instanceof MetricPool)) {
    throw new TypeError(`${operator}: options.pool must be a MetricPool (see createMetricPool), got ${describeValue(o.pool)}`);
  }
  if (o.shardRows !== undefined && (typeof o.shardRows !== 'number' || !Number.isSafeInteger(o.shardRows) || o.shardRows <= 0)) {
    throw new RangeError(`${operator}: options.shardRows must be a positive integer, got ${describeValue(o.shardRows)}`);
  }
  if (o.backend !== undefined) checkBackendOption(operator, o.backend);
  if (o.gpujsMode !== undefined) checkGpujsMode(operator, o.gpujsMode);
  if (o.pool instanceof MetricPool && (o.backend !== undefined || o.gpujsMode !== undefined)) {
    throw new TypeError(`${operator}: options.backend and options.gpujsMode are for the in-thread path; with a pool, set them on the pool`);
  }
  if (o.pool instanceof MetricPool && o.shardRows !== undefined && o.shardRows !== o.pool.shardRows) {
    throw new RangeError(
      `${operator}: options.shardRows (${String(o.shardRows)}) disagrees with the pool's shardRows (${o.pool.shardRows}); with a pool, set shardRows on the pool`,
    );
  }
}

/** A copy of `target` with the identity state (the same options, and nothing shared). */
function blankCopy(target: MetricTarget): MetricTarget {
  const copy = target.clone();
  copy.reset();
  return copy;
}

/**
 * Builds a cold operator: per subscription, a fresh copy of `target` as it was when the operator
 * was built, and fresh handlers (`makeHandlers()`); each source batch is validated on arrival (a
 * batch refused for what it is alone is never dispatched; what depends on the batches before it
 * is checked against the state they leave, at its turn), evaluated (in-thread synchronously, or
 * on the pool with at most `maxInFlight` batches at once), and handed to `handlers.batch` in
 * arrival order. An error (a refused batch, the source's) comes after the values of the batches
 * before it, as in-thread. Unsubscribing cancels this subscription's batches on the pool at once
 * (see `MetricPool`: shards already running finish, unused).
 */
export function metricOperator<R, O>(
  target: MetricTarget,
  options: MetricOperatorOptions | undefined,
  makeHandlers: () => Handlers<R, O>,
): OperatorFunction<BatchInput, O> {
  // The template as it is now: a later change to `target` (an option such as keepBatchDim) is
  // not seen by this operator's subscriptions, however late they come (retry, repeat).
  const template = blankCopy(target);
  // A tensor that is not float32 type-checks as a BatchInput and is refused by validation.
  return (input) => {
    const source = input as Observable<Batch>;
    return new Observable<O>((subscriber) => {
      const runner = blankCopy(template) as unknown as Runner<R>;
      const handlers = makeHandlers();
      let executor: ShardExecutor;
      try {
        executor =
          options?.pool ??
          inThreadExecutor(options?.shardRows ?? DEFAULT_SHARD_ROWS, options?.backend ?? 'auto', options?.gpujsMode);
      } catch (error) {
        subscriber.error(error);
        return;
      }
      const controller = new AbortController();
      const emit = (value: O): void => subscriber.next(value);
      let index = 0;
      let pending = 0;
      let sourceDone = false;
      let failed = false;
      // A failure waits behind the batches handed over before it (see failAfterPending).
      let stopping = false;
      let tail: Promise<void> = Promise.resolve();

      const fail = (error: unknown): void => {
        if (failed) return;
        failed = true;
        controller.abort(error);
        subscriber.error(error);
      };
      // A rejected batch or a source error comes after the values of the batches handed over
      // before it, as in-thread: batches still on the pool finish and emit, then the error.
      /**
       * Checks a batch, handed over while others were on the pool, against the state they left:
       * throws what the in-thread run would have thrown. `held`: its memory as it was at hand-over
       * (see `heldMemory`); the caller may have transferred or resized it since.
       */
      const checkAgainstState = (snapshot: Batch, held: HeldMemory): void => {
        runner.prepareBatch(asHandedOver(snapshot, held));
      };
      // `snapshot`: a batch refused before the batches on the pool were folded in; in-thread it
      // would have been checked against the state they make, which may refuse it otherwise.
      const failAfterPending = (error: unknown, snapshot?: Batch, held?: HeldMemory): void => {
        if (failed || stopping) return;
        if (pending === 0) return fail(error);
        stopping = true;
        inner.unsubscribe(); // take no more batches
        tail = tail
          .then(() => {
            if (snapshot !== undefined) checkAgainstState(snapshot, held as HeldMemory);
            throw error;
          })
          .catch(fail);
      };
      const maybeComplete = (): void => {
        if (failed || !sourceDone || pending > 0) return;
        try {
          handlers.complete?.(runner, emit);
          subscriber.complete();
        } catch (error) {
          fail(error);
        }
      };
      const evaluate = (plan: BatchPlan, batchIndex: number) => {
        // plan[i].batch: the batch as it was at hand-over (each field read once), not the caller's object.
        const results = plan.map(({ rows, parts, batch }) =>
          executor.evaluate(parts, batch, rows, { batchIndex, signal: controller.signal }),
        );
        return results.some((r) => r instanceof Promise)
          ? Promise.all(results).then(merged)
          : merged(results as ReadonlyMap<string, unknown>[]);
      };

      const inner = new SourceSubscriber(subscriber, {
        next(batch) {
          if (failed || stopping || subscriber.closed) return;
          // With batches still on the pool, the state this batch will meet is not there yet: check
          // now only what does not depend on it, and the rest when the batch's turn comes.
          const current = pending === 0;
          let snapshot: Batch | undefined;
          let held: HeldMemory | undefined;
          let plan: BatchPlan;
          let result: ReadonlyMap<string, unknown> | Promise<ReadonlyMap<string, unknown>>;
          try {
            snapshot = runner.snapshotBatch(batch);
            // Not a snapshot: snapshotBatch returns a non-batch as it is, for validation to refuse.
            if (!current) held = snapshot === batch ? new Map() : heldMemory(snapshot);
            plan = runner.prepareBatch(snapshot, current);
            result = evaluate(plan, index++);
          } catch (error) {
            // A non-batch is refused before any check of the state: no check at its turn.
            failAfterPending(error, held === undefined || snapshot === batch ? undefined : snapshot, held);
            return;
          }
          const checked = snapshot;
          const memory = held;
          const rows = Math.max(...plan.map((p) => p.rows));
          if (!(result instanceof Promise) && pending === 0) {
            try {
              handlers.batch(runner, result, rows, emit);
            } catch (error) {
              fail(error);
            }
            return;
          }
          pending++;
          const ready = Promise.resolve(result);
          ready.catch(() => undefined); // handled in order below
          tail = tail.then(async () => {
            if (failed) return;
            if (memory !== undefined) checkAgainstState(checked, memory);
            const byId = await ready;
            if (failed) return;
            handlers.batch(runner, byId, rows, emit);
            pending--;
            maybeComplete();
          });
          tail = tail.catch(fail);
        },
        error: failAfterPending,
        complete() {
          sourceDone = true;
          maybeComplete();
        },
      });
      subscriber.add(() => controller.abort(new DOMException('The subscriber unsubscribed', 'AbortError')));
      source.subscribe(inner);
    });
  };
}

/** The length of each float32 tensor field of a snapshot at hand-over, by field. */
type HeldMemory = ReadonlyMap<string, number>;

/** What a snapshot's checks read of the caller's memory (lengths; never values), as it is now. */
function heldMemory(snapshot: Batch): HeldMemory {
  const held = new Map<string, number>();
  if (typeof snapshot !== 'object' || snapshot === null) return held;
  for (const [key, field] of Object.entries(snapshot)) {
    const data: unknown = typeof field === 'object' && field !== null && 'data' in field ? field.data : undefined;
    if (typedArrayName(data) === 'Float32Array') held.set(key, (data as Float32Array).length);
  }
  return held;
}

/**
 * `snapshot` as its checks saw it at hand-over: a field whose memory the caller has since
 * transferred or resized is checked on zeros of its length then (checks read lengths, not values).
 */
function asHandedOver(snapshot: Batch, held: HeldMemory): Batch {
  let out: Record<string, unknown> | undefined;
  for (const [key, length] of held) {
    const field = snapshot[key] as { readonly data: Float32Array; readonly shape: unknown };
    if (field.data.length === length) continue;
    out ??= Object.assign(Object.create(null) as Record<string, unknown>, snapshot);
    out[key] = Object.freeze({ data: new Float32Array(length), shape: field.shape });
  }
  return out === undefined ? snapshot : (Object.freeze(out) as Batch);
}

function merged(maps: readonly ReadonlyMap<string, unknown>[]): ReadonlyMap<string, unknown> {
  if (maps.length === 1) return maps[0] as ReadonlyMap<string, unknown>;
  const out = new Map<string, unknown>();
  for (const m of maps) for (const [k, v] of m) out.set(k, v);
  return out;
}
