/**
 * TopActivations' per-shard selection (`topOfShard`, and each of its three ways: entries bucketed
 * by value before insertion, insertion in arrival order, and feature by feature from the entries
 * grouped by feature, which it takes where another part grouped them) against a plain reference: per feature, all its entries sorted by value descending then row
 * ascending, the first k kept. Random fired entries (fast-check) with ties everywhere: values from
 * a small set, among them values that share a bucket (1 and the next float32 up), values a bucket
 * apart, the smallest subnormal, the largest float32 and Infinity; any k, with and without a
 * component axis, values stored at an offset in a larger buffer. Compared bit for bit, and through
 * the part's `fromStats`.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { positivesOf, type FiredShard } from '../support/fired-entries.js';
import { topByBuckets, topByFeature, topInArrivalOrder, topOfShard } from '../../src/functional/parts/top-of-shard.js';
import { firedByFeature } from '../../src/functional/parts/fired-by-feature.js';
import { topActivationsPart, type TopActivationsState } from '../../src/functional/parts/top-activations.js';
import type { Batch } from '../../src/functional/index.js';

const f32 = Math.fround;
/** Fired values: ties are likely; 1 and 1 + 2^-23 share a bucket, 1 + 2^-20 is the next bucket. */
const POOL = [1, 1, 1 + 2 ** -23, 1 + 2 ** -20, 0.5, 2, 2, 3, 1e-45, 3.4028234663852886e38, Infinity].map(f32);

interface Shard extends FiredShard {
  readonly k: number;
}

/** Random shards of up to `rows` rows, `features` features, `components` components, k up to `k`, density from `density`. */
function shards(max: { features: number; components: number; rows: [number, number]; k: [number, number]; density: number }): fc.Arbitrary<Shard> {
  return fc
    .record({
      features: fc.integer({ min: 1, max: max.features }),
      components: fc.integer({ min: 1, max: max.components }),
      rows: fc.integer({ min: max.rows[0], max: max.rows[1] }),
      k: fc.integer({ min: max.k[0], max: max.k[1] }),
      density: fc.double({ min: max.density, max: 1, noNaN: true }),
      pad: fc.integer({ min: 0, max: 3 }),
    })
    .chain((s) =>
      fc
        .array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), fc.constantFrom(...POOL)), {
          minLength: s.rows * s.components * s.features,
          maxLength: s.rows * s.components * s.features,
        })
        .map((draws) => ({ ...s, cells: draws.map(([u, x]) => (u < s.density ? x : undefined)) })),
    );
}

const shardArb = shards({ features: 9, components: 3, rows: [0, 40], k: [1, 12], density: 0.05 });

/** Per feature `[component, feature]`: every entry, sorted (value descending, row ascending), the first k. */
function reference(s: Shard): { counts: number[]; values: number[]; rows: number[] } {
  const out = { counts: [] as number[], values: [] as number[], rows: [] as number[] };
  for (let c = 0; c < s.components; c++) {
    for (let f = 0; f < s.features; f++) {
      const entries: [number, number][] = [];
      for (let r = 0; r < s.rows; r++) {
        const x = s.cells[(r * s.components + c) * s.features + f];
        if (x !== undefined) entries.push([x, r]);
      }
      entries.sort((a, b) => (a[0] > b[0] ? -1 : a[0] < b[0] ? 1 : a[1] - b[1]));
      const kept = entries.slice(0, s.k);
      out.counts.push(kept.length);
      for (const [x, r] of kept) {
        out.values.push(x);
        out.rows.push(r);
      }
    }
  }
  return out;
}

const bitsOf = (xs: ArrayLike<number>): string[] => Array.from(xs, (x) => (Object.is(x, -0) ? '-0' : String(x)));

describe('topOfShard', () => {
  it('keeps, per feature, the same entries in the same order as sorting all of them (value descending, ties to the lower row)', () => {
    fc.assert(
      fc.property(shardArb, (s) => {
        const want = reference(s);
        // topOfShard with the entries grouped by feature already (by another part of the shard) takes them.
        const grouped = (p: ReturnType<typeof positivesOf>, f: number, c: number, k: number) => (firedByFeature(p, c, f), topOfShard(p, f, c, k));
        for (const top of [topOfShard, topByBuckets, topInArrivalOrder, topByFeature, grouped]) {
          const got = top(positivesOf(s), s.features, s.components, s.k);
          expect(bitsOf(got.counts), top.name).toEqual(bitsOf(want.counts));
          expect(bitsOf(got.values), top.name).toEqual(bitsOf(want.values));
          expect(bitsOf(got.rows), top.name).toEqual(bitsOf(want.rows));
          expect(got.values).toBeInstanceOf(Float32Array);
          expect(got.rows).toBeInstanceOf(Float64Array);
        }
      }),
      { numRuns: 400, seed: 1301 },
    );
  });

  it('keeps the same entries at k past 64 with the entries grouped already (there it takes the buckets, not the grouping)', () => {
    const big = shards({ features: 3, components: 2, rows: [60, 300], k: [60, 320], density: 0.3 });
    fc.assert(
      fc.property(big, (s) => {
        const want = reference(s);
        const p = positivesOf(s);
        firedByFeature(p, s.components, s.features);
        const got = topOfShard(p, s.features, s.components, s.k);
        expect(bitsOf(got.counts)).toEqual(bitsOf(want.counts));
        expect(bitsOf(got.values)).toEqual(bitsOf(want.values));
        expect(bitsOf(got.rows)).toEqual(bitsOf(want.rows));
      }),
      { numRuns: 60, seed: 1303 },
    );
  });

  it("gives the part's partial state from the shard's positives, rows relative to the shard's first", () => {
    fc.assert(
      fc.property(shardArb, fc.integer({ min: 0, max: 5 }), (s, first) => {
        const want = reference(s);
        const part = topActivationsPart(s.features, s.components === 1 ? undefined : s.components, s.k);
        const batch = { firstVectorIndex: 7 } as unknown as Batch;
        const state = part.fromStats?.({ positives: positivesOf(s) }, { start: first, end: first + s.rows }, batch) as TopActivationsState;
        expect(state.vectors).toBe(s.rows);
        expect(state.start).toBe(7 + first);
        expect(bitsOf(state.counts)).toEqual(bitsOf(want.counts));
        expect(bitsOf(state.values)).toEqual(bitsOf(want.values));
        expect(bitsOf(state.indices)).toEqual(bitsOf(want.rows));
        expect(part.invalid?.({ vectors: state.vectors, counts: state.counts, values: state.values, indices: state.indices })).toBeUndefined();
      }),
      { numRuns: 150, seed: 1302 },
    );
  });

  it('keeps the first of many equal values by row, across a bucket boundary and past k', () => {
    // Feature 0: row r holds 1 (rows 0..5), then rows 6..9 hold 1 + 2^-20 (the next bucket up) and 1 + 2^-23 (the same bucket).
    const s: Shard = {
      features: 1,
      components: 1,
      rows: 10,
      k: 4,
      pad: 1,
      cells: [1, 1, 1, 1, 1, 1, 1 + 2 ** -20, 1 + 2 ** -23, 1 + 2 ** -20, 1 + 2 ** -23].map(f32),
    };
    for (const top of [topByBuckets, topInArrivalOrder, topByFeature]) {
      expect(Array.from(top(positivesOf(s), 1, 1, 4).rows), top.name).toEqual([6, 8, 7, 9]);
      expect(Array.from(top(positivesOf(s), 1, 1, 6).rows), top.name).toEqual([6, 8, 7, 9, 0, 1]);
    }
  });
});
