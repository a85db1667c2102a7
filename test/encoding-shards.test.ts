/**
 * `encodeShardState` / `mergeEncodedStates`: the library's merge of encoded states from anywhere,
 * with the command's checks (a checksum, the metric and its configuration, every shard once) and
 * its fixed order (shard index, a fixed tree), so that the texts' arrival order cannot change a
 * bit. Float states (moments, loss sums of random floats) are used: a merge in another grouping
 * rounds differently.
 */
import { describe, expect, it } from 'vitest';
import {
  encodeShardState,
  FeatureActivationStats,
  L0NormMetric,
  L2ReconstructionLoss,
  mergeEncodedStates,
  SHARD_STATE_FORMAT,
  StateDecodeError,
  StateMergeError,
  tensor,
  type MetricState,
} from '../src/index.js';
import { featureActivationStats } from '../src/functional/index.js';
import { mulberry32 } from './support/random.js';

const F = 6;
const ROWS = [5, 1, 9, 3, 7, 2, 4];

/** Each shard's activations: random floats (not dyadic), about 40% fired. */
function shards(seed: number): Float32Array[] {
  const r = mulberry32(seed);
  return ROWS.map((n) => Float32Array.from({ length: n * F }, () => (r() < 0.4 ? r() * 3.3 : 0)));
}

function encoded(seed: number): string[] {
  return shards(seed).map((data, index) => {
    const m = new FeatureActivationStats({ numLearnedFeatures: F });
    m.update({ learnedActivations: tensor(data, [data.length / F, F]) });
    return encodeShardState(m.state(), { index, count: ROWS.length });
  });
}

const bits = (s: unknown): string => JSON.stringify(s, (_, v: unknown) => (v instanceof Float64Array ? Array.from(new Uint8Array(v.buffer, v.byteOffset, v.byteLength)) : v));

describe('mergeEncodedStates', () => {
  it('gives the same bits whatever order the texts come in, and the whole data’s values', () => {
    const texts = encoded(1);
    const r = mulberry32(2);
    const first = mergeEncodedStates(new FeatureActivationStats({ numLearnedFeatures: F }), texts);
    for (let t = 0; t < 20; t++) {
      const shuffled = [...texts].sort(() => r() - 0.5);
      expect(bits(mergeEncodedStates(featureActivationStats({ numLearnedFeatures: F }), shuffled))).toBe(bits(first));
    }
    // The values are the whole data's (up to rounding: one metric over all rows folds otherwise).
    const all = shards(1);
    const whole = new FeatureActivationStats({ numLearnedFeatures: F });
    for (const d of all) whole.update({ learnedActivations: tensor(d, [d.length / F, F]) });
    const merged = new FeatureActivationStats({ numLearnedFeatures: F });
    merged.loadState(first);
    const [a, b] = [merged.compute(), whole.compute()];
    for (const k of Object.keys(b) as (keyof typeof b)[]) {
      const [x, y] = [Array.from(a[k].data), Array.from(b[k].data)];
      for (const [i, v] of y.entries()) expect(x[i]).toBeCloseTo(v, 9);
    }
  });

  it('in a left fold of the texts, the order would show: the fixed tree is what makes it the same', () => {
    // The check above can fail: merging in arrival order does change bits on these states.
    const texts = encoded(1);
    const d = featureActivationStats({ numLearnedFeatures: F });
    const fold = (order: readonly string[]): MetricState => {
      const states = order.map((t) => (JSON.parse(t) as { state: unknown }).state);
      const ms = states.map((s) => {
        const m = new FeatureActivationStats({ numLearnedFeatures: F });
        m.loadState(JSON.stringify(s));
        return m.state();
      });
      return ms.reduce((x, y) => d.merge(x as never, y as never));
    };
    expect(bits(fold(texts))).not.toBe(bits(fold([...texts].reverse())));
  });

  it('refuses, naming the text: corrupted, truncated, foreign, future, another metric or configuration, another count, a duplicate, a missing shard', () => {
    const texts = encoded(3);
    const m = new FeatureActivationStats({ numLearnedFeatures: F });
    const refuse = (ts: readonly string[], type: typeof StateDecodeError | typeof StateMergeError, message: RegExp): void => {
      let error: unknown;
      try {
        mergeEncodedStates(m, ts);
      } catch (e) {
        error = e;
      }
      expect(error).toBeInstanceOf(type);
      expect((error as Error).message).toMatch(message);
    };
    const at = (texts[2] as string).indexOf('"base64":"') + 12;
    const flipped = (texts[2] as string).slice(0, at) + ((texts[2] as string)[at] === 'A' ? 'B' : 'A') + (texts[2] as string).slice(at + 1);
    refuse([...texts.slice(0, 2), flipped, ...texts.slice(3)], StateDecodeError, /^mergeEncodedStates: texts\[2\] is corrupted: the SHA-256 of its state does not match the one it carries$/);
    refuse([(texts[0] as string).slice(0, 50), ...texts.slice(1)], StateDecodeError, /^mergeEncodedStates: texts\[0\] is not JSON \(truncated or corrupted\?\)$/);
    refuse([m.encodeState(), ...texts.slice(1)], StateDecodeError, /^mergeEncodedStates: texts\[0\] is not an encoded shard state \(format "sae-metrics\/state", not "sae-metrics\/state-shard"; encode states with encodeShardState\)$/);
    refuse([(texts[0] as string).replace('"version":1', '"version":3'), ...texts.slice(1)], StateDecodeError, /^mergeEncodedStates: texts\[0\] is version 3 of sae-metrics\/state-shard, newer than this build reads \(1\)$/);
    const l0 = new L0NormMetric();
    l0.update({ learnedActivations: tensor([[1, 0]]) });
    refuse([...texts.slice(0, 6), encodeShardState(l0.state(), { index: 6, count: 7 })], StateMergeError, /^FeatureActivationStats: texts\[6\]: cannot merge a state of L0NormMetric into FeatureActivationStats \(metric differs\)$/);
    const wider = new FeatureActivationStats({ numLearnedFeatures: F + 1 });
    refuse([encodeShardState(wider.state(), { index: 0, count: 7 }), ...texts.slice(1)], StateMergeError, /^FeatureActivationStats: texts\[0\]: .*numLearnedFeatures/);
    const other = encodeShardState(m.state(), { index: 1, count: 8 });
    refuse([texts[0] as string, other, ...texts.slice(2)], StateMergeError, /^FeatureActivationStats: texts\[1\] is shard 1 of 8, but texts\[0\] is of 7: the shards of different counts overlap or leave gaps$/);
    refuse([...texts, texts[4] as string], StateMergeError, /^FeatureActivationStats: texts\[7\] is shard 4 of 7 again \(texts\[4\] is too\)$/);
    refuse([...texts.slice(0, 3), ...texts.slice(4)], StateMergeError, /^FeatureActivationStats: shard 3 of 7 is missing \(6 of 7 given\)$/);
    expect(() => mergeEncodedStates(m, [])).toThrow(/^mergeEncodedStates: texts must be a non-empty array of encoded shard states, got an array/);
    expect(() => encodeShardState(m.state(), { index: 2, count: 2 })).toThrow(/^encodeShardState: shard.index must be an integer in \[0, 2\) \(counted from 0\), got 2$/);
    // The metric passed in is left as it was.
    expect(m.encodeState()).toBe(new FeatureActivationStats({ numLearnedFeatures: F }).encodeState());
  });

  it('takes a metric or its definition; a state merged from two machines loads into a metric', () => {
    const l2 = (seed: number): string[] => {
      const r = mulberry32(seed);
      return [0, 1, 2].map((index) => {
        const m = new L2ReconstructionLoss();
        const x = Float32Array.from({ length: 12 }, () => r() - 0.5);
        m.update({ sourceActivations: tensor(x, [3, 4]), decodedActivations: tensor(x.map((v) => v * 0.7), [3, 4]) });
        return encodeShardState(m.state(), { index, count: 3 });
      });
    };
    const texts = l2(9);
    const m = new L2ReconstructionLoss();
    const s = mergeEncodedStates(m, texts);
    expect(bits(mergeEncodedStates(m.definition, [texts[2] as string, texts[0] as string, texts[1] as string]))).toBe(bits(s));
    m.loadState(s);
    expect(Number.isFinite(m.compute().item())).toBe(true);
    expect(JSON.parse(texts[0] as string)).toMatchObject({ format: SHARD_STATE_FORMAT, version: 1, index: 0, count: 3 });
  });
});
