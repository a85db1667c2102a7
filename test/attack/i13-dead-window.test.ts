/**
 * Attack on DeadFeaturesOverWindow's window against a plain-loop reference written here: seeded
 * streams with gaps (`firstVectorIndex` on some batches), rank 2 and rank 3, windows of 1 to 30
 * vectors including the boundary (a feature that fired exactly `windowVectors` vectors ago is
 * dead; one vector less, alive), checked after every batch.
 */
import { describe, expect, it } from 'vitest';
import { DeadFeaturesOverWindow, tensor } from '../../src/index.js';
import { mulberry32 } from '../support/random.js';

describe('DeadFeaturesOverWindow against a plain reference, with gaps', () => {
  for (let seed = 1; seed <= 20; seed++) {
    it(`seed ${seed}`, () => {
      const r = mulberry32(0xdead0 + seed);
      const C = seed % 3 === 0 ? 3 : 1;
      const F = 1 + Math.floor(r() * 5);
      const window = 1 + Math.floor(r() * 30);
      const m = new DeadFeaturesOverWindow({ numLearnedFeatures: F, windowVectors: window, ...(C > 1 ? { numComponents: C } : {}) });
      const last = new Array<number>(C * F).fill(-1);
      let n = 0;
      for (let b = 0; b < 12; b++) {
        const rows = 1 + Math.floor(r() * 10);
        const first = r() < 0.3 ? n + Math.floor(r() * 2 * window) : undefined;
        const start = first ?? n;
        const data = Float32Array.from({ length: rows * C * F }, () => (r() < 0.15 ? [1, 0.5, Infinity, 1e-45][Math.floor(r() * 4)] as number : [0, -1, NaN, -0][Math.floor(r() * 4)] as number));
        for (let row = 0; row < rows; row++) for (let g = 0; g < C * F; g++) if ((data[row * C * F + g] as number) > 0) last[g] = start + row;
        n = start + rows;
        m.update({ learnedActivations: tensor(data, C > 1 ? [rows, C, F] : [rows, F]), ...(first === undefined ? {} : { firstVectorIndex: first }) });
        const got = m.compute();
        const since = last.map((j) => (j < 0 ? n : n - 1 - j));
        expect(Array.from(got.lastFired.data), `batch ${b}`).toEqual(last);
        expect(Array.from(got.vectorsSinceFired.data), `batch ${b}`).toEqual(since);
        expect(got.vectors.item()).toBe(n);
        const deadPer = Array.from({ length: C }, (_, c) => since.slice(c * F, (c + 1) * F).filter((s) => s >= window).length);
        expect(Array.from(got.dead.data), `batch ${b}`).toEqual(deadPer);
        expect(Array.from(got.deadMask.data).map(Number), `batch ${b}`).toEqual(since.map((s) => (s >= window ? 1 : 0)));
      }
    });
  }
});
