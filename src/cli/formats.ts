/**
 * Headers of the activation files `sae-metrics` reads: `.safetensors` and `.npy`. Only headers are
 * read here (a few bytes, then the header itself); the data is read later, a chunk of rows at a
 * time (see `reader.ts`). Every check names the file and what is wrong with it.
 *
 * - safetensors: an 8-byte little-endian header length `n`, a JSON header of `n` bytes
 *   `{ name: { dtype, shape, data_offsets: [begin, end] }, "__metadata__"?: {...} }`, then the data;
 *   offsets count from the first byte after the header. Dtypes F32, F16, BF16 and F64 are read.
 * - npy (format versions 1.0, 2.0, 3.0): the magic `\x93NUMPY`, a version, a header length (2 bytes
 *   in 1.0, 4 bytes after), a Python dict literal `{'descr': '<f4', 'fortran_order': False,
 *   'shape': (N, F)}`, then the data. Little-endian float32 (`<f4`), float16 (`<f2`) and float64
 *   (`<f8`, numpy's default; converted to float32 as it is read) in C order are read.
 * - npz (a zip of .npy files) is refused with a hint to extract it.
 *
 * @module
 */
import { constants, type Stats } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { CliError } from './errors.js';

/** The element types `sae-metrics` reads. */
export type FileDType = 'F32' | 'F16' | 'BF16' | 'F64';

/** Bytes per element of each {@link FileDType}. */
export const DTYPE_BYTES: Readonly<Record<FileDType, number>> = { F32: 4, F16: 2, BF16: 2, F64: 8 };

/** The safetensors header size limit (the `safetensors` library refuses larger headers too). */
export const MAX_SAFETENSORS_HEADER = 100_000_000;

/** One tensor stored in a file: where its row-major little-endian data starts, its dtype and shape. */
export interface TensorRef {
  /** The file path, as given on the command line. */
  readonly path: string;
  /** The open file. */
  readonly handle: FileHandle;
  /** The tensor name in a safetensors file; undefined for a .npy file. */
  readonly name: string | undefined;
  readonly dtype: FileDType;
  readonly shape: readonly number[];
  /** The absolute byte offset of the first element. */
  readonly offset: number;
}

/** An entry of a safetensors header, checked for form (not yet for dtype or size). */
export interface SafetensorsEntry {
  readonly dtype: string;
  readonly shape: readonly number[];
  readonly begin: number;
  readonly end: number;
}

/** A parsed safetensors header. */
export interface SafetensorsHeader {
  readonly format: 'safetensors';
  /** The absolute byte offset where the data (offset 0 of data_offsets) starts. */
  readonly dataStart: number;
  /** The tensors, in header order. */
  readonly entries: ReadonlyMap<string, SafetensorsEntry>;
}

/** A parsed .npy header. */
export interface NpyHeader {
  readonly format: 'npy';
  readonly version: string;
  readonly dtype: FileDType;
  readonly shape: readonly number[];
  /** The absolute byte offset of the data. */
  readonly dataStart: number;
}

/** The number of elements of a shape. */
function elements(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

/**
 * Reads exactly `length` bytes at `position` into `buffer` (from `offset`), looping over short
 * reads.
 *
 * @throws {CliError} when the file ends first (it is shorter than its header says, or shrank).
 */
export async function readExactly(
  handle: FileHandle,
  path: string,
  buffer: Uint8Array,
  offset: number,
  length: number,
  position: number,
  what: string,
): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await handle.read(buffer, offset + done, length - done, position + done);
    if (bytesRead === 0) {
      throw new CliError(
        path,
        `the file ended at byte ${position + done} while reading ${what} (bytes ${position} to ${position + length}): truncated`,
      );
    }
    done += bytesRead;
  }
}

const NPY_MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]);
/** A zip file's first local header, as `np.savez` writes. */
const ZIP_MAGIC = Buffer.from([0x50, 0x4b, 0x03, 0x04]);

/**
 * Reads and checks the header of a `.safetensors` or `.npy` file (told apart by the npy magic,
 * else by the `.safetensors` extension).
 *
 * @throws {CliError} naming the file and the problem.
 */
export async function readHeader(handle: FileHandle, path: string, size: number): Promise<SafetensorsHeader | NpyHeader> {
  const head = new Uint8Array(Math.min(size, 12));
  await readExactly(handle, path, head, 0, head.length, 0, 'the header');
  if (head.length >= 6 && NPY_MAGIC.equals(head.subarray(0, 6))) return readNpyHeader(handle, path, size, head);
  if (/\.npz$/i.test(path) || (head.length >= 4 && ZIP_MAGIC.equals(head.subarray(0, 4)))) {
    throw new CliError(
      path,
      'a .npz archive (a zip of .npy files) is not read: extract its arrays and give the .npy files (unzip FILE.npz, or np.save each array of np.load(FILE.npz))',
    );
  }
  if (/\.npy$/i.test(path)) throw new CliError(path, 'not a .npy file: it does not start with the magic \\x93NUMPY');
  if (/\.safetensors$/i.test(path)) return readSafetensorsHeader(handle, path, size, head);
  throw new CliError(path, 'unknown file type: expected a .safetensors file or a .npy file');
}

async function readSafetensorsHeader(
  handle: FileHandle,
  path: string,
  size: number,
  head: Uint8Array,
): Promise<SafetensorsHeader> {
  if (size < 8) throw new CliError(path, `the file has ${plural(size, 'byte')}, too short for a safetensors header (8-byte length first)`);
  const length = Buffer.from(head.buffer, head.byteOffset, 8).readBigUInt64LE(0);
  if (length > BigInt(size - 8)) {
    throw new CliError(path, `the header length ${length} bytes runs past the end of the file (${size} bytes): truncated or not a safetensors file`);
  }
  const n = Number(length);
  if (n > MAX_SAFETENSORS_HEADER) {
    throw new CliError(path, `the header length ${n} bytes is over the safetensors limit of ${MAX_SAFETENSORS_HEADER} bytes`);
  }
  if (n < 2) throw new CliError(path, `the header length ${n} bytes is too short for a JSON header`);
  const bytes = Buffer.alloc(n);
  await readExactly(handle, path, bytes, 0, n, 8, 'the header');
  let json: unknown;
  try {
    json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch (error) {
    const why = error instanceof SyntaxError ? error.message.split('\n', 1)[0] : 'it is not UTF-8';
    throw new CliError(path, `the safetensors header is not valid JSON (${why})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) {
    throw new CliError(path, 'the safetensors header must be a JSON object of tensors by name');
  }
  const entries = new Map<string, SafetensorsEntry>();
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') continue;
    entries.set(name, checkEntry(path, name, value));
  }
  checkLayout(path, entries, 8 + n, size);
  return { format: 'safetensors', dataStart: 8 + n, entries };
}

/** Bytes per element of the safetensors dtypes, for checking sizes (read or not). */
const SAFETENSORS_DTYPE_BYTES: Readonly<Record<string, number>> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1, I16: 2, U16: 2, F16: 2, BF16: 2, I32: 4, U32: 4, F32: 4, I64: 8, U64: 8, F64: 8,
};

/**
 * Checks how the tensors lie in the data section, as the `safetensors` library does: each holds
 * exactly shape × dtype size bytes, none runs past the end of the file, and together they cover
 * the data section exactly, with no overlap and no gap (a tensor whose bytes are also another's,
 * or bytes that belong to no tensor, mean the header is wrong).
 */
function checkLayout(path: string, entries: ReadonlyMap<string, SafetensorsEntry>, dataStart: number, size: number): void {
  const dataBytes = size - dataStart;
  for (const [name, e] of entries) {
    const what = `tensor ${JSON.stringify(name)}`;
    const unit = SAFETENSORS_DTYPE_BYTES[e.dtype];
    const need = unit === undefined ? undefined : elements(e.shape) * unit;
    if (need !== undefined && e.end - e.begin !== need) {
      throw new CliError(
        path,
        `${what}: data_offsets [${e.begin}, ${e.end}] hold ${e.end - e.begin} bytes, but shape ${formatShape(e.shape)} of ${e.dtype} needs ${need} bytes`,
      );
    }
    if (e.end > dataBytes) {
      throw new CliError(path, `${what}: its data ends at byte ${dataStart + e.end}, past the end of the file (${size} bytes): truncated`);
    }
  }
  const sorted = [...entries].sort(([, a], [, b]) => a.begin - b.begin || a.end - b.end);
  let end = 0;
  let last: string | undefined;
  const after = (): string => (last === undefined ? 'before the first tensor' : `after tensor ${JSON.stringify(last)}`);
  for (const [name, e] of sorted) {
    if (e.begin < end) {
      throw new CliError(
        path,
        `tensors ${JSON.stringify(last)} and ${JSON.stringify(name)} overlap: data_offsets [${e.begin}, ${e.end}] start before byte ${end}, where the other ends; each tensor's data must be its own`,
      );
    }
    if (e.begin > end) {
      throw new CliError(path, `bytes ${end} to ${e.begin} of the data belong to no tensor (${after()}, before tensor ${JSON.stringify(name)}): the header's data_offsets leave a gap`);
    }
    end = e.end;
    last = name;
  }
  if (end < dataBytes) {
    throw new CliError(path, `bytes ${end} to ${dataBytes} of the data belong to no tensor (${after()}): the header's data_offsets leave a gap at the end of the file`);
  }
}

function isCount(x: unknown): x is number {
  return typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
}

function checkEntry(path: string, name: string, value: unknown): SafetensorsEntry {
  const where = `tensor ${JSON.stringify(name)} in the header`;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new CliError(path, `${where} must be an object { dtype, shape, data_offsets }`);
  }
  const v = value as Record<string, unknown>;
  if (typeof v.dtype !== 'string') throw new CliError(path, `${where} has no dtype string`);
  if (!Array.isArray(v.shape) || !v.shape.every(isCount)) {
    throw new CliError(path, `${where}: shape must be an array of non-negative integers, got ${JSON.stringify(v.shape)}`);
  }
  const o = v.data_offsets;
  if (!Array.isArray(o) || o.length !== 2 || !isCount(o[0]) || !isCount(o[1]) || o[0] > o[1]) {
    throw new CliError(path, `${where}: data_offsets must be [begin, end] with 0 <= begin <= end, got ${JSON.stringify(o)}`);
  }
  return { dtype: v.dtype, shape: v.shape as number[], begin: o[0], end: o[1] };
}

/**
 * Chooses a tensor of a safetensors file and checks that this command reads its dtype (its
 * size and place in the file were checked with the header).
 *
 * @param name the tensor name, or undefined for the only tensor not in `exclude`.
 * @param exclude names that are taken by other roles (source, decoded), for the default choice.
 * @param option the option that names this tensor, for messages (`--tensor`, `--source`, ...).
 * @throws {CliError} naming the file and the problem.
 */
export function safetensorsTensor(
  handle: FileHandle,
  path: string,
  header: SafetensorsHeader,
  name: string | undefined,
  exclude: readonly string[],
  option: string,
): TensorRef {
  const names = [...header.entries.keys()];
  const list = (all: string[]): string =>
    all.length <= 20 ? all.map((x) => JSON.stringify(x)).join(', ') : `${all.slice(0, 20).map((x) => JSON.stringify(x)).join(', ')}, ... (${all.length} in all)`;
  let chosen: string;
  if (name === undefined) {
    const candidates = names.filter((x) => !exclude.includes(x));
    if (candidates.length === 0) throw new CliError(path, names.length === 0 ? 'the file holds no tensors' : `no tensor left for ${option} (tensors: ${list(names)})`);
    if (candidates.length > 1) {
      throw new CliError(path, `the file holds ${candidates.length} tensors (${list(candidates)}); choose one with ${option} NAME`);
    }
    chosen = candidates[0] as string;
  } else {
    if (!header.entries.has(name)) {
      throw new CliError(path, `no tensor named ${JSON.stringify(name)} (${option}); the file holds ${names.length === 0 ? 'no tensors' : list(names)}`);
    }
    chosen = name;
  }
  const entry = header.entries.get(chosen) as SafetensorsEntry;
  const what = `tensor ${JSON.stringify(chosen)}`;
  if (!(entry.dtype in DTYPE_BYTES)) {
    throw new CliError(path, `${what} has dtype ${entry.dtype}; only F32, F16, BF16 and F64 are supported`);
  }
  const dtype = entry.dtype as FileDType;
  return { path, handle, name: chosen, dtype, shape: entry.shape, offset: header.dataStart + entry.begin };
}

async function readNpyHeader(handle: FileHandle, path: string, size: number, head: Uint8Array): Promise<NpyHeader> {
  if (head.length < 10) throw new CliError(path, `the file has ${plural(size, 'byte')}, too short for a .npy header`);
  const major = head[6] as number;
  const minor = head[7] as number;
  if (major < 1 || major > 3 || minor !== 0) throw new CliError(path, `unsupported .npy format version ${major}.${minor} (1.0, 2.0 and 3.0 are read)`);
  const view = Buffer.from(head.buffer, head.byteOffset, head.length);
  if (major > 1 && head.length < 12) throw new CliError(path, `the file has ${plural(size, 'byte')}, too short for a .npy ${major}.0 header`);
  const length = major === 1 ? view.readUInt16LE(8) : view.readUInt32LE(8);
  const start = major === 1 ? 10 : 12;
  if (start + length > size) {
    throw new CliError(path, `the header length ${length} bytes runs past the end of the file (${size} bytes): truncated`);
  }
  const bytes = Buffer.alloc(length);
  await readExactly(handle, path, bytes, 0, length, start, 'the header');
  const text = major === 3 ? bytes.toString('utf8') : bytes.toString('latin1');
  let dict: unknown;
  try {
    dict = parsePythonLiteral(text);
  } catch (error) {
    throw new CliError(path, `the .npy header is not a Python dict literal (${(error as Error).message})`);
  }
  if (typeof dict !== 'object' || dict === null || Array.isArray(dict) || dict instanceof Tuple) {
    throw new CliError(path, 'the .npy header is not a dict');
  }
  const d = dict as Record<string, unknown>;
  for (const key of ['descr', 'fortran_order', 'shape']) {
    if (!(key in d)) throw new CliError(path, `the .npy header has no '${key}' key`);
  }
  const descr = d.descr;
  if (typeof descr !== 'string') {
    throw new CliError(path, `unsupported dtype: a structured dtype ${JSON.stringify(descr)}; only float32 '<f4', float16 '<f2' and float64 '<f8' are read`);
  }
  let dtype: FileDType;
  if (descr === '<f4') dtype = 'F32';
  else if (descr === '<f2') dtype = 'F16';
  else if (descr === '<f8') dtype = 'F64';
  else if (descr === '>f4' || descr === '>f2' || descr === '>f8') {
    throw new CliError(path, `unsupported dtype '${descr}': big-endian; save it little-endian (arr.astype('<${descr.slice(1)}'))`);
  } else throw new CliError(path, `unsupported dtype '${descr}'; only float32 '<f4', float16 '<f2' and float64 '<f8' are read`);
  if (d.fortran_order !== false) {
    throw new CliError(path, `fortran_order is ${String(d.fortran_order === true ? 'True' : d.fortran_order)}; only C-ordered arrays are read (save np.ascontiguousarray(arr))`);
  }
  const shape = d.shape;
  if (!(shape instanceof Tuple) || !shape.items.every(isCount)) {
    throw new CliError(path, `the .npy header's shape must be a tuple of non-negative integers`);
  }
  const dims = shape.items as number[];
  const dataStart = start + length;
  const need = elements(dims) * DTYPE_BYTES[dtype];
  if (dataStart + need > size) {
    throw new CliError(
      path,
      `the data is truncated: shape ${formatShape(dims)} of '${descr}' needs ${need} bytes after the header (from byte ${dataStart}), but the file has ${plural(size - dataStart, 'byte')} there`,
    );
  }
  if (dataStart + need < size) {
    throw new CliError(
      path,
      `the file has ${size - dataStart - need} bytes more than the header's shape ${formatShape(dims)} of '${descr}' needs (${need} bytes of data): the header is wrong`,
    );
  }
  return { format: 'npy', version: `${major}.0`, dtype, shape: dims, dataStart };
}

/** A Python tuple, told apart from a list. */
export class Tuple {
  constructor(readonly items: unknown[]) {}
}

/**
 * Parses the Python literals a .npy header holds: dicts, tuples, lists, strings (single or double
 * quotes), integers, True, False and None.
 *
 * @throws {Error} on anything else, saying where.
 */
export function parsePythonLiteral(text: string): unknown {
  let i = 0;
  const space = (): void => {
    while (i < text.length && /\s/.test(text[i] as string)) i++;
  };
  const fail = (what: string): never => {
    throw new Error(`${what} at character ${i}`);
  };
  const value = (): unknown => {
    space();
    const c = text[i];
    if (c === '{') {
      i++;
      const out: Record<string, unknown> = {};
      for (;;) {
        space();
        if (text[i] === '}') {
          i++;
          return out;
        }
        const key = value();
        if (typeof key !== 'string') fail('expected a string key');
        space();
        if (text[i] !== ':') fail("expected ':'");
        i++;
        out[key as string] = value();
        space();
        if (text[i] === ',') i++;
        else if (text[i] !== '}') fail("expected ',' or '}'");
      }
    }
    if (c === '(' || c === '[') {
      const close = c === '(' ? ')' : ']';
      i++;
      const items: unknown[] = [];
      for (;;) {
        space();
        if (text[i] === close) {
          i++;
          return c === '(' ? new Tuple(items) : items;
        }
        items.push(value());
        space();
        if (text[i] === ',') i++;
        else if (text[i] !== close) fail(`expected ',' or '${close}'`);
      }
    }
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) fail('unterminated string');
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    const word = /^(?:True|False|None|[-+]?\d+)/.exec(text.slice(i));
    if (word === null) return fail(c === undefined ? 'unexpected end' : `unexpected ${JSON.stringify(c)}`);
    i += word[0].length;
    if (word[0] === 'True') return true;
    if (word[0] === 'False') return false;
    if (word[0] === 'None') return null;
    return Number(word[0]);
  };
  const out = value();
  space();
  if (i < text.length) fail('unexpected text after the literal');
  return out;
}

/** An open activation file and its checked header. */
export interface ActivationFile {
  readonly path: string;
  readonly handle: FileHandle;
  /** The file size in bytes. */
  readonly size: number;
  readonly header: SafetensorsHeader | NpyHeader;
}

/** What a file that is not a regular file is, for messages. */
function kindOf(stat: Stats): string {
  if (stat.isDirectory()) return 'is a directory, not a file';
  if (stat.isFIFO()) return 'is a FIFO (named pipe), not a regular file: the command reads files by offset';
  if (stat.isCharacterDevice()) return 'is a character device, not a regular file';
  if (stat.isBlockDevice()) return 'is a block device, not a regular file';
  if (stat.isSocket()) return 'is a socket, not a regular file';
  return 'is not a regular file';
}

/**
 * Opening a FIFO for reading blocks until a writer opens it; O_NONBLOCK makes it return at once
 * (and changes nothing for a regular file), so the check below sees what the path is.
 */
const OPEN_FLAGS = constants.O_RDONLY | (constants.O_NONBLOCK ?? 0);

/**
 * Opens a file and reads its header. Never blocks on a FIFO or a device: anything but a regular
 * file is refused before a byte is read.
 *
 * @throws {CliError} when the file is missing, unreadable, not a regular file, or its header is bad.
 */
export async function openActivationFile(path: string): Promise<ActivationFile> {
  try {
    const before = await stat(path);
    if (!before.isFile()) throw new CliError(path, kindOf(before));
  } catch (error) {
    if (error instanceof CliError) throw error;
    throw new CliError(path, describeOpenError(error));
  }
  let handle: FileHandle;
  try {
    handle = await open(path, OPEN_FLAGS);
  } catch (error) {
    throw new CliError(path, describeOpenError(error));
  }
  try {
    // The path may have changed since it was checked: check what was opened.
    const opened = await handle.stat();
    if (!opened.isFile()) throw new CliError(path, kindOf(opened));
    const header = await readHeader(handle, path, opened.size);
    return { path, handle, size: opened.size, header };
  } catch (error) {
    await handle.close();
    throw error;
  }
}

function describeOpenError(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EISDIR') return 'is a directory, not a file';
  if (code === 'ENXIO') return 'is not a regular file (a socket or a device with nothing behind it)';
  return `cannot open (${code ?? (error as Error).message})`;
}

/**
 * The tensor of an activation file: for .npy, its one array (`name` must be undefined); for
 * safetensors, see {@link safetensorsTensor}.
 *
 * @throws {CliError} naming the file and the problem.
 */
export function fileTensor(file: ActivationFile, name: string | undefined, exclude: readonly string[], option: string): TensorRef {
  const h = file.header;
  if (h.format === 'safetensors') return safetensorsTensor(file.handle, file.path, h, name, exclude, option);
  if (name !== undefined) throw new CliError(file.path, `${option} names a tensor, but a .npy file holds one unnamed array`);
  return { path: file.path, handle: file.handle, name: undefined, dtype: h.dtype, shape: h.shape, offset: h.dataStart };
}
