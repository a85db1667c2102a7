/**
 * Hostile states, generated: valid TopActivations and DeadFeaturesOverWindow states with one field
 * changed at random (an index or value nudged, two entries swapped, a count changed, a NaN or a
 * huge number put in). Each is either refused by `loadState` (a `StateMergeError`, the metric
 * unchanged) or accepted; an accepted one computes, re-encodes to the same text, and merges with a
 * valid state (both ways) into a state that is itself accepted; every accepted or merged state
 * also passes an independent check of the invariants written here. So no state that passes the
 * checks can make a merge produce an impossible state.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { tensor, TopActivations, DeadFeaturesOverWindow, StateMergeError } from '../../src/index.js';

const F = 3;
const VALUES = fc.constantFrom(0, 0, 0, 1, 1, 2, 0.5, 3);

type Indexed = TopActivations | DeadFeaturesOverWindow;

function filled(make: () => Indexed, data: number[], rows: number): Indexed {
  const m = make();
  m.update({ learnedActivations: tensor(Float32Array.from(data), [rows, F]) });
  return m;
}

const streamArb = fc.integer({ min: 1, max: 6 }).chain((rows) => fc.tuple(fc.constant(rows), fc.array(VALUES, { minLength: rows * F, maxLength: rows * F })));

/** A change to one number of a state's typed arrays or counts. */
const changeArb = fc.record({
  field: fc.constantFrom('vectors', 'counts', 'values', 'indices', 'last', 'swap'),
  at: fc.nat(),
  to: fc.constantFrom(-1, 0, 1, 2, 5, 0.5, NaN, Infinity, -Infinity, 2 ** 53, -0),
  nudge: fc.constantFrom(-1, 1, 0.25),
  absolute: fc.boolean(),
});

interface Change {
  readonly field: string;
  readonly at: number;
  readonly to: number;
  readonly nudge: number;
  readonly absolute: boolean;
}

/** Applies `change` to the state's part in place; false when the field has nothing to change. */
function mutate(state: { parts: Record<string, Record<string, unknown>> }, change: Change): boolean {
  const part = Object.values(state.parts)[0] as Record<string, unknown>;
  if (change.field === 'vectors') {
    part.vectors = change.absolute ? change.to : (part.vectors as number) + change.nudge;
    return true;
  }
  if (change.field === 'swap') {
    const v = part.values as Float32Array | undefined;
    const i = part.indices as Float64Array | undefined;
    if (v === undefined || i === undefined || v.length < 2) return false;
    const a = change.at % v.length;
    const b = (a + 1) % v.length;
    [v[a], v[b]] = [v[b] as number, v[a] as number];
    return true;
  }
  const array = part[change.field] as Float64Array | Float32Array | undefined;
  if (array === undefined || array.length === 0) return false;
  const j = change.at % array.length;
  array[j] = change.absolute ? change.to : (array[j] as number) + change.nudge;
  return true;
}

/**
 * The invariants of a state, checked independently of src/: per feature at most k entries, values
 * fired (> 0), best first (value descending, then index ascending), indices distinct integers in
 * [0, vectors); last-fired indices integers in [-1, vectors).
 */
function expectPossible(state: { parts: Record<string, Record<string, unknown>> }, k: number): void {
  const part = Object.values(state.parts)[0] as Record<string, unknown>;
  const vectors = part.vectors as number;
  expect(Number.isSafeInteger(vectors) && vectors >= 0, `vectors ${vectors}`).toBe(true);
  if ('last' in part) {
    for (const j of part.last as Float64Array) expect(Number.isInteger(j) && j >= -1 && j < vectors, `last ${j} of ${vectors}`).toBe(true);
    return;
  }
  const counts = part.counts as Float64Array;
  const values = part.values as Float32Array;
  const indices = part.indices as Float64Array;
  let o = 0;
  for (const c of counts) {
    expect(Number.isInteger(c) && c >= 0 && c <= k, `count ${c}`).toBe(true);
    const seen = new Set<number>();
    for (let i = o; i < o + c; i++) {
      const x = values[i] as number;
      const j = indices[i] as number;
      expect(x > 0, `value ${x}`).toBe(true);
      expect(Number.isInteger(j) && j >= 0 && j < vectors && !seen.has(j), `index ${j} of ${vectors}`).toBe(true);
      seen.add(j);
      if (i > o) {
        const px = values[i - 1] as number;
        expect(px > x || (px === x && (indices[i - 1] as number) < j), `order at ${i}`).toBe(true);
      }
    }
    o += c;
  }
  expect(o).toBe(values.length);
}

const makers: [string, () => Indexed][] = [
  ['TopActivations', () => new TopActivations({ numLearnedFeatures: F, k: 2 })],
  ['DeadFeaturesOverWindow', () => new DeadFeaturesOverWindow({ numLearnedFeatures: F, windowVectors: 3 })],
];

describe.each(makers)('%s: generated hostile states', (_name, make) => {
  it('are refused, or accepted and then compute, re-encode and merge into accepted states', () => {
    let refused = 0;
    let accepted = 0;
    fc.assert(
      fc.property(streamArb, streamArb, changeArb, ([rows, data], [rows2, data2], change) => {
        const source = filled(make, data, rows);
        const state = source.state() as unknown as { parts: Record<string, Record<string, unknown>> };
        if (!mutate(state, change)) return;
        const target = filled(make, data2, rows2);
        const before = target.encodeState();
        try {
          target.loadState(state as never);
        } catch (e) {
          expect(e).toBeInstanceOf(StateMergeError);
          expect(target.encodeState()).toBe(before);
          refused++;
          return;
        }
        accepted++;
        expectPossible(target.state() as never, 2);
        target.compute();
        const text = target.encodeState();
        const copy = make();
        copy.loadState(text);
        expect(copy.encodeState()).toBe(text);
        // Merged after a valid state, and a valid state merged after it: both give accepted states.
        const after = filled(make, data2, rows2);
        after.mergeState(text);
        copy.mergeState(filled(make, data, rows).encodeState());
        for (const m of [after, copy]) {
          const check = make();
          check.loadState(m.encodeState());
          expectPossible(check.state() as never, 2);
          check.compute();
        }
      }),
      { numRuns: 400, seed: 13 },
    );
    expect(refused).toBeGreaterThan(50);
    expect(accepted).toBeGreaterThan(5);
  });
});
