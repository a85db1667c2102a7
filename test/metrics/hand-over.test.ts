/**
 * A batch's fields are read once, when it is handed over (issue 10, item 9): a field behind a
 * getter that changes between reads must not make validation and computation see different
 * tensors. Every entry point is tried: a metric's update and forward, the functional update, a
 * collection's update and forward, and the operators in-thread and on a worker pool.
 *
 * Expected values by hand: the first read gives [[1, -2, 3]] (L1 6, L0 3, fired [1, 0, 1]); any
 * later read gives a tensor of another shape holding NaN.
 */
import { lastValueFrom, of } from 'rxjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  L0NormMetric,
  L1AbsoluteLoss,
  MetricCollection,
  NeuronFiredCountMetric,
  ReconstructionScoreMetric,
  accumulateMetric,
  createMetricPool,
  forwardMetric,
  tensor,
  type Batch,
  type MetricPool,
} from '../../src/index.js';
import { l1AbsoluteLoss } from '../../src/functional/index.js';

const FIRST = [[1, -2, 3]];
const LATER = [[Number.NaN, 5]];

/** A batch whose learnedActivations getter gives FIRST once, then LATER; `reads()` counts the reads. */
function changing(): { batch: Batch; reads: () => number } {
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
    ['Metric.update', (b: Batch) => { const m = new L1AbsoluteLoss(); m.update(b); return m.compute().item(); }],
    ['Metric.forward', (b: Batch) => new L1AbsoluteLoss().forward(b).item()],
    ['functional update', (b: Batch) => { const d = l1AbsoluteLoss(); return d.compute(d.update(d.init(), b)).item(); }],
    ['MetricCollection.update', (b: Batch) => { const c = new MetricCollection({ l1: new L1AbsoluteLoss(), l0: new L0NormMetric() }); c.update(b); return c.compute().l1.item(); }],
    ['MetricCollection.forward', (b: Batch) => new MetricCollection({ l1: new L1AbsoluteLoss(), l0: new L0NormMetric() }).forward(b).l1.item()],
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
    m.update(new Losses() as unknown as Batch);
    expect(reads).toBe(2);
    const [c0, c1] = m.compute().data;
    expect(c0).toBeNaN(); // 0 / 0: nothing in component 0
    expect(c1).toBe(0.75); // (10 - 4) / (10 - 2)
  });
});
