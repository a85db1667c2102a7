/**
 * Writers of small activation files for the command-line tests: .npy (versions 1.0 to 3.0) and
 * .safetensors, written byte by byte from their format definitions, with knobs to break them.
 */
import { mulberry32 } from '../support/random.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/** A scratch directory, and a way to remove it. */
export function scratchDir(prefix = 'sae-metrics-cli-'): { dir: string; path: (name: string) => string; remove: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, path: (name) => join(dir, name), remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The bytes of a typed array (little-endian on every machine these tests run on). */
export function bytesOf(a: ArrayBufferView): Buffer {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength);
}

/** Options of {@link npyBytes}: anything but `shape` and the data can be set to wrong values. */
export interface NpyOptions {
  readonly descr?: string;
  readonly fortranOrder?: boolean;
  readonly version?: 1 | 2 | 3;
  /** The dict literal to write instead of the one built from the other options. */
  readonly header?: string;
}

/** A .npy file: magic, version, header length, the header dict padded to 64 bytes with '\n', data. */
export function npyBytes(data: Float32Array | Uint16Array | Float64Array, shape: readonly number[], o: NpyOptions = {}): Buffer {
  const descr = o.descr ?? (data instanceof Float32Array ? '<f4' : data instanceof Float64Array ? '<f8' : '<f2');
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`;
  const dict = o.header ?? `{'descr': '${descr}', 'fortran_order': ${o.fortranOrder === true ? 'True' : 'False'}, 'shape': ${tuple}, }`;
  const version = o.version ?? 1;
  const prefix = version === 1 ? 10 : 12;
  const unpadded = prefix + Buffer.byteLength(dict) + 1;
  const padded = Math.ceil(unpadded / 64) * 64;
  const header = Buffer.from(`${dict}${' '.repeat(padded - unpadded)}\n`, version === 3 ? 'utf8' : 'latin1');
  const head = Buffer.alloc(prefix);
  Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, version, 0]).copy(head);
  if (version === 1) head.writeUInt16LE(header.length, 8);
  else head.writeUInt32LE(header.length, 8);
  return Buffer.concat([head, header, bytesOf(data)]);
}

/** A tensor to put in a safetensors file. */
export interface SafetensorsTensor {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly data: ArrayBufferView;
  /** data_offsets to write instead of the true ones. */
  readonly offsets?: readonly [number, number];
}

/**
 * A .safetensors file: the 8-byte little-endian header length, the JSON header padded with spaces
 * to a multiple of 8 bytes, then the tensors' data one after the other.
 */
export function safetensorsBytes(
  tensors: Readonly<Record<string, SafetensorsTensor>>,
  o: { metadata?: Record<string, string>; headerLength?: bigint } = {},
): Buffer {
  const header: Record<string, unknown> = {};
  if (o.metadata) header.__metadata__ = o.metadata;
  let offset = 0;
  const parts: Buffer[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    const bytes = bytesOf(t.data);
    header[name] = { dtype: t.dtype, shape: t.shape, data_offsets: t.offsets ?? [offset, offset + bytes.length] };
    offset += bytes.length;
    parts.push(bytes);
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(o.headerLength ?? BigInt(Buffer.byteLength(json)));
  return Buffer.concat([length, Buffer.from(json), ...parts]);
}

/** Writes a file and returns its path. */
export function write(path: string, bytes: Buffer): string {
  writeFileSync(path, bytes);
  return path;
}

/**
 * Sparse learned activations: about `density` of the entries are non-zero, multiples of 1/256 in
 * (0, 4) (exact in float16 and float32); `deadEvery` makes every such feature never fire; a few
 * entries are negative (they count for L0 and L1, not for firing).
 */
export function sparseActivations(n: number, perRow: number, seed: number, o: { density?: number; deadEvery?: number; features?: number } = {}): Float32Array {
  const r = mulberry32(seed);
  const out = new Float32Array(n * perRow);
  const features = o.features ?? perRow;
  for (let i = 0; i < out.length; i++) {
    const f = i % features;
    if (o.deadEvery !== undefined && f % o.deadEvery === 0) continue;
    if (r() >= (o.density ?? 0.3)) continue;
    const k = 1 + Math.floor(r() * 1023);
    out[i] = (r() < 0.1 ? -k : k) / 256;
  }
  return out;
}

/** Dense activations: multiples of 1/256 in (-4, 4), exact in float16 and float32. */
export function denseActivations(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (Math.floor(r() * 2047) - 1023) / 256);
}

/**
 * The IEEE 754 binary16 bits of a number that binary16 holds exactly (a test-side encoder, written
 * from the definition, independent of the decoder under test): sign, 5-bit biased exponent,
 * 10-bit fraction; subnormals below 2^-14.
 *
 * @throws {Error} when `x` is not exactly a binary16 value.
 */
export function toFloat16Bits(x: number): number {
  if (Number.isNaN(x)) return 0x7e00;
  const sign = x < 0 || Object.is(x, -0) ? 0x8000 : 0;
  const a = Math.abs(x);
  if (a === Infinity) return sign | 0x7c00;
  if (a === 0) return sign;
  if (a < 2 ** -14) {
    const m = a / 2 ** -24;
    if (!Number.isInteger(m)) throw new Error(`${x} is not a binary16 value`);
    return sign | m;
  }
  const e = Math.floor(Math.log2(a));
  const exp = a / 2 ** e >= 2 ? e + 1 : a / 2 ** e < 1 ? e - 1 : e;
  const fraction = (a / 2 ** exp - 1) * 1024;
  if (!Number.isInteger(fraction) || exp + 15 > 30) throw new Error(`${x} is not a binary16 value`);
  return sign | ((exp + 15) << 10) | fraction;
}

/** Float16 bit patterns of values that are exact in binary16. */
export function toFloat16(values: Float32Array): Uint16Array {
  return Uint16Array.from(values, (v) => toFloat16Bits(v));
}
