import { afterAll, describe, expect, it } from 'vitest';
import { createJsMatrixKernels, type AdamStep, type MatrixKernels } from '../../examples/train-sae/kernels.js';
import { createWasmMatrixKernels } from '../../examples/train-sae/kernels-wasm.js';
import { createGpujsMatrixKernels } from '../../examples/train-sae/kernels-gpujs.js';
import { seededRandom } from '../../examples/train-sae/data.js';

// The three implementations of the example's matrix kernels against plain float64 loops, on random
// data with shapes that are not multiples of the SIMD width (4) nor of the wasm tile (4 x 2 rows,
// 32-row tiles), and sparse operands with most entries zero.

type Matrix = { data: Float64Array; rows: number; columns: number };

function randomMatrix(random: () => number, rows: number, columns: number, zeroShare = 0): Matrix {
  const data = new Float64Array(rows * columns);
  for (let i = 0; i < data.length; i++) data[i] = random() < zeroShare ? 0 : Math.fround(random() * 2 - 1);
  return { data, rows, columns };
}

function put(k: MatrixKernels, m: Matrix | Float64Array): Float32Array {
  const data = m instanceof Float64Array ? m : m.data;
  const out = k.alloc(data.length);
  out.set(data);
  return out;
}

/** `A · Bᵀ` in float64. */
function refNT(a: Matrix, b: Matrix): Float64Array {
  const out = new Float64Array(a.rows * b.rows);
  for (let m = 0; m < a.rows; m++) {
    for (let n = 0; n < b.rows; n++) {
      let s = 0;
      for (let k = 0; k < a.columns; k++) s += (a.data[m * a.columns + k] as number) * (b.data[n * b.columns + k] as number);
      out[m * b.rows + n] = s;
    }
  }
  return out;
}

/** `A · B` in float64. */
function refNN(a: Matrix, b: Matrix): Float64Array {
  const out = new Float64Array(a.rows * b.columns);
  for (let m = 0; m < a.rows; m++) {
    for (let n = 0; n < a.columns; n++) {
      for (let k = 0; k < b.columns; k++) out[m * b.columns + k] = (out[m * b.columns + k] as number) + (a.data[m * a.columns + n] as number) * (b.data[n * b.columns + k] as number);
    }
  }
  return out;
}

function transpose(a: Matrix): Matrix {
  const data = new Float64Array(a.data.length);
  for (let r = 0; r < a.rows; r++) for (let c = 0; c < a.columns; c++) data[c * a.rows + r] = a.data[r * a.columns + c] as number;
  return { data, rows: a.columns, columns: a.rows };
}

/** Every element within `tolerance * (1 + |expected|)`, with the first offender named. */
function expectClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tolerance: number, what: string): void {
  expect(actual.length, `${what}: length`).toBeGreaterThanOrEqual(expected.length);
  let worst = 0;
  let at = -1;
  for (let i = 0; i < expected.length; i++) {
    const error = Math.abs((actual[i] as number) - (expected[i] as number)) / (1 + Math.abs(expected[i] as number));
    if (!(error <= worst)) {
      worst = error;
      at = i;
    }
  }
  expect(worst, `${what}: worst relative error at ${at} (${String(actual[at])} vs ${String(expected[at])})`).toBeLessThanOrEqual(tolerance);
}

const made: MatrixKernels[] = [];
afterAll(async () => {
  await Promise.all(made.map((k) => k.dispose()));
});

const implementations: [string, () => MatrixKernels, { M: number; N: number; K: number }[]][] = [
  ['js', createJsMatrixKernels, [{ M: 7, N: 9, K: 13 }, { M: 10, N: 70, K: 37 }]],
  ['wasm', createWasmMatrixKernels, [{ M: 7, N: 9, K: 13 }, { M: 10, N: 70, K: 37 }, { M: 1, N: 1, K: 1 }, { M: 12, N: 33, K: 64 }]],
  // gpu.js cpu mode is slow: tiny shapes only.
  ['gpujs (cpu)', () => createGpujsMatrixKernels('cpu'), [{ M: 7, N: 9, K: 13 }, { M: 1, N: 5, K: 3 }]],
];

describe.each(implementations)('train-sae matrix kernels: %s', (name, make, shapes) => {
  const k = make();
  made.push(k);
  const random = seededRandom(name.length * 7919);

  it.each(shapes)('denseNT agrees with a float64 A·Bᵀ, with bias and relu ($M x $N x $K)', ({ M, N, K }) => {
    const a = randomMatrix(random, M, K);
    const b = randomMatrix(random, N, K);
    const expected = refNT(a, b);
    // The bias puts the first row's outputs just above and just below zero, where relu decides.
    const bias = expected.slice(0, N).map((v, n) => Math.fround(-v + (n % 2 === 0 ? 1e-3 : -1e-3)));
    const out = k.alloc(M * N);
    k.denseNT(put(k, a), put(k, b), undefined, out, M, N, K, false);
    expectClose(out, expected, 1e-5, 'A·Bᵀ');
    k.denseNT(put(k, a), put(k, b), put(k, bias), out, M, N, K, true);
    expectClose(out, expected.map((v, i) => Math.max(0, v + (bias[i % N] as number))), 1e-5, 'relu(A·Bᵀ + bias)');
    expect(out.subarray(0, N).every((v, n) => (n % 2 === 0 ? v > 0 : v === 0))).toBe(true);
  });

  it.each(shapes)('sparseNN agrees with a float64 S·B, skipping zeros ($M x $N x $K)', ({ M, N, K }) => {
    const s = randomMatrix(random, M, N, 0.7);
    const b = randomMatrix(random, N, K);
    const bias = randomMatrix(random, 1, K).data;
    const expected = refNN(s, b);
    const out = k.alloc(M * K).fill(Number.NaN); // overwritten, not accumulated into
    k.sparseNN(put(k, s), put(k, b), undefined, out, M, N, K);
    expectClose(out, expected, 1e-5, 'S·B');
    k.sparseNN(put(k, s), put(k, b), put(k, bias), out, M, N, K);
    expectClose(out, expected.map((v, i) => v + (bias[i % K] as number)), 1e-5, 'S·B + bias');
  });

  it.each(shapes)('maskedNT agrees with a float64 A·Bᵀ + add where the mask is positive, 0 elsewhere ($M x $N x $K)', ({ M, N, K }) => {
    const a = randomMatrix(random, M, K);
    const b = randomMatrix(random, N, K);
    const mask = randomMatrix(random, M, N, 0.6); // zeros and negatives both mask out
    const add = 0.125;
    const full = refNT(a, b);
    const expected = full.map((v, i) => ((mask.data[i] as number) > 0 ? v + add : 0));
    const out = k.alloc(M * N).fill(Number.NaN);
    k.maskedNT(put(k, a), put(k, b), put(k, mask), add, out, M, N, K);
    expectClose(out, expected, 1e-5, 'masked A·Bᵀ + add');
  });

  it.each(shapes)('sparseTN agrees with a float64 Sᵀ·A, skipping zeros ($M x $N x $K)', ({ M, N, K }) => {
    const s = randomMatrix(random, M, N, 0.7);
    const a = randomMatrix(random, M, K);
    const expected = refNN(transpose(s), a);
    const out = k.alloc(N * K).fill(Number.NaN);
    k.sparseTN(put(k, s), put(k, a), out, M, N, K);
    expectClose(out, expected, 1e-5, 'Sᵀ·A');
  });

  it('adam agrees with a float64 Adam step', () => {
    const count = 23;
    const p = randomMatrix(random, 1, count).data;
    const g = randomMatrix(random, 1, count).data;
    const m = randomMatrix(random, 1, count).data.map((x) => x * 0.1);
    const v = randomMatrix(random, 1, count).data.map((x) => x * x * 0.01);
    const step: AdamStep = { lr: 0.01, b1: 0.9, b2: 0.999, eps: 1e-8, c1: 1 - 0.9 ** 3, c2: 1 - 0.999 ** 3 };
    const [P, G, Mm, V] = [p, g, m, v].map((x) => put(k, x)) as [Float32Array, Float32Array, Float32Array, Float32Array];
    k.adam(P, G, Mm, V, count, step);
    const em = m.map((x, i) => 0.9 * x + 0.1 * (g[i] as number));
    const ev = v.map((x, i) => 0.999 * x + 0.001 * (g[i] as number) ** 2);
    const ep = p.map((x, i) => x - (step.lr * ((em[i] as number) / step.c1)) / (Math.sqrt((ev[i] as number) / step.c2) + step.eps));
    expectClose(Mm, em, 1e-6, 'm');
    expectClose(V, ev, 1e-6, 'v');
    expectClose(P, ep, 1e-5, 'p');
  });

  it('projectRows removes the part of each gradient row along its weight row; normaliseRows makes rows unit', () => {
    const N = 6;
    const K = 11;
    const w = randomMatrix(random, N, K);
    const g = randomMatrix(random, N, K);
    const W = put(k, w);
    const G = put(k, g);
    k.projectRows(W, G, N, K);
    const expected = new Float64Array(N * K);
    for (let n = 0; n < N; n++) {
      let gw = 0;
      let ww = 0;
      for (let j = 0; j < K; j++) {
        gw += (g.data[n * K + j] as number) * (w.data[n * K + j] as number);
        ww += (w.data[n * K + j] as number) ** 2;
      }
      for (let j = 0; j < K; j++) expected[n * K + j] = (g.data[n * K + j] as number) - (gw / ww) * (w.data[n * K + j] as number);
    }
    expectClose(G, expected, 1e-5, 'projected gradient');
    W.fill(0, 0, K); // a zero row stays zero
    k.normaliseRows(W, N, K);
    for (let n = 0; n < N; n++) {
      let norm = 0;
      for (let j = 0; j < K; j++) norm += (W[n * K + j] as number) ** 2;
      expect(Math.sqrt(norm)).toBeCloseTo(n === 0 ? 0 : 1, 5);
    }
  });

  it('rejects buffers too short for the shape, naming the kernel and the argument', () => {
    const a = k.alloc(6);
    expect(() => k.denseNT(a, a, undefined, k.alloc(4), 2, 2, 4, false)).toThrow(/denseNT: a must hold at least 8 elements, got 6/);
    expect(() => k.sparseTN(a, a, a, 2, 3, -1)).toThrow(/sparseTN: K must be a non-negative integer, got -1/);
  });
});

describe('train-sae wasm kernels', () => {
  it('reject a buffer that is not a view on their memory', () => {
    const k = createWasmMatrixKernels();
    made.push(k);
    const own = k.alloc(4);
    expect(() => k.normaliseRows(new Float32Array(4), 1, 4)).toThrow(/normaliseRows: w must be a buffer from alloc\(\)/);
    // Another instance's memory is not this one's either.
    const other = createWasmMatrixKernels();
    made.push(other);
    expect(() => k.normaliseRows(other.alloc(4), 1, 4)).toThrow(/must be a buffer from alloc\(\)/);
    own.set([3, 0, 4, 0]);
    k.normaliseRows(own, 1, 4);
    expect(Array.from(own)).toEqual([Math.fround(0.6), 0, Math.fround(0.8), 0]);
  });

  it('hand out buffers that stay valid as the memory grows', () => {
    const k = createWasmMatrixKernels();
    made.push(k);
    const first = k.alloc(4);
    first.set([1, 2, 3, 4]);
    const big = k.alloc(200_000); // grows the memory by several pages
    expect(big.every((x) => x === 0)).toBe(true);
    expect(Array.from(first)).toEqual([1, 2, 3, 4]);
    k.normaliseRows(first, 1, 4); // still usable after the growth
    expect(first[3]).toBeCloseTo(4 / Math.sqrt(30), 6);
  });
});
