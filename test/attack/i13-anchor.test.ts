/**
 * Attack on "firstVectorIndex across machines": states that folded batches declaring their first
 * vector hold absolute indices, so a merge must not shift them (it gave silently wrong indices),
 * and states whose vectors overlap are refused with a StateMergeError naming the ranges, leaving
 * both states as they were. Expected indices are written by hand.
 */
import { describe, expect, it } from 'vitest';
import { DeadFeaturesOverWindow, decodeState, StateMergeError, tensor, TopActivations, type Batch } from '../../src/index.js';

const top = (): TopActivations => new TopActivations({ numLearnedFeatures: 2, k: 3 });
const dead = (): DeadFeaturesOverWindow => new DeadFeaturesOverWindow({ numLearnedFeatures: 2, windowVectors: 3 });

// One stream cut across three machines: vectors 0-1, 2-4, then a gap (5, 6) and vector 7.
const A: Batch = { learnedActivations: tensor([[1, 0], [0, 3]]), firstVectorIndex: 0 };
const B: Batch = { learnedActivations: tensor([[2, 0], [0, 0], [1, 5]]), firstVectorIndex: 2 };
const C: Batch = { learnedActivations: tensor([[4, 0]]), firstVectorIndex: 7 };

function machine<M extends { update(b: Batch): void }>(make: () => M, ...batches: Batch[]): M {
  const m = make();
  for (const b of batches) m.update(b);
  return m;
}

describe('issue 13: states numbered by firstVectorIndex merge without a shift', () => {
  it("the attacker's reproducer: TopActivations gives one metric's indices", () => {
    const m1 = new TopActivations({ numLearnedFeatures: 1, k: 3 });
    m1.update({ learnedActivations: tensor([[1], [0]]), firstVectorIndex: 0 });
    const m2 = new TopActivations({ numLearnedFeatures: 1, k: 3 });
    m2.update({ learnedActivations: tensor([[2]]), firstVectorIndex: 2 });
    m1.mergeState(m2);
    expect(m1.compute().indices.toArray()).toEqual([[2, 0, -1]]);
    expect(m1.compute().vectors.item()).toBe(3);
  });

  it("the attacker's reproducer: DeadFeaturesOverWindow gives one metric's last-fired vectors", () => {
    const m1 = new DeadFeaturesOverWindow({ numLearnedFeatures: 1, windowVectors: 2 });
    m1.update({ learnedActivations: tensor([[1], [0]]), firstVectorIndex: 0 });
    const m2 = new DeadFeaturesOverWindow({ numLearnedFeatures: 1, windowVectors: 2 });
    m2.update({ learnedActivations: tensor([[2]]), firstVectorIndex: 2 });
    m1.mergeState(m2);
    expect(m1.compute().lastFired.toArray()).toEqual([2]);
    expect(m1.compute().vectorsSinceFired.toArray()).toEqual([0]);
    expect(m1.compute().vectors.item()).toBe(3);
  });

  it('three machines merged in order, in both trees and through encoded states, give the one stream', () => {
    const whole = { top: machine(top, A, B, C), dead: machine(dead, A, B, C) };
    for (const [name, make] of [['top', top], ['dead', dead]] as const) {
      const [a, b, c] = [A, B, C].map((x) => machine(make as () => TopActivations | DeadFeaturesOverWindow, x)) as [TopActivations, TopActivations, TopActivations];
      // ((a, b), c) with the metric objects
      const left = (make as () => TopActivations)();
      left.mergeState(a);
      left.mergeState(b);
      left.mergeState(c);
      // (a, (b, c)) with encoded states, as machines would ship them
      const bc = (make as () => TopActivations)();
      bc.loadState(b.encodeState());
      bc.mergeState(c.encodeState());
      const right = (make as () => TopActivations)();
      right.loadState(a.encodeState());
      right.mergeState(bc.encodeState());
      for (const m of [left, right]) expect(m.encodeState(), `${name}: the state`).toBe(whole[name].encodeState());
    }
    const t = whole.top.compute();
    expect(t.indices.toArray()).toEqual([[7, 2, 0], [4, 1, -1]]);
    expect(t.values.toArray()).toEqual([[4, 2, 1], [5, 3, NaN]]);
    expect(t.vectors.item()).toBe(8);
    const d = whole.dead.compute();
    expect(d.lastFired.toArray()).toEqual([7, 4]);
    expect(d.vectorsSinceFired.toArray()).toEqual([0, 3]);
    expect(d.deadMask.toArray()).toEqual([0, 1]);
  });

  it('a machine with relative batches before its first declared one merges after a shorter state, and not after a longer', () => {
    // Machine b: two vectors without firstVectorIndex, then a batch declared at 5.
    const b = machine(top, { learnedActivations: tensor([[1, 0], [0, 0]]) }, { learnedActivations: tensor([[0, 2]]), firstVectorIndex: 5 });
    const a = machine(top, { learnedActivations: tensor([[3, 0], [0, 0], [0, 1]]) });
    a.mergeState(b); // a's 3 vectors, then b's 2 at 3 and 4, then vector 5: as one metric over both
    expect(a.compute().indices.toArray()).toEqual([[0, 3, -1], [5, 2, -1]]);
    expect(a.compute().vectors.item()).toBe(6);
    const longer = machine(top, { learnedActivations: tensor([[3, 0], [0, 0], [0, 1], [1, 1]]) });
    const before = longer.encodeState();
    expect(() => longer.mergeState(b)).toThrow(StateMergeError);
    expect(longer.encodeState()).toBe(before);
  });

  for (const [name, make] of [['TopActivations', top], ['DeadFeaturesOverWindow', dead]] as const) {
    it(`${name}: overlapping states are refused naming the metric and both ranges, both left as they were`, () => {
      const m = make as () => TopActivations;
      const a = machine(m, { learnedActivations: tensor([[1, 0], [0, 3], [0, 1]]), firstVectorIndex: 0 }); // [0, 3)
      const b = machine(m, B); // [2, 5)
      const [ea, eb] = [a.encodeState(), b.encodeState()];
      let error: unknown;
      try {
        a.mergeState(b);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(StateMergeError);
      expect((error as Error).message).toMatch(new RegExp(`^${name}: `));
      expect((error as Error).message).toContain('[0, 3)');
      expect((error as Error).message).toContain('[2, 5)');
      expect(a.encodeState()).toBe(ea);
      expect(b.encodeState()).toBe(eb);
      // The other order overlaps too: b's [0, 5) then a's vectors from 0.
      expect(() => b.mergeState(a)).toThrow(StateMergeError);
      expect(b.encodeState()).toBe(eb);
    });
  }

  it('anchored states are encoded with their numbering, and hostile numbering is refused', () => {
    const s = machine(top, { learnedActivations: tensor([[1, 0]]) }, { learnedActivations: tensor([[0, 2]]), firstVectorIndex: 4 });
    const text = s.encodeState();
    const raw = JSON.parse(text) as { parts: { top: Record<string, unknown> } };
    expect([raw.parts.top.lead, raw.parts.top.anchor, raw.parts.top.vectors]).toEqual([1, 4, 5]);
    const hostile: [Record<string, unknown>, RegExp][] = [
      [{ anchor: 6 }, /anchor must be an integer in \[lead, vectors\] = \[1, 5\], got 6/],
      [{ lead: 5 }, /anchor must be an integer in \[lead, vectors\] = \[5, 5\], got 4/],
      [{ lead: -1 }, /lead must be a non-negative safe integer, got -1/],
      [{ anchor: 2.5 }, /anchor must be an integer/],
      [{ anchor: 2 ** 53 }, /anchor must be an integer/],
      [{ lead: 0 }, /leave a gap \[0, 4\) in which nothing fired, got vector 0/],
      [{ anchor: undefined }, /anchor is missing/],
      [{ lead: undefined }, /lead is missing/],
      [{ start: 3 }, /start/],
    ];
    for (const [change, message] of hostile) {
      const top2 = { ...raw.parts.top, ...change };
      for (const k of Object.keys(change)) if (change[k] === undefined) delete top2[k];
      const bad = JSON.stringify({ ...raw, parts: { top: top2 } });
      const m = top();
      m.update({ learnedActivations: tensor([[1, 1]]) });
      const before = m.encodeState();
      expect(() => m.mergeState(bad), JSON.stringify(change)).toThrow(message);
      expect(m.encodeState()).toBe(before);
    }
    expect(decodeState(text)).toBeTruthy();
  });
});
