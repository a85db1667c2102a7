/**
 * `BatchMerges`, the merges of one batch's partials shared between the metrics of a collection:
 * each distinct merge is done once, values equal in content share it, a merge that may take the
 * partial's memory (`mergeOwned`) runs only where nothing reads the partial afterwards, and a
 * refused merge stays refused. `sameData`, the content test, compares bits.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { BatchMerges, sameData } from '../../src/functional/batch-merges.js';
import { firedCountPart } from '../../src/functional/parts/fired-count.js';
import type { StatePart } from '../../src/functional/core.js';

interface Counts {
  readonly fired: Float64Array;
  readonly vectors: number;
}

/** A fired-count part (4 features) whose merges are counted. */
function countedPart(id = 'p') {
  const real = firedCountPart(4, undefined);
  const calls = { merge: 0, owned: 0 };
  const part: StatePart<Counts> = {
    ...real,
    id,
    merge: (a, b) => (calls.merge++, real.merge(a, b)),
    mergeOwned: (a, b) => (calls.owned++, (real.mergeOwned as NonNullable<typeof real.mergeOwned>)(a, b)),
  };
  return { part: part as StatePart<unknown>, calls };
}

const counts = (values: number[], vectors: number): Counts => ({ fired: Float64Array.from(values), vectors });

describe('BatchMerges', () => {
  it('merges a value shared by several states once, and gives each the same merged value', () => {
    const { part, calls } = countedPart();
    const partial = counts([1, 0, 1, 1], 2);
    const merges = new BatchMerges(new Map([['p', partial]]), false);
    const state = counts([3, 1, 0, 2], 5);
    merges.expect(part, state);
    merges.expect(part, state);
    const a = merges.merge(part, state);
    const b = merges.merge(part, state);
    expect(a).toBe(b);
    expect(calls).toEqual({ merge: 1, owned: 0 });
    expect(Array.from((a as Counts).fired)).toEqual([4, 1, 1, 3]);
    expect((a as Counts).vectors).toBe(7);
    expect(Array.from(partial.fired)).toEqual([1, 0, 1, 1]);
  });

  it('values equal in content (a state and its reset twin) share one merge; different ones are merged apart', () => {
    const { part, calls } = countedPart();
    const merges = new BatchMerges(new Map([['p', counts([1, 1, 0, 0], 1)]]), true);
    const zero = counts([0, 0, 0, 0], 0);
    const twin = counts([0, 0, 0, 0], 0);
    const other = counts([2, 0, 0, 0], 2);
    for (const v of [zero, twin, other]) merges.expect(part, v);
    const [z, t, o] = [zero, twin, other].map((v) => merges.merge(part, v) as Counts);
    expect(z).toBe(t);
    expect(o).not.toBe(z);
    expect(Array.from((z as Counts).fired)).toEqual([1, 1, 0, 0]);
    expect(Array.from((o as Counts).fired)).toEqual([3, 1, 0, 0]);
    // Two distinct values read the partial: neither may take its memory.
    expect(calls).toEqual({ merge: 2, owned: 0 });
  });

  it('takes the partial\'s memory only when owned and one distinct value reads it', () => {
    const { part, calls } = countedPart();
    const partial = counts([1, 0, 0, 1], 1);
    const merges = new BatchMerges(new Map([['p', partial]]), true);
    const state = counts([1, 1, 1, 1], 3);
    merges.expect(part, state);
    const merged = merges.merge(part, state) as Counts;
    expect(calls).toEqual({ merge: 0, owned: 1 });
    expect(merged.fired).toBe(partial.fired);
    expect(Array.from(merged.fired)).toEqual([2, 1, 1, 2]);
    expect(Array.from(state.fired)).toEqual([1, 1, 1, 1]);
  });

  it('a refused merge is refused again without merging twice (an owned merge may have spent its partial)', () => {
    const { part, calls } = countedPart();
    const merges = new BatchMerges(new Map([['p', counts([1, 0, 0, 0], 1)]]), true);
    const state = counts([0, 0, 0, 0], 2 ** 53 - 1);
    merges.expect(part, state);
    const first = (() => {
      try {
        merges.merge(part, state);
      } catch (error) {
        return error;
      }
      return undefined;
    })();
    expect(first).toBeInstanceOf(RangeError);
    expect(() => merges.merge(part, state)).toThrow(first as Error);
    expect(calls).toEqual({ merge: 0, owned: 1 });
  });

  it('refuses a value that was not declared (the partial could already be spent)', () => {
    const { part } = countedPart();
    const merges = new BatchMerges(new Map([['p', counts([1, 0, 0, 0], 1)]]), true);
    merges.expect(part, counts([0, 0, 0, 0], 0));
    expect(() => merges.merge(part, counts([5, 0, 0, 0], 5))).toThrow(/BatchMerges: a value of p was not declared/);
    const { part: q } = countedPart('q');
    expect(() => merges.merge(q, counts([0, 0, 0, 0], 0))).toThrow(/not declared/);
  });

  it('gives every state what part.merge gives it alone, for random groups of equal and different states', () => {
    const value = fc.record({ fired: fc.array(fc.nat(20), { minLength: 4, maxLength: 4 }), vectors: fc.integer({ min: 20, max: 40 }) });
    fc.assert(
      fc.property(fc.array(fc.nat(3), { minLength: 1, maxLength: 6 }), fc.array(value, { minLength: 4, maxLength: 4 }), value, fc.boolean(), (picks, pool, p, owned) => {
        const { part } = countedPart();
        // Fresh objects each: equal content, different identity, where two picks are equal.
        const states = picks.map((i) => counts((pool[i] as { fired: number[] }).fired, (pool[i] as { vectors: number }).vectors));
        const partial = counts(p.fired, p.vectors);
        const want = states.map((s) => part.merge(s, counts(p.fired, p.vectors)) as Counts);
        const merges = new BatchMerges(new Map([['p', partial]]), owned);
        for (const s of states) merges.expect(part, s);
        states.forEach((s, i) => {
          const got = merges.merge(part, s) as Counts;
          expect(Array.from(got.fired)).toEqual(Array.from((want[i] as Counts).fired));
          expect(got.vectors).toBe((want[i] as Counts).vectors);
        });
      }),
      { numRuns: 300, seed: 12 },
    );
  });
});

describe('sameData', () => {
  it('compares typed arrays bit for bit, of one type', () => {
    expect(sameData(Float64Array.of(1, 2), Float64Array.of(1, 2))).toBe(true);
    expect(sameData(Float64Array.of(0), Float64Array.of(-0))).toBe(false);
    expect(sameData(Float64Array.of(NaN), Float64Array.of(NaN))).toBe(true);
    expect(sameData(Float64Array.of(1, 2), Float64Array.of(1, 3))).toBe(false);
    expect(sameData(Float64Array.of(1, 2), Float64Array.of(1))).toBe(false);
    expect(sameData(Float64Array.of(1), Float32Array.of(1))).toBe(false);
    expect(sameData(new Float64Array(new ArrayBuffer(24), 8, 2), Float64Array.of(0, 0))).toBe(true);
    expect(sameData(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 3))).toBe(true);
    expect(sameData(Uint8Array.of(1, 2, 3), Uint8Array.of(1, 2, 4))).toBe(false);
  });

  it('compares numbers with Object.is, and arrays and plain objects field by field', () => {
    expect(sameData(0, -0)).toBe(false);
    expect(sameData(NaN, NaN)).toBe(true);
    expect(sameData({ a: [1, Float64Array.of(2)], b: null }, { a: [1, Float64Array.of(2)], b: null })).toBe(true);
    expect(sameData({ a: [1, Float64Array.of(2)] }, { a: [1, Float64Array.of(3)] })).toBe(false);
    expect(sameData({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(sameData({ a: 1, b: undefined }, { a: 1, c: undefined })).toBe(false);
    expect(sameData([1, 2], [1, 2, 3])).toBe(false);
    expect(sameData([1], { 0: 1, length: 1 })).toBe(false);
    expect(sameData({ chunks: [], componentAxis: null }, { chunks: [], componentAxis: null })).toBe(true);
    expect(sameData({ componentAxis: true }, { componentAxis: false })).toBe(false);
    expect(sameData(Object.create(null), {})).toBe(false);
  });
});
