/**
 * A batch's fields are read once, when it is handed over (issue 10, item 9): a field behind a
 * getter that changes between reads must not make validation and computation see different
 * tensors. Every entry point is tried: a metric's update and forward, the functional update, a
 * collection's update and forward, and the operators in-thread and on a worker pool.
 *
 * Expected values by hand: the first read gives [[1, -2, 3]] (L1 6, L0 3, fired [1, 0, 1]); any
 * later read gives a tensor of another shape holding NaN.
 */
import { from, lastValueFrom, of } from 'rxjs';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  CapacityMetric,
  InvalidBatchError,
  L0NormMetric,
  L1AbsoluteLoss,
  MetricCollection,
  NeuronFiredCountMetric,
  ReconstructionScoreMetric,
  accumulateMetric,
  createMetricPool,
  forwardMetric,
  reduceMetric,
  tensor,
  type Batch,
  type LearnedBatch,
  type MetricPool,
  type ReconstructionScoreBatch,
} from '../../src/index.js';
import { l1AbsoluteLoss } from '../../src/functional/index.js';
import { fromNested, refCapacityMetric, refL0Norm, refL1AbsoluteLoss, refNeuronFiredCount } from '../reference/index.js';
import { thrown } from '../support/compare.js';

const FIRST = [[1, -2, 3]];
const LATER = [[Number.NaN, 5]];

/** A batch whose learnedActivations getter gives FIRST once, then LATER; `reads()` counts the reads. */
function changing(): { batch: LearnedBatch; reads: () => number } {
  let reads = 0;
  const batch = {
    get learnedActivations() {
      reads++;
      return tensor(reads === 1 ? FIRST : LATER);
    },
  };
  return { batch, reads: () => reads };
}

let pool: MetricPool;
beforeAll(() => {
  pool = createMetricPool({ workers: 1, shardRows: 1 });
});
afterAll(async () => {
  await pool.close();
});

describe('each batch field is read once at hand-over', () => {
  it.each([
    ['Metric.update', (b: LearnedBatch) => { const m = new L1AbsoluteLoss(); m.update(b); return m.compute().item(); }],
    ['Metric.forward', (b: LearnedBatch) => new L1AbsoluteLoss().forward(b).item()],
    ['functional update', (b: Batch) => { const d = l1AbsoluteLoss(); return d.compute(d.update(d.init(), b)).item(); }],
    ['MetricCollection.update', (b: LearnedBatch) => { const c = new MetricCollection({ l1: new L1AbsoluteLoss(), l0: new L0NormMetric() }); c.update(b); return c.compute().l1.item(); }],
    ['MetricCollection.forward', (b: LearnedBatch) => new MetricCollection({ l1: new L1AbsoluteLoss(), l0: new L0NormMetric() }).forward(b).l1.item()],
  ] as const)('%s', (_name, run) => {
    const { batch, reads } = changing();
    expect(run(batch)).toBe(6);
    expect(reads()).toBe(1);
  });

  it.each([
    ['accumulateMetric in-thread', () => accumulateMetric(new L1AbsoluteLoss())],
    ['forwardMetric in-thread', () => forwardMetric(new L1AbsoluteLoss())],
    ['accumulateMetric on a pool', () => accumulateMetric(new L1AbsoluteLoss(), { pool })],
    ['accumulateMetric of a collection on a pool', () => accumulateMetric(new MetricCollection({ l1: new L1AbsoluteLoss() }), { pool })],
  ] as const)('%s', async (_name, operator) => {
    const { batch, reads } = changing();
    const value = (await lastValueFrom(of(batch).pipe(operator() as never))) as unknown;
    const l1 = value instanceof Object && 'l1' in value ? (value as { l1: { item(): number } }).l1 : (value as { item(): number });
    expect(l1.item()).toBe(6);
    expect(reads()).toBe(1);
  });

  it('a tensor-like whose data and shape are getters: each read once', () => {
    let dataReads = 0;
    let shapeReads = 0;
    const learnedActivations = {
      get data() {
        dataReads++;
        return dataReads === 1 ? Float32Array.of(1, 0, 1) : Float32Array.of(1, 1, 1, 1);
      },
      get shape() {
        shapeReads++;
        return shapeReads === 1 ? [1, 3] : [2, 2];
      },
    };
    const m = new NeuronFiredCountMetric({ numLearnedFeatures: 3 });
    m.update({ learnedActivations });
    expect([...m.compute().data]).toEqual([1, 0, 1]);
    expect([dataReads, shapeReads]).toEqual([1, 1]);
  });

  it('a getter on the prototype (a class instance batch) still works, read once; componentIdx too', () => {
    let reads = 0;
    class Losses {
      get sourceModelLoss() {
        reads++;
        return tensor([1, 1]);
      }
      get sourceModelLossWithReconstruction() {
        return tensor([2, 2]);
      }
      get sourceModelLossWithZeroAblation() {
        return tensor([5, 5]);
      }
      get componentIdx() {
        reads++;
        return reads <= 2 ? 1 : 7; // 7 is out of range: a second read would throw or misplace the sums
      }
    }
    const m = new ReconstructionScoreMetric({ numComponents: 2 });
    m.update(new Losses() as unknown as ReconstructionScoreBatch);
    expect(reads).toBe(2);
    const [c0, c1] = m.compute().data;
    expect(c0).toBeNaN(); // 0 / 0: nothing in component 0
    expect(c1).toBe(0.75); // (10 - 4) / (10 - 2)
  });
});

describe('batch data is read through its Float32Array slots, not through properties it overrides', () => {
  // Own properties that shadow what a typed array inherits, each lying. Values are small integers,
  // so the reference sums are exact.
  const lie = Float32Array.of(99);
  const OVERRIDES: readonly [PropertyKey, (d: Float32Array) => unknown][] = [
    ['length', (d) => d.length + 3],
    ['byteLength', (d) => d.byteLength + 12],
    ['byteOffset', () => 4],
    ['buffer', () => new ArrayBuffer(64)],
    ['slice', () => () => lie],
    ['subarray', () => () => lie],
    ['set', () => () => undefined],
    ['at', () => () => 99],
    ['fill', () => () => lie],
    ['reduce', () => () => 99],
    ['constructor', () => Float64Array],
    [Symbol.iterator, () => function* () { yield 99; }],
    ['values', () => function* () { yield 99; }],
  ];
  const hostile = (values: readonly number[], picked: readonly number[], asGetter: boolean): Float32Array => {
    const d = Float32Array.from(values);
    for (const i of picked) {
      const [key, make] = OVERRIDES[i] as [PropertyKey, (d: Float32Array) => unknown];
      const value = make(d);
      let reads = 0;
      // As a getter, the first read tells the truth (what a validation would see) and later reads lie.
      const truth = (Reflect.get(Float32Array.prototype, key, d) as unknown);
      Object.defineProperty(d, key, asGetter ? { get: () => (reads++ === 0 ? truth : value), configurable: true } : { value, configurable: true });
    }
    return d;
  };
  const cases = fc.record({
    rows: fc.integer({ min: 1, max: 3 }),
    features: fc.integer({ min: 1, max: 4 }),
    picked: fc.uniqueArray(fc.nat({ max: OVERRIDES.length - 1 }), { minLength: 1, maxLength: OVERRIDES.length }),
    asGetter: fc.boolean(),
    seed: fc.nat(),
  });
  const valuesOf = (rows: number, features: number, seed: number): number[] =>
    Array.from({ length: rows * features }, (_, i) => ((seed + i * 7919) % 6) - 2);
  const expected = (values: number[], rows: number, features: number) => {
    const batch = [fromNested(Array.from({ length: rows }, (_, r) => values.slice(r * features, (r + 1) * features)))];
    return {
      l1: refL1AbsoluteLoss(batch, { keepBatchDim: false }).data,
      l0: refL0Norm(batch).data,
      fired: refNeuronFiredCount(batch).data,
      capacity: refCapacityMetric(batch).data,
    };
  };

  it('metrics, a collection and the functional update compute from the real data (fast-check)', () => {
    fc.assert(
      fc.property(cases, ({ rows, features, picked, asGetter, seed }) => {
        const values = valuesOf(rows, features, seed);
        const want = expected(values, rows, features);
        const field = () => ({ data: hostile(values, picked, asGetter), shape: [rows, features] });
        const l1 = new L1AbsoluteLoss();
        l1.update({ learnedActivations: field() });
        expect([...l1.compute().data]).toEqual(want.l1);
        const cap = new CapacityMetric();
        cap.update({ learnedActivations: field() });
        // The kept rows are a real Float32Array: the state encodes, decodes and computes.
        const copy = new CapacityMetric();
        copy.loadState(cap.encodeState());
        [...copy.compute().data].forEach((v, i) => {
          const w = want.capacity[i] as number;
          if (Number.isNaN(w)) expect(v).toBeNaN(); // a zero vector: 0 / 0
          else expect(v).toBeCloseTo(w, 5);
        });
        const c = new MetricCollection({ l0: new L0NormMetric(), fired: new NeuronFiredCountMetric({ numLearnedFeatures: features }) });
        c.update({ learnedActivations: field() });
        const r = c.compute();
        expect([...r.l0.data, ...r.fired.data]).toEqual([...want.l0, ...want.fired]);
        const d = l1AbsoluteLoss();
        expect([...d.compute(d.update(d.init(), { learnedActivations: field() })).data]).toEqual(want.l1);
      }),
      { numRuns: 150, seed: 1010 },
    );
  });

  it.each([
    ['in-thread', (): MetricPool | undefined => undefined],
    ['on a pool', (): MetricPool | undefined => pool],
  ] as const)('the operators compute from the real data %s', async (_name, which) => {
    const values = valuesOf(3, 4, 5);
    const want = expected(values, 3, 4);
    const all = OVERRIDES.map((_, i) => i);
    const batches = [false, true].map((asGetter) => ({ learnedActivations: { data: hostile(values, all, asGetter), shape: [3, 4] } }));
    const p = which();
    const value = await lastValueFrom(from(batches).pipe(reduceMetric(new L1AbsoluteLoss(), p ? { pool: p } : {})));
    expect([...value.data]).toEqual(want.l1);
  });

  it.each([
    ['a Proxy of a Float32Array', () => new Proxy(Float32Array.of(1, 2, 3), {})],
    ['an object inheriting from Float32Array.prototype', () => Object.create(Float32Array.prototype) as Float32Array],
  ])('%s is refused, naming the metric and the field, and changes nothing', (_name, make) => {
    const m = new L1AbsoluteLoss();
    m.update({ learnedActivations: tensor([[1, 1, 1]]) });
    const before = m.encodeState();
    const batch = { learnedActivations: { data: make(), shape: [1, 3] } };
    const c = new MetricCollection({ l1: m });
    for (const run of [() => m.update(batch), () => m.forward(batch), () => c.update(batch)]) {
      const e = thrown(run);
      expect(e).toBeInstanceOf(InvalidBatchError);
      expect(e.message).toMatch(/^L1AbsoluteLoss: learnedActivations must hold float32 data \(a Float32Array\), got /);
      expect((e as InvalidBatchError).field).toBe('learnedActivations');
    }
    expect(m.encodeState()).toBe(before);
    expect(m.updateCount).toBe(1);
  });
});

describe('an own length that agrees with a larger shape', () => {
  it('is refused by the real element count (it read past the data: L1 NaN, capacity 1)', () => {
    const data = Float32Array.of(1, 2, 3);
    Object.defineProperty(data, 'length', { value: 6 });
    const batch = { learnedActivations: { data, shape: [2, 3] } };
    for (const m of [new L1AbsoluteLoss(), new CapacityMetric()]) {
      const before = m.encodeState();
      const e = thrown(() => m.update(batch));
      expect(e).toBeInstanceOf(InvalidBatchError);
      expect(e.message).toBe(`${m.definition.metric}: learnedActivations has shape [2, 3] (6 elements) but 3 data elements`);
      expect(m.encodeState()).toBe(before);
    }
  });
});

describe('a shape is read once, and only as far as a rank could go', () => {
  it('a sparse shape of length 2^32 - 1 is refused at once with a short message, and changes nothing', () => {
    const shape: number[] = [];
    shape.length = 2 ** 32 - 1;
    shape[0] = 1;
    const m = new L1AbsoluteLoss();
    m.update({ learnedActivations: tensor([[1, 2]]) });
    const before = m.encodeState();
    const c = new MetricCollection({ l1: m });
    for (const run of [() => m.update({ learnedActivations: { data: Float32Array.of(1), shape } }), () => c.forward({ learnedActivations: { data: Float32Array.of(1), shape } })]) {
      const e = thrown(run);
      expect(e).toBeInstanceOf(InvalidBatchError);
      expect(e.message).toBe('L1AbsoluteLoss: learnedActivations.shape has more than 64 axes');
    }
    expect(m.encodeState()).toBe(before);
    expect(m.updateCount).toBe(1);
  });

  it('a Proxy shape whose length grows with every read is read once', () => {
    let reads = 0;
    const shape = new Proxy([1, 3], {
      get: (target, key, receiver) => (key === 'length' ? 2 + reads++ : (Reflect.get(target, key, receiver) as unknown)),
    });
    const m = new L1AbsoluteLoss();
    m.update({ learnedActivations: { data: Float32Array.of(1, -2, 3), shape } });
    expect(m.compute().item()).toBe(6);
    expect(reads).toBe(1);
  });
});
