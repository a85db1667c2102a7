/**
 * One batch's partial states merged into the states of several metrics, each distinct merge done
 * once: metrics whose part holds the same value (the fired counts of `NeuronActivityMetric` and
 * `FeatureDensityMetric` in a collection) get the same merged value, as torchmetrics' compute
 * groups share one state.
 *
 * @module
 */
import type { StatePart } from './core.js';
import { keepAlive, typedArrayName } from './core.js';

interface Group {
  /** The distinct values of the part (by identity, or equal content) that take the partial. */
  readonly values: unknown[];
  /** Values equal in content to one of `values`, each mapped to it (made when one comes). */
  aliases: Map<unknown, unknown> | undefined;
  /** The merged value of `values[i]`, once computed. */
  readonly merged: unknown[];
  /** The error of a merge that failed (an owned merge may have spent its partial): thrown again. */
  readonly failed: unknown[];
}

/**
 * The merges of one batch's partial states (by part id) into states. Every value that will take
 * a partial is declared with {@link expect} first; then {@link merge} gives each its merged value,
 * computing each distinct merge once. Values equal in content (a state and its reset twin) share
 * one merge from then on, so the metrics of a group keep one state object between them.
 *
 * With `owned`, the partials are fresh and used for nothing else: a part's `mergeOwned` may then
 * build the merged value in the partial's memory, when exactly one distinct value takes it (so
 * nothing reads the partial afterwards).
 *
 * @internal
 */
export class BatchMerges {
  readonly #partials: ReadonlyMap<string, unknown>;
  readonly #owned: boolean;
  readonly #groups = new Map<string, Group>();

  constructor(partials: ReadonlyMap<string, unknown>, owned: boolean) {
    this.#partials = partials;
    this.#owned = owned;
  }

  /** Declares that `value`, a state's value of `part`, will take this batch's partial of `part`. */
  expect(part: StatePart<unknown>, value: unknown): void {
    let group = this.#groups.get(part.id);
    if (group === undefined) {
      group = { values: [value], aliases: undefined, merged: [], failed: [] };
      this.#groups.set(part.id, group);
      return;
    }
    if (group.values.includes(value) || group.aliases?.has(value)) return;
    for (const v of group.values) {
      if (sameData(v, value)) {
        (group.aliases ??= new Map()).set(value, v);
        return;
      }
    }
    group.values.push(value);
  }

  /**
   * `part.merge(value, partial)`: the same value for every equal `value` declared by
   * {@link expect}.
   *
   * @throws what `part.merge` throws.
   */
  merge(part: StatePart<unknown>, value: unknown): unknown {
    const partial = this.#partials.get(part.id);
    const group = this.#groups.get(part.id);
    const own = group?.aliases?.get(value) ?? value;
    const i = group === undefined ? -1 : group.values.indexOf(own);
    // Undeclared, the partial could already have been merged into its own memory.
    if (group === undefined || i === -1) throw new Error(`BatchMerges: a value of ${part.id} was not declared with expect()`);
    if (i in group.merged) return group.merged[i];
    if (i in group.failed) throw group.failed[i];
    try {
      const owned = this.#owned && group.values.length === 1 && part.mergeOwned !== undefined;
      return (group.merged[i] = owned ? (part.mergeOwned as (a: unknown, b: unknown) => unknown)(own, partial) : part.merge(own, partial));
    } catch (error) {
      group.failed[i] = error;
      throw error;
    }
  }
}

/**
 * Whether two values of plain state data are the same bits: numbers by `Object.is`, typed arrays
 * of one type element by element (bitwise, so -0 and 0 differ), arrays and plain objects field
 * by field. Anything else only when identical.
 */
export function sameData(a: unknown, b: unknown): boolean {
  if (Object.is(a, b)) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  const typed = typedArrayName(a);
  if (typed !== undefined) {
    if (typed !== typedArrayName(b)) return false;
    const x = a as Float64Array;
    const y = b as Float64Array;
    if (x.byteLength !== y.byteLength) return false;
    // Bytes as 32-bit words where they are aligned (every Float64Array is), else bytes.
    const word = x.byteOffset % 4 === 0 && y.byteOffset % 4 === 0 && x.byteLength % 4 === 0;
    const u = word ? new Uint32Array(x.buffer, x.byteOffset, x.byteLength / 4) : new Uint8Array(x.buffer, x.byteOffset, x.byteLength);
    const v = word ? new Uint32Array(y.buffer, y.byteOffset, y.byteLength / 4) : new Uint8Array(y.buffer, y.byteOffset, y.byteLength);
    for (let i = 0; i < u.length; i++) if (u[i] !== v[i]) return false;
    return true;
  }
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!sameData(a[i], b[i])) return false;
    return true;
  }
  if (Object.getPrototypeOf(a) !== Object.getPrototypeOf(b)) return false;
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const k of keys) {
    if (!Object.hasOwn(b, k) || !sameData((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k])) return false;
  }
  return true;
}

// An instance with a group kept alive, for their hidden classes (see `keepAlive`).
keepAlive(new BatchMerges(new Map([['', 0]]), false)).expect({ id: '' } as StatePart<unknown>, {});
