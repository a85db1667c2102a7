/**
 * The training loop: an SAE learns the toy data's ground-truth features while this package's
 * metrics watch it as an RxJS stream.
 *
 * Every training batch goes into a `Subject` of batches (`learnedActivations`, `sourceActivations`,
 * `decodedActivations`) piped through `computeEvery(metrics, { vectors: window })`: every `window`
 * vectors a `MetricCollection` of `SparseAutoencoderLoss`, `L1AbsoluteLoss`,
 * `L2ReconstructionLoss`, `L0NormMetric`, `NeuronActivityMetric` and `FeatureDensityMetric`
 * emits its values over that window (in the training thread, synchronously). At a few fixed steps
 * early in training, the neurons that window found dead are resampled (Anthropic, "Towards
 * monosemanticity"): inputs are drawn with probability proportional to the square of their loss,
 * given per vector by `L2ReconstructionLoss` and `L1AbsoluteLoss` with `keepBatchDim: true`. Each
 * window is reported with the mean max cosine similarity (MMCS) between the ground-truth features
 * and the learned decoder columns.
 *
 * @module
 */
import { from, Subject, type Observable } from 'rxjs';
import {
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  SparseAutoencoderLoss,
  computeEvery,
  forwardMetric,
  tensor,
  type SparseAutoencoderBatch,
  type BackendOption,
  type GpujsMode,
} from '../../src/index.js';
import { optionRangeError } from '../../src/errors.js';
import { numberInRange, positiveInteger } from '../../src/functional/core.js';
import { checkBackendOption, checkGpujsMode } from '../../src/pool/backend.js';
import { ToyData, seededRandom } from './data.js';
import { chooseTrainingBackend, createMatrixKernels, type MatrixKernels } from './kernels.js';
import { SparseAutoencoder } from './sae.js';

/** Settings of a training run. */
export interface TrainOptions {
  /** Ground-truth features of the toy data. */
  readonly groundTruthFeatures: number;
  /** Dimensions of the toy data (the SAE's input). */
  readonly inputDims: number;
  /** Expected active ground-truth features per sample. */
  readonly activePerSample: number;
  /** Decay of the feature probabilities with their index. */
  readonly probabilityDecay: number;
  /** Learned features of the SAE. */
  readonly learnedFeatures: number;
  /** Vectors per training batch. */
  readonly batchSize: number;
  /** Adam's learning rate. */
  readonly learningRate: number;
  /** λ of `MSE + λ L1`. */
  readonly l1Coefficient: number;
  /** Vectors per metrics window (a report line, and the window dead neurons are counted over). */
  readonly windowVectors: number;
  /** Resample the dead neurons at the end of the first window that ends at or after each of these steps. */
  readonly resampleAt: readonly number[];
  /** Vectors whose losses weight the resampling draw. */
  readonly resampleInputs: number;
  /** The encoder norm of a resampled neuron, as a fraction of the mean alive encoder norm. */
  readonly resampleEncoderScale: number;
  /** Stop once MMCS reaches this. */
  readonly targetMmcs: number;
  /** Stop after this many steps... */
  readonly maxSteps: number;
  /** ...or this many seconds. */
  readonly maxSeconds: number;
  /** Seed of the data, the initial weights and the resampling draw. */
  readonly seed: number;
  /** The backend of the matrix kernels and the metrics (`auto`: the package's choice). */
  readonly backend: BackendOption;
  /** The gpu.js mode, for the gpujs backend. */
  readonly gpujsMode?: GpujsMode;
}

/** The defaults: Sharkey et al.'s toy data (512 features in 256 dimensions), a 2x dictionary. */
export const DEFAULT_OPTIONS: TrainOptions = {
  groundTruthFeatures: 512,
  inputDims: 256,
  activePerSample: 5,
  probabilityDecay: 0.99,
  learnedFeatures: 1024,
  batchSize: 256,
  learningRate: 2e-3,
  l1Coefficient: 5e-4,
  windowVectors: 25_600,
  resampleAt: [1000, 2000, 3000],
  resampleInputs: 8192,
  resampleEncoderScale: 0.2,
  targetMmcs: 0.95,
  maxSteps: 60_000,
  maxSeconds: 480,
  seed: 1,
  backend: 'auto',
};

/** One metrics window. */
export interface WindowReport {
  /** Steps taken so far. */
  readonly step: number;
  /** Training vectors seen so far. */
  readonly vectors: number;
  /** The window's metrics (means over its vectors). */
  readonly loss: number;
  readonly l1: number;
  readonly l2: number;
  readonly l0: number;
  /** Neurons that never fired in the window (`NeuronActivityMetric`). */
  readonly dead: number;
  /** Each learned feature's firing density in the window (`FeatureDensityMetric`). */
  readonly density: Float64Array;
  readonly meanDensity: number;
  /** MMCS after the window. */
  readonly mmcs: number;
  /** Dead neurons resampled after the window (0 when it was not a resampling point). */
  readonly resampled: number;
  /** Seconds since training started. */
  readonly seconds: number;
}

/** What a training run returns. */
export interface TrainResult {
  readonly backend: string;
  readonly backendReason: string;
  readonly initialMmcs: number;
  readonly finalMmcs: number;
  readonly steps: number;
  readonly vectors: number;
  readonly seconds: number;
  readonly reached: boolean;
  readonly windows: readonly WindowReport[];
}

const NAME = 'train-sae';

function checkOptions(o: TrainOptions): void {
  for (const name of ['groundTruthFeatures', 'inputDims', 'learnedFeatures', 'batchSize', 'windowVectors', 'resampleInputs', 'maxSteps'] as const) {
    positiveInteger(NAME, name, o[name]);
  }
  if (!Number.isSafeInteger(o.seed) || o.seed < 0) throw optionRangeError(NAME, 'seed', 'a non-negative integer', o.seed);
  for (const name of ['activePerSample', 'learningRate', 'l1Coefficient', 'resampleEncoderScale', 'maxSeconds'] as const) {
    numberInRange(NAME, name, o[name], { min: 0, exclusiveMin: true, max: Number.MAX_VALUE, expected: 'a positive finite number' });
  }
  numberInRange(NAME, 'targetMmcs', o.targetMmcs, { min: 0, exclusiveMin: true, max: 1, expected: 'in (0, 1]' });
  checkBackendOption(NAME, o.backend);
  if (o.gpujsMode !== undefined) checkGpujsMode(NAME, o.gpujsMode);
  if (!Array.isArray(o.resampleAt) || o.resampleAt.some((s) => !Number.isSafeInteger(s) || s < 1)) {
    throw new RangeError(`${NAME}: resampleAt must be a list of positive integer steps, got ${JSON.stringify(o.resampleAt)}`);
  }
}

/** The metrics the loop reports, over one window. */
export function trainingMetrics(learnedFeatures: number, l1Coefficient: number) {
  return new MetricCollection({
    loss: new SparseAutoencoderLoss({ l1Coefficient }),
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    dead: new NeuronActivityMetric({ numLearnedFeatures: learnedFeatures }),
    density: new FeatureDensityMetric({ numLearnedFeatures: learnedFeatures }),
  });
}

/** The per-vector losses the resampler weights inputs by. */
export function perVectorLosses() {
  return new MetricCollection({
    l1: new L1AbsoluteLoss({ keepBatchDim: true }),
    l2: new L2ReconstructionLoss({ keepBatchDim: true }),
  });
}

type WindowValues = ReturnType<ReturnType<typeof trainingMetrics>['compute']>;

/**
 * The mean over ground-truth features (rows of `truth` `[G, D]`) of the largest cosine similarity
 * with any learned decoder column (rows of `decoder` `[F, D]`); `cosines` `[G, F]` is work space.
 * The products run on the kernels; the norms are computed here.
 */
export function meanMaxCosineSimilarity(
  kernels: MatrixKernels,
  truth: Float32Array,
  decoder: Float32Array,
  cosines: Float32Array,
  G: number,
  F: number,
  D: number,
): number {
  kernels.denseNT(truth, decoder, undefined, cosines, G, F, D, false);
  const norm = (m: Float32Array, r: number): number => {
    let s = 0;
    for (let d = 0; d < D; d++) s += (m[r * D + d] as number) ** 2;
    return Math.sqrt(s);
  };
  const decoderNorms = Float64Array.from({ length: F }, (_, f) => norm(decoder, f));
  let total = 0;
  for (let g = 0; g < G; g++) {
    const gn = norm(truth, g);
    let best = -Infinity;
    for (let f = 0; f < F; f++) {
      const c = (cosines[g * F + f] as number) / (gn * (decoderNorms[f] as number) || 1);
      if (c > best) best = c;
    }
    total += best;
  }
  return total / G;
}

/**
 * Draws `count` distinct indices, each with probability proportional to its weight among those not
 * yet drawn (fewer when fewer weights are positive).
 */
export function weightedSampleWithoutReplacement(weights: Float64Array, count: number, random: () => number): number[] {
  const w = Float64Array.from(weights, (x) => (Number.isFinite(x) && x > 0 ? x : 0));
  let total = w.reduce((a, b) => a + b, 0);
  const picked: number[] = [];
  while (picked.length < count && total > 0) {
    let r = random() * total;
    let i = 0;
    for (; i < w.length - 1; i++) {
      r -= w[i] as number;
      if (r < 0 && (w[i] as number) > 0) break;
    }
    while ((w[i] as number) === 0) i--; // float rounding at the end: step back to a live weight
    picked.push(i);
    total -= w[i] as number;
    w[i] = 0;
    if (total <= 0) total = w.reduce((a, b) => a + b, 0);
  }
  return picked;
}

/** A training run in steps: the model, the data, the metrics stream. */
export class Trainer {
  readonly options: TrainOptions;
  readonly kernels: MatrixKernels;
  readonly backendReason: string;
  readonly data: ToyData;
  readonly sae: SparseAutoencoder;
  /** Every training batch, as the metrics receive it. */
  readonly batches: Observable<SparseAutoencoderBatch>;
  readonly #batches = new Subject<SparseAutoencoderBatch>();
  readonly #windows: WindowValues[] = [];
  #error: { error: unknown } | undefined;
  readonly #x: Float32Array;
  readonly #truth: Float32Array;
  readonly #cosines: Float32Array;
  readonly #resampleRandom: () => number;
  readonly #resampleAt: number[];
  readonly #metricOptions: { readonly backend: BackendOption; readonly gpujsMode?: GpujsMode };
  readonly #started = performance.now();
  #vectors = 0;

  /**
   * @param kernels the matrix kernels to use (default: those of the backend choice).
   * @throws {TypeError | RangeError} on a bad option; {@link Error} when the requested backend cannot run.
   */
  constructor(options: Partial<TrainOptions> = {}, kernels?: MatrixKernels) {
    const o = (this.options = { ...DEFAULT_OPTIONS, ...options });
    checkOptions(o);
    const choice = chooseTrainingBackend(o.backend, o.gpujsMode);
    this.backendReason = kernels === undefined ? choice.reason : 'kernels given by the caller';
    this.kernels = kernels ?? createMatrixKernels(choice);
    this.data = new ToyData({
      features: o.groundTruthFeatures,
      dims: o.inputDims,
      active: o.activePerSample,
      decay: o.probabilityDecay,
      seed: o.seed,
    });
    this.sae = new SparseAutoencoder(this.kernels, {
      inputDims: o.inputDims,
      learnedFeatures: o.learnedFeatures,
      batchSize: o.batchSize,
      l1Coefficient: o.l1Coefficient,
      learningRate: o.learningRate,
      seed: o.seed + 1,
    });
    this.#x = this.kernels.alloc(o.batchSize * o.inputDims);
    this.#truth = this.kernels.alloc(this.data.features.length);
    this.#truth.set(this.data.features);
    this.#cosines = this.kernels.alloc(o.groundTruthFeatures * o.learnedFeatures);
    this.#resampleRandom = seededRandom(o.seed + 2);
    this.#resampleAt = [...o.resampleAt].sort((a, b) => a - b);
    this.batches = this.#batches.asObservable();

    // The metrics stream: in this thread (no pool), on the same backend as the kernels.
    const backend = this.kernels.backend;
    const gpujsMode = backend === 'gpujs' ? (o.gpujsMode ?? choice.gpujsMode) : undefined;
    this.#metricOptions = { backend, ...(gpujsMode ? { gpujsMode } : {}) };
    this.#batches
      .pipe(computeEvery(trainingMetrics(o.learnedFeatures, o.l1Coefficient), { vectors: o.windowVectors }, this.#metricOptions))
      .subscribe({
        next: (values) => this.#windows.push(values),
        error: (error: unknown) => {
          this.#error = { error };
        },
      });
  }

  /** Training vectors seen so far. */
  get vectors(): number {
    return this.#vectors;
  }

  /** Seconds since this trainer was created. */
  get seconds(): number {
    return (performance.now() - this.#started) / 1000;
  }

  /** The current MMCS between the ground-truth features and the decoder columns. */
  mmcs(): number {
    const { groundTruthFeatures: G, learnedFeatures: F, inputDims: D } = this.options;
    return meanMaxCosineSimilarity(this.kernels, this.#truth, this.sae.decoder, this.#cosines, G, F, D);
  }

  /** A batch of copies of the current codes, inputs and reconstruction (the first `rows` vectors). */
  #batch(x: Float32Array, rows: number): SparseAutoencoderBatch {
    const { learnedFeatures: F, inputDims: D } = this.options;
    return {
      learnedActivations: tensor(this.sae.codes.slice(0, rows * F), [rows, F]),
      sourceActivations: tensor(x.slice(0, rows * D), [rows, D]),
      decodedActivations: tensor(this.sae.decoded.slice(0, rows * D), [rows, D]),
    };
  }

  /** One training step on a fresh batch; the batch goes to the metrics stream. */
  step(): void {
    const B = this.options.batchSize;
    this.data.sample(this.#x, B);
    this.sae.step(this.#x, B);
    this.#vectors += B;
    this.#batches.next(this.#batch(this.#x, B));
    if (this.#error) throw this.#error.error;
  }

  /**
   * Trains until the metrics stream emits its next window; resamples the dead neurons when the
   * window ends at or after the next resampling step; returns the window's report.
   */
  runWindow(): WindowReport {
    while (this.#windows.length === 0) this.step();
    const values = this.#windows.shift() as WindowValues;
    const density = Float64Array.from(values.density.data);
    let resampled = 0;
    if (this.#resampleAt.length > 0 && this.sae.steps >= (this.#resampleAt[0] as number)) {
      while (this.#resampleAt.length > 0 && this.sae.steps >= (this.#resampleAt[0] as number)) this.#resampleAt.shift();
      // NeuronActivityMetric counts the dead; the window's densities say which they are.
      const dead: number[] = [];
      density.forEach((d, f) => {
        if (d === 0) dead.push(f);
      });
      if (dead.length !== values.dead.item()) {
        throw new Error(`${NAME}: NeuronActivityMetric counts ${values.dead.item()} dead neurons but ${dead.length} have density 0`);
      }
      resampled = this.resample(dead);
    }
    return {
      step: this.sae.steps,
      vectors: this.#vectors,
      loss: values.loss.item(),
      l1: values.l1.item(),
      l2: values.l2.item(),
      l0: values.l0.item(),
      dead: values.dead.item(),
      density,
      meanDensity: density.reduce((a, b) => a + b, 0) / density.length,
      mmcs: this.mmcs(),
      resampled,
      seconds: this.seconds,
    };
  }

  /**
   * Resamples the given learned features: draws that many fresh inputs with probability
   * proportional to the square of their loss (`L2ReconstructionLoss + λ L1AbsoluteLoss`, per
   * vector, through `forwardMetric`), and re-initialises each feature towards its input (centred by
   * the tied bias) with an encoder norm of `resampleEncoderScale` times the mean alive encoder norm.
   * Returns how many were resampled.
   */
  resample(features: readonly number[]): number {
    if (features.length === 0) return 0;
    const { batchSize: B, inputDims: D, resampleInputs, l1Coefficient, resampleEncoderScale } = this.options;
    const inputs = new Float32Array(resampleInputs * D);
    const batches: SparseAutoencoderBatch[] = [];
    for (let start = 0; start < resampleInputs; start += B) {
      const rows = Math.min(B, resampleInputs - start);
      this.data.sample(this.#x, rows);
      inputs.set(this.#x.subarray(0, rows * D), start * D);
      this.sae.forward(this.#x, rows);
      batches.push(this.#batch(this.#x, rows));
    }
    const weights = new Float64Array(resampleInputs);
    let offset = 0;
    let failure: { error: unknown } | undefined;
    from(batches)
      .pipe(forwardMetric(perVectorLosses(), this.#metricOptions))
      .subscribe({
        next: ({ l1, l2 }) => {
          const a = l1.data;
          const b = l2.data;
          for (let i = 0; i < a.length; i++) weights[offset + i] = ((b[i] as number) + l1Coefficient * (a[i] as number)) ** 2;
          offset += a.length;
        },
        error: (error: unknown) => {
          failure = { error };
        },
      });
    if (failure) throw failure.error;
    if (offset !== resampleInputs) throw new Error(`${NAME}: the per-vector losses covered ${offset} of ${resampleInputs} inputs`);

    const dead = new Set(features);
    const norms = this.sae.encoderNorms();
    let alive = 0;
    let sum = 0;
    norms.forEach((n, f) => {
      if (!dead.has(f)) {
        alive++;
        sum += n;
      }
    });
    const encoderNorm = resampleEncoderScale * (alive > 0 ? sum / alive : 1);
    const picked = weightedSampleWithoutReplacement(weights, features.length, this.#resampleRandom);
    const direction = new Float64Array(D);
    const bias = this.sae.decoderBias;
    let count = 0;
    features.forEach((f, i) => {
      const row = picked[i];
      if (row === undefined) return;
      for (let d = 0; d < D; d++) direction[d] = (inputs[row * D + d] as number) - (bias[d] as number);
      this.sae.reinitialiseFeature(f, direction, encoderNorm);
      count++;
    });
    return count;
  }

  /** Completes the metrics stream and releases the kernels. */
  async close(): Promise<void> {
    this.#batches.complete();
    await this.kernels.dispose();
  }
}

/** A report line for a window. */
export function formatWindow(w: WindowReport, learnedFeatures: number): string {
  return [
    `step ${String(w.step).padStart(6)}`,
    `vectors ${String(w.vectors).padStart(9)}`,
    `loss ${w.loss.toExponential(3)}`,
    `l1 ${w.l1.toFixed(3)}`,
    `l2 ${w.l2.toExponential(3)}`,
    `l0 ${w.l0.toFixed(2).padStart(6)}`,
    `dead ${String(w.dead).padStart(4)}/${learnedFeatures}`,
    `density ${w.meanDensity.toFixed(5)}`,
    `MMCS ${w.mmcs.toFixed(4)}`,
    `${w.seconds.toFixed(1).padStart(6)} s`,
    ...(w.resampled > 0 ? [`(resampled ${w.resampled})`] : []),
  ].join('  ');
}

/**
 * Trains until MMCS reaches `targetMmcs`, or `maxSteps` steps or `maxSeconds` seconds have passed,
 * logging one line per window.
 *
 * @throws {TypeError | RangeError} on a bad option; {@link Error} when the requested backend cannot run.
 */
export async function train(options: Partial<TrainOptions> = {}, log: (line: string) => void = () => undefined): Promise<TrainResult> {
  const trainer = new Trainer(options);
  const o = trainer.options;
  try {
    log(`backend: ${trainer.kernels.describe} (${trainer.backendReason})`);
    log(
      `data: ${o.groundTruthFeatures} ground-truth features in ${o.inputDims} dimensions, ${o.activePerSample} active per sample on average (decay ${o.probabilityDecay}); ` +
        `SAE: ${o.learnedFeatures} learned features, batch ${o.batchSize}, lr ${o.learningRate}, l1 ${o.l1Coefficient}; resampling at steps ${o.resampleAt.join(', ') || 'none'}`,
    );
    const initialMmcs = trainer.mmcs();
    log(`initial MMCS ${initialMmcs.toFixed(4)}; target ${o.targetMmcs}; one line per ${o.windowVectors} vectors`);
    const windows: WindowReport[] = [];
    let reached = false;
    for (;;) {
      const w = trainer.runWindow();
      windows.push(w);
      log(formatWindow(w, o.learnedFeatures));
      reached = w.mmcs >= o.targetMmcs;
      if (reached || trainer.sae.steps >= o.maxSteps || trainer.seconds >= o.maxSeconds) break;
      // Let the event loop run between windows.
      await new Promise((resolve) => setImmediate(resolve));
    }
    const last = windows[windows.length - 1] as WindowReport;
    return {
      backend: trainer.kernels.describe,
      backendReason: trainer.backendReason,
      initialMmcs,
      finalMmcs: last.mmcs,
      steps: trainer.sae.steps,
      vectors: trainer.vectors,
      seconds: trainer.seconds,
      reached,
      windows,
    };
  } finally {
    await trainer.close();
  }
}
