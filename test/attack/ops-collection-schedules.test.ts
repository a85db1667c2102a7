/**
 * Attack on MetricCollection's compute groups: the metrics of a collection share state parts (and,
 * after a batch, one state object per group), so any operation on one member, or on the
 * collection, must leave each member exactly as the same metric alone would be after the same
 * operations. Seeded random schedules of update, forward, a rejected batch, a member's reset,
 * loadState, update, self-merge and option change, merges of collections and clones, and batches
 * overwritten right after they were handed over; after every step, every member's encoded state,
 * update count and value must be those of its twin used alone.
 */
import { describe, expect, it } from 'vitest';
import {
  CapacityMetric,
  ClasswiseWrapperWithMean,
  CosineSimilarity,
  DeadFeaturesOverWindow,
  ExplainedVariance,
  FeatureActivationStats,
  FeatureDensityMetric,
  FeatureFrequencyStats,
  FractionOfVarianceUnexplained,
  L0NormMetric,
  L1AbsoluteLoss,
  L2Ratio,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  NormalizedMse,
  RelativeReconstructionBias,
  SparseAutoencoderLoss,
  TopActivations,
  tensor,
  Tensor,
  type AnyMetric,
  type Batch,
} from '../../src/index.js';
import { randomTensor } from '../support/batches.js';
import { bits } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';

const C = 2;
const F = 4;
const D = 3;

function members(): Record<string, AnyMetric> {
  const o = { numLearnedFeatures: F, numComponents: C };
  return {
    l1: new L1AbsoluteLoss({ numComponents: C }),
    l1k: new L1AbsoluteLoss({ numComponents: C, keepBatchDim: true }),
    l2: new L2ReconstructionLoss({ numComponents: C }),
    sae: new SparseAutoencoderLoss({ numComponents: C, l1Coefficient: 0.25 }),
    l0: new L0NormMetric({ numComponents: C }),
    dead: new NeuronActivityMetric({ ...o, thresholdIsDeadPortionFires: 0.25 }),
    fired: new NeuronFiredCountMetric(o),
    density: new FeatureDensityMetric(o),
    capacity: new CapacityMetric(),
    top: new TopActivations({ ...o, k: 2 }),
    window: new DeadFeaturesOverWindow({ ...o, windowVectors: 5 }),
    freq: new FeatureFrequencyStats(o),
    actstats: new FeatureActivationStats(o),
    ev: new ExplainedVariance({ numComponents: C, numFeatures: D }),
    fvu: new FractionOfVarianceUnexplained({ numComponents: C, numFeatures: D }),
    cos: new CosineSimilarity({ numComponents: C }),
    l2ratio: new L2Ratio({ numComponents: C }),
    bias: new RelativeReconstructionBias({ numComponents: C }),
    nmse: new NormalizedMse({ numComponents: C }),
    // A wrapper shares its metric's parts (here L2's) and flattens its record into the collection's.
    classwise: new ClasswiseWrapperWithMean(new L2ReconstructionLoss({ numComponents: C }), { componentNames: ['a', 'b'] }),
  };
}

function batchOf(seed: number, rows: number): Batch {
  return {
    learnedActivations: randomTensor([rows, C, F], seed, -1, 2, 0.5),
    sourceActivations: randomTensor([rows, C, D], seed + 1, -2, 2, 0),
    decodedActivations: randomTensor([rows, C, D], seed + 2, -2, 2, 0.2),
  };
}

/** A copy of a batch with its own memory. */
function copyOf(batch: Batch): Batch {
  const out: Record<string, unknown> = {};
  for (const [k, t] of Object.entries(batch)) {
    const x = t as Tensor<'float32'>;
    out[k] = tensor(x.data.slice(), [...x.shape]);
  }
  return out as Batch;
}

/** Overwrites every value of a batch (the caller reusing its buffers). */
function scribble(batch: Batch): void {
  for (const t of Object.values(batch)) (t as { data: Float32Array }).data.fill(3.5);
}

describe('a collection with compute groups against each of its metrics used alone', () => {
  const SEED = 0xc011ec7;
  const SCHEDULES = 10;
  const STEPS = 60;
  for (let s = 0; s < SCHEDULES; s++) {
    it(`schedule ${s}`, () => {
      const random = mulberry32(SEED + s);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(random() * xs.length)] as T;
      let coll = new MetricCollection(members());
      let solo = members();
      const keys = Object.keys(solo);
      const history: Record<string, string[]> = Object.fromEntries(keys.map((k) => [k, []]));
      let clone: { coll: MetricCollection; texts: Record<string, string> } | undefined;
      let seed = 1000 * s;
      const log: string[] = [];
      for (let step = 0; step < STEPS; step++) {
        const op = pick(['update', 'update', 'forward', 'forward', 'bad', 'reset', 'load', 'member', 'self', 'mergeClone', 'keepBatchDim', 'clone', 'swap']);
        const key = pick(keys);
        const b = batchOf(seed++, 1 + Math.floor(random() * 5));
        log.push(`${op} ${key}`);
        const where = `schedule ${s}, step ${step}: ${log.slice(-6).join('; ')}`;
        switch (op) {
          case 'update':
          case 'forward': {
            const mine = copyOf(b);
            const values = op === 'update' ? (coll.update(mine), undefined) : coll.forward(mine);
            scribble(mine);
            const expected: Record<string, unknown> = {};
            for (const k of keys) {
              const m = solo[k] as AnyMetric;
              if (op === 'update') m.update(b);
              else expected[k] = bits(m.forward(b));
            }
            if (values !== undefined) {
              const got = values as Record<string, unknown>;
              for (const k of keys) {
                const e = expected[k] as Record<string, unknown>;
                // A record value (TopActivations', the stats') is flattened into the collection's.
                if ('hex' in e) expect(bits(got[k]), `${where}: forward ${k}`).toEqual(e);
                else for (const [inner, v] of Object.entries(e)) expect(bits(got[`${k}_${inner}`] ?? got[inner]), `${where}: forward ${k} ${inner}`).toEqual(v);
              }
            }
            break;
          }
          case 'bad': {
            const bad = { ...b, decodedActivations: randomTensor([1, C, D + 1], seed++) };
            expect(() => coll.update(bad as Batch), where).toThrow(/decodedActivations|sourceActivations/);
            break;
          }
          case 'reset':
            coll.metrics[key]?.reset();
            solo[key]?.reset();
            break;
          case 'load': {
            const text = history[key]?.length ? pick(history[key] as string[]) : undefined;
            if (text === undefined) break;
            // A state of another configuration (keepBatchDim changed since) is refused by both.
            let refused: unknown;
            try {
              solo[key]?.loadState(text);
            } catch (error) {
              refused = error;
            }
            if (refused === undefined) coll.metrics[key]?.loadState(text);
            else expect(() => coll.metrics[key]?.loadState(text), where).toThrow((refused as Error).message);
            break;
          }
          case 'member': {
            coll.metrics[key]?.update(b);
            solo[key]?.update(b);
            break;
          }
          case 'self': {
            const m = coll.metrics[key] as AnyMetric;
            m.mergeState(m);
            const t = solo[key] as AnyMetric;
            t.mergeState(t.clone());
            break;
          }
          case 'mergeClone': {
            coll.mergeState(coll.clone());
            for (const k of keys) (solo[k] as AnyMetric).mergeState((solo[k] as AnyMetric).clone());
            break;
          }
          case 'keepBatchDim': {
            const m = coll.metrics.l1k as L1AbsoluteLoss;
            m.keepBatchDim = !m.keepBatchDim;
            (solo.l1k as L1AbsoluteLoss).keepBatchDim = m.keepBatchDim;
            break;
          }
          case 'clone': {
            const c = coll.clone();
            clone = { coll: c, texts: Object.fromEntries(keys.map((k) => [k, (c.metrics[k] as AnyMetric).encodeState()])) };
            break;
          }
          case 'swap': {
            // Go on with a clone of both: the originals must not matter any more.
            coll = coll.clone();
            solo = Object.fromEntries(keys.map((k) => [k, (solo[k] as AnyMetric).clone()]));
            break;
          }
        }
        for (const k of keys) {
          const m = coll.metrics[k] as AnyMetric;
          const t = solo[k] as AnyMetric;
          const text = t.encodeState();
          expect(m.encodeState(), `${where}: ${k} state`).toBe(text);
          expect(m.updateCount, `${where}: ${k} updateCount`).toBe(t.updateCount);
          expect(bits(m.compute()), `${where}: ${k} value`).toEqual(bits(t.compute()));
          history[k]?.push(text);
        }
        if (clone !== undefined) {
          for (const k of keys) expect((clone.coll.metrics[k] as AnyMetric).encodeState(), `${where}: the clone's ${k}`).toBe(clone.texts[k]);
        }
      }
    }, 30_000);
  }
});
