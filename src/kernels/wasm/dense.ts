/**
 * Dense shards without their fired entries. A shard's entries take 8 bytes each in a kernel's
 * WebAssembly memory, which never shrinks, so a dense shard (entries scale with rows × features)
 * would leave every worker holding twice its bytes or more. When the parts ask only for the
 * last-fired rows (deadwindow), a shard with more entries than {@link lastFiredRoom} makes room for
 * (one value in 8 fired, or 2^17 entries) has them found by a scan of its values instead (whatever
 * room a kernel has): the same integers, and room of at most a byte a value, whatever the density.
 * A sparse shard keeps the pass's entries (the scan reads the shard again, in JavaScript).
 *
 * @module
 */
import type { ShardNeeds } from '../types.js';

/** The most fired entries a kernel makes room for when only the last-fired rows are asked for (1 MiB of entries). */
export const LAST_FIRED_ENTRIES = 2 ** 17;

/**
 * The room for fired entries when only the last-fired rows are asked for, for a shard of
 * `elements` values: one entry for 8 values (a byte a value: a quarter of its bytes), at least
 * {@link LAST_FIRED_ENTRIES}.
 */
export function lastFiredRoom(elements: number): number {
  return Math.max(LAST_FIRED_ENTRIES, Math.floor(elements / 8));
}

/** Whether `needs` asks for the per-feature last-fired rows and nothing else made from the entries. */
export function lastFiredOnly(needs: ShardNeeds): boolean {
  const f = needs.features;
  return f !== undefined && needs.positives !== true && f.lastFired === true && f.moments !== true && f.top === undefined && f.histogram === undefined;
}

/**
 * Per (component, feature) the last row of `[start, end)` where the value is `> 0`, counted from
 * `start`, else -1 (`FeatureStats.lastFired`), from `x`, the learned activations' values (row-major,
 * `components × features` a row).
 */
export function lastFiredOf(x: Float32Array, start: number, end: number, components: number, features: number): Float64Array {
  const size = components * features;
  const last = new Float64Array(size).fill(-1);
  for (let r = start; r < end; r++) {
    const o = r * size;
    const row = r - start;
    for (let g = 0; g < size; g++) if ((x[o + g] as number) > 0) last[g] = row;
  }
  return last;
}
