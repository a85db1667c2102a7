/**
 * Attack on the hostile-state checks of issue 13's metrics: seeded random states (real states with
 * a few fields replaced by hostile numbers: NaN, ±Infinity, -0, subnormals, 2^53 - 1, 2^53, values
 * near the bounds of each check) loaded with `loadState`. Whatever is accepted must compute, encode
 * to text that loads and re-encodes to the same text, and merge (with itself, with another accepted
 * state, with a real state) into a state that `loadState` accepts again. A refused state leaves the
 * metric as it was.
 */
import { describe, expect, it } from 'vitest';
import {
  DeadFeaturesOverWindow,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureFrequencyStats,
  tensor,
  TopActivations,
} from '../../src/index.js';
import { mulberry32 } from '../support/random.js';

type AnyMetric = {
  update(b: unknown): void;
  compute(): unknown;
  state(): { parts: Record<string, Record<string, unknown>> };
  loadState(s: unknown): void;
  encodeState(): string;
  mergeState(o: unknown): void;
};

const F = 3;
const MAKERS: Record<string, () => AnyMetric> = {
  freq: () => new FeatureFrequencyStats({ numLearnedFeatures: F }) as unknown as AnyMetric,
  actstats: () => new FeatureActivationStats({ numLearnedFeatures: F }) as unknown as AnyMetric,
  acthist: () => new FeatureActivationHistogram({ numLearnedFeatures: F, lowLog10: -1, highLog10: 1, binsPerDecade: 2 }) as unknown as AnyMetric,
  top: () => new TopActivations({ numLearnedFeatures: F, k: 2 }) as unknown as AnyMetric,
  dead: () => new DeadFeaturesOverWindow({ numLearnedFeatures: F, windowVectors: 3 }) as unknown as AnyMetric,
  // Rank 3, two components.
  'actstats, 2 components': () => new FeatureActivationStats({ numLearnedFeatures: F, numComponents: 2 }) as unknown as AnyMetric,
  'acthist, 2 components': () => new FeatureActivationHistogram({ numLearnedFeatures: F, numComponents: 2, lowLog10: -1, highLog10: 1, binsPerDecade: 2 }) as unknown as AnyMetric,
  'top, 2 components, k 3': () => new TopActivations({ numLearnedFeatures: F, numComponents: 2, k: 3 }) as unknown as AnyMetric,
  'dead, 2 components': () => new DeadFeaturesOverWindow({ numLearnedFeatures: F, numComponents: 2, windowVectors: 3 }) as unknown as AnyMetric,
};

const HOSTILE = [NaN, Infinity, -Infinity, -0, 0, 5e-324, 1, 2, 3, 0.5, 1.5, 4, 1e-300, 1e300, 3.4028234663852886e38, 2 ** 53 - 1, 2 ** 53, 2 ** 53 - 2, -1, 0.1, 7];

function realState(name: string, r: () => number): AnyMetric {
  const m = (MAKERS[name] as () => AnyMetric)();
  const rows = 1 + Math.floor(r() * 6);
  const c = name.includes('2 components') ? 2 : 1;
  const shape = c === 1 ? [rows, F] : [rows, c, F];
  m.update({ learnedActivations: tensor(Float32Array.from({ length: rows * c * F }, () => (r() < 0.5 ? 0 : Math.floor(r() * 12) / 4)), shape) });
  return m;
}

/** A real state with 1 to 3 numbers replaced (in typed arrays or counts). */
function hostileState(name: string, r: () => number): unknown {
  const s = realState(name, r).state();
  const fields: [Record<string, unknown>, string][] = [];
  for (const part of Object.values(s.parts)) for (const key of Object.keys(part)) fields.push([part, key]);
  const edits = 1 + Math.floor(r() * 3);
  for (let e = 0; e < edits; e++) {
    const [part, key] = fields[Math.floor(r() * fields.length)] as [Record<string, unknown>, string];
    const v = part[key];
    const x = r() < 0.3 ? (HOSTILE[Math.floor(r() * HOSTILE.length)] as number) : Math.floor(r() * 16) / 4;
    if (typeof v === 'number') part[key] = x;
    else if (ArrayBuffer.isView(v)) {
      const a = v as unknown as Float64Array;
      if (a.length > 0) a[Math.floor(r() * a.length)] = x;
    }
  }
  return s;
}

function reloads(name: string, m: AnyMetric, what: string): void {
  const text = m.encodeState();
  const back = (MAKERS[name] as () => AnyMetric)();
  expect(() => back.loadState(text), what).not.toThrow();
  expect(back.encodeState(), what).toBe(text);
  expect(() => back.compute(), what).not.toThrow();
}

describe('hostile states of the issue 13 metrics', () => {
  for (const name of Object.keys(MAKERS)) {
    it(`${name}: accepted states compute, round-trip and merge into accepted states`, () => {
      const r = mulberry32(0x5747e + name.length);
      const accepted: AnyMetric[] = [];
      let refused = 0;
      for (let t = 0; t < 3000; t++) {
        const s = hostileState(name, r);
        const m = realState(name, r);
        const before = m.encodeState();
        try {
          m.loadState(s);
        } catch {
          refused++;
          expect(m.encodeState(), 'a refused state leaves the metric as it was').toBe(before);
          continue;
        }
        reloads(name, m, `accepted state ${t}`);
        accepted.push(m);
      }
      expect(refused).toBeGreaterThan(0);
      expect(accepted.length).toBeGreaterThan(10);
      for (let t = 0; t < 2000; t++) {
        const a = accepted[Math.floor(r() * accepted.length)] as AnyMetric;
        const b = r() < 0.2 ? realState(name, r) : (accepted[Math.floor(r() * accepted.length)] as AnyMetric);
        const m = (MAKERS[name] as () => AnyMetric)();
        m.loadState(a.encodeState());
        try {
          m.mergeState(b.encodeState());
        } catch (e) {
          // Only the 2^53 limit may refuse a merge of accepted states.
          expect(String(e), `merge ${t}`).toMatch(/2\^53/);
          continue;
        }
        reloads(name, m, `merge ${t}: ${a.encodeState()} + ${b.encodeState()}`);
      }
    });
  }

  it('actstats: two accepted states at the spread bound merge into an accepted state', () => {
    const state = (mean: number, m2: number) => ({
      metric: 'FeatureActivationStats',
      config: { numLearnedFeatures: 1, numComponents: null },
      parts: { firedCount: { fired: Float64Array.of(2), vectors: 2 }, moments: { count: Float64Array.of(2), mean: Float64Array.of(mean), m2: Float64Array.of(m2), max: Float64Array.of(1) } },
    });
    // Values {1, 1} have mean 1 and no spread: a spread of 0.5 is no possible state.
    const impossible = new FeatureActivationStats({ numLearnedFeatures: 1 });
    expect(() => impossible.loadState(state(1, 0.5) as never)).toThrow(/m2 must lie in/);
    // {0.5, 0.5 ± 0.5} at the bound: mean 0.5, m2 0.5 (values 1 and a tiny positive one).
    const a = new FeatureActivationStats({ numLearnedFeatures: 1 });
    a.loadState(state(0.5, 0.5) as never);
    const b = new FeatureActivationStats({ numLearnedFeatures: 1 });
    b.loadState(state(0.25, 0.125) as never);
    a.mergeState(b);
    const back = new FeatureActivationStats({ numLearnedFeatures: 1 });
    expect(() => back.loadState(a.encodeState())).not.toThrow();
  });

  it('actstats: real states of extreme values (one value repeated, float32 max, subnormals) load back', () => {
    const r = mulberry32(3);
    const palettes = [[0.1], [3.4028234663852886e38], [1e-45, 2e-45], [1.1754942e-38, 3.4e38], [0.1, 0.1, 0.1, 0.30000001192092896], [1e-45, 3.4e38]];
    for (const p of palettes) {
      for (let t = 0; t < 10; t++) {
        const m = new FeatureActivationStats({ numLearnedFeatures: 2 });
        const batches = 1 + Math.floor(r() * 40);
        for (let b = 0; b < batches; b++) {
          const rows = 1 + Math.floor(r() * 200);
          m.update({ learnedActivations: tensor(Float32Array.from({ length: rows * 2 }, () => p[Math.floor(r() * p.length)] as number), [rows, 2]) });
        }
        const back = new FeatureActivationStats({ numLearnedFeatures: 2 });
        expect(() => back.loadState(m.encodeState()), `${p.join(',')} #${t}`).not.toThrow();
      }
    }
  });
});
