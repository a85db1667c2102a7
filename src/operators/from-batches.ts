import { Observable } from 'rxjs';
import { describeValue } from '../errors.js';
import type { Batch, BatchInput } from '../functional/core.js';
import { MetricPool } from '../pool/metric-pool.js';

/** Options of {@link fromBatches}. */
export interface FromBatchesOptions {
  /** Pull the next batch only when this pool can take it without queueing. */
  readonly pool?: MetricPool;
}

/**
 * A pull-based source of batches: takes the next batch from an iterable or async iterable (for
 * example a generator that reads a file chunk by chunk) only when the pool has a free slot, so a
 * producer faster than the workers is paced by them and holds at most about `maxInFlight + 1`
 * batches in memory. An RxJS source that pushes (`from(array)`, a Subject) cannot be slowed down;
 * the pool still dispatches at most `maxInFlight` batches at once, but batches that arrive faster
 * wait in its queue, each holding a copy of its data: the pool warns once (naming this function)
 * and, past its `maxQueuedBytes`, errors the stream. Without a pool, in-thread evaluation is
 * synchronous and paces the producer.
 *
 * Cold: iteration starts on subscription and stops (calling the iterator's `return`) on
 * unsubscription.
 *
 * @throws {TypeError} at creation when `batches` is not iterable or `options.pool` not a MetricPool.
 * @example
 * ```ts
 * function* chunks() {
 *   for (let i = 0; i < 3; i++) yield { learnedActivations: tensor([[i, 0, 1]]) };
 * }
 * const out = [];
 * fromBatches(chunks()).pipe(accumulateMetric(new L0NormMetric())).subscribe((v) => out.push(v.item()));
 * out; // [1, 1.5, 1.6667]
 * ```
 */
export function fromBatches<B extends BatchInput = Batch>(
  batches: Iterable<B> | AsyncIterable<B>,
  options: FromBatchesOptions = {},
): Observable<B> {
  const asyncIterable = typeof (batches as AsyncIterable<B>)?.[Symbol.asyncIterator] === 'function';
  if (!asyncIterable && typeof (batches as Iterable<B>)?.[Symbol.iterator] !== 'function') {
    throw new TypeError(`fromBatches: batches must be an iterable or async iterable, got ${describeValue(batches)}`);
  }
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`fromBatches: options must be an object, got ${describeValue(options)}`);
  }
  const pool = options.pool;
  if (pool !== undefined && !(pool instanceof MetricPool)) {
    throw new TypeError(`fromBatches: options.pool must be a MetricPool, got ${describeValue(pool)}`);
  }
  return new Observable<B>((subscriber) => {
    if (!asyncIterable && pool === undefined) {
      // In-thread evaluation is synchronous: plain iteration is already paced.
      const iterator = (batches as Iterable<B>)[Symbol.iterator]();
      try {
        for (let r = iterator.next(); !r.done; r = iterator.next()) {
          subscriber.next(r.value);
          if (subscriber.closed) {
            iterator.return?.();
            return;
          }
        }
        subscriber.complete();
      } catch (error) {
        subscriber.error(error);
      }
      return;
    }
    const iterator = asyncIterable
      ? (batches as AsyncIterable<B>)[Symbol.asyncIterator]()
      : (batches as Iterable<B>)[Symbol.iterator]();
    let stopped = false;
    void (async () => {
      try {
        for (;;) {
          if (pool !== undefined) await pool.whenReady();
          if (stopped) return;
          const r = await iterator.next();
          if (stopped) return;
          if (r.done) {
            subscriber.complete();
            return;
          }
          subscriber.next(r.value);
        }
      } catch (error) {
        subscriber.error(error);
      }
    })();
    return () => {
      stopped = true;
      // A generator whose `finally` throws: the subscriber is gone, as on the in-thread path, and
      // `unsubscribe()` must not throw at the caller.
      try {
        void Promise.resolve(iterator.return?.()).catch(() => undefined);
      } catch {
        // nothing to report it to
      }
    };
  });
}
