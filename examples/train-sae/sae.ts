/**
 * A sparse autoencoder in TypeScript, its matrix work on {@link MatrixKernels}:
 *
 * - encoder: `c = relu(E (x - b_dec) + b_enc)`, `E` `[F, D]`, with the tied pre-encoder bias `b_dec`;
 * - decoder: `x̂ = Wᵀ c + b_dec`, `W` `[F, D]` whose rows (the decoder columns, one per learned
 *   feature) have unit norm: the part of each row's gradient parallel to the row is removed before
 *   the step, and the rows are renormalised after it;
 * - loss, per batch of B vectors: `mean_n [ (1/D) |x̂_n - x_n|² + λ |c_n|₁ ]`, i.e. the package's
 *   `SparseAutoencoderLoss` (`L2ReconstructionLoss + l1Coefficient * L1AbsoluteLoss`);
 * - Adam on all parameters.
 *
 * @module
 */
import { numberInRange, positiveInteger } from '../../src/functional/core.js';
import { normalSampler, randomUnitRows, seededRandom } from './data.js';
import type { AdamStep, MatrixKernels } from './kernels.js';

/** Settings of {@link SparseAutoencoder}. */
export interface SaeOptions {
  /** D: dimensions of an input vector. */
  readonly inputDims: number;
  /** F: learned features. */
  readonly learnedFeatures: number;
  /** B: vectors per training batch (the most `forward` takes at once). */
  readonly batchSize: number;
  /** λ, the L1 coefficient. */
  readonly l1Coefficient: number;
  /** Adam's learning rate. */
  readonly learningRate: number;
  /** Adam's β1 (default 0.9), β2 (default 0.999), ε (default 1e-8). */
  readonly beta1?: number;
  readonly beta2?: number;
  readonly epsilon?: number;
  /** Seed of the initial decoder directions. */
  readonly seed: number;
}

const NAME = 'SparseAutoencoder';

function positiveNumber(name: string, value: unknown): number {
  return numberInRange(NAME, name, value, { min: 0, exclusiveMin: true, max: Number.MAX_VALUE, expected: 'a positive finite number' });
}

function fraction(name: string, value: unknown): number {
  if (typeof value !== 'number' || !(value >= 0 && value < 1)) {
    throw new RangeError(`SparseAutoencoder: options.${name} must be in [0, 1), got ${String(value)}`);
  }
  return value;
}

/**
 * The SAE: parameters, gradients and Adam moments in buffers of its kernels, and the work buffers
 * of one batch. After {@link step} or {@link forward}, {@link codes} and {@link decoded} hold that
 * batch's learned activations and reconstruction.
 */
export class SparseAutoencoder {
  readonly kernels: MatrixKernels;
  readonly D: number;
  readonly F: number;
  readonly B: number;
  readonly l1Coefficient: number;
  readonly learningRate: number;
  readonly beta1: number;
  readonly beta2: number;
  readonly epsilon: number;

  /** Every parameter in one buffer (so one Adam call updates them all): `[E | W | b_enc | b_dec]`. */
  readonly params: Float32Array;
  /** Gradients, in the layout of {@link params}. */
  readonly grads: Float32Array;
  readonly #m: Float32Array;
  readonly #v: Float32Array;
  /** Encoder `E` `[F, D]`. */
  readonly encoder: Float32Array;
  /** Decoder `W` `[F, D]`: row f is the decoder column of learned feature f (unit norm). */
  readonly decoder: Float32Array;
  /** Encoder bias `b_enc` `[F]`. */
  readonly encoderBias: Float32Array;
  /** Tied pre-encoder bias `b_dec` `[D]`. */
  readonly decoderBias: Float32Array;
  /** Learned activations of the last batch, `[B, F]`. */
  readonly codes: Float32Array;
  /** Reconstruction of the last batch, `[B, D]`. */
  readonly decoded: Float32Array;
  readonly #centred: Float32Array;
  readonly #gradOut: Float32Array;
  readonly #gradPre: Float32Array;
  readonly #ones: Float32Array;
  readonly #scratch: Float32Array;
  #t = 0;

  /** @throws {TypeError | RangeError} on a bad option (naming it and its value). */
  constructor(kernels: MatrixKernels, options: SaeOptions) {
    this.kernels = kernels;
    const D = (this.D = positiveInteger(NAME, 'inputDims', options.inputDims));
    const F = (this.F = positiveInteger(NAME, 'learnedFeatures', options.learnedFeatures));
    const B = (this.B = positiveInteger(NAME, 'batchSize', options.batchSize));
    this.l1Coefficient = positiveNumber('l1Coefficient', options.l1Coefficient);
    this.learningRate = positiveNumber('learningRate', options.learningRate);
    this.beta1 = fraction('beta1', options.beta1 ?? 0.9);
    this.beta2 = fraction('beta2', options.beta2 ?? 0.999);
    this.epsilon = positiveNumber('epsilon', options.epsilon ?? 1e-8);
    if (!Number.isInteger(options.seed)) throw new RangeError(`SparseAutoencoder: options.seed must be an integer, got ${String(options.seed)}`);

    const count = 2 * F * D + F + D;
    this.params = kernels.alloc(count);
    this.grads = kernels.alloc(count);
    this.#m = kernels.alloc(count);
    this.#v = kernels.alloc(count);
    this.encoder = this.params.subarray(0, F * D);
    this.decoder = this.params.subarray(F * D, 2 * F * D);
    this.encoderBias = this.params.subarray(2 * F * D, 2 * F * D + F);
    this.decoderBias = this.params.subarray(2 * F * D + F, count);
    this.codes = kernels.alloc(B * F);
    this.decoded = kernels.alloc(B * D);
    this.#centred = kernels.alloc(B * D);
    this.#gradOut = kernels.alloc(B * D);
    this.#gradPre = kernels.alloc(B * F);
    this.#ones = kernels.alloc(B).fill(1);
    this.#scratch = kernels.alloc(D);

    // Decoder rows: random unit vectors; the encoder starts as the decoder's transpose (E = W, as
    // both are stored [F, D]); biases start at zero.
    randomUnitRows(normalSampler(seededRandom(options.seed)), this.decoder, F, D);
    this.encoder.set(this.decoder);
  }

  /** Adam steps taken. */
  get steps(): number {
    return this.#t;
  }

  #checkRows(fn: string, x: Float32Array, rows: number): void {
    if (!Number.isSafeInteger(rows) || rows < 1 || rows > this.B) {
      throw new RangeError(`SparseAutoencoder.${fn}: rows must be an integer in [1, ${this.B}], got ${String(rows)}`);
    }
    if (x.length < rows * this.D) throw new RangeError(`SparseAutoencoder.${fn}: x must hold at least ${rows * this.D} elements, got ${x.length}`);
  }

  /**
   * Encodes and decodes `rows` vectors of `x` `[rows, D]` (a buffer of the kernels) into
   * {@link codes} and {@link decoded}.
   */
  forward(x: Float32Array, rows: number = this.B): void {
    this.#checkRows('forward', x, rows);
    const { D, F, kernels: k } = this;
    const xc = this.#centred;
    const b = this.decoderBias;
    for (let n = 0; n < rows; n++) {
      const o = n * D;
      for (let d = 0; d < D; d++) xc[o + d] = (x[o + d] as number) - (b[d] as number);
    }
    k.denseNT(xc, this.encoder, this.encoderBias, this.codes, rows, F, D, true);
    k.sparseNN(this.codes, this.decoder, this.decoderBias, this.decoded, rows, F, D);
  }

  /**
   * The forward pass and the gradient of the batch loss into {@link grads} (the decoder rows'
   * gradients with their parallel part removed). Returns the batch's MSE and mean L1.
   */
  computeGradients(x: Float32Array, rows: number = this.B): { mse: number; l1: number } {
    this.forward(x, rows);
    const { D, F, kernels: k } = this;
    const out = this.#gradOut;
    const dec = this.decoded;
    const scale = 2 / (rows * D);
    let se = 0;
    for (let i = 0; i < rows * D; i++) {
      const e = (dec[i] as number) - (x[i] as number);
      se += e * e;
      out[i] = scale * e;
    }
    let l1 = 0;
    const codes = this.codes;
    for (let i = 0; i < rows * F; i++) l1 += codes[i] as number;

    // dL/dpre = [c > 0] ⊙ (G Wᵀ + λ/B) (c ≥ 0, so the L1 term's gradient is λ/B where c > 0).
    k.maskedNT(out, this.decoder, codes, this.l1Coefficient / rows, this.#gradPre, rows, F, D);
    const g = this.grads;
    const gEncoder = g.subarray(0, F * D);
    const gDecoder = g.subarray(F * D, 2 * F * D);
    const gEncoderBias = g.subarray(2 * F * D, 2 * F * D + F);
    const gDecoderBias = g.subarray(2 * F * D + F);
    k.sparseTN(codes, out, gDecoder, rows, F, D);
    k.sparseTN(this.#gradPre, this.#centred, gEncoder, rows, F, D);
    k.sparseNN(this.#ones, this.#gradPre, undefined, gEncoderBias, 1, rows, F);
    // b_dec enters twice: added to the reconstruction, subtracted before the encoder.
    k.sparseNN(this.#ones, out, undefined, gDecoderBias, 1, rows, D);
    k.sparseNN(gEncoderBias, this.encoder, undefined, this.#scratch, 1, F, D);
    for (let d = 0; d < D; d++) gDecoderBias[d] = (gDecoderBias[d] as number) - (this.#scratch[d] as number);
    k.projectRows(this.decoder, gDecoder, F, D);
    return { mse: se / (rows * D), l1: l1 / rows };
  }

  /** One Adam step with {@link grads}, then the decoder rows back to unit norm. */
  applyGradients(): void {
    this.#t += 1;
    const step: AdamStep = {
      lr: this.learningRate,
      b1: this.beta1,
      b2: this.beta2,
      eps: this.epsilon,
      c1: 1 - this.beta1 ** this.#t,
      c2: 1 - this.beta2 ** this.#t,
    };
    this.kernels.adam(this.params, this.grads, this.#m, this.#v, this.params.length, step);
    this.kernels.normaliseRows(this.decoder, this.F, this.D);
  }

  /** One training step on `x` `[rows, D]`: gradients, Adam, renormalisation. */
  step(x: Float32Array, rows: number = this.B): { mse: number; l1: number } {
    const losses = this.computeGradients(x, rows);
    this.applyGradients();
    return losses;
  }

  /** The L2 norm of each encoder row. */
  encoderNorms(): Float64Array {
    const { D, F } = this;
    const norms = new Float64Array(F);
    for (let f = 0; f < F; f++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += (this.encoder[f * D + d] as number) ** 2;
      norms[f] = Math.sqrt(s);
    }
    return norms;
  }

  /**
   * Re-initialises learned feature `f` towards `direction` `[D]` (Anthropic's resampling): its
   * decoder row becomes the unit vector along `direction`, its encoder row that vector times
   * `encoderNorm`, its encoder bias 0, and its Adam moments are reset.
   *
   * @throws {RangeError} for a feature out of range or a zero direction.
   */
  reinitialiseFeature(f: number, direction: ArrayLike<number>, encoderNorm: number): void {
    const { D, F } = this;
    if (!Number.isSafeInteger(f) || f < 0 || f >= F) throw new RangeError(`SparseAutoencoder.reinitialiseFeature: f must be an integer in [0, ${F}), got ${String(f)}`);
    let norm = 0;
    for (let d = 0; d < D; d++) norm += (direction[d] as number) ** 2;
    norm = Math.sqrt(norm);
    if (!(norm > 0)) throw new RangeError(`SparseAutoencoder.reinitialiseFeature: the direction for feature ${f} has norm ${norm}`);
    for (let d = 0; d < D; d++) {
      const u = (direction[d] as number) / norm;
      this.decoder[f * D + d] = u;
      this.encoder[f * D + d] = u * encoderNorm;
    }
    this.encoderBias[f] = 0;
    for (const moments of [this.#m, this.#v]) {
      moments.fill(0, f * D, (f + 1) * D);
      moments.fill(0, F * D + f * D, F * D + (f + 1) * D);
      moments[2 * F * D + f] = 0;
    }
  }
}
