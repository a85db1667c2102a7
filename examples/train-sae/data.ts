/**
 * Toy data with a known answer, as in the toy experiments of "Taking features out of superposition
 * with sparse autoencoders" (Sharkey, Braun, Millidge, 2022): `features` ground-truth features are
 * random unit vectors in `dims` dimensions (more features than dimensions: superposition), and each
 * sample is a sparse non-negative combination of them. Feature `i` is active with probability
 * `p_i ∝ decay^i`, scaled so that `sum_i p_i = active` (the expected number of active features
 * per sample); an active feature's coefficient is uniform in [0, 1). (The paper's features may
 * also be correlated; these are independent.)
 *
 * @module
 */
import { positiveInteger } from '../../src/functional/core.js';
import { seededRandom } from '../random.js';

export { seededRandom };

/** Standard normal samples from a uniform generator (Box-Muller, both values of each pair used). */
export function normalSampler(random: () => number): () => number {
  let spare: number | undefined;
  return () => {
    if (spare !== undefined) {
      const s = spare;
      spare = undefined;
      return s;
    }
    let u = 0;
    while (u === 0) u = random();
    const r = Math.sqrt(-2 * Math.log(u));
    const theta = 2 * Math.PI * random();
    spare = r * Math.sin(theta);
    return r * Math.cos(theta);
  };
}

/** Fills `out` `[rows, columns]` with random unit rows (normal samples, normalised). */
export function randomUnitRows(normal: () => number, out: Float32Array, rows: number, columns: number): Float32Array {
  for (let r = 0; r < rows; r++) {
    const o = r * columns;
    let norm = 0;
    for (let c = 0; c < columns; c++) {
      const x = normal();
      out[o + c] = x;
      norm += x * x;
    }
    norm = Math.sqrt(norm);
    for (let c = 0; c < columns; c++) out[o + c] = (out[o + c] as number) / norm;
  }
  return out;
}

/** Features per block of the sampler (see {@link ToyData.sample}). */
export const BLOCK = 32;

/** Settings of {@link ToyData}. */
export interface ToyDataOptions {
  /** Ground-truth features (default 512). */
  readonly features: number;
  /** Dimensions of a sample (default 256). */
  readonly dims: number;
  /** Expected number of active features per sample (default 5). */
  readonly active: number;
  /** Probability decay from one feature to the next, in (0, 1] (default 0.99). */
  readonly decay: number;
  /** Seed of the generator. */
  readonly seed: number;
}

/** The toy data set: ground-truth features and a seeded stream of samples. */
export class ToyData {
  /** Ground-truth features, `[features, dims]`, each a unit vector. */
  readonly features: Float32Array;
  /** Probability that each feature is active in a sample. */
  readonly probabilities: Float64Array;
  readonly numFeatures: number;
  readonly dims: number;
  readonly #random: () => number;
  readonly #blocks: readonly { start: number; end: number; q: number; logMiss: number }[];

  /** @throws {TypeError | RangeError} on a bad option (naming it and its value). */
  constructor(options: ToyDataOptions) {
    this.numFeatures = positiveInteger('ToyData', 'features', options.features);
    this.dims = positiveInteger('ToyData', 'dims', options.dims);
    const { active, decay, seed } = options;
    if (typeof decay !== 'number' || !(decay > 0 && decay <= 1)) throw new RangeError(`ToyData: options.decay must be in (0, 1], got ${String(decay)}`);
    if (typeof seed !== 'number' || !Number.isInteger(seed)) throw new RangeError(`ToyData: options.seed must be an integer, got ${String(seed)}`);
    const weights = Array.from({ length: this.numFeatures }, (_, i) => decay ** i);
    const total = weights.reduce((a, b) => a + b, 0);
    if (typeof active !== 'number' || !(active > 0) || (active * (weights[0] as number)) / total > 1) {
      throw new RangeError(
        `ToyData: options.active must be positive and at most ${(total / (weights[0] as number)).toFixed(3)} (so that no probability exceeds 1) for these features and decay, got ${String(active)}`,
      );
    }
    this.probabilities = Float64Array.from(weights, (w) => (w * active) / total);
    const blocks: { start: number; end: number; q: number; logMiss: number }[] = [];
    for (let start = 0; start < this.numFeatures; start += BLOCK) {
      const end = Math.min(start + BLOCK, this.numFeatures);
      const q = Math.max(...this.probabilities.subarray(start, end));
      // A block whose probabilities all underflow to 0 never has an active feature.
      if (q > 0) blocks.push({ start, end, q, logMiss: Math.log1p(-q) });
    }
    this.#blocks = blocks;
    this.#random = seededRandom(seed);
    this.features = randomUnitRows(normalSampler(this.#random), new Float32Array(this.numFeatures * this.dims), this.numFeatures, this.dims);
  }

  /**
   * Fills `out` `[rows, dims]` with the next `rows` samples; returns it. When `coefficients`
   * `[rows, features]` is given, it receives each sample's coefficients (0 for inactive features).
   *
   * Each feature is active independently with its probability. Rather than one uniform draw per
   * feature and sample, features are visited in blocks of {@link BLOCK}: the candidates of a block
   * are found by geometric skips at the block's largest probability `q`, and a candidate `i` is
   * kept with probability `p_i / q` (thinning), which is the same distribution with about
   * `sum_blocks q` draws per sample instead of one per feature.
   */
  sample(out: Float32Array, rows: number, coefficients?: Float32Array): Float32Array {
    const D = this.dims;
    const G = this.numFeatures;
    if (out.length < rows * D) throw new RangeError(`ToyData.sample: out must hold at least ${rows * D} elements, got ${out.length}`);
    if (coefficients !== undefined) {
      if (coefficients.length < rows * G) throw new RangeError(`ToyData.sample: coefficients must hold at least ${rows * G} elements, got ${coefficients.length}`);
      coefficients.fill(0, 0, rows * G);
    }
    const random = this.#random;
    const p = this.probabilities;
    const f = this.features;
    out.fill(0, 0, rows * D);
    for (let r = 0; r < rows; r++) {
      const o = r * D;
      for (const { start, end, q, logMiss } of this.#blocks) {
        for (let i = start - 1; ; ) {
          // The next candidate: a geometric skip with success probability q.
          i += q >= 1 ? 1 : 1 + Math.floor(Math.log(1 - random()) / logMiss);
          if (i >= end) break;
          if (random() * q >= (p[i] as number)) continue;
          const c = random();
          if (coefficients !== undefined) coefficients[r * G + i] = c;
          const fo = i * D;
          for (let d = 0; d < D; d++) out[o + d] = (out[o + d] as number) + c * (f[fo + d] as number);
        }
      }
    }
    return out;
  }
}
