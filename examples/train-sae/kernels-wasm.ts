/**
 * The matrix kernels in WebAssembly SIMD: the JavaScript side of `assembly/sae.ts`, compiled by
 * `npm run build` (scripts/build-wasm.mjs) into `dist/wasm/train-sae.wasm`.
 *
 * The module imports a shared `WebAssembly.Memory` and owns none. {@link MatrixKernels.alloc}
 * hands out zero-filled views on that memory (growing it; a view on a shared memory stays valid
 * when the memory grows), and a kernel's arguments must be such views: their `byteOffset` is the
 * pointer the module reads.
 *
 * @module
 */
import { fileURLToPath } from 'node:url';
import { compileWasmFile } from '../../src/kernels/wasm/index.js';
import { check, type AdamStep, type MatrixKernels } from './kernels.js';

const PAGE = 65536;
const ALIGN = 64;
/** 1 GiB: the most the example's buffers may take. */
const MAX_PAGES = 16384;
const NAME = 'train-sae wasm kernels';

/** The exports of `train-sae.wasm` (pointers are byte addresses in the imported memory). */
interface SaeExports {
  denseNT(a: number, b: number, bias: number, out: number, M: number, N: number, K: number, relu: number): void;
  sparseNN(s: number, b: number, bias: number, out: number, M: number, N: number, K: number): void;
  maskedNT(a: number, b: number, mask: number, add: number, out: number, M: number, N: number, K: number): void;
  sparseTN(s: number, a: number, out: number, M: number, N: number, K: number): void;
  adam(p: number, g: number, m: number, v: number, count: number, lr: number, b1: number, b2: number, eps: number, c1: number, c2: number): void;
  projectRows(w: number, g: number, N: number, K: number): void;
  normaliseRows(w: number, N: number, K: number): void;
}

/** Path of the compiled module: `dist/wasm/train-sae.wasm` at the package root. */
export function trainWasmFile(): string {
  return fileURLToPath(new URL('../../dist/wasm/train-sae.wasm', import.meta.url));
}

let compiled: WebAssembly.Module | undefined;

function trainWasmModule(): WebAssembly.Module {
  compiled ??= compileWasmFile(trainWasmFile(), NAME);
  return compiled;
}

/**
 * The kernels on a fresh shared memory (1 GiB at most).
 *
 * @throws {Error} when `train-sae.wasm` is missing or invalid.
 */
export function createWasmMatrixKernels(): MatrixKernels {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: MAX_PAGES, shared: true });
  const x = new WebAssembly.Instance(trainWasmModule(), { env: { memory } }).exports as unknown as SaeExports;
  // Every buffer the memory has been seen as: a view on one of them is a view on this memory.
  const buffers = new WeakSet<ArrayBufferLike>([memory.buffer]);
  // Offset 0 stays unused: a pointer of 0 means "no bias".
  let top = ALIGN;

  const ptr = (kernel: string, name: string, a: Float32Array): number => {
    if (!buffers.has(a.buffer)) {
      throw new TypeError(`${NAME}: ${kernel}: ${name} must be a buffer from alloc() of these kernels (a view on their WebAssembly memory)`);
    }
    return a.byteOffset;
  };

  return {
    backend: 'wasm',
    describe: 'wasm (SIMD)',
    alloc(length) {
      if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`${NAME}: alloc: length must be a non-negative integer, got ${String(length)}`);
      const start = top;
      const end = start + Math.ceil((length * 4) / ALIGN) * ALIGN;
      const have = memory.buffer.byteLength;
      if (end > have) {
        const pages = Math.ceil((end - have) / PAGE);
        try {
          memory.grow(pages);
        } catch (error) {
          throw new RangeError(`${NAME}: alloc: cannot grow the memory to ${end} bytes (${MAX_PAGES * PAGE} at most)`, { cause: error });
        }
      }
      top = end;
      const buffer = memory.buffer;
      buffers.add(buffer);
      // Fresh pages are zero; the region is never handed out twice.
      return new Float32Array(buffer, start, length);
    },
    denseNT(a, b, bias, out, M, N, K, relu) {
      check.denseNT(a, b, bias, out, M, N, K);
      x.denseNT(ptr('denseNT', 'a', a), ptr('denseNT', 'b', b), bias === undefined ? 0 : ptr('denseNT', 'bias', bias), ptr('denseNT', 'out', out), M, N, K, relu ? 1 : 0);
    },
    sparseNN(s, b, bias, out, M, N, K) {
      check.sparseNN(s, b, bias, out, M, N, K);
      x.sparseNN(ptr('sparseNN', 's', s), ptr('sparseNN', 'b', b), bias === undefined ? 0 : ptr('sparseNN', 'bias', bias), ptr('sparseNN', 'out', out), M, N, K);
    },
    maskedNT(a, b, mask, add, out, M, N, K) {
      check.maskedNT(a, b, mask, out, M, N, K);
      x.maskedNT(ptr('maskedNT', 'a', a), ptr('maskedNT', 'b', b), ptr('maskedNT', 'mask', mask), add, ptr('maskedNT', 'out', out), M, N, K);
    },
    sparseTN(s, a, out, M, N, K) {
      check.sparseTN(s, a, out, M, N, K);
      x.sparseTN(ptr('sparseTN', 's', s), ptr('sparseTN', 'a', a), ptr('sparseTN', 'out', out), M, N, K);
    },
    adam(p, g, m, v, count, s: AdamStep) {
      check.adam(p, g, m, v, count);
      x.adam(ptr('adam', 'p', p), ptr('adam', 'g', g), ptr('adam', 'm', m), ptr('adam', 'v', v), count, s.lr, s.b1, s.b2, s.eps, s.c1, s.c2);
    },
    projectRows(w, g, N, K) {
      check.rows('projectRows', w, g, N, K);
      x.projectRows(ptr('projectRows', 'w', w), ptr('projectRows', 'g', g), N, K);
    },
    normaliseRows(w, N, K) {
      check.rows('normaliseRows', w, undefined, N, K);
      x.normaliseRows(ptr('normaliseRows', 'w', w), N, K);
    },
    dispose: () => Promise.resolve(),
  };
}
