import { describe, expect, it } from 'vitest';
import { decodeBFloat16, decodeFloat16, float16ToNumber } from '../../src/cli/half.js';
import { toFloat16Bits } from './files.js';

describe('float16 decoding', () => {
  it('gives the IEEE 754 binary16 values of known bit patterns', () => {
    // (bits, value) from the binary16 definition: (-1)^s * 2^(e-15) * 1.f, subnormals 2^-14 * 0.f.
    const known: [number, number][] = [
      [0x0000, 0],
      [0x3c00, 1],
      [0xc000, -2],
      [0x3555, 1365 / 4096],
      [0x7bff, 65504],
      [0x0400, 2 ** -14],
      [0x0001, 2 ** -24],
      [0x03ff, 1023 * 2 ** -24],
      [0x8001, -(2 ** -24)],
      [0x7c00, Infinity],
      [0xfc00, -Infinity],
      [0x3bff, 1 - 2 ** -11],
      [0x3c01, 1 + 2 ** -10],
    ];
    for (const [bits, value] of known) expect(float16ToNumber(bits), `0x${bits.toString(16)}`).toBe(value);
    expect(Object.is(float16ToNumber(0x8000), -0)).toBe(true);
    for (const nan of [0x7c01, 0x7e00, 0xfe00, 0x7fff]) expect(float16ToNumber(nan)).toBeNaN();
    expect(() => float16ToNumber(0x10000)).toThrow(/0x10000|65536/);
  });

  it('round-trips every finite pattern through an encoder written from the definition', () => {
    const bits = Uint16Array.from({ length: 65536 }, (_, i) => i);
    const out = new Float32Array(65536);
    decodeFloat16(bits, out);
    const wrong: string[] = [];
    let finite = 0;
    for (let i = 0; i < 65536; i++) {
      const x = out[i] as number;
      if (((i >> 10) & 0x1f) === 0x1f) {
        const ok = (i & 0x3ff) === 0 ? x === (i & 0x8000 ? -Infinity : Infinity) : Number.isNaN(x);
        if (!ok) wrong.push(`0x${i.toString(16)} -> ${x}`);
        continue;
      }
      finite++;
      if (toFloat16Bits(x) !== i || !Object.is(x, float16ToNumber(i))) wrong.push(`0x${i.toString(16)} -> ${x}`);
    }
    expect(wrong).toEqual([]);
    expect(finite).toBe(2 * 31 * 1024);
  });

  it('decodes bfloat16 as the upper half of a float32', () => {
    const src = Uint16Array.from([0x3f80, 0xc000, 0x7f80, 0xff80, 0x0001, 0x8000, 0x4049]);
    const out = new Float32Array(src.length);
    decodeBFloat16(src, out);
    expect(Array.from(out.slice(0, 5))).toEqual([1, -2, Infinity, -Infinity, 2 ** -133]);
    expect(Object.is(out[5], -0)).toBe(true);
    // 0x4049 -> 0x40490000 = 3.140625 (pi truncated to 8 bits of precision)
    expect(out[6]).toBe(3.140625);
  });

  it('rejects a destination shorter than the source', () => {
    expect(() => decodeFloat16(new Uint16Array(3), new Float32Array(2))).toThrow(/dst holds 2 elements/);
    expect(() => decodeBFloat16(new Uint16Array(3), new Float32Array(2))).toThrow(/dst holds 2 elements/);
  });
});
