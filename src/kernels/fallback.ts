/**
 * A kernel that computes only some statistics, completed by another for the rest: how a fast
 * kernel takes a new statistic before it has a fast pass of its own.
 *
 * @module
 */
import { jsFusedKernel } from './js-fused.js';
import type { FusedKernel, ShardNeeds, ShardStats } from './types.js';

/** A statistic a kernel can be asked for. */
export type NeedName = keyof ShardNeeds;

/** `needs` split into those in `supported` and the rest (`undefined` for an empty side). */
export function splitNeeds(
  needs: ShardNeeds,
  supported: ReadonlySet<NeedName>,
): { own: ShardNeeds | undefined; rest: ShardNeeds | undefined } {
  let own: Record<string, unknown> | undefined;
  let rest: Record<string, unknown> | undefined;
  for (const [k, v] of Object.entries(needs)) {
    // A flag, or a request (an object: `features`).
    if (v === undefined || v === false) continue;
    if (supported.has(k as NeedName)) (own ??= {})[k] = v;
    else (rest ??= {})[k] = v;
  }
  return { own: own as ShardNeeds | undefined, rest: rest as ShardNeeds | undefined };
}

/**
 * `kernel` for the statistics in `supported`, `fallback` (the plain JavaScript kernel) for the
 * others; one call each, and `kernel` alone when it covers every need.
 */
export function withFallback(kernel: FusedKernel, supported: ReadonlySet<NeedName>, fallback: FusedKernel = jsFusedKernel): FusedKernel {
  return (batch, rows, needs) => {
    const { own, rest } = splitNeeds(needs, supported);
    if (rest === undefined) return kernel(batch, rows, needs);
    const a: ShardStats = own === undefined ? {} : kernel(batch, rows, own);
    return { ...a, ...fallback(batch, rows, rest) };
  };
}
