/**
 * Float64 references of the reconstruction-quality metrics, written from the definitions of
 * issue 13 with plain loops (no code of src/): the variances by two passes (the mean first, then
 * the squared deviations), everything in float64. Inputs are lists of batches of `[rows, feature]`
 * or `[rows, component, feature]` float32 data; each function returns one value per component.
 */

/** A batch of source and decoded activations (the same shape). */
export interface PairBatch {
  readonly source: Float32Array;
  readonly decoded: Float32Array;
  readonly shape: readonly number[];
}

/** The vectors of component `c` of every batch, as float64 arrays of `[x, x̂]`. */
function vectorsOf(batches: readonly PairBatch[], c: number): [number[], number[]][] {
  const out: [number[], number[]][] = [];
  for (const b of batches) {
    const rows = b.shape[0] as number;
    const components = b.shape.length === 3 ? (b.shape[1] as number) : 1;
    const features = b.shape[b.shape.length - 1] as number;
    for (let r = 0; r < rows; r++) {
      const o = (r * components + c) * features;
      out.push([Array.from(b.source.subarray(o, o + features)), Array.from(b.decoded.subarray(o, o + features))]);
    }
  }
  return out;
}

function componentsOf(batches: readonly PairBatch[]): number {
  const s = (batches[0] as PairBatch).shape;
  return s.length === 3 ? (s[1] as number) : 1;
}

function perComponent(batches: readonly PairBatch[], f: (vectors: [number[], number[]][]) => number): number[] {
  return Array.from({ length: componentsOf(batches) }, (_, c) => f(vectorsOf(batches, c)));
}

const dot = (a: number[], b: number[]): number => a.reduce((s, v, i) => s + v * (b[i] as number), 0);
const sub = (a: number[], b: number[]): number[] => a.map((v, i) => v - (b[i] as number));

/** `Σ_n ‖v_n − v̄‖²` by two passes. */
function scatter(vs: number[][]): number {
  const d = (vs[0] as number[]).length;
  const mean = new Array<number>(d).fill(0);
  for (const v of vs) v.forEach((x, i) => (mean[i] = (mean[i] as number) + x));
  for (let i = 0; i < d; i++) mean[i] = (mean[i] as number) / vs.length;
  let s = 0;
  for (const v of vs) for (let i = 0; i < d; i++) s += ((v[i] as number) - (mean[i] as number)) ** 2;
  return s;
}

/** `1 − Σ‖x − x̂‖² / Σ‖x − x̄‖²`. */
export function explainedVarianceRef(batches: readonly PairBatch[]): number[] {
  return perComponent(batches, (vs) => {
    let err = 0;
    for (const [x, y] of vs) err += dot(sub(x, y), sub(x, y));
    return 1 - err / scatter(vs.map(([x]) => x));
  });
}

/** `Σ_d Var(x − x̂)_d / Σ_d Var(x)_d` (population variances; the n cancels). */
export function fractionOfVarianceUnexplainedRef(batches: readonly PairBatch[]): number[] {
  return perComponent(batches, (vs) => scatter(vs.map(([x, y]) => sub(x, y))) / scatter(vs.map(([x]) => x)));
}

/** Mean of `⟨x, x̂⟩ / (‖x‖ ‖x̂‖)`; 0 with one zero norm, 1 with both. */
export function cosineSimilarityRef(batches: readonly PairBatch[]): number[] {
  return perComponent(batches, (vs) => {
    let s = 0;
    for (const [x, y] of vs) {
      const nx = Math.sqrt(dot(x, x));
      const ny = Math.sqrt(dot(y, y));
      s += nx === 0 && ny === 0 ? 1 : nx === 0 || ny === 0 ? 0 : dot(x, y) / (nx * ny);
    }
    return s / vs.length;
  });
}

/** Mean of `‖x̂‖ / ‖x‖`, dividing by 1 where `‖x‖ < 1e-4`. */
export function l2RatioRef(batches: readonly PairBatch[]): number[] {
  return perComponent(batches, (vs) => {
    let s = 0;
    for (const [x, y] of vs) {
      const nx = Math.sqrt(dot(x, x));
      s += Math.sqrt(dot(y, y)) / (nx < 1e-4 ? 1 : nx);
    }
    return s / vs.length;
  });
}

/** `Σ‖x̂‖² / Σ⟨x, x̂⟩`. */
export function relativeReconstructionBiasRef(batches: readonly PairBatch[]): number[] {
  return perComponent(batches, (vs) => {
    let a = 0;
    let b = 0;
    for (const [x, y] of vs) {
      a += dot(y, y);
      b += dot(x, y);
    }
    return a / b;
  });
}

/** Mean of `‖x − x̂‖² / ‖x‖²` over the vectors with `‖x‖ > 0`, and how many had `‖x‖ = 0`. */
export function normalizedMseRef(batches: readonly PairBatch[]): { value: number[]; zeroNorm: number[] } {
  const zeroNorm: number[] = [];
  const value = perComponent(batches, (vs) => {
    let s = 0;
    let n = 0;
    let zeros = 0;
    for (const [x, y] of vs) {
      const xx = dot(x, x);
      if (xx === 0) {
        zeros++;
        continue;
      }
      s += dot(sub(x, y), sub(x, y)) / xx;
      n++;
    }
    zeroNorm.push(zeros);
    return s / n;
  });
  return { value, zeroNorm };
}
