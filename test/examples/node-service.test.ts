import { describe, expect, it } from 'vitest';
import { makeBatch, runService, seededRandom, serviceMetrics } from '../../examples/node-service/service.js';

const COLUMNS = ['window', 'vectors', 'loss', 'l1', 'l2', 'l0', 'dead', 'mean density'];

describe('examples/node-service', () => {
  it('logs every window with the values the metrics give on those batches', async () => {
    const o = { batches: 8, batchRows: 64, learnedFeatures: 32, inputFeatures: 16, logEvery: 128, workers: 2, seed: 7 };
    const lines: string[] = [];
    const windows = await runService({ ...o, log: (line) => lines.push(line) });

    // The same batches through the plain classes, window by window.
    const random = seededRandom(o.seed);
    const batches = Array.from({ length: o.batches }, () => makeBatch(random, o));
    const perWindow = o.logEvery / o.batchRows;
    expect(windows).toHaveLength(o.batches / perWindow);
    // A header, then one line per window, numbered from 1, with the vectors so far.
    expect(lines).toHaveLength(windows.length + 1);
    expect((lines[0] as string).trim().split(/ {2,}/)).toEqual(COLUMNS);
    windows.forEach((w, k) => {
      const cells = (lines[k + 1] as string).trim().split(/ +/);
      expect(cells.slice(0, 2)).toEqual([String(k + 1), String((k + 1) * o.logEvery)]);
      expect(w.window).toBe(k + 1);
      expect(Number(cells[2])).toBeCloseTo(w.loss, 5);
      expect(cells[6]).toBe(`${w.dead}/${o.learnedFeatures}`);
      expect((lines[k + 1] as string).length).toBe((lines[0] as string).length);
      const metrics = serviceMetrics(o.learnedFeatures);
      for (const b of batches.slice(k * perWindow, (k + 1) * perWindow)) metrics.update(b);
      const r = metrics.compute();
      // The pool's WebAssembly kernel sums in float32 blocks carried into float64: 1e-6 relative.
      for (const key of ['loss', 'l1', 'l2', 'l0'] as const) {
        expect(Math.abs(w[key] - r[key]!.item()), key).toBeLessThanOrEqual(1e-6 * Math.abs(r[key]!.item()));
      }
      expect(w.dead).toBe(r.dead!.item());
      const density = Array.from(r.density!.data);
      expect(w.meanDensity).toBeCloseTo(density.reduce((a, b) => a + b, 0) / density.length, 12);
      // The stand-in SAE never fires its last eighth of features.
      expect(w.dead).toBeGreaterThanOrEqual(o.learnedFeatures / 8);
    });
  }, 30_000);
});
