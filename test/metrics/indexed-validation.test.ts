/**
 * TopActivations and DeadFeaturesOverWindow: options and batch validation (messages asserted,
 * a refused batch leaves the state exactly as it was), hostile states refused by `loadState` and
 * `mergeState` (naming the field; the metric unchanged), and exact `encodeState`/`loadState`
 * round trips.
 */
import { describe, it, expect } from 'vitest';
import {
  tensor,
  TopActivations,
  DeadFeaturesOverWindow,
  InvalidBatchError,
  StateMergeError,
} from '../../src/index.js';
import type { Batch } from '../../src/index.js';

const NEVER = undefined as never;

function thrown(fn: () => unknown): Error {
  try {
    fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a throw');
}

/** `state` is refused by loadState and by mergeState, with `message` (after the metric's name), and `m` is unchanged. */
function expectRefused(m: TopActivations | DeadFeaturesOverWindow, state: unknown, message: string): void {
  const before = m.encodeState();
  const acts: [() => void, string][] = [
    [() => m.loadState(state as never), message],
    [() => m.mergeState(state as never), `the incoming ${message}`],
  ];
  for (const [act, text] of acts) {
    const e = thrown(act);
    expect(e).toBeInstanceOf(StateMergeError);
    expect(e.message).toBe(`${m.definition.metric}: ${text}`);
    expect(m.encodeState()).toBe(before);
  }
}

describe('options', () => {
  const cases: [string, () => unknown, ErrorConstructor, string][] = [
    ['no options', () => new TopActivations(NEVER), TypeError, 'TopActivations: options.numLearnedFeatures must be a positive integer, got undefined'],
    ['no k', () => new TopActivations({ numLearnedFeatures: 3 } as never), TypeError, 'TopActivations: options.k must be a positive integer, got undefined'],
    ['k 0', () => new TopActivations({ numLearnedFeatures: 3, k: 0 }), RangeError, 'TopActivations: options.k must be a positive integer, got 0'],
    ['k 1.5', () => new TopActivations({ numLearnedFeatures: 3, k: 1.5 }), RangeError, 'TopActivations: options.k must be a positive integer, got 1.5'],
    ['k "2"', () => new TopActivations({ numLearnedFeatures: 3, k: '2' as never }), TypeError, 'TopActivations: options.k must be a positive integer, got "2"'],
    ['k past 2^20', () => new TopActivations({ numLearnedFeatures: 3, k: 2 ** 20 + 1 }), RangeError, 'TopActivations: options.k must be a positive integer up to 1048576, got 1048577'],
    ['a result past 2^28 values', () => new TopActivations({ numLearnedFeatures: 2 ** 18, numComponents: 2, k: 2 ** 9 + 1 }), RangeError, 'TopActivations: options.k must leave at most 268435456 values in the result (numComponents × numLearnedFeatures × k), got 2 × 262144 × 513 = 268959744'],
    ['unknown option', () => new TopActivations({ numLearnedFeatures: 3, k: 1, window: 2 } as never), TypeError, 'TopActivations: unknown option window (known options: numLearnedFeatures, numComponents, k)'],
    ['numComponents 0', () => new TopActivations({ numLearnedFeatures: 3, numComponents: 0, k: 1 }), RangeError, 'TopActivations: options.numComponents must be a positive integer, got 0'],
    ['no windowVectors', () => new DeadFeaturesOverWindow({ numLearnedFeatures: 3 } as never), TypeError, 'DeadFeaturesOverWindow: options.windowVectors must be a positive integer, got undefined'],
    ['windowVectors -1', () => new DeadFeaturesOverWindow({ numLearnedFeatures: 3, windowVectors: -1 }), RangeError, 'DeadFeaturesOverWindow: options.windowVectors must be a positive integer, got -1'],
    ['windowVectors NaN', () => new DeadFeaturesOverWindow({ numLearnedFeatures: 3, windowVectors: NaN }), RangeError, 'DeadFeaturesOverWindow: options.windowVectors must be a positive integer, got NaN'],
    ['numLearnedFeatures 0', () => new DeadFeaturesOverWindow({ numLearnedFeatures: 0, windowVectors: 1 }), RangeError, 'DeadFeaturesOverWindow: options.numLearnedFeatures must be a positive integer, got 0'],
  ];
  it.each(cases)('%s', (_name, make, cls, message) => {
    const e = thrown(make);
    expect(e).toBeInstanceOf(cls);
    expect(e.message).toBe(message);
  });
});

describe('batches', () => {
  const metrics = () => [new TopActivations({ numLearnedFeatures: 2, k: 2 }), new DeadFeaturesOverWindow({ numLearnedFeatures: 2, windowVectors: 4 })];
  const good = () => ({ learnedActivations: tensor([[1, 0], [0, 2]]) });
  const cases: [string, Batch, string, string][] = [
    ['firstVectorIndex -1', { ...good(), firstVectorIndex: -1 }, 'firstVectorIndex', "firstVectorIndex must be a non-negative integer below 2^53 (the absolute index of the batch's first vector), got -1"],
    ['firstVectorIndex 1.5', { ...good(), firstVectorIndex: 1.5 }, 'firstVectorIndex', "firstVectorIndex must be a non-negative integer below 2^53 (the absolute index of the batch's first vector), got 1.5"],
    ['firstVectorIndex NaN', { ...good(), firstVectorIndex: NaN }, 'firstVectorIndex', "firstVectorIndex must be a non-negative integer below 2^53 (the absolute index of the batch's first vector), got NaN"],
    ['firstVectorIndex "3"', { ...good(), firstVectorIndex: '3' as never }, 'firstVectorIndex', "firstVectorIndex must be a non-negative integer below 2^53 (the absolute index of the batch's first vector), got \"3\""],
    ['firstVectorIndex 2^53', { ...good(), firstVectorIndex: 2 ** 53 }, 'firstVectorIndex', "firstVectorIndex must be a non-negative integer below 2^53 (the absolute index of the batch's first vector), got 9007199254740992"],
    ['firstVectorIndex null', { ...good(), firstVectorIndex: null as never }, 'firstVectorIndex', "firstVectorIndex must be a non-negative integer below 2^53 (the absolute index of the batch's first vector), got null"],
    ['rows past 2^53 - 1', { ...good(), firstVectorIndex: Number.MAX_SAFE_INTEGER - 1 }, 'firstVectorIndex', 'firstVectorIndex 9007199254740990 with 2 rows passes 2^53 - 1, where vector indices stop being exact'],
    ['below the vectors seen', { ...good(), firstVectorIndex: 2 }, 'firstVectorIndex', 'firstVectorIndex 2 is below the 3 vectors the state already numbers (vectors are numbered in arrival order; a batch may skip ahead, never back)'],
    ['wrong features', { learnedActivations: tensor([[1, 0, 0]]) }, 'learnedActivations', 'learnedActivations must have 2 features on its last axis (numLearnedFeatures), got shape [1, 3]'],
    ['a component axis without numComponents', { learnedActivations: tensor([[[1, 0]]]) }, 'learnedActivations', 'learnedActivations has a component axis but numComponents is not set; pass numComponents: 1 or a [batch, feature] tensor, got shape [1, 1, 2]'],
  ];
  it.each(cases)('%s: refused, naming the metric, field and values; the state unchanged', (_name, batch, field, message) => {
    for (const m of metrics()) {
      m.update({ learnedActivations: tensor([[1, 0], [0, 2], [3, 3]]) });
      const before = m.encodeState();
      const count = m.updateCount;
      const e = thrown(() => m.update(batch as never));
      expect(e).toBeInstanceOf(InvalidBatchError);
      expect((e as InvalidBatchError).field).toBe(field);
      expect(e.message).toBe(`${m.definition.metric}: ${message}`);
      expect(m.encodeState()).toBe(before);
      expect(m.updateCount).toBe(count);
    }
  });

  it('refuses more rows once the state numbers 2^53 - 1 vectors', () => {
    const top = new TopActivations({ numLearnedFeatures: 1, k: 1 });
    const state = top.state();
    top.loadState({ ...state, parts: { top: { ...state.parts.top, vectors: Number.MAX_SAFE_INTEGER - 1 } } });
    const before = top.encodeState();
    const e = thrown(() => top.update({ learnedActivations: tensor([[1], [1]]) }));
    expect(e).toBeInstanceOf(InvalidBatchError);
    expect(e.message).toBe('TopActivations: the state numbers 9007199254740990 vectors; 2 more would pass 2^53 - 1, where vector indices stop being exact');
    expect(top.encodeState()).toBe(before);
    top.update({ learnedActivations: tensor([[1]]) });
    expect(top.compute().indices.toArray()).toEqual([[Number.MAX_SAFE_INTEGER - 1]]);
  });

  it('refuses a merge whose counts would pass 2^53 - 1, the metric unchanged', () => {
    const a = new DeadFeaturesOverWindow({ numLearnedFeatures: 1, windowVectors: 1 });
    const s = a.state();
    a.loadState({ ...s, parts: { lastFired: { ...s.parts.lastFired, vectors: 2 ** 52 } } });
    const before = a.encodeState();
    const e = thrown(() => a.mergeState(a.state()));
    expect(e).toBeInstanceOf(StateMergeError);
    expect(e.message).toMatch(/^DeadFeaturesOverWindow: cannot merge lastFired: counts past 2\^53 - 1/);
    expect(a.encodeState()).toBe(before);
  });
});

describe('states', () => {
  function topWith(parts: Record<string, unknown>, k = 2) {
    const m = new TopActivations({ numLearnedFeatures: 2, k });
    const s = m.state();
    return { m, state: { ...s, parts: { top: { ...s.parts.top, ...parts } } } };
  }
  const base = { vectors: 5, counts: Float64Array.of(2, 1), values: Float32Array.of(3, 1, 2), indices: Float64Array.of(4, 0, 2) };
  const topCases: [string, Record<string, unknown>, string][] = [
    ['an index beyond the count', { ...base, indices: Float64Array.of(5, 0, 2) }, 'state.parts.top.indices must hold vector indices in [0, 5) (the vectors counted), got 5 at index 0'],
    ['a negative index', { ...base, indices: Float64Array.of(4, -1, 2) }, 'state.parts.top.indices must hold vector indices in [0, 5) (the vectors counted), got -1 at index 1'],
    ['a fractional index', { ...base, indices: Float64Array.of(4, 0.5, 2) }, 'state.parts.top.indices must hold vector indices in [0, 5) (the vectors counted), got 0.5 at index 1'],
    ['unsorted values', { ...base, values: Float32Array.of(1, 3, 2) }, 'state.parts.top.values and .indices must list each feature\'s entries best first (value descending, then index ascending), got (1, 4) before (3, 0) at index 1'],
    ['a tie in the wrong order', { ...base, values: Float32Array.of(3, 3, 2) }, 'state.parts.top.values and .indices must list each feature\'s entries best first (value descending, then index ascending), got (3, 4) before (3, 0) at index 1'],
    ['a duplicate entry', { ...base, values: Float32Array.of(3, 3, 2), indices: Float64Array.of(0, 0, 2) }, 'state.parts.top.values and .indices must list each feature\'s entries best first (value descending, then index ascending), got (3, 0) before (3, 0) at index 1'],
    ['one vector twice for a feature', { ...base, values: Float32Array.of(3, 1, 2), indices: Float64Array.of(4, 4, 2) }, 'state.parts.top.indices holds vector 4 twice for feature 0 (one activation per vector)'],
    ['more entries than k', { ...base, counts: Float64Array.of(3, 0) }, 'state.parts.top.counts cannot exceed k (2), got 3 at index 0'],
    ['counts and entries disagree', { ...base, counts: Float64Array.of(2, 0) }, 'state.parts.top.values must hold the 2 entries counts declares, got 3'],
    ['a value not fired', { ...base, values: Float32Array.of(3, 0, 2) }, 'state.parts.top.values must hold fired activations (> 0), got 0 at index 1'],
    ['a NaN value', { ...base, values: Float32Array.of(3, NaN, 2) }, 'state.parts.top.values must hold fired activations (> 0), got NaN at index 1'],
    ['values as float64', { ...base, values: Float64Array.of(3, 1, 2) }, 'state.parts.top.values must be a Float32Array, got a Float64Array of length 3'],
    ['vectors past 2^53', { ...base, vectors: 2 ** 53 }, 'state.parts.top.vectors must be a non-negative integer below 2^53, got 9007199254740992'],
    ['a start field (only partials carry one)', { ...base, start: 3 }, 'state.parts.top.start is not a field (fields: vectors, counts, values, indices)'],
    ['counts of the wrong size', { ...base, counts: Float64Array.of(2, 1, 0) }, 'state.parts.top.counts must have 2 elements, got 3'],
  ];
  it.each(topCases)('TopActivations refuses %s (loadState and mergeState), unchanged', (_name, parts, message) => {
    const { m, state } = topWith(parts);
    m.update({ learnedActivations: tensor([[1, 2]]) });
    expectRefused(m, state, message);
  });

  it('TopActivations accepts the hand-written valid state and refuses it under another k', () => {
    const { m, state } = topWith(base);
    m.loadState(state as never);
    expect(m.compute().indices.toArray()).toEqual([[4, 0], [2, -1]]);
    const other = new TopActivations({ numLearnedFeatures: 2, k: 3 });
    const e = thrown(() => other.loadState(m.encodeState()));
    expect(e).toBeInstanceOf(StateMergeError);
    expect(e.message).toMatch(/^TopActivations: cannot merge states of different configurations: .*\(config\.k differs\)$/);
  });

  const deadCases: [string, unknown, string][] = [
    ['an index beyond the count', Float64Array.of(5, -1), 'state.parts.lastFired.last must hold vector indices in [0, 5) (the vectors counted) or -1 (never fired), got 5 at index 0'],
    ['an index below -1', Float64Array.of(-2, 0), 'state.parts.lastFired.last must hold vector indices in [0, 5) (the vectors counted) or -1 (never fired), got -2 at index 0'],
    ['NaN', Float64Array.of(NaN, 0), 'state.parts.lastFired.last must hold vector indices in [0, 5) (the vectors counted) or -1 (never fired), got NaN at index 0'],
    ['the wrong size', Float64Array.of(1), 'state.parts.lastFired.last must have 2 elements, got 1'],
    ['float32', Float32Array.of(1, 2), 'state.parts.lastFired.last must be a Float64Array, got a Float32Array of length 2'],
  ];
  it.each(deadCases)('DeadFeaturesOverWindow refuses %s, unchanged', (_name, last, message) => {
    const m = new DeadFeaturesOverWindow({ numLearnedFeatures: 2, windowVectors: 3 });
    m.update({ learnedActivations: tensor([[1, 0]]) });
    const s = m.state();
    expectRefused(m, { ...s, parts: { lastFired: { vectors: 5, last } } }, message);
  });

  it('encodeState / loadState round trips are exact, and a loaded state goes on numbering', () => {
    const top = new TopActivations({ numLearnedFeatures: 3, numComponents: 2, k: 3 });
    const dead = new DeadFeaturesOverWindow({ numLearnedFeatures: 3, numComponents: 2, windowVectors: 4 });
    const x = tensor(Float32Array.from({ length: 7 * 6 }, (_, i) => ((i * 37) % 11) / 4 - 1), [7, 2, 3]);
    for (const m of [top, dead]) {
      m.update({ learnedActivations: x, firstVectorIndex: 3 });
      const text = m.encodeState();
      const copy = m.clone();
      copy.reset();
      copy.loadState(text);
      expect(copy.encodeState()).toBe(text);
      copy.update({ learnedActivations: x });
      m.update({ learnedActivations: x });
      expect(copy.encodeState()).toBe(m.encodeState());
    }
    expect(top.compute().vectors.item()).toBe(17);
  });

  it('mergeState appends the incoming vectors after the receiver’s', () => {
    const a = new TopActivations({ numLearnedFeatures: 1, k: 2 });
    const b = new TopActivations({ numLearnedFeatures: 1, k: 2 });
    a.update({ learnedActivations: tensor([[1], [0], [0]]) });
    b.update({ learnedActivations: tensor([[5], [1]]) });
    a.mergeState(b.encodeState());
    expect(a.compute().values.toArray()).toEqual([[5, 1]]);
    expect(a.compute().indices.toArray()).toEqual([[3, 0]]);
    expect(a.compute().vectors.item()).toBe(5);
  });
});
