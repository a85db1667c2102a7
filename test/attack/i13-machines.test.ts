/**
 * Attack on "the same bits whatever the machines": a seeded stream (rank 2 and rank 3, ties,
 * hostile values) cut at random points into segments, each run by its own metric (as machines
 * would), the segments' encoded states merged with `mergeState` along a random binary tree that
 * keeps their order. TopActivations, DeadFeaturesOverWindow, FeatureFrequencyStats and
 * FeatureActivationHistogram must give the bits of one metric over the whole stream; a merge out
 * of order (the later segment as receiver) numbers differently, so the test can tell.
 */
import { describe, expect, it } from 'vitest';
import {
  DeadFeaturesOverWindow,
  FeatureActivationHistogram,
  FeatureFrequencyStats,
  tensor,
  TopActivations,
  type Batch,
} from '../../src/index.js';
import { bits } from '../support/compare.js';
import { mulberry32 } from '../support/random.js';

type M = { update(b: Batch): void; compute(): unknown; encodeState(): string; mergeState(s: string): void; loadState(s: string): void };

const VALUES = [0, 0, 0, 0, -1, NaN, -0, 1e-45, 0.25, 0.5, 0.5, 2, 2, Infinity, 1e4, Math.fround(1e-4)];

describe('issue 13 metrics: segments merged along random trees give the whole stream', () => {
  for (let seed = 1; seed <= 12; seed++) {
    it(`seed ${seed}`, () => {
      const r = mulberry32(0x3ac41e + seed);
      const components = [undefined, 2][seed % 2];
      const features = 1 + Math.floor(r() * 6);
      const o = { numLearnedFeatures: features, ...(components === undefined ? {} : { numComponents: components }) };
      const makers: (() => M)[] = [
        () => new TopActivations({ ...o, k: 1 + Math.floor(seed / 3) }) as unknown as M,
        () => new DeadFeaturesOverWindow({ ...o, windowVectors: 4 }) as unknown as M,
        () => new FeatureFrequencyStats(o) as unknown as M,
        () => new FeatureActivationHistogram({ ...o, lowLog10: -2, highLog10: 2, binsPerDecade: 3 }) as unknown as M,
      ];
      const batches: Batch[] = Array.from({ length: 4 + Math.floor(r() * 10) }, () => {
        const rows = 1 + Math.floor(r() * 9);
        const width = (components ?? 1) * features;
        const shape = components === undefined ? [rows, features] : [rows, components, features];
        return { learnedActivations: tensor(Float32Array.from({ length: rows * width }, () => VALUES[Math.floor(r() * VALUES.length)] as number), shape) };
      });
      // Cut points: segments of consecutive batches.
      const segments: Batch[][] = [];
      let cur: Batch[] = [];
      for (const b of batches) {
        cur.push(b);
        if (r() < 0.4) {
          segments.push(cur);
          cur = [];
        }
      }
      if (cur.length > 0) segments.push(cur);
      for (const make of makers) {
        const whole = make();
        for (const b of batches) whole.update(b);
        const states = segments.map((seg) => {
          const m = make();
          for (const b of seg) m.update(b);
          return m.encodeState();
        });
        // Merge along a random tree: repeatedly join two neighbours.
        const work = [...states];
        while (work.length > 1) {
          const i = Math.floor(r() * (work.length - 1));
          const m = make();
          m.loadState(work[i] as string);
          m.mergeState(work[i + 1] as string);
          work.splice(i, 2, m.encodeState());
        }
        const merged = make();
        merged.loadState(work[0] as string);
        expect(bits(merged.compute()), `${whole.constructor.name}, ${segments.length} segments`).toEqual(bits(whole.compute()));
        expect(merged.encodeState()).toBe(whole.encodeState());
      }
    });
  }

  it('the order of a merge matters for the numbering (the test can tell)', () => {
    const a = new TopActivations({ numLearnedFeatures: 1, k: 2 });
    const b = new TopActivations({ numLearnedFeatures: 1, k: 2 });
    a.update({ learnedActivations: tensor([[1], [0]]) });
    b.update({ learnedActivations: tensor([[3]]) });
    const ab = new TopActivations({ numLearnedFeatures: 1, k: 2 });
    ab.loadState(a.encodeState());
    ab.mergeState(b.encodeState());
    expect(Array.from(ab.compute().indices.data)).toEqual([2, 0]);
    const ba = new TopActivations({ numLearnedFeatures: 1, k: 2 });
    ba.loadState(b.encodeState());
    ba.mergeState(a.encodeState());
    expect(Array.from(ba.compute().indices.data)).toEqual([0, 1]);
  });
});
