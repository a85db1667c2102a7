/** Seeded random tensors and the batches built from them, shared by the metric and collection tests. */
import { tensor } from '../../src/index.js';
import type { Batch, LearnedBatch, ReconstructionBatch, ReconstructionScoreBatch, SparseAutoencoderBatch, Tensor } from '../../src/index.js';
import { mulberry32 } from './random.js';

/** A float32 tensor of `shape` with values in [lo, hi), about `zeros` of them exactly 0. */
export function randomTensor(shape: number[], seed: number, lo = -2, hi = 2, zeros = 0.4): Tensor<'float32'> {
  const r = mulberry32(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = r() < zeros ? 0 : lo + (hi - lo) * r();
  return tensor(data, shape);
}

export const C = 2; // components
export const F = 4; // learned features
export const D = 3; // source / decoded features

/** 2 to 4 rows, depending on the seed. */
export const rowsOf = (seed: number): number => 2 + (seed % 3);

export function learned(seed: number, componentAxis: boolean): LearnedBatch {
  const rows = rowsOf(seed);
  return { learnedActivations: randomTensor(componentAxis ? [rows, C, F] : [rows, F], seed) };
}

export function reconstruction(seed: number, componentAxis: boolean): ReconstructionBatch {
  const rows = rowsOf(seed);
  const shape = componentAxis ? [rows, C, D] : [rows, D];
  return {
    sourceActivations: randomTensor(shape, seed * 7 + 1, -2, 2, 0),
    decodedActivations: randomTensor(shape, seed * 7 + 2, -2, 2, 0.2),
  };
}

export function saeBatch(seed: number, componentAxis: boolean): SparseAutoencoderBatch {
  return { ...learned(seed, componentAxis), ...reconstruction(seed, componentAxis) };
}

export function lossBatch(seed: number): ReconstructionScoreBatch {
  const rows = rowsOf(seed);
  return {
    sourceModelLoss: randomTensor([rows], seed * 5 + 1, 1, 2, 0),
    sourceModelLossWithReconstruction: randomTensor([rows], seed * 5 + 2, 2, 3, 0),
    sourceModelLossWithZeroAblation: randomTensor([rows], seed * 5 + 3, 4, 6, 0),
    componentIdx: seed % 2,
  };
}

/** A batch every metric accepts: activations with a component axis, and the three losses. */
export function fullBatch(seed: number): SparseAutoencoderBatch & ReconstructionScoreBatch {
  return { ...saeBatch(seed, true), ...lossBatch(seed) };
}

/**
 * A full-set batch of `rows` rows: `features` learned values, about `density` of them fired (in
 * [0.25, 3.25)), and source and decoded vectors of `dim` values in [-0.5, 0.5), from `r`; the
 * first learned value of each row in `marked` set to `mark` (a fixture worker's instruction).
 */
export function sparseFullBatch(r: () => number, rows: number, features: number, dim: number, density: number, marked: readonly number[] = [], mark = 0): Batch {
  const x = new Float32Array(rows * features);
  for (let i = 0; i < x.length; i++) x[i] = r() < density ? Math.fround(0.25 + r() * 3) : 0;
  for (const row of marked) x[row * features] = mark;
  const s = Float32Array.from({ length: rows * dim }, () => r() - 0.5);
  const d = Float32Array.from({ length: rows * dim }, () => r() - 0.5);
  return { learnedActivations: tensor(x, [rows, features]), sourceActivations: tensor(s, [rows, dim]), decodedActivations: tensor(d, [rows, dim]) };
}
