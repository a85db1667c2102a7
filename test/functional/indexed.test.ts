/**
 * TopActivations and DeadFeaturesOverWindow against the plain references (test/reference/indexed.ts)
 * on seeded random streams of many shapes, batch by batch (`forward`) and accumulated (`compute`),
 * with many ties, -0, negatives, NaN and Infinity among the values and gaps declared by
 * `firstVectorIndex`; exact equality (the values are float32, compared as read). Then: the result
 * does not change with the batch cut (state bits and result bits), where the per-batch forms the
 * other tools log do; the vector numbering (components share their row's number, gaps, refusals).
 */
import { describe, it, expect } from 'vitest';
import {
  tensor,
  Tensor,
  TopActivations,
  DeadFeaturesOverWindow,
  InvalidBatchError,
  type TopActivationsResult,
  type DeadFeaturesOverWindowResult,
} from '../../src/index.js';
import { topActivations, deadFeaturesOverWindow } from '../../src/functional/index.js';
import { refTopActivations, refDeadWindow, type RefIndexedBatch } from '../reference/indexed.js';
import { mulberry32 } from '../support/random.js';

/** Values with many ties and every kind of non-candidate. */
const VALUES = [0, 0, 0, 0, 0, -0, -1, -0.5, 0.5, 1, 1, 2, 2, 3.25, NaN, Infinity, 1e-30, 7];

interface Stream {
  readonly batches: { learnedActivations: Tensor<'float32'>; firstVectorIndex?: number }[];
  readonly refs: RefIndexedBatch[];
  readonly numComponents: number | undefined;
  readonly features: number;
}

function randomStream(seed: number, opts: { gaps: boolean; rows?: number } = { gaps: true }): Stream {
  const r = mulberry32(seed);
  const pick = (n: number): number => Math.floor(r() * n);
  const rank3 = r() < 0.5;
  const components = rank3 ? 1 + pick(3) : 1;
  const features = 1 + pick(7);
  const numComponents = rank3 ? components : r() < 0.2 ? 1 : undefined;
  const nBatches = 1 + pick(6);
  const batches: Stream['batches'] = [];
  const refs: RefIndexedBatch[] = [];
  let next = 0;
  for (let b = 0; b < nBatches; b++) {
    const rows = opts.rows ?? 1 + pick(9);
    const shape = rank3 ? [rows, components, features] : [rows, features];
    const data = Float32Array.from({ length: rows * components * features }, () => VALUES[pick(VALUES.length)] as number);
    const t = tensor(data, shape);
    const declare = opts.gaps && r() < 0.4;
    const first = declare ? next + (r() < 0.5 ? 0 : pick(20)) : undefined;
    batches.push(first === undefined ? { learnedActivations: t } : { learnedActivations: t, firstVectorIndex: first });
    refs.push(first === undefined ? { data: [...data], shape } : { data: [...data], shape, firstVectorIndex: first });
    next = (first ?? next) + rows;
  }
  return { batches, refs, numComponents, features };
}

function expectTop(got: TopActivationsResult, refs: readonly RefIndexedBatch[], k: number, label: string): void {
  const want = refTopActivations(refs, k);
  const size = want.entries.length;
  const values = Array.from(got.values.data as Float64Array);
  const indices = Array.from(got.indices.data as Float64Array);
  const counts = Array.from(got.counts.data as Float64Array);
  expect(values.length, `${label}: values size`).toBe(size * k);
  for (let g = 0; g < size; g++) {
    const e = want.entries[g] as [number, number][];
    expect(counts[g], `${label}: count of feature ${g}`).toBe(e.length);
    for (let i = 0; i < k; i++) {
      const entry = e[i];
      expect(values[g * k + i], `${label}: value ${g}/${i}`).toBe(entry === undefined ? NaN : entry[0]);
      expect(indices[g * k + i], `${label}: index ${g}/${i}`).toBe(entry === undefined ? -1 : entry[1]);
    }
  }
  expect(got.vectors.item(), `${label}: vectors`).toBe(want.vectors);
}

function expectDead(got: DeadFeaturesOverWindowResult, refs: readonly RefIndexedBatch[], window: number, components: number, label: string): void {
  const want = refDeadWindow(refs, window);
  expect(Array.from(got.lastFired.data as Float64Array), `${label}: lastFired`).toEqual(want.last);
  expect(Array.from(got.vectorsSinceFired.data as Float64Array), `${label}: vectorsSinceFired`).toEqual(want.since);
  expect(Array.from(got.deadMask.data as Float64Array), `${label}: deadMask`).toEqual(want.dead);
  const perComponent = want.dead.length / components;
  const dead = Array.from({ length: components }, (_, c) => want.dead.slice(c * perComponent, (c + 1) * perComponent).reduce((a, b) => a + b, 0));
  expect(Array.from(got.dead.data as Float64Array), `${label}: dead`).toEqual(dead);
  expect(got.vectors.item(), `${label}: vectors`).toBe(want.vectors);
}

describe('TopActivations and DeadFeaturesOverWindow against the references', () => {
  it('match on 80 random streams of many shapes, batch by batch and accumulated', () => {
    for (let seed = 1; seed <= 80; seed++) {
      const s = randomStream(seed);
      const k = 1 + (seed % 4);
      const window = 1 + ((seed * 7) % 23);
      const shape = { numLearnedFeatures: s.features, ...(s.numComponents === undefined ? {} : { numComponents: s.numComponents }) };
      const top = new TopActivations({ ...shape, k });
      const dead = new DeadFeaturesOverWindow({ ...shape, windowVectors: window });
      const components = s.numComponents ?? 1;
      s.batches.forEach((batch, b) => {
        const label = `seed ${seed} batch ${b}`;
        expectTop(top.forward(batch), [s.refs[b] as RefIndexedBatch], k, `${label} forward`);
        expectDead(dead.forward(batch), [s.refs[b] as RefIndexedBatch], window, components, `${label} forward`);
        expectTop(top.compute(), s.refs.slice(0, b + 1), k, `${label} accumulated`);
        expectDead(dead.compute(), s.refs.slice(0, b + 1), window, components, `${label} accumulated`);
      });
    }
  });

  it('match through the pure definitions with row ranges cut at every row', () => {
    for (let seed = 100; seed < 130; seed++) {
      const s = randomStream(seed, { gaps: false });
      const shape = { numLearnedFeatures: s.features, ...(s.numComponents === undefined ? {} : { numComponents: s.numComponents }) };
      const top = topActivations({ ...shape, k: 2 });
      const dead = deadFeaturesOverWindow({ ...shape, windowVectors: 5 });
      let t = top.init();
      let d = dead.init();
      for (const batch of s.batches) {
        const rows = batch.learnedActivations.shape[0] as number;
        for (let i = 0; i < rows; i++) {
          t = top.update(t, batch, { start: i, end: i + 1 });
          d = dead.update(d, batch, { start: i, end: i + 1 });
        }
      }
      expectTop(top.compute(t), s.refs, 2, `seed ${seed}`);
      expectDead(dead.compute(d), s.refs, 5, s.numComponents ?? 1, `seed ${seed}`);
    }
  });
});

describe('batch-cut invariance', () => {
  /** One stream of 96 rows cut into batches of the given sizes. */
  function cut(data: Float32Array, features: number, sizes: readonly number[]): { learnedActivations: Tensor<'float32'> }[] {
    const out: { learnedActivations: Tensor<'float32'> }[] = [];
    let row = 0;
    for (const n of sizes) {
      out.push({ learnedActivations: tensor(data.slice(row * features, (row + n) * features), [n, features]) });
      row += n;
    }
    return out;
  }
  const features = 6;
  const rows = 96;
  const r = mulberry32(7);
  const data = Float32Array.from({ length: rows * features }, () => VALUES[Math.floor(r() * VALUES.length)] as number);
  const cuts = [[96], Array.from({ length: 96 }, () => 1), [7, 13, 40, 36], [32, 32, 32], [1, 94, 1], [50, 46]];

  it('gives the same state and result bits whatever the cut (exact)', () => {
    const states = cuts.map((sizes) => {
      const top = new TopActivations({ numLearnedFeatures: features, k: 3 });
      const dead = new DeadFeaturesOverWindow({ numLearnedFeatures: features, windowVectors: 20 });
      for (const b of cut(data, features, sizes)) {
        top.update(b);
        dead.update(b);
      }
      return { top: top.encodeState(), dead: dead.encodeState(), values: Array.from(top.compute().values.data), since: Array.from(dead.compute().vectorsSinceFired.data) };
    });
    for (const s of states.slice(1)) expect(s).toEqual(states[0]);
  });

  it('the per-batch forms change with the cut: batch-local top indices, steps since fired', () => {
    // Per-batch top activation of feature 0 indexed within its batch (what a per-batch logger keeps).
    const localIndex = (sizes: readonly number[]) => {
      const batches = cut(data, features, sizes);
      let best = { value: -Infinity, index: -1 };
      for (const b of batches) {
        const top = new TopActivations({ numLearnedFeatures: features, k: 1 });
        const v = top.forward(b);
        const value = (v.values.data as Float64Array)[0] as number;
        if (value > best.value) best = { value, index: (v.indices.data as Float64Array)[0] as number };
      }
      return best.index;
    };
    // SAELens' counter: forward passes (batches) since the feature fired, dead past the window
    // as steps of the batch size. One feature firing at row 70 of 96, a window of 20 vectors.
    const once = new Float32Array(rows);
    once[70] = 1;
    const stepsDead = (size: number) => {
      let since = 0;
      for (let b = 0; b < rows / size; b++) {
        since++;
        for (let i = b * size; i < (b + 1) * size; i++) if ((once[i] as number) > 0) since = 0;
      }
      return since > 20 / size;
    };
    const windowDead = (sizes: readonly number[]) => {
      const dead = new DeadFeaturesOverWindow({ numLearnedFeatures: 1, windowVectors: 20 });
      for (const b of cut(once, 1, sizes)) dead.update(b);
      return dead.compute().dead.item();
    };
    expect([1, 32].map(stepsDead)).toEqual([true, false]);
    expect(cuts.map(windowDead)).toEqual(cuts.map(() => 1));
    const global = new TopActivations({ numLearnedFeatures: features, k: 1 });
    for (const b of cut(data, features, [96])) global.update(b);
    const globalIndex = (global.compute().indices.data as Float64Array)[0];
    expect(new Set(cuts.map(localIndex)).size).toBeGreaterThan(1);
    expect(cuts.map(localIndex)).toContain(globalIndex);
  });
});

describe('vector numbering', () => {
  it("numbers rows: a row's components share the row's number", () => {
    const top = new TopActivations({ numLearnedFeatures: 2, numComponents: 2, k: 2 });
    top.update({ learnedActivations: tensor([[[1, 0], [0, 4]], [[2, 0], [5, 0]]]) });
    expect(top.compute().indices.toArray()).toEqual([
      [[1, 0], [-1, -1]],
      [[1, -1], [0, -1]],
    ]);
    expect(top.compute().vectors.item()).toBe(2);
  });

  it('takes only fired activations as candidates (0, -0, negatives and NaN never; +Infinity does)', () => {
    const top = new TopActivations({ numLearnedFeatures: 4, k: 3 });
    top.update({ learnedActivations: tensor(Float32Array.from([0, -0, -1, Infinity, NaN, 0, 2, 1]), [2, 4]) });
    expect(top.compute().counts.toArray()).toEqual([0, 0, 1, 2]);
    expect(top.compute().values.toArray()).toEqual([
      [NaN, NaN, NaN],
      [NaN, NaN, NaN],
      [2, NaN, NaN],
      [Infinity, 1, NaN],
    ]);
  });

  it('ties go to the lower index, across batches and within one', () => {
    const top = new TopActivations({ numLearnedFeatures: 1, k: 2 });
    top.update({ learnedActivations: tensor([[1], [2], [2]]) });
    top.update({ learnedActivations: tensor([[2], [3]]) });
    expect(top.compute().indices.toArray()).toEqual([[4, 1]]);
  });

  it('a firstVectorIndex beyond the vectors seen leaves a gap where nothing fired; equal to it, none', () => {
    const dead = new DeadFeaturesOverWindow({ numLearnedFeatures: 2, windowVectors: 5 });
    dead.update({ learnedActivations: tensor([[1, 1], [0, 1]]) });
    dead.update({ learnedActivations: tensor([[0, 1]]), firstVectorIndex: 2 });
    expect(dead.compute().lastFired.toArray()).toEqual([0, 2]);
    dead.update({ learnedActivations: tensor([[0, 1]]), firstVectorIndex: 10 });
    const r = dead.compute();
    expect(r.vectors.item()).toBe(11);
    expect(r.lastFired.toArray()).toEqual([0, 10]);
    expect(r.vectorsSinceFired.toArray()).toEqual([10, 0]);
    expect(r.deadMask.toArray()).toEqual([1, 0]);
    dead.update({ learnedActivations: tensor([[1, 0]]) }); // no firstVectorIndex: right after
    expect(dead.compute().lastFired.toArray()).toEqual([11, 10]);
  });

  it('forward with firstVectorIndex gives the batch alone with absolute indices', () => {
    const top = new TopActivations({ numLearnedFeatures: 1, k: 1 });
    expect(top.forward({ learnedActivations: tensor([[0], [2]]), firstVectorIndex: 40 }).indices.toArray()).toEqual([[41]]);
    expect(top.forward({ learnedActivations: tensor([[3]]) }).indices.toArray()).toEqual([[0]]);
    expect(top.compute().indices.toArray()).toEqual([[42]]);
  });

  it('a never-fired feature is not dead before a full window has been seen, and is dead from then', () => {
    const dead = new DeadFeaturesOverWindow({ numLearnedFeatures: 2, windowVectors: 3 });
    dead.update({ learnedActivations: tensor([[1, 0], [0, 0]]) });
    expect(dead.compute().deadMask.toArray()).toEqual([0, 0]);
    expect(dead.compute().vectorsSinceFired.toArray()).toEqual([1, 2]);
    dead.update({ learnedActivations: tensor([[0, 0]]) });
    expect(dead.compute().deadMask.toArray()).toEqual([0, 1]);
    dead.update({ learnedActivations: tensor([[0, 0]]) });
    expect(dead.compute().deadMask.toArray()).toEqual([1, 1]);
    expect(dead.compute().dead.item()).toBe(2);
  });

  it('refuses a firstVectorIndex below the vectors seen, naming the metric, field and values; the state is unchanged', () => {
    for (const metric of [new TopActivations({ numLearnedFeatures: 1, k: 1 }), new DeadFeaturesOverWindow({ numLearnedFeatures: 1, windowVectors: 2 })]) {
      metric.update({ learnedActivations: tensor([[1], [2], [3]]) });
      const before = metric.encodeState();
      let error: unknown;
      try {
        metric.update({ learnedActivations: tensor([[9]]), firstVectorIndex: 2 });
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(InvalidBatchError);
      expect((error as InvalidBatchError).field).toBe('firstVectorIndex');
      expect((error as Error).message).toBe(
        `${metric.definition.metric}: firstVectorIndex 2 is below the 3 vectors the state already numbers (vectors are numbered in arrival order; a batch may skip ahead, never back)`,
      );
      expect(metric.encodeState()).toBe(before);
    }
  });
});

describe('numbering after a reset', () => {
  it('reset() and computeEvery windows number from 0 again, unless batches carry firstVectorIndex', async () => {
    const { from, lastValueFrom, toArray } = await import('rxjs');
    const { computeEvery } = await import('../../src/index.js');
    const batches = [{ learnedActivations: tensor([[1], [2]]) }, { learnedActivations: tensor([[3], [0]]) }];
    const plain = await lastValueFrom(from(batches).pipe(computeEvery(new TopActivations({ numLearnedFeatures: 1, k: 1 }), { batches: 1 }), toArray()));
    expect(plain.map((r) => r.indices.toArray())).toEqual([[[1]], [[0]]]);
    const declared = batches.map((b, i) => ({ ...b, firstVectorIndex: 2 * i }));
    const absolute = await lastValueFrom(from(declared).pipe(computeEvery(new TopActivations({ numLearnedFeatures: 1, k: 1 }), { batches: 1 }), toArray()));
    expect(absolute.map((r) => r.indices.toArray())).toEqual([[[1]], [[2]]]);
    const top = new TopActivations({ numLearnedFeatures: 1, k: 1 });
    top.update(batches[0] as { learnedActivations: Tensor<'float32'> });
    top.reset();
    top.update(batches[1] as { learnedActivations: Tensor<'float32'> });
    expect(top.compute().indices.toArray()).toEqual([[0]]);
  });
});
