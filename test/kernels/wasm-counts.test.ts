/**
 * `countsToF64`, the kernel's conversion of its u32 counts into the float64 counts it returns:
 * exact for every u32 (past 2^31 too, where a signed conversion would go negative), for any count
 * (the SIMD body and the scalar tail), and it writes nothing past its `n` outputs.
 */
import { describe, it, expect } from 'vitest';
import { wasmModule, type FusedExports } from '../../src/kernels/wasm/index.js';

describe('countsToF64', () => {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 16 });
  const exports = new WebAssembly.Instance(wasmModule('local'), { env: { memory } }).exports as unknown as FusedExports;
  const EDGES = [0, 1, 2, 2 ** 31 - 1, 2 ** 31, 2 ** 31 + 1, 2 ** 32 - 2, 2 ** 32 - 1, 12345, 7];

  for (const n of [0, 1, 3, 4, 5, 8, 9, 10]) {
    it(`converts ${n} counts exactly (${n >> 2} groups of four, ${n & 3} alone) and nothing more`, () => {
      const src = new Uint32Array(memory.buffer, 64, 16);
      const values = Array.from({ length: 16 }, (_, i) => EDGES[i % EDGES.length] as number);
      src.set(values);
      const dst = new Float64Array(memory.buffer, 1024, 16);
      dst.fill(-1);
      exports.countsToF64(64, 1024, n);
      expect(Array.from(dst.subarray(0, n))).toEqual(values.slice(0, n));
      expect(Array.from(dst.subarray(n))).toEqual(new Array(16 - n).fill(-1));
    });
  }
});
