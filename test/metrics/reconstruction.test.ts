/**
 * The reconstruction-quality metrics of issue 13 (`ExplainedVariance`,
 * `FractionOfVarianceUnexplained`, `CosineSimilarity`, `L2Ratio`, `RelativeReconstructionBias`,
 * `NormalizedMse`):
 *
 * - against the float64 references of test/reference/reconstruction.ts (two-pass variances, plain
 *   loops) on seeded random data of many shapes (rank 2 and 3, 1 to 3 components, 1 to 70
 *   features, batches of 1 to 40 rows, zero vectors among them), batch by batch and accumulated:
 *   the pure definitions (the JavaScript float64 kernel) within 1e-10, the classes (the WebAssembly
 *   pass by default, whose squared errors sum float32 blocks) within 2e-6;
 * - the zero-norm rules, by hand; the 1e-4 rule of L2Ratio on both sides of it;
 * - ExplainedVariance and FVU on data with mean 1e4 and spread 1 (100,000 vectors): within 1e-9 of
 *   a float64 two-pass reference, where the naive `Σx² − (Σx)² / n` in float64 is off by more
 *   than 1e-6;
 * - the monoid laws (fast-check): identity exactly, associativity, commutativity and
 *   `update(x ++ y) = merge(update(x), update(y))` within 1e-12 (Chan's rule and float64 sums in
 *   another order), purity;
 * - the same value (1e-12) whatever the batching, next to the per-batch average the other tools log,
 *   which changes;
 * - options, batches and hostile states refused with messages, leaving the state as it was;
 *   `encodeState` / `loadState` round trips exact.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  CosineSimilarity,
  decodeState,
  encodeState,
  ExplainedVariance,
  FractionOfVarianceUnexplained,
  InvalidBatchError,
  L2Ratio,
  NormalizedMse,
  RelativeReconstructionBias,
  StateMergeError,
  tensor,
  type ReconstructionBatch,
  type Tensor,
} from '../../src/index.js';
import {
  cosineSimilarity,
  explainedVariance,
  fractionOfVarianceUnexplained,
  l2Ratio,
  normalizedMse,
  relativeReconstructionBias,
  type Batch,
  type MetricDefinition,
  type MetricState,
} from '../../src/functional/index.js';
import {
  cosineSimilarityRef,
  explainedVarianceRef,
  fractionOfVarianceUnexplainedRef,
  l2RatioRef,
  normalizedMseRef,
  relativeReconstructionBiasRef,
  type PairBatch,
} from '../reference/reconstruction.js';
import { mulberry32 } from '../support/random.js';

type Def = MetricDefinition<MetricState<object>, Tensor<'float64'>>;
interface AnyClass {
  update(b: ReconstructionBatch): void;
  forward(b: ReconstructionBatch): Tensor;
  compute(): Tensor;
  state(): MetricState<object>;
  loadState(s: unknown): void;
  mergeState(s: unknown): void;
  encodeState(): string;
}

interface MetricCase {
  readonly name: string;
  readonly def: (c: number, d: number) => Def;
  readonly make: (c: number, d: number) => AnyClass;
  readonly ref: (b: readonly PairBatch[]) => number[];
}

const METRICS: readonly MetricCase[] = [
  {
    name: 'ExplainedVariance',
    def: (c, d) => explainedVariance({ numComponents: c, numFeatures: d }) as unknown as Def,
    make: (c, d) => new ExplainedVariance({ numComponents: c, numFeatures: d }) as unknown as AnyClass,
    ref: explainedVarianceRef,
  },
  {
    name: 'FractionOfVarianceUnexplained',
    def: (c, d) => fractionOfVarianceUnexplained({ numComponents: c, numFeatures: d }) as unknown as Def,
    make: (c, d) => new FractionOfVarianceUnexplained({ numComponents: c, numFeatures: d }) as unknown as AnyClass,
    ref: fractionOfVarianceUnexplainedRef,
  },
  {
    name: 'CosineSimilarity',
    def: (c) => cosineSimilarity({ numComponents: c }) as unknown as Def,
    make: (c) => new CosineSimilarity({ numComponents: c }) as unknown as AnyClass,
    ref: cosineSimilarityRef,
  },
  {
    name: 'L2Ratio',
    def: (c) => l2Ratio({ numComponents: c }) as unknown as Def,
    make: (c) => new L2Ratio({ numComponents: c }) as unknown as AnyClass,
    ref: l2RatioRef,
  },
  {
    name: 'RelativeReconstructionBias',
    def: (c) => relativeReconstructionBias({ numComponents: c }) as unknown as Def,
    make: (c) => new RelativeReconstructionBias({ numComponents: c }) as unknown as AnyClass,
    ref: relativeReconstructionBiasRef,
  },
  {
    name: 'NormalizedMse',
    def: (c) => normalizedMse({ numComponents: c }) as unknown as Def,
    make: (c) => new NormalizedMse({ numComponents: c }) as unknown as AnyClass,
    ref: (b) => normalizedMseRef(b).value,
  },
];

/**
 * Source around `mean` with spread `spread`; decoded a shrunk, noisy copy; some zero vectors of
 * either (none with `zeros` false).
 */
function pairBatch(shape: number[], seed: number, mean = 0, spread = 4, zeros = true): PairBatch {
  const rng = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const features = shape[shape.length - 1] as number;
  const source = new Float32Array(n);
  const decoded = new Float32Array(n);
  for (let v = 0; v < n / features; v++) {
    const u = zeros ? rng() : 1;
    const scale = zeros ? 0.1 + 3 * rng() : 1; // per-vector norms that differ widely
    for (let f = 0; f < features; f++) {
      const i = v * features + f;
      const x = u < 0.08 ? 0 : mean + (rng() - 0.5) * spread * scale;
      source[i] = x;
      decoded[i] = u < 0.12 && u >= 0.04 ? 0 : zeros ? x * (0.6 + 0.3 * rng()) + (rng() - 0.5) * 0.5 : x + (rng() - 0.5) * 0.5;
    }
  }
  return { source, decoded, shape };
}

const batchOf = (p: PairBatch): ReconstructionBatch => ({ sourceActivations: tensor(p.source, [...p.shape]), decodedActivations: tensor(p.decoded, [...p.shape]) });
const valuesOf = (t: Tensor): number[] => Array.from(t.data as Float64Array);

function expectNear(actual: readonly number[], expected: readonly number[], rel: number, what: string): void {
  expect(actual.length, `${what}: length`).toBe(expected.length);
  expected.forEach((e, i) => {
    const a = actual[i] as number;
    if (!Number.isFinite(e)) {
      if (!(Object.is(a, e) || (Number.isNaN(a) && Number.isNaN(e)))) expect.fail(`${what}[${i}] = ${a}, expected ${e}`);
      return;
    }
    if (!(Math.abs(a - e) <= rel * Math.max(1, Math.abs(e)))) expect.fail(`${what}[${i}] = ${a}, expected ${e} (tolerance ${rel})`);
  });
}

interface Stream {
  readonly components: number;
  readonly features: number;
  readonly rank: 2 | 3;
  readonly batches: PairBatch[];
}

function streams(count: number, seed: number): Stream[] {
  const rng = mulberry32(seed);
  return Array.from({ length: count }, (_, k) => {
    const rank = k % 2 === 0 ? 3 : 2;
    const components = rank === 2 ? 1 : 1 + Math.floor(rng() * 3);
    const features = [1, 2, 3, 4, 5, 8, 17, 64, 70][k % 9] as number;
    const sizes = Array.from({ length: 1 + Math.floor(rng() * 4) }, () => 1 + Math.floor(rng() * 40));
    const batches = sizes.map((rows, i) =>
      pairBatch(rank === 2 ? [rows, features] : [rows, components, features], seed * 1000 + k * 10 + i, k % 3 === 0 ? 3 : 0),
    );
    return { components, features, rank, batches };
  });
}

describe('against the float64 references, batch by batch and accumulated', () => {
  const cases = streams(30, 7);
  for (const m of METRICS) {
    it(`${m.name}: the pure definition within 1e-10, the class within 2e-6`, () => {
      for (const [k, s] of cases.entries()) {
        const def = m.def(s.components, s.features);
        const metric = m.make(s.components, s.features);
        let state = def.init();
        for (const [i, b] of s.batches.entries()) {
          const what = `${m.name} stream ${k} batch ${i} shape [${b.shape.join(', ')}]`;
          const alone = m.ref([b]);
          expectNear(valuesOf(def.compute(def.update(def.init(), batchOf(b)))), alone, 1e-10, `${what} definition, batch`);
          expectNear(valuesOf(metric.forward(batchOf(b))), alone, 2e-6, `${what} class forward`);
          state = def.update(state, batchOf(b));
          const upTo = m.ref(s.batches.slice(0, i + 1));
          expectNear(valuesOf(def.compute(state)), upTo, 1e-10, `${what} definition, accumulated`);
          expectNear(valuesOf(metric.compute()), upTo, 2e-6, `${what} class, accumulated`);
        }
      }
    });
  }

  it('NormalizedMse counts the zero-norm vectors it leaves out, as the reference does', () => {
    for (const s of streams(10, 8)) {
      const m = new NormalizedMse({ numComponents: s.components });
      for (const b of s.batches) m.update(batchOf(b));
      expect(valuesOf(m.zeroNormVectors())).toEqual(normalizedMseRef(s.batches).zeroNorm);
    }
    expect(normalizedMseRef(streams(10, 8).flatMap((s) => (s.components === 1 ? s.batches : []))).zeroNorm[0]).toBeGreaterThan(0);
  });
});

describe('zero norms and small norms, by hand', () => {
  const b = (source: number[][], decoded: number[][]): ReconstructionBatch => ({ sourceActivations: tensor(source), decodedActivations: tensor(decoded) });

  it('CosineSimilarity: 0 when one norm is 0, 1 when both are', () => {
    expect(new CosineSimilarity().forward(b([[0, 0]], [[1, 2]])).item()).toBe(0);
    expect(new CosineSimilarity().forward(b([[1, 2]], [[0, 0]])).item()).toBe(0);
    expect(new CosineSimilarity().forward(b([[0, 0]], [[0, 0]])).item()).toBe(1);
    expect(new CosineSimilarity().forward(b([[3, 4], [0, 0]], [[-3, -4], [0, 0]])).item()).toBe(0); // (-1 + 1) / 2
  });

  it('L2Ratio: ‖x‖ below 1e-4 divides by 1, at or above it by ‖x‖', () => {
    // ‖x‖ = 5e-5 (< 1e-4): ‖x̂‖ / 1; ‖x‖ = 2e-4: ‖x̂‖ / ‖x‖.
    const small = Math.fround(5e-5);
    expect(new L2Ratio().forward(b([[small, 0]], [[0, 0.5]])).item()).toBe(0.5);
    const above = Math.fround(2e-4);
    expect(new L2Ratio().forward(b([[above, 0]], [[0, above * 3]])).item()).toBeCloseTo(3, 5);
    expect(new L2Ratio().forward(b([[0, 0]], [[0, 0]])).item()).toBe(0);
  });

  it('NormalizedMse: zero-norm vectors are left out of the mean and counted apart; all of them: NaN', () => {
    const m = new NormalizedMse();
    expect(m.forward(b([[2, 0], [0, 0], [0, 0]], [[1, 0], [5, 5], [0, 0]])).item()).toBe(0.25);
    expect(m.zeroNormVectors().item()).toBe(2);
    const only = new NormalizedMse();
    expect(Number.isNaN(only.forward(b([[0, 0]], [[1, 1]])).item())).toBe(true);
    expect(only.zeroNormVectors().item()).toBe(1);
  });

  it('ExplainedVariance is about the mean vector, not about zero (the bug of SAELens #659)', () => {
    // x = (10, 12): mean 11, Σ‖x − x̄‖² = 2; x̂ = (10.5, 11.5): Σ‖x − x̂‖² = 0.5. About the mean: 0.75;
    // about zero it would be 1 − 0.5 / 244 ≈ 0.998.
    const ev = new ExplainedVariance({ numFeatures: 1 });
    expect(ev.forward(b([[10], [12]], [[10.5], [11.5]])).item()).toBe(0.75);
    const fvu = new FractionOfVarianceUnexplained({ numFeatures: 1 });
    // residual (−0.5, 0.5): variance 0.25; source variance 1.
    expect(fvu.forward(b([[10], [12]], [[10.5], [11.5]])).item()).toBe(0.25);
  });

  it('RelativeReconstructionBias is a ratio of global sums, not a mean of per-vector ratios', () => {
    // Σ‖x̂‖² = 1 + 16 = 17, Σ⟨x, x̂⟩ = 2 + 8 = 10 → 1.7 (the mean of 0.5 and 2 would be 1.25).
    expect(new RelativeReconstructionBias().forward(b([[2], [2]], [[1], [4]])).item()).toBe(1.7);
  });

  it('gives one value per component with numComponents', () => {
    const source = tensor([[[1, 0], [3, 4]], [[0, 1], [3, 4]]]);
    const decoded = tensor([[[1, 0], [0, 0]], [[0, 1], [6, 8]]]);
    const cos = new CosineSimilarity({ numComponents: 2 }).forward({ sourceActivations: source, decodedActivations: decoded });
    expect([...cos.shape]).toEqual([2]);
    expect(valuesOf(cos)).toEqual([1, 0.5]);
    const ratio = new L2Ratio({ numComponents: 2 }).forward({ sourceActivations: source, decodedActivations: decoded });
    expect(valuesOf(ratio)).toEqual([1, 1]);
  });
});

describe('ExplainedVariance and FVU with large means: mean 1e4, spread 1, 100,000 vectors of 8', () => {
  const rows = 100_000;
  const features = 8;
  const batches = Array.from({ length: 10 }, (_, i) => pairBatch([rows / 10, features], 9000 + i, 1e4, 1, false));

  /** EV by the naive one-pass form: Σx² − (Σx)² / n per dimension, in float64. */
  function naiveEv(): number {
    const s1 = new Float64Array(features);
    const s2 = new Float64Array(features);
    let err = 0;
    let n = 0;
    for (const b of batches) {
      for (let i = 0; i < b.source.length; i++) {
        const x = b.source[i] as number;
        s1[i % features] = (s1[i % features] as number) + x;
        s2[i % features] = (s2[i % features] as number) + x * x;
        err += (x - (b.decoded[i] as number)) ** 2;
      }
      n += b.shape[0] as number;
    }
    let scatter = 0;
    for (let f = 0; f < features; f++) scatter += (s2[f] as number) - (s1[f] as number) ** 2 / n;
    return 1 - err / scatter;
  }

  it('is within 1e-9 of the two-pass reference through the definition (JS kernel) and the class (wasm); the naive form is off by more than 1e-6', () => {
    const evRef = explainedVarianceRef(batches)[0] as number;
    const fvuRef = fractionOfVarianceUnexplainedRef(batches)[0] as number;
    const ev = explainedVariance({ numFeatures: features });
    let s = ev.init();
    for (const b of batches) s = ev.update(s, batchOf(b));
    const fvu = fractionOfVarianceUnexplained({ numFeatures: features });
    let t = fvu.init();
    for (const b of batches) t = fvu.update(t, batchOf(b));
    const evClass = new ExplainedVariance({ numFeatures: features });
    const fvuClass = new FractionOfVarianceUnexplained({ numFeatures: features });
    for (const b of batches) {
      evClass.update(batchOf(b));
      fvuClass.update(batchOf(b));
    }
    const rel = (a: number, e: number): number => Math.abs(a - e) / Math.abs(e);
    // The scatter is ~8e4 on a Σx² of ~8e13: the reference itself is exact to ~1e-13.
    expect(rel(ev.compute(s).item(), evRef)).toBeLessThan(1e-9);
    expect(rel(fvu.compute(t).item(), fvuRef)).toBeLessThan(1e-9);
    // The class sums squared errors in float32 blocks (1e-6 of the error); the moments are float64.
    expect(rel(evClass.compute().item(), evRef)).toBeLessThan(2e-6);
    expect(rel(fvuClass.compute().item(), fvuRef)).toBeLessThan(1e-9);
    expect(rel(naiveEv(), evRef), `naive ${naiveEv()} vs ${evRef}`).toBeGreaterThan(1e-6);
  });
});

// ---------------------------------------------------------------------------------------------
// Laws

/** Arbitrary streams: components, features, and 3 batches of 1-6 rows (seeds), with a mean. */
const streamArb = fc.record({
  rank: fc.constantFrom(2 as const, 3 as const),
  components: fc.integer({ min: 1, max: 3 }),
  features: fc.integer({ min: 1, max: 9 }),
  mean: fc.constantFrom(0, 5, 1e3),
  rows: fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 6 })),
  seed: fc.integer({ min: 0, max: 1e6 }),
});

interface StreamArb {
  readonly rank: 2 | 3;
  readonly components: number;
  readonly features: number;
  readonly mean: number;
  readonly rows: readonly [number, number, number];
  readonly seed: number;
}

function lawBatches(s: StreamArb): { c: number; d: number; batches: Batch[] } {
  const c = s.rank === 2 ? 1 : s.components;
  const batches = s.rows.map((rows, i) =>
    batchOf(pairBatch(s.rank === 2 ? [rows, s.features] : [rows, c, s.features], s.seed + i, s.mean)),
  );
  return { c, d: s.features, batches };
}

const concatBatches = (a: Batch, b: Batch): Batch => {
  const cat = (x: Tensor, y: Tensor): Tensor<'float32'> => {
    const data = new Float32Array(x.data.length + y.data.length);
    data.set(x.data as Float32Array);
    data.set(y.data as Float32Array, x.data.length);
    return tensor(data, [(x.shape[0] as number) + (y.shape[0] as number), ...x.shape.slice(1)]);
  };
  return {
    sourceActivations: cat(a.sourceActivations as Tensor, b.sourceActivations as Tensor),
    decodedActivations: cat(a.decodedActivations as Tensor, b.decodedActivations as Tensor),
  };
};

describe('monoid laws (fast-check)', () => {
  for (const m of METRICS) {
    it(`${m.name}: identity exactly; associativity, commutativity and update(x ++ y) = merge within 1e-12; purity`, () => {
      fc.assert(
        fc.property(streamArb, (arb) => {
          const { c, d, batches } = lawBatches(arb);
          const def = m.def(c, d);
          const [x, y, z] = batches.map((b) => def.update(def.init(), b)) as [MetricState<object>, MetricState<object>, MetricState<object>];
          const text = encodeState(x);
          expect(encodeState(def.merge(def.init(), x))).toBe(text);
          expect(encodeState(def.merge(x, def.init()))).toBe(text);
          const v = (s: MetricState<object>): number[] => valuesOf(def.compute(s));
          expectNear(v(def.merge(def.merge(x, y), z)), v(def.merge(x, def.merge(y, z))), 1e-12, 'associativity');
          expectNear(v(def.merge(x, y)), v(def.merge(y, x)), 1e-12, 'commutativity');
          const joined = def.update(def.init(), concatBatches(batches[0] as Batch, batches[1] as Batch));
          expectNear(v(joined), v(def.merge(x, y)), 1e-12, 'homomorphism');
          // Purity: nothing above changed x, and compute does not alias the state.
          expect(encodeState(x)).toBe(text);
          const out = def.compute(x);
          (out.data as Float64Array).fill(123);
          expect(encodeState(x)).toBe(text);
        }),
        { numRuns: 40, seed: 13 },
      );
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Batching

/** The per-batch value as the other tools log it: the metric of each batch alone, averaged over batches. */
function perBatchAverage(m: MetricCase, cuts: readonly PairBatch[]): number {
  return cuts.reduce((s, b) => s + (m.ref([b])[0] as number), 0) / cuts.length;
}

function cut(p: PairBatch, sizes: readonly number[]): PairBatch[] {
  const width = p.source.length / (p.shape[0] as number);
  const out: PairBatch[] = [];
  let r = 0;
  for (const k of sizes) {
    out.push({ source: p.source.slice(r * width, (r + k) * width), decoded: p.decoded.slice(r * width, (r + k) * width), shape: [k, ...p.shape.slice(1)] });
    r += k;
  }
  return out;
}

describe('the same value whatever the batching (the property per-batch averages lack)', () => {
  const whole = pairBatch([600, 16], 4242, 2);
  const cuttings: Record<string, number[]> = {
    'one batch of 600': [600],
    'batches of 2 and 598': [2, 598],
    'batches of 7 and a rest': [...Array.from({ length: 85 }, () => 7), 5],
    'uneven 3, 300, 97, 200': [3, 300, 97, 200],
  };
  for (const m of METRICS) {
    it(`${m.name}: within 1e-12 across cuttings (definition and class); the per-batch average moves by more than 1e-3`, () => {
      const values: number[] = [];
      const averages: number[] = [];
      for (const sizes of Object.values(cuttings)) {
        const parts = cut(whole, sizes);
        const def = m.def(1, 16);
        let s = def.init();
        for (const p of parts) s = def.update(s, batchOf(p));
        values.push(def.compute(s).item());
        const metric = m.make(1, 16);
        for (const p of parts) metric.update(batchOf(p));
        values.push(metric.compute().item());
        if (sizes.every((k) => k > 1)) averages.push(perBatchAverage(m, parts));
      }
      const ref = m.ref([whole])[0] as number;
      // The definition (float64 kernel) and the class (WebAssembly kernel: float32 error blocks per
      // vector, which no cutting changes) each within 1e-12 across cuttings; both within 2e-6 of float64.
      for (const parity of [0, 1]) {
        const same = values.filter((_, i) => i % 2 === parity);
        for (const v of same) expect(Math.abs(v - (same[0] as number))).toBeLessThanOrEqual(1e-12 * Math.abs(same[0] as number));
      }
      for (const v of values) expect(Math.abs(v - ref)).toBeLessThanOrEqual(2e-6 * Math.max(1, Math.abs(ref)));
      const spread = Math.max(...averages) - Math.min(...averages);
      expect(spread, `per-batch averages ${averages.join(', ')}`).toBeGreaterThan(1e-3);
    });
  }
});

// ---------------------------------------------------------------------------------------------
// Bad options, batches and states

describe('options are checked with messages naming the metric, the option and the value', () => {
  it('numFeatures is required by ExplainedVariance and FVU; numComponents is a positive integer', () => {
    expect(() => new ExplainedVariance(undefined as never)).toThrow(new TypeError('ExplainedVariance: options.numFeatures must be a positive integer, got undefined'));
    expect(() => new FractionOfVarianceUnexplained({} as never)).toThrow(TypeError);
    expect(() => new FractionOfVarianceUnexplained({} as never)).toThrow(/^FractionOfVarianceUnexplained: .*numFeatures.*undefined/);
    expect(() => new ExplainedVariance({ numFeatures: 0 })).toThrow(RangeError);
    expect(() => new ExplainedVariance({ numFeatures: 0 })).toThrow(/ExplainedVariance: .*numFeatures.*0/);
    expect(() => new ExplainedVariance({ numFeatures: 2.5 })).toThrow(RangeError);
    expect(() => new CosineSimilarity({ numComponents: '2' as never })).toThrow(TypeError);
    expect(() => new CosineSimilarity({ numComponents: '2' as never })).toThrow(/CosineSimilarity: .*numComponents.*"2"/);
    expect(() => new L2Ratio({ numComponents: -1 })).toThrow(/L2Ratio: .*numComponents.*-1/);
    expect(() => new NormalizedMse({ numFeatures: 3 } as never)).toThrow(new TypeError('NormalizedMse: unknown option numFeatures (known options: numComponents)'));
    expect(() => new RelativeReconstructionBias(5 as never)).toThrow(/RelativeReconstructionBias: options must be an object, got/);
  });

  it('options that would pass 2^28 values a state array are refused with a RangeError, before anything is allocated', () => {
    expect(() => new FractionOfVarianceUnexplained({ numFeatures: 2 ** 20, numComponents: 2 ** 12 })).toThrow(
      new RangeError('FractionOfVarianceUnexplained: options.numFeatures must leave at most 268435456 per-dimension values (numComponents × numFeatures), got 4096 × 1048576 = 4294967296'),
    );
    expect(() => new ExplainedVariance({ numFeatures: 2 ** 28 + 1 })).toThrow(
      new RangeError('ExplainedVariance: options.numFeatures must leave at most 268435456 per-dimension values (numComponents × numFeatures), got 1 × 268435457 = 268435457'),
    );
    expect(() => new CosineSimilarity({ numComponents: 2 ** 31 })).toThrow(new RangeError('CosineSimilarity: options.numComponents must be at most 268435456, got 2147483648'));
  });
});

describe('bad batches are refused with a message, and the state stays as it was', () => {
  const good = batchOf(pairBatch([3, 2, 4], 1));
  const cases: [string, ReconstructionBatch, RegExp][] = [
    ['no decodedActivations', { sourceActivations: good.sourceActivations } as unknown as ReconstructionBatch, /must have a decodedActivations field/],
    ['shapes differ', { ...good, decodedActivations: tensor(new Float32Array(3 * 2 * 5), [3, 2, 5]) }, /must have the same shape, got \[3, 2, 5\] and \[3, 2, 4\]/],
    ['wrong component count', batchOf(pairBatch([3, 3, 4], 2)), /must have 2 components on axis 1 \(numComponents\), got shape \[3, 3, 4\]/],
    ['an empty batch', batchOf(pairBatch([0, 2, 4], 3)), /is an empty batch/],
    ['float64 data', { ...good, sourceActivations: { data: new Float64Array(24), shape: [3, 2, 4] } } as unknown as ReconstructionBatch, /must hold float32 data/],
  ];
  for (const m of METRICS) {
    it(`${m.name}`, () => {
      const metric = m.make(2, 4);
      metric.update(good);
      const before = metric.encodeState();
      for (const [what, batch, pattern] of cases) {
        let error: unknown;
        try {
          metric.update(batch);
        } catch (e) {
          error = e;
        }
        expect(error, what).toBeInstanceOf(InvalidBatchError);
        expect((error as Error).message, what).toMatch(new RegExp(`^${m.name}: `));
        expect((error as Error).message, what).toMatch(pattern);
        expect(metric.encodeState(), what).toBe(before);
      }
    });
  }
  it('ExplainedVariance and FVU refuse a batch of another width than numFeatures', () => {
    for (const metric of [new ExplainedVariance({ numFeatures: 5, numComponents: 2 }), new FractionOfVarianceUnexplained({ numFeatures: 5, numComponents: 2 })]) {
      expect(() => metric.update(good)).toThrow(/: sourceActivations must have 5 features on its last axis \(numFeatures\), got shape \[3, 2, 4\]$/);
    }
  });
});

describe('states: exact round trips, hostile states refused', () => {
  for (const m of METRICS) {
    it(`${m.name}: encodeState / loadState round-trip the state and the value bit for bit`, () => {
      const metric = m.make(2, 4);
      for (const seed of [1, 2, 3]) metric.update(batchOf(pairBatch([5, 2, 4], seed, 3)));
      const text = metric.encodeState();
      const copy = m.make(2, 4);
      copy.loadState(text);
      expect(copy.encodeState()).toBe(text);
      expect(Buffer.from(copy.compute().data.buffer).equals(Buffer.from(metric.compute().data.buffer))).toBe(true);
      const object = m.make(2, 4);
      object.loadState(decodeState(text));
      expect(object.encodeState()).toBe(text);
    });
  }

  for (const m of METRICS) {
    it(`${m.name}: a state made from NaN, infinite and huge activations loads back (its checks accept what the metric makes)`, () => {
      const metric = m.make(2, 4);
      const p = pairBatch([6, 2, 4], 77, 0);
      const awkward = [Number.NaN, Infinity, -Infinity, 3e38, -3e38, 1e-42];
      awkward.forEach((v, i) => {
        p.source[i * 5] = v;
        p.decoded[i * 5 + 2] = v;
      });
      metric.update(batchOf(p));
      metric.update(batchOf(pairBatch([3, 2, 4], 78)));
      const text = metric.encodeState();
      const copy = m.make(2, 4);
      copy.loadState(text);
      expect(copy.encodeState()).toBe(text);
      copy.mergeState(text);
    });
  }

  /** Mutations of a valid state (parts as plain objects) that must be refused, with the message they must give. */
  const hostile: Record<string, [string, (p: Record<string, Record<string, unknown>>) => void, RegExp][]> = {
    ExplainedVariance: [
      ['negative m2', (p) => ((p.source as { m2: Float64Array }).m2[1] = -1), /parts\.source\.m2 cannot be negative/],
      ['short mean', (p) => ((p.source as { mean: unknown }).mean = new Float64Array(3)), /parts\.source\.mean must have 8 elements, got 3/],
      ['fractional vectors', (p) => ((p.source as { vectors: unknown }).vectors = 2.5), /parts\.source\.vectors must be a non-negative integer/],
      ['vectors disagree', (p) => ((p.error as { vectors: number }).vectors += 1), /error\.vectors \(16\) and source\.vectors \(15\) must agree/],
      ['negative error', (p) => ((p.error as { sum: Float64Array }).sum[0] = -2), /parts\.error\.sum cannot be negative/],
      ['an extra field', (p) => ((p.source as Record<string, unknown>).extra = 1), /parts\.source\.extra is not a field/],
      [
        'spread in one vector',
        (p) => {
          (p.source as { vectors: number }).vectors = 1;
          (p.error as { vectors: number }).vectors = 1;
        },
        /parts\.source\.m2 must be 0 with one vector \(one vector has no spread\), got [0-9.e+-]+ at index 0/,
      ],
    ],
    FractionOfVarianceUnexplained: [
      ['moments without vectors', (p) => ((p.residual as { vectors: number }).vectors = 0), /residual/],
      ['an array for m2', (p) => ((p.residual as { m2: unknown }).m2 = [1, 2]), /parts\.residual\.m2 must be a Float64Array/],
    ],
    CosineSimilarity: [['a sum past the vectors', (p) => ((p.cosine as { sum: Float64Array }).sum[0] = 100), /parts\.cosine\.sum must be within \[-vectors, vectors\]/]],
    L2Ratio: [['a negative ratio sum', (p) => ((p.ratio as { sum: Float64Array }).sum[1] = -0.5), /parts\.ratio\.sum cannot be negative/]],
    RelativeReconstructionBias: [['vectors disagree', (p) => ((p.dot as { vectors: number }).vectors = 3), /decodedSq\.vectors \(15\) and dot\.vectors \(3\) must agree/]],
    NormalizedMse: [
      ['more zero norms than vectors', (p) => ((p.zeroNorm as { sum: Float64Array }).sum[0] = 16), /parts\.zeroNorm\.sum must hold counts of zero-norm vectors within \[0, vectors = 15\]/],
      ['a fractional zero-norm count', (p) => ((p.zeroNorm as { sum: Float64Array }).sum[0] = 0.5), /parts\.zeroNorm\.sum must hold counts/],
      ['a sum without vectors', (p) => Object.assign(p.nmse as object, { vectors: 0 }), /nmse/],
      [
        'a normalized error where every vector had zero norm',
        (p) => ((p.zeroNorm as { sum: Float64Array }).sum[1] = 15),
        /nmse\.sum must be 0 where every vector had zero norm \(zeroNorm\.sum = vectors = 15\), got [0-9.e+-]+ at index 1/,
      ],
    ],
  };
  for (const m of METRICS) {
    it(`${m.name}: hostile states are refused by loadState and mergeState, naming the field; the state is unchanged`, () => {
      const metric = m.make(2, 4);
      for (const seed of [4, 5, 6]) metric.update(batchOf(pairBatch([5, 2, 4], seed)));
      const before = metric.encodeState();
      for (const [what, mutate, pattern] of hostile[m.name] ?? []) {
        const bad = metric.state() as unknown as { parts: Record<string, Record<string, unknown>> };
        mutate(bad.parts);
        for (const apply of [(s: unknown) => metric.loadState(s), (s: unknown) => (metric as unknown as { mergeState(s: unknown): void }).mergeState(s)]) {
          let error: unknown;
          try {
            apply(bad);
          } catch (e) {
            error = e;
          }
          expect(error, what).toBeInstanceOf(StateMergeError);
          expect((error as Error).message, what).toMatch(new RegExp(`^${m.name}: `));
          expect((error as Error).message, what).toMatch(pattern);
          expect(metric.encodeState(), what).toBe(before);
        }
      }
      expect((hostile[m.name] ?? []).length).toBeGreaterThan(0);
    });
  }
});
