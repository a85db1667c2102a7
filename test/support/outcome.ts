/** How a subscription ended, for the chaos tests: its values (as bits), and its error or ending. */
import type { Observable } from 'rxjs';
import { bits } from './compare.js';

export interface Outcome {
  readonly values: unknown[];
  readonly error: unknown;
  readonly ending: 'complete' | 'error' | 'unsubscribed';
}

/**
 * Subscribes to `source` and resolves with how it ended; unsubscribes after `unsubscribeAfter` ms
 * if given; rejects when it has not settled within `settleMs` (a hang fails, it does not stall).
 */
export function outcomeOf(source: Observable<unknown>, unsubscribeAfter: number | undefined, settleMs = 20_000): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const values: unknown[] = [];
    const timer = setTimeout(() => reject(new Error(`a subscription did not settle in ${settleMs} ms`)), settleMs);
    const done = (o: Outcome): void => {
      clearTimeout(timer);
      resolve(o);
    };
    const subscription = source.subscribe({
      next: (v) => values.push(bits(v)),
      error: (error: unknown) => done({ values, error, ending: 'error' }),
      complete: () => done({ values, error: undefined, ending: 'complete' }),
    });
    if (unsubscribeAfter !== undefined) {
      setTimeout(() => {
        if (subscription.closed) return;
        subscription.unsubscribe();
        done({ values, error: undefined, ending: 'unsubscribed' });
      }, unsubscribeAfter);
    }
  });
}
