/**
 * The matrix kernels an SAE training step needs, behind one interface with three implementations:
 * WebAssembly SIMD (`kernels-wasm.ts`), gpu.js (`kernels-gpujs.ts`) and plain JavaScript (here).
 * Which one runs is the package's backend choice (`chooseBackend`): gpu.js on a hardware GPU, else
 * WebAssembly SIMD, else JavaScript; `SAE_METRICS_BACKEND` forces one.
 *
 * Every matrix is a row-major `Float32Array`, `[rows, columns]`. An SAE with encoder `E [F, D]`,
 * decoder `W [F, D]` (row f is the decoder column of feature f) and a batch `X [B, D]` uses them as:
 *
 * | step | kernel |
 * | --- | --- |
 * | codes `C = relu((X - b_dec) · Eᵀ + b_enc)` | `denseNT` (dense: the bulk of the work) |
 * | reconstruction `X̂ = C · W + b_dec` | `sparseNN` (skips the zeros of C) |
 * | code gradient `P = [C > 0] ⊙ (G · Wᵀ + λ/B)` | `maskedNT` (only where C > 0) |
 * | weight gradients `Cᵀ · G`, `Pᵀ · (X - b_dec)` | `sparseTN` (skips the zeros of C, P) |
 * | Adam, unit-norm decoder rows | `adam`, `projectRows`, `normaliseRows` |
 *
 * @module
 */
import { existsSync } from 'node:fs';
import { chooseBackend, wasmUnavailable, type BackendChoice, type BackendName, type BackendOption, type GpujsMode } from '../../src/pool/backend.js';
import { createGpujsMatrixKernels } from './kernels-gpujs.js';
import { createWasmMatrixKernels, trainWasmFile } from './kernels-wasm.js';

/** Adam's settings for one step (`c1`, `c2`: the bias corrections `1 - b1^t`, `1 - b2^t`). */
export interface AdamStep {
  readonly lr: number;
  readonly b1: number;
  readonly b2: number;
  readonly eps: number;
  readonly c1: number;
  readonly c2: number;
}

/** The matrix kernels of an SAE step. Buffers passed to them must come from {@link alloc}. */
export interface MatrixKernels {
  /** The backend that runs them. */
  readonly backend: BackendName;
  /** What runs, e.g. `wasm (SIMD)`, `gpujs (cpu)`, `js`. */
  readonly describe: string;
  /** A zero-filled buffer the kernels can work on (for wasm: a view on the module's memory). */
  alloc(length: number): Float32Array;
  /** `out = A · Bᵀ (+ bias)`, then `max(0, ·)` when `relu`: A `[M, K]`, B `[N, K]`, bias `[N]`, out `[M, N]`. */
  denseNT(a: Float32Array, b: Float32Array, bias: Float32Array | undefined, out: Float32Array, M: number, N: number, K: number, relu: boolean): void;
  /** `out = S · B (+ bias)`: S `[M, N]` (mostly zeros), B `[N, K]`, bias `[K]`, out `[M, K]`. */
  sparseNN(s: Float32Array, b: Float32Array, bias: Float32Array | undefined, out: Float32Array, M: number, N: number, K: number): void;
  /** `out[m, n] = mask[m, n] > 0 ? A[m] · B[n] + add : 0`: A `[M, K]`, B `[N, K]`, mask and out `[M, N]`. */
  maskedNT(a: Float32Array, b: Float32Array, mask: Float32Array, add: number, out: Float32Array, M: number, N: number, K: number): void;
  /** `out = Sᵀ · A`: S `[M, N]` (mostly zeros), A `[M, K]`, out `[N, K]` (overwritten). */
  sparseTN(s: Float32Array, a: Float32Array, out: Float32Array, M: number, N: number, K: number): void;
  /** One Adam step on the first `count` parameters of `p`, with gradient `g` and moments `m`, `v`. */
  adam(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, count: number, step: AdamStep): void;
  /** `g[n] -= (g[n] · w[n] / |w[n]|²) w[n]` for each row of `w`, `g` `[N, K]`. */
  projectRows(w: Float32Array, g: Float32Array, N: number, K: number): void;
  /** Scales each row of `w` `[N, K]` to unit norm (a zero row stays zero). */
  normaliseRows(w: Float32Array, N: number, K: number): void;
  /** Releases what the kernels hold (gpu.js kernels and context); the kernels throw afterwards. */
  dispose(): Promise<void>;
}

/** Throws unless `array` holds at least `length` elements. */
export function checkLength(kernel: string, name: string, array: Float32Array, length: number): void {
  if (!(array instanceof Float32Array)) throw new TypeError(`${kernel}: ${name} must be a Float32Array`);
  if (array.length < length) {
    throw new RangeError(`${kernel}: ${name} must hold at least ${length} elements, got ${array.length}`);
  }
}

/** Throws unless every dimension is a non-negative integer. */
export function checkDims(kernel: string, dims: Readonly<Record<string, number>>): void {
  for (const [name, value] of Object.entries(dims)) {
    if (!Number.isSafeInteger(value) || value < 0) throw new RangeError(`${kernel}: ${name} must be a non-negative integer, got ${String(value)}`);
  }
}

/** The shape checks every implementation makes before it runs. */
export const check = {
  denseNT(a: Float32Array, b: Float32Array, bias: Float32Array | undefined, out: Float32Array, M: number, N: number, K: number): void {
    checkDims('denseNT', { M, N, K });
    checkLength('denseNT', 'a', a, M * K);
    checkLength('denseNT', 'b', b, N * K);
    if (bias !== undefined) checkLength('denseNT', 'bias', bias, N);
    checkLength('denseNT', 'out', out, M * N);
  },
  sparseNN(s: Float32Array, b: Float32Array, bias: Float32Array | undefined, out: Float32Array, M: number, N: number, K: number): void {
    checkDims('sparseNN', { M, N, K });
    checkLength('sparseNN', 's', s, M * N);
    checkLength('sparseNN', 'b', b, N * K);
    if (bias !== undefined) checkLength('sparseNN', 'bias', bias, K);
    checkLength('sparseNN', 'out', out, M * K);
  },
  maskedNT(a: Float32Array, b: Float32Array, mask: Float32Array, out: Float32Array, M: number, N: number, K: number): void {
    checkDims('maskedNT', { M, N, K });
    checkLength('maskedNT', 'a', a, M * K);
    checkLength('maskedNT', 'b', b, N * K);
    checkLength('maskedNT', 'mask', mask, M * N);
    checkLength('maskedNT', 'out', out, M * N);
  },
  sparseTN(s: Float32Array, a: Float32Array, out: Float32Array, M: number, N: number, K: number): void {
    checkDims('sparseTN', { M, N, K });
    checkLength('sparseTN', 's', s, M * N);
    checkLength('sparseTN', 'a', a, M * K);
    checkLength('sparseTN', 'out', out, N * K);
  },
  adam(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, count: number): void {
    checkDims('adam', { count });
    for (const [name, x] of [['p', p], ['g', g], ['m', m], ['v', v]] as const) checkLength('adam', name, x, count);
  },
  rows(kernel: string, w: Float32Array, g: Float32Array | undefined, N: number, K: number): void {
    checkDims(kernel, { N, K });
    checkLength(kernel, 'w', w, N * K);
    if (g !== undefined) checkLength(kernel, 'g', g, N * K);
  },
};

/** Adam in plain JavaScript (float64 arithmetic, float32 storage); gpu.js uses it too. */
export function jsAdam(p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, count: number, s: AdamStep): void {
  check.adam(p, g, m, v, count);
  const step = s.lr / s.c1;
  for (let i = 0; i < count; i++) {
    const gi = g[i] as number;
    const mi = s.b1 * (m[i] as number) + (1 - s.b1) * gi;
    const vi = s.b2 * (v[i] as number) + (1 - s.b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = (p[i] as number) - (step * mi) / (Math.sqrt(vi / s.c2) + s.eps);
  }
}

/** {@link MatrixKernels.projectRows} in plain JavaScript. */
export function jsProjectRows(w: Float32Array, g: Float32Array, N: number, K: number): void {
  check.rows('projectRows', w, g, N, K);
  for (let n = 0; n < N; n++) {
    const o = n * K;
    let gw = 0;
    let ww = 0;
    for (let k = 0; k < K; k++) {
      gw += (g[o + k] as number) * (w[o + k] as number);
      ww += (w[o + k] as number) ** 2;
    }
    if (!(ww > 0)) continue;
    const s = gw / ww;
    for (let k = 0; k < K; k++) g[o + k] = (g[o + k] as number) - s * (w[o + k] as number);
  }
}

/** {@link MatrixKernels.normaliseRows} in plain JavaScript. */
export function jsNormaliseRows(w: Float32Array, N: number, K: number): void {
  check.rows('normaliseRows', w, undefined, N, K);
  for (let n = 0; n < N; n++) {
    const o = n * K;
    let ww = 0;
    for (let k = 0; k < K; k++) ww += (w[o + k] as number) ** 2;
    const norm = Math.sqrt(ww);
    if (!(norm > 0)) continue;
    for (let k = 0; k < K; k++) w[o + k] = (w[o + k] as number) / norm;
  }
}

/** The kernels in plain JavaScript: float64 accumulation, the zeros of sparse operands skipped. */
export function createJsMatrixKernels(): MatrixKernels {
  return {
    backend: 'js',
    describe: 'js',
    alloc: (length) => new Float32Array(length),
    denseNT(a, b, bias, out, M, N, K, relu) {
      check.denseNT(a, b, bias, out, M, N, K);
      for (let m = 0; m < M; m++) {
        const ao = m * K;
        for (let n = 0; n < N; n++) {
          const bo = n * K;
          let s = bias === undefined ? 0 : (bias[n] as number);
          for (let k = 0; k < K; k++) s += (a[ao + k] as number) * (b[bo + k] as number);
          out[m * N + n] = relu && !(s > 0) ? 0 : s;
        }
      }
    },
    sparseNN(s, b, bias, out, M, N, K) {
      check.sparseNN(s, b, bias, out, M, N, K);
      const row = new Float64Array(K);
      for (let m = 0; m < M; m++) {
        if (bias === undefined) row.fill(0);
        else for (let k = 0; k < K; k++) row[k] = bias[k] as number;
        for (let n = 0; n < N; n++) {
          const x = s[m * N + n] as number;
          if (x === 0) continue;
          const bo = n * K;
          for (let k = 0; k < K; k++) row[k] = (row[k] as number) + x * (b[bo + k] as number);
        }
        out.set(row, m * K);
      }
    },
    maskedNT(a, b, mask, add, out, M, N, K) {
      check.maskedNT(a, b, mask, out, M, N, K);
      for (let m = 0; m < M; m++) {
        const ao = m * K;
        for (let n = 0; n < N; n++) {
          if (!((mask[m * N + n] as number) > 0)) {
            out[m * N + n] = 0;
            continue;
          }
          const bo = n * K;
          let s = add;
          for (let k = 0; k < K; k++) s += (a[ao + k] as number) * (b[bo + k] as number);
          out[m * N + n] = s;
        }
      }
    },
    sparseTN(s, a, out, M, N, K) {
      check.sparseTN(s, a, out, M, N, K);
      const acc = new Float64Array(N * K);
      for (let m = 0; m < M; m++) {
        const ao = m * K;
        for (let n = 0; n < N; n++) {
          const x = s[m * N + n] as number;
          if (x === 0) continue;
          const o = n * K;
          for (let k = 0; k < K; k++) acc[o + k] = (acc[o + k] as number) + x * (a[ao + k] as number);
        }
      }
      out.set(acc.subarray(0, N * K));
    },
    adam: jsAdam,
    projectRows: jsProjectRows,
    normaliseRows: jsNormaliseRows,
    dispose: () => Promise.resolve(),
  };
}

/** Why the example's WebAssembly kernels cannot run here (or the package's), or undefined when they can. */
export function trainWasmUnavailable(): string | undefined {
  const missing = wasmUnavailable();
  if (missing !== undefined) return missing;
  const file = trainWasmFile();
  return existsSync(file) ? undefined : `the compiled kernel ${file} is missing (run npm run build)`;
}

/**
 * The package's backend choice for the example: `auto` takes gpu.js on a hardware GPU, else the
 * WebAssembly kernels (the package's and this example's must both be built), else JavaScript.
 *
 * @throws {Error} when an explicitly requested backend cannot run here.
 */
export function chooseTrainingBackend(requested: BackendOption, gpujsMode?: GpujsMode): BackendChoice {
  return chooseBackend('train-sae', requested, gpujsMode, { wasm: trainWasmUnavailable });
}

/**
 * Builds the kernels of a backend choice.
 *
 * @throws {Error} when the backend cannot run (a missing module, a gpu.js mode that is not available).
 */
export function createMatrixKernels(choice: Pick<BackendChoice, 'backend' | 'gpujsMode'>): MatrixKernels {
  switch (choice.backend) {
    case 'wasm':
      return createWasmMatrixKernels();
    case 'gpujs':
      return createGpujsMatrixKernels(choice.gpujsMode ?? 'gpu');
    case 'js':
      return createJsMatrixKernels();
  }
}
