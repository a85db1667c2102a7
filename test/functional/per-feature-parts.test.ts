/**
 * The per-feature parts made from a shard's fired entries grouped by feature
 * (`fired-by-feature.ts`), against walks over the entries in arrival order written here:
 *
 * - the grouping: each `(component, feature)`'s entries, in row order, with their float32 bits;
 * - the activation moments: the same bits as the two-pass walk over the vectors in order (sums
 *   of values over forty decades, so that any other order of addition rounds differently);
 * - the histogram's sparse partial (the cells a shard touched): its counts, every merge of sparse
 *   and dense values (owned or not) equal to adding dense counts, never changing what it must not,
 *   exact (a sum past 2^53 - 1 refused), a state always dense, and a batch's value (`forward`)
 *   the same as the state's;
 * - the top activations feature by feature (the test of `topOfShard` covers it against a sort).
 */
import { describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { positivesOf, type FiredShard } from '../support/fired-entries.js';
import { encodeState, FeatureActivationHistogram, StateMergeError, tensor } from '../../src/index.js';
import { firedByFeature } from '../../src/functional/parts/fired-by-feature.js';
import { activationMomentsPart, type ActivationMomentsState } from '../../src/functional/parts/activation-moments.js';
import {
  activationHistogramPart,
  denseHistogram,
  histogramEdges,
  isSparseHistogram,
  slotOf,
  type ActivationHistogramState,
  type SparseHistogram,
} from '../../src/functional/parts/activation-histogram.js';
import type { Batch } from '../../src/functional/index.js';
import { thrown } from '../support/compare.js';

const f32 = Math.fround;

type Shard = FiredShard;

/** Fired values over forty decades (so that sums depend on their order), ties, subnormals, the largest float32 and Infinity. */
const value = fc.oneof(
  fc.integer({ min: -20, max: 20 }).chain((e) => fc.double({ min: 1, max: 10, noNaN: true }).map((m) => f32(m * 10 ** e))),
  fc.constantFrom(1, 1, 2, 1e-45, 1e-40, 3.4028234663852886e38, Infinity).map(f32),
);

const shardArb: fc.Arbitrary<Shard> = fc
  .record({
    features: fc.integer({ min: 1, max: 9 }),
    components: fc.integer({ min: 1, max: 3 }),
    rows: fc.integer({ min: 0, max: 40 }),
    density: fc.double({ min: 0.05, max: 1, noNaN: true }),
    pad: fc.integer({ min: 0, max: 3 }),
  })
  .chain((s) =>
    fc
      .array(fc.tuple(fc.double({ min: 0, max: 1, noNaN: true }), value), {
        minLength: s.rows * s.components * s.features,
        maxLength: s.rows * s.components * s.features,
      })
      .map((draws) => ({ ...s, cells: draws.map(([u, x]) => (u < s.density && x > 0 ? x : undefined)) })),
  );


/** Per `g = component * features + feature`, its `[row, value]` entries in row order. */
function entriesByFeature(s: Shard): [number, number][][] {
  const out: [number, number][][] = Array.from({ length: s.components * s.features }, () => []);
  for (let r = 0; r < s.rows; r++) {
    for (let c = 0; c < s.components; c++) {
      for (let f = 0; f < s.features; f++) {
        const x = s.cells[(r * s.components + c) * s.features + f];
        if (x !== undefined) (out[c * s.features + f] as [number, number][]).push([r, x]);
      }
    }
  }
  return out;
}

/** The moments by a walk over the vectors in order: sums and maxima, then squared deviations. */
function walkMoments(s: Shard): ActivationMomentsState {
  const size = s.components * s.features;
  const count = new Float64Array(size);
  const mean = new Float64Array(size);
  const m2 = new Float64Array(size);
  const max = new Float64Array(size);
  const each = (visit: (g: number, x: number) => void): void => {
    for (let v = 0; v < s.rows * s.components; v++) {
      for (let f = 0; f < s.features; f++) {
        const x = s.cells[v * s.features + f];
        if (x !== undefined) visit((v % s.components) * s.features + f, x);
      }
    }
  };
  each((g, x) => {
    count[g] = (count[g] as number) + 1;
    mean[g] = (mean[g] as number) + x;
    max[g] = Math.max(max[g] as number, x);
  });
  for (let g = 0; g < size; g++) if ((count[g] as number) > 0) mean[g] = (mean[g] as number) / (count[g] as number);
  each((g, x) => {
    m2[g] = (m2[g] as number) + (x - (mean[g] as number)) ** 2;
  });
  return { count, mean, m2, max };
}

const hex = (a: Float64Array | Float32Array | Uint32Array | Int32Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('hex');

const BINS = { lowLog10: -4, highLog10: 4, binsPerDecade: 10 };
const EDGES = histogramEdges(BINS);
const SLOTS = EDGES.length + 1;

/** The dense histogram of a shard, each entry binned by `slotOf`. */
function denseOf(s: Shard): Float64Array {
  const counts = new Float64Array(s.components * s.features * SLOTS);
  entriesByFeature(s).forEach((entries, g) => {
    for (const [, x] of entries) {
      const at = g * SLOTS + slotOf(EDGES, x);
      counts[at] = (counts[at] as number) + 1;
    }
  });
  return counts;
}

const shardOf = (s: Shard): { rows: { start: number; end: number }; batch: Batch } => ({ rows: { start: 0, end: s.rows }, batch: {} as Batch });

describe('fired entries grouped by feature', () => {
  it("lists each feature's entries in row order with their bits, whatever the components and the values' offset", () => {
    fc.assert(
      fc.property(shardArb, (s) => {
        const p = positivesOf(s);
        const got = firedByFeature(p, s.components, s.features);
        const want = entriesByFeature(s);
        expect(got.starts.length).toBe(want.length + 1);
        expect(got.starts[0]).toBe(0);
        want.forEach((entries, g) => {
          const from = got.starts[g] as number;
          expect((got.starts[g + 1] as number) - from).toBe(entries.length);
          entries.forEach(([r, x], i) => {
            expect(got.rows[from + i]).toBe(r);
            expect(got.bits[from + i]).toBe(new Int32Array(new Float32Array([x]).buffer)[0]);
            expect(got.values[from + i]).toBe(x);
          });
        });
        // Built once per positives object: the same grouping again.
        expect(firedByFeature(p, s.components, s.features)).toBe(got);
      }),
      { numRuns: 300, seed: 1310 },
    );
  });
});

describe('activation moments from the grouped entries', () => {
  it('are the same bits as the two-pass walk over the vectors in order', () => {
    fc.assert(
      fc.property(shardArb, (s) => {
        const part = activationMomentsPart(s.features, s.components === 1 ? undefined : s.components);
        const { rows, batch } = shardOf(s);
        const got = part.fromStats?.({ positives: positivesOf(s) }, rows, batch) as ActivationMomentsState;
        const want = walkMoments(s);
        for (const k of ['count', 'mean', 'm2', 'max'] as const) expect(hex(got[k]), k).toBe(hex(want[k]));
      }),
      { numRuns: 400, seed: 1311 },
    );
  });
});

describe("the histogram's sparse partial", () => {
  const partOf = (s: Shard) => activationHistogramPart(s.features, s.components === 1 ? undefined : s.components, BINS);
  const sparseOf = (s: Shard): SparseHistogram => {
    const { rows, batch } = shardOf(s);
    return partOf(s).fromStats?.({ positives: positivesOf(s) }, rows, batch) as unknown as SparseHistogram;
  };

  it("holds each touched cell once, ascending, with the count of the shard's entries binned there", () => {
    fc.assert(
      fc.property(shardArb, (s) => {
        const sparse = sparseOf(s);
        expect(isSparseHistogram(sparse)).toBe(true);
        const want = denseOf(s);
        for (const { cells, cellCounts } of sparse.shards) {
          for (let i = 0; i < cells.length; i++) {
            if (i > 0) expect(cells[i] as number).toBeGreaterThan(cells[i - 1] as number);
            expect(cellCounts[i]).toBe(want[cells[i] as number]);
            expect(cellCounts[i] as number).toBeGreaterThan(0);
          }
        }
        expect(hex(denseHistogram(sparse as unknown as ActivationHistogramState, want.length))).toBe(hex(want));
      }),
      { numRuns: 300, seed: 1312 },
    );
  });

  it('merges with sparse and dense values, owned or not, into the sum of the dense counts, changing neither input it must keep', () => {
    const two = shardArb.chain((s) => shardArb.map((t) => [s, { ...t, features: s.features, components: s.components, cells: cellsFor(s, t) }] as const));
    fc.assert(
      fc.property(two, ([s, t]) => {
        const part = partOf(s);
        const size = s.components * s.features * SLOTS;
        const want = denseOf(s).map((x, i) => x + (denseOf(t)[i] as number));
        const forms = (u: Shard): [string, () => ActivationHistogramState][] => [
          ['sparse', () => sparseOf(u) as unknown as ActivationHistogramState],
          ['dense', () => ({ counts: denseOf(u) })],
        ];
        for (const [na, a] of forms(s)) {
          for (const [nb, b] of forms(t)) {
            for (const owned of [false, true]) {
              const x = a();
              const y = b();
              const before = [hex(denseHistogram(x, size)), hex(denseHistogram(y, size))];
              const merged = (owned ? part.mergeOwned : part.merge)?.(x, y) as ActivationHistogramState;
              const what = `${na} + ${nb}${owned ? ', owned' : ''}`;
              expect(hex(denseHistogram(merged, size)), what).toBe(hex(want));
              expect(isSparseHistogram(merged), what).toBe(na === 'sparse' && nb === 'sparse');
              // The receiving value never changes; the incoming one only when owned.
              expect(hex(denseHistogram(x, size)), what).toBe(before[0]);
              if (!owned) expect(hex(denseHistogram(y, size)), what).toBe(before[1]);
            }
          }
        }
        // The identity is dense: a state folded from sparse partials is dense.
        const folded = part.merge(part.merge(part.init(), sparseOf(s) as unknown as ActivationHistogramState), sparseOf(t) as unknown as ActivationHistogramState);
        expect(isSparseHistogram(folded)).toBe(false);
        expect(hex(folded.counts)).toBe(hex(want));
      }),
      { numRuns: 100, seed: 1313 },
    );
    function cellsFor(s: Shard, t: Shard): (number | undefined)[] {
      const n = t.rows * s.components * s.features;
      return Array.from({ length: n }, (_, i) => t.cells[i % Math.max(1, t.cells.length)]);
    }
  }, 60_000);

  it('refuses a sum past 2^53 - 1 with a RangeError, in every form, leaving the inputs as they were', () => {
    const s: Shard = { features: 2, components: 1, rows: 1, cells: [f32(0.5), undefined], pad: 0 };
    const part = partOf(s);
    const size = 2 * SLOTS;
    const cell = slotOf(EDGES, f32(0.5));
    const full = new Float64Array(size);
    full[cell] = Number.MAX_SAFE_INTEGER;
    for (const owned of [false, true]) {
      for (const order of ['dense first', 'sparse first'] as const) {
        const dense = { counts: full.slice() };
        const sparse = sparseOf(s) as unknown as ActivationHistogramState;
        const merge = (owned ? part.mergeOwned : part.merge) as (a: ActivationHistogramState, b: ActivationHistogramState) => ActivationHistogramState;
        const error = thrown(() => (order === 'dense first' ? merge(dense, sparse) : merge(sparse, { counts: full.slice() })));
        expect(error, `${order}${owned ? ', owned' : ''}`).toBeInstanceOf(RangeError);
        expect(error.message).toMatch(/past 2\^53 - 1/);
        expect(dense.counts[cell]).toBe(Number.MAX_SAFE_INTEGER);
        expect(hex(denseHistogram(sparse, size))).toBe(hex(denseOf(s)));
      }
    }
    // Two sparse partials list their shards: the sum is checked when they meet dense counts.
    const both = part.merge(sparseOf(s) as unknown as ActivationHistogramState, sparseOf(s) as unknown as ActivationHistogramState);
    const almost = new Float64Array(size);
    almost[cell] = Number.MAX_SAFE_INTEGER - 1;
    expect(thrown(() => part.merge({ counts: almost }, both))).toBeInstanceOf(RangeError);
    expect(part.merge({ counts: almost }, sparseOf(s) as unknown as ActivationHistogramState).counts[cell]).toBe(Number.MAX_SAFE_INTEGER);
  });

  it("gives a batch's value (forward, from its sparse partial) equal to the state's, and a dense state", () => {
    const m = new FeatureActivationHistogram({ numLearnedFeatures: 3, lowLog10: -2, highLog10: 2, binsPerDecade: 2 });
    const batch = { learnedActivations: tensor([[0.5, 0, 3], [20, 0.001, 3], [0, 0, 1e9]]) };
    const value = m.forward(batch);
    const state = m.compute();
    expect(Array.from(value.counts.data)).toEqual(Array.from(state.counts.data));
    // Slots: under 0.01, then bins from 10^-2 to 10^2, two a decade, then 100 and over.
    expect(state.counts.shape).toEqual([3, 10]);
    expect(Array.from(state.counts.data)).toEqual([0, 0, 0, 0, 1, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 1]);
    const parts = (m.state() as { parts: { histogram: object } }).parts;
    expect(Object.keys(parts.histogram)).toEqual(['counts']);
  });

  it('is never taken as a state from elsewhere: loadState and mergeState refuse it, naming the field, and the state stays', () => {
    const m = new FeatureActivationHistogram({ numLearnedFeatures: 2, lowLog10: -1, highLog10: 1, binsPerDecade: 1 });
    m.update({ learnedActivations: tensor([[0.5, 2]]) });
    const before = encodeState(m.state());
    const state = m.state() as unknown as { metric: string; config: object; parts: { firedCount: object; histogram: object } };
    const partial = m.definition.parts.histogram?.fromStats?.(
      { positives: { offsets: new Float64Array([0, 2]), features: new Uint32Array([0, 1]), values: new Float32Array([0.5, 2]) } },
      { start: 0, end: 1 },
      {} as Batch,
    );
    expect(isSparseHistogram(partial as SparseHistogram)).toBe(true);
    // As made (its cells a Uint32Array), and as plain data that passes the copy (float64 cells).
    const asPlain = { shards: [{ cells: new Float64Array([2, 7]), cellCounts: new Float64Array([1, 1]) }] };
    for (const [histogram, reason] of [
      [partial, /^FeatureActivationHistogram: (the incoming )?state\.parts\.histogram\.shards\[0\]\.cells must be plain data/],
      [asPlain, /^FeatureActivationHistogram: (the incoming )?state\.parts\.histogram\.shards is not a field/],
    ] as const) {
      const hostile = { ...state, parts: { ...state.parts, histogram } };
      for (const apply of [(s: unknown) => m.loadState(s as never), (s: unknown) => m.mergeState(s as never)]) {
        const error = thrown(() => apply(hostile));
        expect(error).toBeInstanceOf(StateMergeError);
        expect(error.message).toMatch(reason);
        expect(encodeState(m.state())).toBe(before);
      }
    }
  });
});
