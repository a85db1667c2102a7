/**
 * The matrix kernels on gpu.js, for hosts with a GPU (`headlessgl` under a display, or `gpu`); the
 * `cpu` mode runs them too, slowly (tests use it on tiny shapes).
 *
 * The gpu.js traps of this package's kernels are avoided the same way (see
 * `src/kernels/gpujs/index.ts`): every matrix is an `input(data, [columns, rows])` read with 2-D
 * indexing (flat indices are computed in float32 on the GPU), every loop bound is a constant (a
 * bound passed as an argument is capped at `loopMaxIterations`), and kernels have fixed sizes, one
 * set per shape, built on first use (no `dynamicArguments`). A GPU has no use for sparsity: the
 * sparse products are computed densely. Adam and the row norms run in JavaScript (they are
 * elementwise: moving the parameters to the GPU and back would cost more than they do).
 *
 * @module
 */
import { gpujsAvailable } from '../../src/kernels/gpujs/index.js';
import { gpujs, modeOfKernel, type GpuInstance, type KernelOutput, type KernelRunShortcut } from '../../src/kernels/gpujs/gpu.js';
import type { GpujsMode } from '../../src/pool/backend.js';
import { check, jsAdam, jsNormaliseRows, jsProjectRows, type MatrixKernels } from './kernels.js';

const GL_MODES: readonly string[] = ['headlessgl', 'webgl', 'webgl2'];

/** `out[y][x] = a[y] · b[x] + bias[x]` (relu when RELU > 0): output `[N, M]`. */
const DENSE_NT = `function(a, b, bias) {
  let s = 0;
  for (let k = 0; k < this.constants.K; k++) {
    s += a[this.thread.y][k] * b[this.thread.x][k];
  }
  s += bias[this.thread.x];
  if (this.constants.RELU > 0) {
    if (s < 0) {
      s = 0;
    }
  }
  return s;
}`;

/** `out[y][x] = bias[x] + sum_n s[y][n] b[n][x]`: output `[K, M]`. */
const SPARSE_NN = `function(s, b, bias) {
  let acc = bias[this.thread.x];
  for (let n = 0; n < this.constants.N; n++) {
    acc += s[this.thread.y][n] * b[n][this.thread.x];
  }
  return acc;
}`;

/** `out[y][x] = mask[y][x] > 0 ? a[y] · b[x] + add : 0`: output `[N, M]`. */
const MASKED_NT = `function(a, b, mask, add) {
  let s = 0;
  if (mask[this.thread.y][this.thread.x] > 0) {
    s = add;
    for (let k = 0; k < this.constants.K; k++) {
      s += a[this.thread.y][k] * b[this.thread.x][k];
    }
  }
  return s;
}`;

/** `out[y][x] = sum_m s[m][y] a[m][x]`: output `[K, N]`. */
const SPARSE_TN = `function(s, a) {
  let acc = 0;
  for (let m = 0; m < this.constants.M; m++) {
    acc += s[m][this.thread.y] * a[m][this.thread.x];
  }
  return acc;
}`;

/** Copies a 2-D kernel output (rows of `Float32Array`) into `out`, row after row. */
function copyOut(output: KernelOutput, out: Float32Array, rows: number, columns: number): void {
  const list = output instanceof Float32Array ? [output] : (output as readonly Float32Array[]);
  if (list.length !== rows) throw new Error(`gpu.js matrix kernel: the output has ${list.length} rows, expected ${rows}`);
  list.forEach((row, r) => {
    if (!(row instanceof Float32Array) || row.length !== columns) {
      throw new Error(`gpu.js matrix kernel: output row ${r} is not ${columns} floats`);
    }
    out.set(row, r * columns);
  });
}

/**
 * The kernels on gpu.js in `mode`.
 *
 * @throws {Error} when the mode cannot run here (the reason says why), or, at a kernel's first run,
 *   when gpu.js falls back to another mode than the one requested.
 */
export function createGpujsMatrixKernels(mode: GpujsMode): MatrixKernels {
  const available = gpujsAvailable(mode);
  if (!available.ok && mode !== 'gpu') throw new Error(`train-sae: gpu.js mode '${mode}' cannot run here: ${available.reason}`);
  const g = gpujs();
  const gpu: GpuInstance = new g.GPU({ mode });
  const kernels = new Map<string, KernelRunShortcut>();
  const zeros = new Map<number, Float32Array>();
  let actual: string | undefined;
  let disposed = false;

  const kernel = (key: string, source: string, output: number[], constants: Record<string, number>, loop: number): KernelRunShortcut => {
    if (disposed) throw new Error('train-sae: gpu.js kernels used after dispose()');
    let k = kernels.get(key);
    if (k === undefined) {
      k = gpu.createKernel(source, { output, constants, loopMaxIterations: loop + 1, precision: 'single', tactic: 'precision' });
      kernels.set(key, k);
    }
    return k;
  };
  const run = (k: KernelRunShortcut, args: unknown[]): KernelOutput => {
    const output = k(...args);
    const ran = modeOfKernel(k.kernel);
    if (actual === undefined) {
      if (mode !== 'gpu' && ran !== mode) {
        throw new Error(`train-sae: requested gpu.js mode '${mode}' but gpu.js runs '${ran}'${k.kernel.fallbackReason ? ` (${k.kernel.fallbackReason})` : ''}`);
      }
      actual = ran;
    } else if (ran !== actual) {
      throw new Error(`train-sae: gpu.js ran '${ran}' after '${actual}'`);
    }
    return output;
  };
  const zerosOf = (n: number): Float32Array => {
    let z = zeros.get(n);
    if (z === undefined) zeros.set(n, (z = new Float32Array(n)));
    return z;
  };
  const input = (data: Float32Array, columns: number, rows: number) => g.input(data.subarray(0, columns * rows), [columns, rows]);
  const empty = (...dims: number[]): boolean => dims.some((d) => d === 0);

  // A probe with a known answer fixes the mode gpu.js actually runs; for 'gpu', a mode without a
  // GPU behind it (gpu.js falls back to webasm or cpu) is refused, as the package's pool refuses it.
  try {
    const probe = new Float32Array([1, 2, 3]);
    const result = new Float32Array(1);
    const k = kernel('probe', DENSE_NT, [1, 1], { K: 3, RELU: 0 }, 3);
    copyOut(run(k, [input(probe, 3, 1), input(probe, 3, 1), new Float32Array(1)]), result, 1, 1);
    if (result[0] !== 14) throw new Error(`a probe kernel computed ${String(result[0])} for [1, 2, 3] · [1, 2, 3]`);
    if (mode === 'gpu' && !GL_MODES.includes(actual as string)) {
      throw new Error(
        `requested gpu.js mode 'gpu' but gpu.js runs '${String(actual)}' (${available.ok ? 'no GL backend' : available.reason}); ` +
          `choose a mode that runs here, e.g. --gpujs-mode cpu`,
      );
    }
  } catch (error) {
    void gpu.destroy().catch(() => undefined);
    throw new Error(`train-sae: gpu.js: ${(error as Error).message}`, { cause: error });
  }

  return {
    backend: 'gpujs',
    describe: `gpujs (${String(actual)})`,
    alloc: (length) => new Float32Array(length),
    denseNT(a, b, bias, out, M, N, K, relu) {
      check.denseNT(a, b, bias, out, M, N, K);
      if (empty(M, N)) return;
      if (K === 0) {
        for (let m = 0; m < M; m++) for (let n = 0; n < N; n++) out[m * N + n] = relu ? Math.max(0, bias?.[n] ?? 0) : (bias?.[n] ?? 0);
        return;
      }
      const k = kernel(`denseNT ${M}x${N}x${K} ${relu}`, DENSE_NT, [N, M], { K, RELU: relu ? 1 : 0 }, K);
      copyOut(run(k, [input(a, K, M), input(b, K, N), (bias ?? zerosOf(N)).subarray(0, N)]), out, M, N);
    },
    sparseNN(s, b, bias, out, M, N, K) {
      check.sparseNN(s, b, bias, out, M, N, K);
      if (empty(M, K)) return;
      if (N === 0) {
        for (let m = 0; m < M; m++) out.set((bias ?? zerosOf(K)).subarray(0, K), m * K);
        return;
      }
      const k = kernel(`sparseNN ${M}x${N}x${K}`, SPARSE_NN, [K, M], { N }, N);
      copyOut(run(k, [input(s, N, M), input(b, K, N), (bias ?? zerosOf(K)).subarray(0, K)]), out, M, K);
    },
    maskedNT(a, b, mask, add, out, M, N, K) {
      check.maskedNT(a, b, mask, out, M, N, K);
      if (empty(M, N)) return;
      if (K === 0) {
        for (let i = 0; i < M * N; i++) out[i] = (mask[i] as number) > 0 ? add : 0;
        return;
      }
      const k = kernel(`maskedNT ${M}x${N}x${K}`, MASKED_NT, [N, M], { K }, K);
      copyOut(run(k, [input(a, K, M), input(b, K, N), input(mask, N, M), add]), out, M, N);
    },
    sparseTN(s, a, out, M, N, K) {
      check.sparseTN(s, a, out, M, N, K);
      if (empty(N, K)) return;
      if (M === 0) {
        out.fill(0, 0, N * K);
        return;
      }
      const k = kernel(`sparseTN ${M}x${N}x${K}`, SPARSE_TN, [K, N], { M }, M);
      copyOut(run(k, [input(s, N, M), input(a, K, M)]), out, N, K);
    },
    adam: jsAdam,
    projectRows: jsProjectRows,
    normaliseRows: jsNormaliseRows,
    async dispose() {
      if (disposed) return;
      disposed = true;
      kernels.clear();
      await gpu.destroy();
    },
  };
}
