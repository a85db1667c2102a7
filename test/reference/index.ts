/**
 * Plain float64 reference implementations of the `sparse_autoencoder` (torchmetrics-based)
 * metrics. Deliberately simple: nested for-loops over row-major `number[]` data, no
 * dependencies, no vectorisation. The real implementation in src/ is checked against these.
 *
 * Conventions:
 * - A batch has shape [B, F] (no component axis) or [B, C, F] (component axis).
 * - "Accumulated" metric functions take the whole stream of batches and return what the
 *   Python metric's `compute()` returns after `update()` with each batch in order.
 * - Every metric result goes through `squeezeIfScalar` (torchmetrics squeezes a compute result
 *   with exactly one element to 0-d). The static helpers are not squeezed.
 */

/** Row-major float64 array. A 0-d array has `shape: []` and `data.length === 1`. */
export interface RefArray {
  shape: number[];
  data: number[];
}

// ---------------------------------------------------------------------------------------------
// Small helpers
// ---------------------------------------------------------------------------------------------

function fail(message: string): never {
  throw new Error(`reference: ${message}`);
}

function product(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Read data[i]; throws instead of returning undefined (noUncheckedIndexedAccess). */
function at(data: readonly number[], i: number): number {
  const v = data[i];
  if (v === undefined) fail(`index ${i} out of range (length ${data.length})`);
  return v;
}

function dim(shape: readonly number[], i: number): number {
  const v = shape[i];
  if (v === undefined) fail(`axis ${i} out of range for shape [${shape.join(', ')}]`);
  return v;
}

function checkArray(a: RefArray): void {
  for (const d of a.shape) {
    if (!Number.isInteger(d) || d < 0) fail(`bad shape [${a.shape.join(', ')}]`);
  }
  if (product(a.shape) !== a.data.length) {
    fail(`shape [${a.shape.join(', ')}] does not match data length ${a.data.length}`);
  }
}

function sameShape(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function zeros(n: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < n; i++) out.push(0);
  return out;
}

/**
 * Layout of a stream of batches: every batch rank 2 ([B, F]) or every batch rank 3
 * ([B, C, F]), same trailing dims. For rank 2, `numComponents` is 1 and `hasComponentAxis`
 * is false.
 */
interface BatchLayout {
  hasComponentAxis: boolean;
  numComponents: number;
  numFeatures: number;
}

function layoutOf(a: RefArray): BatchLayout {
  checkArray(a);
  if (a.shape.length === 2) {
    return { hasComponentAxis: false, numComponents: 1, numFeatures: dim(a.shape, 1) };
  }
  if (a.shape.length === 3) {
    return { hasComponentAxis: true, numComponents: dim(a.shape, 1), numFeatures: dim(a.shape, 2) };
  }
  return fail(`expected a batch of rank 2 or 3, got shape [${a.shape.join(', ')}]`);
}

function sameLayout(a: BatchLayout, b: BatchLayout): boolean {
  return (
    a.hasComponentAxis === b.hasComponentAxis &&
    a.numComponents === b.numComponents &&
    a.numFeatures === b.numFeatures
  );
}

/** Layout shared by all batches, or undefined when there are none. Throws if they differ. */
function streamLayout(batches: readonly RefArray[]): BatchLayout | undefined {
  let layout: BatchLayout | undefined;
  for (const batch of batches) {
    const l = layoutOf(batch);
    if (layout === undefined) layout = l;
    else if (!sameLayout(layout, l)) fail('batches differ in rank or trailing dimensions');
  }
  return layout;
}

/** Number of rows (size of the batch axis) of a batch. */
function rows(a: RefArray): number {
  return dim(a.shape, 0);
}

function totalRows(batches: readonly RefArray[]): number {
  let n = 0;
  for (const b of batches) n += rows(b);
  return n;
}

/** Concatenate arrays along axis 0 (all must have the same trailing dims and rank >= 1). */
function concatRows(parts: readonly RefArray[]): RefArray {
  const first = parts[0];
  if (first === undefined) return fail('cannot concatenate an empty list');
  const trailing = first.shape.slice(1);
  let n = 0;
  const data: number[] = [];
  for (const p of parts) {
    checkArray(p);
    if (p.shape.length < 1 || !sameShape(p.shape.slice(1), trailing)) {
      fail('cannot concatenate arrays with different trailing dimensions');
    }
    n += dim(p.shape, 0);
    for (const v of p.data) data.push(v);
  }
  return { shape: [n, ...trailing], data };
}

// ---------------------------------------------------------------------------------------------
// Public helpers
// ---------------------------------------------------------------------------------------------

/** torchmetrics' `_squeeze_if_scalar`: an array with exactly one element becomes 0-d. */
export function squeezeIfScalar(a: RefArray): RefArray {
  checkArray(a);
  if (a.data.length === 1) return { shape: [], data: [at(a.data, 0)] };
  return { shape: [...a.shape], data: [...a.data] };
}

/** Nested JS arrays of numbers -> RefArray. A bare number gives a 0-d array. */
export function fromNested(nested: unknown): RefArray {
  if (typeof nested === 'number') return { shape: [], data: [nested] };
  if (!Array.isArray(nested)) return fail('fromNested: expected a number or an array');
  if (nested.length === 0) return { shape: [0], data: [] };
  const children = nested.map((child: unknown) => fromNested(child));
  const first = children[0];
  if (first === undefined) return fail('fromNested: unreachable');
  const data: number[] = [];
  for (const child of children) {
    if (!sameShape(child.shape, first.shape)) fail('fromNested: ragged nested array');
    for (const v of child.data) data.push(v);
  }
  return { shape: [nested.length, ...first.shape], data };
}

/** RefArray -> nested JS arrays (a 0-d array gives a bare number). */
export function toNested(a: RefArray): unknown {
  checkArray(a);
  const build = (axis: number, offset: number): unknown => {
    if (axis === a.shape.length) return at(a.data, offset);
    const size = dim(a.shape, axis);
    const stride = product(a.shape.slice(axis + 1));
    const out: unknown[] = [];
    for (let i = 0; i < size; i++) out.push(build(axis + 1, offset + i * stride));
    return out;
  };
  return build(0, 0);
}

// ---------------------------------------------------------------------------------------------
// Static helpers (not squeezed)
// ---------------------------------------------------------------------------------------------

/**
 * `L1AbsoluteLoss.calculate_abs_sum`: sum of |x| over the last axis.
 * [B, F] -> [B]; [B, C, F] -> [B, C].
 */
export function refCalculateAbsSum(learned: RefArray): RefArray {
  checkArray(learned);
  if (learned.shape.length < 1) fail('calculateAbsSum needs rank >= 1');
  const f = dim(learned.shape, learned.shape.length - 1);
  const outShape = learned.shape.slice(0, -1);
  const outer = product(outShape);
  const data: number[] = [];
  for (let o = 0; o < outer; o++) {
    let sum = 0;
    for (let k = 0; k < f; k++) sum += Math.abs(at(learned.data, o * f + k));
    data.push(sum);
  }
  return { shape: outShape, data };
}

/**
 * `L2ReconstructionLoss.calculate_mse`: mean of (decoded - source)^2 over the last axis.
 * [B, F] -> [B]; [B, C, F] -> [B, C].
 */
export function refCalculateMse(decoded: RefArray, source: RefArray): RefArray {
  checkArray(decoded);
  checkArray(source);
  if (!sameShape(decoded.shape, source.shape)) fail('decoded and source shapes differ');
  if (decoded.shape.length < 1) fail('calculateMse needs rank >= 1');
  const f = dim(decoded.shape, decoded.shape.length - 1);
  const outShape = decoded.shape.slice(0, -1);
  const outer = product(outShape);
  const data: number[] = [];
  for (let o = 0; o < outer; o++) {
    let sum = 0;
    for (let k = 0; k < f; k++) {
      const diff = at(decoded.data, o * f + k) - at(source.data, o * f + k);
      sum += diff * diff;
    }
    data.push(sum / f);
  }
  return { shape: outShape, data };
}

/**
 * `CapacityMetric.capacities`.
 * [N, C, F] -> [C, N]: for component c, capacity_i = d_ii / sum_j d_ij with
 * d_ij = (x_i . x_j)^2 (dot product over F).
 * [N, F] -> [N]: the same with no component axis.
 * 0/0 gives NaN (kept).
 */
export function refCapacities(features: RefArray): RefArray {
  const layout = layoutOf(features);
  const n = rows(features);
  const numC = layout.numComponents;
  const f = layout.numFeatures;
  const out = zeros(numC * n);
  for (let c = 0; c < numC; c++) {
    // Copy component c's vectors into a contiguous [N, F] block (index (i * C + c) * F + k).
    const vectors: number[][] = [];
    for (let i = 0; i < n; i++) {
      const row: number[] = [];
      const base = (i * numC + c) * f;
      for (let k = 0; k < f; k++) row.push(at(features.data, base + k));
      vectors.push(row);
    }
    // d_ij = d_ji, so each squared dot product is computed once (j >= i) and added to both row
    // sums. Row j still receives its terms in ascending order of the other index.
    const diagonal = zeros(n);
    const sumSquaredDots = zeros(n);
    for (let i = 0; i < n; i++) {
      const xi = vectors[i] ?? fail('unreachable');
      for (let j = i; j < n; j++) {
        const xj = vectors[j] ?? fail('unreachable');
        let dot = 0;
        for (let k = 0; k < f; k++) dot += at(xi, k) * at(xj, k);
        const squared = dot * dot;
        sumSquaredDots[i] = at(sumSquaredDots, i) + squared;
        if (j === i) diagonal[i] = squared;
        else sumSquaredDots[j] = at(sumSquaredDots, j) + squared;
      }
    }
    for (let i = 0; i < n; i++) out[c * n + i] = at(diagonal, i) / at(sumSquaredDots, i);
  }
  return { shape: layout.hasComponentAxis ? [numC, n] : [n], data: out };
}

// ---------------------------------------------------------------------------------------------
// Losses
// ---------------------------------------------------------------------------------------------

/**
 * Shared reduction of the three losses: given per-vector values ([B] or [B, C] per batch),
 * either keep the batch axis (concatenate) or average over all vectors (shape [C] for rank-3
 * input, [1] for rank-2 input, as the Python state is zeros(num_components=1)). Not squeezed.
 */
function reducePerVector(
  perVector: readonly RefArray[],
  keepBatchDim: boolean,
  hasComponentAxis: boolean,
  numComponents: number,
): RefArray {
  if (keepBatchDim) return concatRows(perVector);
  const sums = zeros(numComponents);
  let n = 0;
  for (const v of perVector) {
    const b = dim(v.shape, 0);
    n += b;
    for (let i = 0; i < b; i++) {
      for (let c = 0; c < numComponents; c++) {
        sums[c] = at(sums, c) + at(v.data, i * numComponents + c);
      }
    }
  }
  const data: number[] = [];
  for (let c = 0; c < numComponents; c++) data.push(at(sums, c) / n);
  return { shape: hasComponentAxis ? [numComponents] : [1], data };
}

function l1Unsqueezed(
  batches: readonly RefArray[],
  keepBatchDim: boolean,
  numComponentsIfEmpty: number | undefined,
): RefArray {
  const layout = streamLayout(batches);
  if (layout === undefined) {
    // No updates: torch.cat([]) raises; the mean is zeros(num_components) / 0 = NaN.
    if (keepBatchDim) fail('keepBatchDim with no batches (torch.cat of an empty list)');
    const c = numComponentsIfEmpty ?? 1;
    return { shape: [c], data: zeros(c).map(() => NaN) };
  }
  const perVector = batches.map((b) => refCalculateAbsSum(b));
  return reducePerVector(perVector, keepBatchDim, layout.hasComponentAxis, layout.numComponents);
}

function l2Unsqueezed(
  pairs: readonly { decoded: RefArray; source: RefArray }[],
  keepBatchDim: boolean,
  numComponentsIfEmpty: number | undefined,
): RefArray {
  const layout = streamLayout(pairs.map((p) => p.source));
  streamLayout(pairs.map((p) => p.decoded));
  if (layout === undefined) {
    if (keepBatchDim) fail('keepBatchDim with no batches (torch.cat of an empty list)');
    const c = numComponentsIfEmpty ?? 1;
    return { shape: [c], data: zeros(c).map(() => NaN) };
  }
  const perVector = pairs.map((p) => refCalculateMse(p.decoded, p.source));
  return reducePerVector(perVector, keepBatchDim, layout.hasComponentAxis, layout.numComponents);
}

/**
 * `L1AbsoluteLoss`: per vector sum |x| over features; mean over all vectors of all batches
 * (shape [C] or [1]) or, with keepBatchDim, the concatenated per-vector values ([N] or [N, C]).
 * Squeezed. `numComponents` is only used for the no-batches case (result NaN).
 */
export function refL1AbsoluteLoss(
  batches: RefArray[],
  opts: { keepBatchDim: boolean; numComponents?: number },
): RefArray {
  return squeezeIfScalar(l1Unsqueezed(batches, opts.keepBatchDim, opts.numComponents));
}

/**
 * `L2ReconstructionLoss`: per vector mean over features of (decoded - source)^2; then reduced
 * exactly like L1. Squeezed.
 */
export function refL2ReconstructionLoss(
  pairs: { decoded: RefArray; source: RefArray }[],
  opts: { keepBatchDim: boolean; numComponents?: number },
): RefArray {
  return squeezeIfScalar(l2Unsqueezed(pairs, opts.keepBatchDim, opts.numComponents));
}

/** `SparseAutoencoderLoss`: elementwise L1 * l1Coefficient + L2 (unsqueezed), then squeezed. */
export function refSparseAutoencoderLoss(
  triples: { learned: RefArray; decoded: RefArray; source: RefArray }[],
  opts: { l1Coefficient: number; keepBatchDim: boolean; numComponents?: number },
): RefArray {
  for (const t of triples) {
    checkArray(t.learned);
    checkArray(t.source);
    if (!sameShape(t.learned.shape.slice(0, -1), t.source.shape.slice(0, -1))) {
      fail('learned and source differ in batch/component dimensions');
    }
  }
  const l1 = l1Unsqueezed(
    triples.map((t) => t.learned),
    opts.keepBatchDim,
    opts.numComponents,
  );
  const l2 = l2Unsqueezed(
    triples.map((t) => ({ decoded: t.decoded, source: t.source })),
    opts.keepBatchDim,
    opts.numComponents,
  );
  if (!sameShape(l1.shape, l2.shape)) fail('unreachable: L1 and L2 shapes differ');
  const data: number[] = [];
  for (let i = 0; i < l1.data.length; i++) {
    data.push(at(l1.data, i) * opts.l1Coefficient + at(l2.data, i));
  }
  return squeezeIfScalar({ shape: l1.shape, data });
}

// ---------------------------------------------------------------------------------------------
// Train metrics
// ---------------------------------------------------------------------------------------------

/**
 * `L0NormMetric`: per vector, number of elements != 0 (NaN counts as non-zero); summed over all
 * rows of all batches and divided by the total number of rows. Shape [C] for rank-3 input,
 * [] for rank-2 input. Squeezed. `numComponents` gives the shape when there are no batches
 * (result NaN = 0/0) and, if given with rank-3 input, must equal C.
 */
export function refL0Norm(batches: RefArray[], opts: { numComponents?: number } = {}): RefArray {
  const layout = streamLayout(batches);
  if (layout === undefined) {
    const shape = opts.numComponents === undefined ? [] : [opts.numComponents];
    return squeezeIfScalar({ shape, data: zeros(product(shape)).map(() => NaN) });
  }
  if (
    layout.hasComponentAxis &&
    opts.numComponents !== undefined &&
    opts.numComponents !== layout.numComponents
  ) {
    fail('numComponents does not match the component axis');
  }
  const numC = layout.numComponents;
  const f = layout.numFeatures;
  const counts = zeros(numC);
  for (const batch of batches) {
    const b = rows(batch);
    for (let i = 0; i < b; i++) {
      for (let c = 0; c < numC; c++) {
        const base = (i * numC + c) * f;
        let nonZero = 0;
        for (let k = 0; k < f; k++) {
          if (at(batch.data, base + k) !== 0) nonZero += 1; // NaN !== 0 is true
        }
        counts[c] = at(counts, c) + nonZero;
      }
    }
  }
  const n = totalRows(batches);
  const data = counts.map((count) => count / n);
  return squeezeIfScalar({ shape: layout.hasComponentAxis ? [numC] : [], data });
}

/** Fired counts (x > 0) per (component,) feature, unsqueezed: shape [F] or [C, F]. */
function firedCounts(batches: readonly RefArray[], layout: BatchLayout): RefArray {
  const numC = layout.numComponents;
  const f = layout.numFeatures;
  const counts = zeros(numC * f);
  for (const batch of batches) {
    const b = rows(batch);
    for (let i = 0; i < b; i++) {
      for (let c = 0; c < numC; c++) {
        for (let k = 0; k < f; k++) {
          if (at(batch.data, (i * numC + c) * f + k) > 0) {
            counts[c * f + k] = at(counts, c * f + k) + 1;
          }
        }
      }
    }
  }
  return { shape: layout.hasComponentAxis ? [numC, f] : [f], data: counts };
}

/**
 * `NeuronFiredCountMetric`: per (component,) feature, number of vectors with x > 0 over all
 * batches. Shape [F] or [C, F]; integer counts. Squeezed. Throws with no batches (no shape).
 */
export function refNeuronFiredCount(batches: RefArray[]): RefArray {
  const layout = streamLayout(batches);
  if (layout === undefined) return fail('refNeuronFiredCount needs at least one batch');
  return squeezeIfScalar(firedCounts(batches, layout));
}

/**
 * `FeatureDensityMetric`: fired count / total rows. Shape [F] or [C, F]. Squeezed.
 * Throws with no batches (no shape).
 */
export function refFeatureDensity(batches: RefArray[]): RefArray {
  const layout = streamLayout(batches);
  if (layout === undefined) return fail('refFeatureDensity needs at least one batch');
  const fired = firedCounts(batches, layout);
  const n = totalRows(batches);
  return squeezeIfScalar({ shape: fired.shape, data: fired.data.map((count) => count / n) });
}

/**
 * `NeuronActivityMetric`: number of dead neurons per component, where a neuron is dead when
 * fired <= thresholdIsDeadPortionFires * totalRows (float64). Shape [C] for rank-3 input,
 * [] for rank-2 input (with no batches: [numComponents] if given, else []). Integer. Squeezed.
 */
export function refNeuronActivity(
  batches: RefArray[],
  opts: { thresholdIsDeadPortionFires: number; numLearnedFeatures: number; numComponents?: number },
): RefArray {
  const found = streamLayout(batches);
  if (found !== undefined) {
    if (found.numFeatures !== opts.numLearnedFeatures) {
      fail('numLearnedFeatures does not match the feature axis');
    }
    if (
      found.hasComponentAxis &&
      opts.numComponents !== undefined &&
      opts.numComponents !== found.numComponents
    ) {
      fail('numComponents does not match the component axis');
    }
  }
  const layout: BatchLayout = found ?? {
    hasComponentAxis: opts.numComponents !== undefined,
    numComponents: opts.numComponents ?? 1,
    numFeatures: opts.numLearnedFeatures,
  };
  const fired = firedCounts(batches, layout);
  const threshold = opts.thresholdIsDeadPortionFires * totalRows(batches);
  const numC = layout.numComponents;
  const f = layout.numFeatures;
  const dead = zeros(numC);
  for (let c = 0; c < numC; c++) {
    for (let k = 0; k < f; k++) {
      if (at(fired.data, c * f + k) <= threshold) dead[c] = at(dead, c) + 1;
    }
  }
  return squeezeIfScalar({ shape: layout.hasComponentAxis ? [numC] : [], data: dead });
}

/**
 * `CapacityMetric`: concatenate all batches along the batch axis, then `refCapacities`.
 * Shape [C, N] (or [N] for rank-2 input). Squeezed. Throws with no batches.
 */
export function refCapacityMetric(batches: RefArray[]): RefArray {
  const layout = streamLayout(batches);
  if (layout === undefined) return fail('refCapacityMetric needs at least one batch');
  return squeezeIfScalar(refCapacities(concatRows(batches)));
}

// ---------------------------------------------------------------------------------------------
// Validation metrics
// ---------------------------------------------------------------------------------------------

/**
 * `ReconstructionScoreMetric`: three float64 sums per component; each update adds the sum of
 * all elements of each tensor at componentIdx (default 0; negative indices wrap like Python).
 * Result per component: (zero - recon) / (zero - source). Shape [numComponents], squeezed.
 */
export function refReconstructionScore(
  updates: {
    sourceModelLoss: RefArray;
    sourceModelLossWithReconstruction: RefArray;
    sourceModelLossWithZeroAblation: RefArray;
    componentIdx?: number;
  }[],
  opts: { numComponents: number },
): RefArray {
  const numC = opts.numComponents;
  const source = zeros(numC);
  const recon = zeros(numC);
  const zero = zeros(numC);
  const sumAll = (a: RefArray): number => {
    checkArray(a);
    let s = 0;
    for (const v of a.data) s += v;
    return s;
  };
  for (const u of updates) {
    let idx = u.componentIdx ?? 0;
    if (!Number.isInteger(idx) || idx < -numC || idx >= numC) fail('componentIdx out of range');
    if (idx < 0) idx += numC;
    source[idx] = at(source, idx) + sumAll(u.sourceModelLoss);
    recon[idx] = at(recon, idx) + sumAll(u.sourceModelLossWithReconstruction);
    zero[idx] = at(zero, idx) + sumAll(u.sourceModelLossWithZeroAblation);
  }
  const data: number[] = [];
  for (let c = 0; c < numC; c++) {
    data.push((at(zero, c) - at(recon, c)) / (at(zero, c) - at(source, c)));
  }
  return squeezeIfScalar({ shape: [numC], data });
}

// ---------------------------------------------------------------------------------------------
// Classwise wrapper
// ---------------------------------------------------------------------------------------------

/**
 * `ClasswiseWrapperWithMean._convert`: a 0-d result is treated as shape [1]. Key
 * `${prefix}/${componentNames[i]}` -> i-th slice along the first axis (zip semantics: only as
 * many keys as min(names, components)); then `${prefix}/mean` -> mean along the first axis
 * (written last, so it wins if a component is named "mean").
 */
export function refClasswiseWithMean(
  result: RefArray,
  componentNames: string[],
  prefix: string,
): Record<string, RefArray> {
  checkArray(result);
  const x: RefArray = result.shape.length === 0 ? { shape: [1], data: [...result.data] } : result;
  const numC = dim(x.shape, 0);
  const sliceShape = x.shape.slice(1);
  const sliceSize = product(sliceShape);
  const out: Record<string, RefArray> = {};
  const pairs = Math.min(numC, componentNames.length);
  for (let i = 0; i < pairs; i++) {
    const name = componentNames[i] ?? fail('unreachable');
    out[`${prefix}/${name}`] = {
      shape: [...sliceShape],
      data: x.data.slice(i * sliceSize, (i + 1) * sliceSize),
    };
  }
  const mean: number[] = [];
  for (let k = 0; k < sliceSize; k++) {
    let sum = 0;
    for (let i = 0; i < numC; i++) sum += at(x.data, i * sliceSize + k);
    mean.push(sum / numC);
  }
  out[`${prefix}/mean`] = { shape: [...sliceShape], data: mean };
  return out;
}
