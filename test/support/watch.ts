/** A subscriber that records what an operator's output did, for the operator attack tests. */
import type { OperatorFunction, Subject, Subscription } from 'rxjs';
import type { Batch } from '../../src/index.js';
import { bits } from './compare.js';

/** What a subscription saw: its values (as bits), then how it ended, in order. */
export interface Seen {
  readonly events: unknown[];
  readonly ended: Promise<void>;
  readonly subscription: Subscription;
}

/** Subscribes; `onValue` runs after each value is recorded (it may push, or unsubscribe and `end()`). */
export function watch(subject: Subject<Batch>, operator: OperatorFunction<Batch, unknown>, onValue?: (seen: Seen, end: () => void) => void): Seen {
  const events: unknown[] = [];
  let end: () => void = () => undefined;
  const ended = new Promise<void>((resolve) => (end = resolve));
  const seen: { events: unknown[]; ended: Promise<void>; subscription: Subscription | undefined } = { events, ended, subscription: undefined };
  seen.subscription = subject.pipe(operator).subscribe({
    next: (v) => {
      events.push(bits(v));
      onValue?.(seen as Seen, end);
    },
    error: (e: Error) => {
      events.push({ error: e.constructor.name, message: e.message });
      end();
    },
    complete: () => {
      events.push('complete');
      end();
    },
  });
  return seen as Seen;
}
