/**
 * Attacks on `encodeShardState` / `mergeEncodedStates` with the per-feature parts' states
 * (the histogram's, the moments', top's) over activations with NaN, +-Infinity, -0, subnormals and
 * values on the histogram's edges: the merge is the same bits in any order of the texts, the exact
 * states (histogram counts, top, fired and non-zero counts) are those of one metric over every
 * row, and texts edited and resealed with a valid checksum into states that no rows can give are
 * refused, naming the text.
 */
import { createHash } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  encodeShardState,
  encodeState,
  FeatureActivationHistogram,
  FeatureActivationStats,
  L0NormMetric,
  L1AbsoluteLoss,
  mergeEncodedStates,
  StateMergeError,
  tensor,
  TopActivations,
  type MetricDefinition,
  type MetricState,
} from '../../src/index.js';
import { mulberry32 } from '../support/random.js';
import { thrown } from '../support/compare.js';

const F = 7;
const SPECIAL = [NaN, Infinity, -Infinity, -0, 0, 1e-45, 1e-40, 3.4028234663852886e38, 1e-4, 9.999999e-5, 1e4, 10000.001, 1, 0.1];

function rowsOf(n: number, r: () => number): Float32Array {
  return Float32Array.from({ length: n * F }, () =>
    r() < 0.1 ? (SPECIAL[Math.floor(r() * SPECIAL.length)] as number) : r() < 0.4 ? Math.exp((r() - 0.5) * 24) * (r() < 0.85 ? 1 : -1) : 0,
  );
}

/** What the tests use of a metric (each metric class is one). */
interface Made {
  update(batch: { learnedActivations: ReturnType<typeof tensor> }): void;
  state(): MetricState<object>;
  readonly definition: MetricDefinition<MetricState<object>, unknown>;
}

const makers: Record<string, () => Made> = {
  histogram: () => new FeatureActivationHistogram({ numLearnedFeatures: F }),
  stats: () => new FeatureActivationStats({ numLearnedFeatures: F }),
  top: () => new TopActivations({ numLearnedFeatures: F, k: 3 }),
  l0: () => new L0NormMetric(),
  l1: () => new L1AbsoluteLoss(),
};
const EXACT = new Set(['histogram', 'top', 'l0']);

function shuffled<T>(xs: readonly T[], r: () => number): T[] {
  const out = [...xs];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [out[i], out[j]] = [out[j] as T, out[i] as T];
  }
  return out;
}

describe('mergeEncodedStates over special values', () => {
  for (const seed of [1, 2, 3, 4]) {
    it(`seed ${seed}: any order of the texts gives the same bits; the exact states are one metric's over every row`, () => {
      const r = mulberry32(300 + seed);
      const sizes = Array.from({ length: 2 + Math.floor(r() * 6) }, () => [0, 1, 2, 5, 17, 40][Math.floor(r() * 6)] as number);
      const shards = sizes.map((n) => rowsOf(n, r));
      const all = new Float32Array(shards.reduce((a, s) => a + s.length, 0));
      shards.reduce((at, s) => (all.set(s, at), at + s.length), 0);
      for (const [name, make] of Object.entries(makers)) {
        const texts = shards.map((s, index) => {
          const m = make();
          if (s.length > 0) m.update({ learnedActivations: tensor(s, [s.length / F, F]) });
          return encodeShardState(m.state(), { index, count: shards.length });
        });
        const inOrder = encodeState(mergeEncodedStates(make(), texts));
        for (let t = 0; t < 3; t++) expect(encodeState(mergeEncodedStates(make(), shuffled(texts, r))), `${name}, order ${t}`).toBe(inOrder);
        if (EXACT.has(name)) {
          const whole = make();
          whole.update({ learnedActivations: tensor(all, [all.length / F, F]) });
          expect(inOrder, `${name}: the merged state against one metric over every row`).toBe(encodeState(whole.state()));
        }
      }
    }, 20_000);
  }
});

describe('mergeEncodedStates refuses resealed texts whose states no rows can give', () => {
  const r = mulberry32(77);
  const shards = [rowsOf(30, r), rowsOf(21, r), rowsOf(9, r)];
  const texts = (make: () => Made): string[] =>
    shards.map((s, index) => {
      const m = make();
      m.update({ learnedActivations: tensor(s, [s.length / F, F]) });
      return encodeShardState(m.state(), { index, count: shards.length });
    });
  /** `text` with its state's Float64Array at `path` edited by `edit`, resealed. */
  const reseal = (text: string, path: readonly string[], edit: (a: Float64Array) => void): string => {
    const o = JSON.parse(text) as { state: Record<string, unknown>; sha256: string };
    const at = path.reduce<Record<string, unknown>>((x, k) => x[k] as Record<string, unknown>, o.state) as unknown as { base64: string };
    const a = new Float64Array(new Uint8Array(Buffer.from(at.base64, 'base64')).buffer);
    edit(a);
    at.base64 = Buffer.from(a.buffer).toString('base64');
    o.sha256 = createHash('sha256').update(JSON.stringify(o.state)).digest('hex');
    return JSON.stringify(o);
  };

  it('a histogram cell over the fired count of its feature', () => {
    const t = texts(makers.histogram as () => Made);
    const bad = reseal(t[1] as string, ['parts', 'histogram', 'counts'], (a) => void (a[5] = (a[5] as number) + 1));
    const e = thrown(() => mergeEncodedStates((makers.histogram as () => Made)(), [t[0] as string, bad, t[2] as string]));
    expect(e).toBeInstanceOf(StateMergeError);
    expect((e as Error).message).toContain('texts[1]');
  });

  it('moments counting other activations than the fired ones', () => {
    const t = texts(makers.stats as () => Made);
    const bad = reseal(t[2] as string, ['parts', 'moments', 'count'], (a) => void (a[0] = (a[0] as number) + 1));
    const e = thrown(() => mergeEncodedStates((makers.stats as () => Made)(), [bad, t[0] as string, t[1] as string]));
    expect(e).toBeInstanceOf(StateMergeError);
    expect((e as Error).message).toContain('texts[0]');
  });

  it('a fired count over the vectors counted', () => {
    const t = texts(makers.histogram as () => Made);
    const bad = reseal(t[0] as string, ['parts', 'firedCount', 'fired'], (a) => void (a[3] = 31));
    const e = thrown(() => mergeEncodedStates((makers.histogram as () => Made)(), [t[2] as string, t[1] as string, bad]));
    expect(e).toBeInstanceOf(StateMergeError);
    expect((e as Error).message).toContain('texts[2]');
  });
});
