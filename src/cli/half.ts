/**
 * Exact conversions of 16-bit floats to float32: IEEE 754 binary16 (numpy `float16`, safetensors
 * `F16`) and bfloat16 (safetensors `BF16`). Every binary16 and bfloat16 value is a float32 value,
 * so these conversions lose nothing.
 *
 * @module
 */

/**
 * The value of an IEEE 754 binary16 bit pattern (1 sign bit, 5 exponent bits with bias 15, 10
 * fraction bits): subnormals (`0x0001` = 2^-24), signed zeros, infinities (`0x7c00`, `0xfc00`) and
 * NaNs (exponent 31 with a non-zero fraction) included.
 *
 * @throws {RangeError} when `bits` is not an integer in [0, 0xffff].
 */
export function float16ToNumber(bits: number): number {
  if (!Number.isInteger(bits) || bits < 0 || bits > 0xffff) {
    throw new RangeError(`float16ToNumber: bits must be an integer in [0, 0xffff], got ${bits}`);
  }
  const sign = bits & 0x8000 ? -1 : 1;
  const exponent = (bits >> 10) & 0x1f;
  const fraction = bits & 0x3ff;
  if (exponent === 0) return sign * fraction * 2 ** -24;
  if (exponent === 0x1f) return fraction === 0 ? sign * Infinity : NaN;
  return sign * (1024 + fraction) * 2 ** (exponent - 25);
}

let table: Float32Array | undefined;

/** All 65536 binary16 values as float32, built once (256 KiB). */
function float16Table(): Float32Array {
  if (table === undefined) {
    table = new Float32Array(65536);
    for (let bits = 0; bits < 65536; bits++) table[bits] = float16ToNumber(bits);
  }
  return table;
}

/**
 * Converts binary16 bit patterns to float32, element by element (`dst[i] = value of src[i]`).
 *
 * @throws {RangeError} when `dst` is shorter than `src`.
 */
export function decodeFloat16(src: Uint16Array, dst: Float32Array): void {
  if (dst.length < src.length) {
    throw new RangeError(`decodeFloat16: dst holds ${dst.length} elements, fewer than src's ${src.length}`);
  }
  const t = float16Table();
  for (let i = 0; i < src.length; i++) dst[i] = t[src[i] as number] as number;
}

/**
 * Converts bfloat16 bit patterns (the upper half of a float32) to float32.
 *
 * @throws {RangeError} when `dst` is shorter than `src`.
 */
export function decodeBFloat16(src: Uint16Array, dst: Float32Array): void {
  if (dst.length < src.length) {
    throw new RangeError(`decodeBFloat16: dst holds ${dst.length} elements, fewer than src's ${src.length}`);
  }
  const out = new Uint32Array(dst.buffer, dst.byteOffset, src.length);
  for (let i = 0; i < src.length; i++) out[i] = (src[i] as number) << 16;
}
