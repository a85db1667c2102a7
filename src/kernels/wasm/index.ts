/**
 * The fused shard pass in WebAssembly SIMD: the JavaScript side of `assembly/fused.ts`.
 *
 * The module imports a shared `WebAssembly.Memory` and owns none: the batch's tensors must be
 * `Float32Array` views on that memory (a view's `byteOffset` is the kernel's pointer), so a shard
 * is read where the producer wrote it, by every worker that imports the same memory. The kernel's
 * output scratch space is taken from the same memory with `memory.grow`, which hands each caller a
 * region no other thread (and no other kernel) gets; results are copied out into fresh
 * `Float64Array`s, so `ShardStats` stay plain data.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { formatShape } from '../../errors.js';
import type { TensorLike } from '../../tensor.js';
import type { FeatureNeeds, FeatureStats, FusedKernel, Moments, PositiveEntries, ShardNeeds, ShardStats, VectorNorms } from '../types.js';
import { shiftedMoments } from '../moments.js';
import { withFallback, type NeedName } from '../fallback.js';
import { lastFiredOf, lastFiredOnly, lastFiredRoom } from './dense.js';

/** The statistics the WebAssembly pass computes itself; the plain JavaScript kernel does the rest. */
export const WASM_NEEDS: ReadonlySet<NeedName> = new Set<NeedName>([
  'abs',
  'nonZero',
  'fired',
  'mse',
  'positives',
  'norms',
  'sourceMoments',
  'residualMoments',
  'features',
]);

/** Whether `needs` asks for a statistic of source and decoded activations (one `pairPass`). */
export function needsPairs(needs: ShardNeeds): boolean {
  return needs.mse === true || needs.norms === true || needs.sourceMoments === true || needs.residualMoments === true;
}

/** The `pairPass` flags of `needs` (without the continue flag, 16). */
export function pairFlags(needs: ShardNeeds): number {
  return (needs.mse ? 1 : 0) | (needs.norms ? 2 : 0) | (needs.sourceMoments ? 4 : 0) | (needs.residualMoments ? 8 : 0);
}

/**
 * `a` with every NaN replaced by the one NaN JavaScript writes: WebAssembly leaves the sign and
 * payload of a NaN made from two NaNs open, and V8's two compilers of a module may pick
 * differently, so without this a shard's NaN results could differ in bits between threads.
 */
function canonicalNaN(a: Float64Array): Float64Array {
  for (let i = 0; i < a.length; i++) {
    const x = a[i] as number;
    if (x !== x) a[i] = Number.NaN;
  }
  return a;
}

/**
 * The statistics of a `pairPass` over `vectors` vectors (`rows` rows) from its outputs in `buffer`:
 * fresh arrays, the norms split out of their interleaved layout, the moments from their shifted
 * sums, NaN in one form (see {@link canonicalNaN}).
 */
export function pairStats(
  buffer: ArrayBufferLike,
  needs: ShardNeeds,
  at: { mse: number; norms: number; moments: number },
  vectors: number,
  rows: number,
  size: number,
): Pick<ShardStats, 'mse' | 'norms' | 'sourceMoments' | 'residualMoments'> {
  const out: { mse?: Float64Array; norms?: VectorNorms; sourceMoments?: Moments; residualMoments?: Moments } = {};
  if (needs.mse) out.mse = canonicalNaN(new Float64Array(buffer, at.mse, vectors).slice());
  if (needs.norms) {
    const all = new Float64Array(buffer, at.norms, 4 * vectors);
    const parts = [0, 1, 2, 3].map(() => new Float64Array(vectors));
    for (let v = 0; v < vectors; v++) for (let k = 0; k < 4; k++) (parts[k] as Float64Array)[v] = all[4 * v + k] as number;
    const [source, decoded, dot, error] = parts.map(canonicalNaN) as [Float64Array, Float64Array, Float64Array, Float64Array];
    out.norms = { source, decoded, dot, error };
  }
  const moments = (k: number): Moments => {
    const from = (i: number) => new Float64Array(buffer, at.moments + 8 * size * (k + i), size).slice();
    const m = shiftedMoments(from(0), from(1), from(2), rows);
    return { mean: canonicalNaN(m.mean), m2: canonicalNaN(m.m2) };
  };
  if (needs.sourceMoments) out.sourceMoments = moments(0);
  if (needs.residualMoments) out.residualMoments = moments(3);
  return out;
}

const PAGE = 65536;
const NAME = 'wasm kernel';

/** The exports of `fused.wasm` (pointers are byte addresses in the imported memory). */
export interface FusedExports {
  learnedPass(
    x: number,
    rowStart: number,
    rowEnd: number,
    components: number,
    features: number,
    absOut: number,
    nonZeroOut: number,
    firedOut: number,
    flags: number,
  ): void;
  msePass(decoded: number, source: number, rowStart: number, rowEnd: number, components: number, features: number, out: number): void;
  pairPass(
    decoded: number,
    source: number,
    rowStart: number,
    rowEnd: number,
    components: number,
    features: number,
    mseOut: number,
    normsOut: number,
    momentsOut: number,
    flags: number,
  ): void;
  readSum(x: number, n: number): number;
  countsToF64(src: number, dst: number, n: number): void;
  positivesPass(
    x: number,
    rowStart: number,
    rowEnd: number,
    components: number,
    features: number,
    firedOut: number,
    offsetsOut: number,
    featuresOut: number,
    valuesOut: number,
    start: number,
    capacity: number,
    flags: number,
  ): number;
  learnedPositivesPass(
    x: number,
    rowStart: number,
    rowEnd: number,
    components: number,
    features: number,
    absOut: number,
    nonZeroOut: number,
    firedOut: number,
    offsetsOut: number,
    featuresOut: number,
    valuesOut: number,
    start: number,
    capacity: number,
    flags: number,
  ): number;
  featureStats(
    offsets: number,
    features: number,
    values: number,
    vectors: number,
    components: number,
    nFeatures: number,
    total: number,
    starts: number,
    grouped: number,
    groupsOut: number,
    countOut: number,
    meanOut: number,
    m2Out: number,
    maxOut: number,
    lastOut: number,
    keptOut: number,
    topKeys: number,
    topValues: number,
    topRows: number,
    k: number,
    edgeBits: number,
    edgeCount: number,
    table: number,
    local: number,
    bitmap: number,
    cells: number,
    cellCounts: number,
    info: number,
    flags: number,
    firedCounts: number,
  ): void;
}

/**
 * Where a shard's positive entries go: u32 offsets[vectors + 1] | u32 features[capacity] | f32
 * values[capacity], 16-byte aligned, in `bytes` at most (the capacity is what fits).
 */
export function positivesLayout(vectors: number, bytes: number): { featuresAt: number; valuesAt: number; capacity: number } {
  const offsetsBytes = align16(4 * (vectors + 1));
  const capacity = Math.max(0, Math.floor((bytes - offsetsBytes - 16) / 8));
  return { featuresAt: offsetsBytes, valuesAt: offsetsBytes + align16(4 * capacity), capacity };
}

/** The bytes {@link positivesLayout} needs for `entries` entries of `vectors` vectors. */
export function positivesBytes(vectors: number, entries: number): number {
  return align16(4 * (vectors + 1)) + align16(4 * entries) + align16(4 * entries) + 16;
}

/**
 * A guess of the entries a shard of `elements` values holds, from the density of the last shard
 * seen (a quarter more, at least 4096): a pass whose entries do not fit runs again with room.
 */
export function positivesGuess(elements: number, lastDensity: number): number {
  return Math.min(elements, Math.max(4096, Math.ceil(elements * lastDensity * 1.25)));
}

/** The positive entries written by `positivesPass` at `at` (see {@link positivesLayout}), copied out. */
export function readPositives(buffer: ArrayBufferLike, at: number, vectors: number, total: number, layout: ReturnType<typeof positivesLayout>): PositiveEntries {
  const offsets = new Float64Array(vectors + 1);
  const raw = new Uint32Array(buffer, at, vectors);
  for (let v = 0; v < vectors; v++) offsets[v] = raw[v] as number;
  offsets[vectors] = total;
  return {
    offsets,
    features: new Uint32Array(buffer, at + layout.featuresAt, total).slice(),
    values: new Float32Array(buffer, at + layout.valuesAt, total).slice(),
  };
}

/**
 * The scratch layout of `featureStats` for `entries` fired entries of `size` groups (`m` of which
 * fired, at most `min(size, entries)`): info u32[4] | starts u32[size] | grouped u64[entries] |
 * groups u32[m] | count, mean, m2, max, last, kept f64[m] each | top keys u64[min(k, entries)] | top
 * values f32[entries] | top rows f64[entries] | edges u32[E] | table u32[0x7f81] | local u32[E + 1]
 * | bitmap u64[ceil((E + 1) / 64)] | cells u32[entries] | cell counts f64[entries], 16-byte
 * aligned, the parts not asked for empty; `bytes` in all.
 */
export function featureLayout(size: number, entries: number, request: FeatureNeeds) {
  const m = Math.min(size, entries);
  const edges = request.histogram ? request.histogram.edgeBits.length : 0;
  const top = request.top !== undefined ? entries : 0;
  let at = 0;
  const take = (bytes: number): number => {
    const here = at;
    at += align16(bytes);
    return here;
  };
  const info = take(16);
  const starts = take(4 * size);
  const grouped = take(8 * entries);
  const groups = take(4 * m);
  const count = take(8 * m);
  const mean = take(request.moments ? 8 * m : 0);
  const m2 = take(request.moments ? 8 * m : 0);
  const max = take(request.moments ? 8 * m : 0);
  const last = take(request.lastFired ? 8 * m : 0);
  const kept = take(request.top !== undefined ? 8 * m : 0);
  const topKeys = take(request.top !== undefined ? 8 * Math.min(request.top, entries) : 0);
  const topValues = take(4 * top);
  const topRows = take(8 * top);
  const edgeBits = take(4 * edges);
  const table = take(request.histogram ? 4 * 0x7f81 : 0);
  const local = take(request.histogram ? 4 * (edges + 1) : 0);
  const bitmap = take(request.histogram ? 8 * Math.ceil((edges + 1) / 64) : 0);
  const cells = take(request.histogram ? 4 * entries : 0);
  const cellCounts = take(request.histogram ? 8 * entries : 0);
  return { info, starts, grouped, groups, count, mean, m2, max, last, kept, topKeys, topValues, topRows, edgeBits, table, local, bitmap, cells, cellCounts, bytes: at };
}

/**
 * Whether `featureStats` may take `bytes` of scratch for a shard of `elements` values: two shard's
 * bytes (8 a value) and a MiB (its histogram table and a small shard's). The scratch is kept (a
 * WebAssembly memory never shrinks), and a dense shard's is up to 88 bytes an entry, past the
 * command's memory bound with a worker or two: such a shard gives its entries instead, and the
 * parts compute the same bits from them in JavaScript.
 */
export function featureScratchFits(bytes: number, elements: number): boolean {
  return bytes <= 8 * elements + 2 ** 20;
}

/**
 * The room a kernel makes for a shard's fired entries before listing them: the guess from the last
 * shard's density, capped when only the last-fired rows are asked for (a denser shard is scanned).
 */
export function entriesRoom(needs: ShardNeeds, elements: number, lastDensity: number): number {
  const guess = positivesGuess(elements, lastDensity);
  return lastFiredOnly(needs) ? Math.min(guess, lastFiredRoom(elements)) : guess;
}

/**
 * What the kernels do with a shard's `total` fired entries (`elements` values, `size` features and
 * components): find the last-fired rows by a scan instead (past {@link lastFiredRoom}), compute the
 * per-feature statistics in WebAssembly (`featureBytes` of scratch, where it fits), and hand the
 * entries out (`listed`: asked for, or the parts compute the statistics from them).
 */
export function entriesUse(needs: ShardNeeds, size: number, elements: number, total: number): { scanned: boolean; featureBytes: number; inWasm: boolean; listed: boolean } {
  const features = needs.features;
  const scanned = lastFiredOnly(needs) && total > lastFiredRoom(elements);
  const featureBytes = features === undefined || scanned ? 0 : featureLayout(size, total, features).bytes;
  const inWasm = features !== undefined && !scanned && featureScratchFits(featureBytes, elements);
  const listed = needs.positives === true || (features !== undefined && !inWasm && !scanned);
  return { scanned, featureBytes, inWasm, listed };
}

/** Where a pass's fired entries are (see {@link positivesLayout}): byte addresses, vectors and entries. */
export interface EntriesAt {
  readonly offsets: number;
  readonly features: number;
  readonly values: number;
  readonly vectors: number;
  readonly total: number;
}

/**
 * The per-feature statistics `request` of fired entries at `p` in the memory of `exports`
 * (`components` vectors a row, `features` features), computed by `featureStats` with scratch at
 * `at` (`featureLayout(...).bytes` bytes): fresh arrays that hold the same bits as the
 * JavaScript parts' (`momentsOf`, `histogramOf`, `topOfShard`, the last-fired rows). `firedCounts`,
 * unless 0, is the address of the entries' u32 counts per feature (the pass's fired counts).
 */
export function featureStatsAt(
  exports: FusedExports,
  memory: () => ArrayBufferLike,
  p: EntriesAt,
  components: number,
  features: number,
  request: FeatureNeeds,
  at: number,
  firedCounts = 0,
): FeatureStats {
  const size = components * features;
  const L = featureLayout(size, p.total, request);
  const h = request.histogram;
  const edges = h ? h.edgeBits.length : 0;
  if (h) new Uint32Array(memory(), at + L.edgeBits, edges).set(h.edgeBits);
  const k = request.top ?? 0;
  const flags = (request.moments ? 1 : 0) | (request.lastFired ? 2 : 0) | (request.top !== undefined ? 4 : 0) | (h ? 8 : 0);
  exports.featureStats(
    p.offsets, p.features, p.values, p.vectors, components, features, p.total,
    at + L.starts, at + L.grouped, at + L.groups, at + L.count, at + L.mean, at + L.m2, at + L.max, at + L.last, at + L.kept,
    at + L.topKeys, at + L.topValues, at + L.topRows, k, at + L.edgeBits, edges, at + L.table, at + L.local, at + L.bitmap,
    at + L.cells, at + L.cellCounts,
    at + L.info, flags, firedCounts,
  );
  const buffer = memory();
  const info = new Uint32Array(buffer, at + L.info, 3);
  const m = info[0] as number;
  const topTotal = info[1] as number;
  const cellTotal = info[2] as number;
  // Per fired group, spread over every group: where every group fired (a dense shard) a copy.
  const groups = m === size ? undefined : new Uint32Array(buffer, at + L.groups, m);
  const spread = (offset: number, fill: number): Float64Array => {
    const from = new Float64Array(buffer, at + offset, m);
    let out: Float64Array;
    if (groups === undefined) out = from.slice();
    else {
      out = new Float64Array(size);
      if (fill !== 0) out.fill(fill);
      for (let j = 0; j < m; j++) out[groups[j] as number] = from[j] as number;
    }
    return out;
  };
  const out: { -readonly [K in keyof FeatureStats]: FeatureStats[K] } = {};
  if (request.moments) out.moments = { count: spread(L.count, 0), mean: spread(L.mean, 0), m2: spread(L.m2, 0), max: spread(L.max, 0) };
  if (request.lastFired) out.lastFired = spread(L.last, -1);
  if (request.top !== undefined) {
    out.top = {
      k,
      counts: spread(L.kept, 0),
      values: new Float32Array(buffer, at + L.topValues, topTotal).slice(),
      rows: new Float64Array(buffer, at + L.topRows, topTotal).slice(),
    };
  }
  if (h) {
    out.histogram = {
      key: h.key,
      cells: new Uint32Array(buffer, at + L.cells, cellTotal).slice(),
      cellCounts: new Float64Array(buffer, at + L.cellCounts, cellTotal).slice(),
    };
  }
  return out;
}

/** A fused pass over tensors in one shared WebAssembly memory. */
export interface WasmKernel {
  /** The shared memory the module imports; the batch's tensors must be views on it. */
  readonly memory: WebAssembly.Memory;
  /** The fused shard pass, with the contract and results of `jsFusedKernel`. */
  readonly fused: FusedKernel;
  /**
   * The float64 sum of a float32 tensor in `memory`, read once with SIMD (the bandwidth ceiling
   * of a pass over it; blocks of float32 sums carried into float64, ~1e-7 relative).
   */
  readSum(t: TensorLike | Float32Array): number;
  /**
   * Makes `fused` use `region` (bytes of `memory` that the caller owns) as its scratch space
   * instead of growing the memory; `undefined` goes back to the kernel's own region. A pool gives
   * each shard a block of its arena, so that the space comes back when the shard is done, even if
   * the thread that ran it is gone.
   *
   * @throws {RangeError} from `fused`, when a shard needs more than `region` holds.
   */
  useScratch(region: ScratchRegion | undefined): void;
}

/** Bytes of a shared WebAssembly memory lent to a kernel as scratch space. */
export interface ScratchRegion {
  readonly byteOffset: number;
  readonly byteLength: number;
}

const align16 = (bytes: number): number => Math.ceil(bytes / 16) * 16;

/** The axes of a field, as the scratch layout needs them. */
interface Axes {
  readonly components: number;
  readonly features: number;
}

/**
 * The scratch layout of a shard pass over `count` rows: abs f64[vectors] | mse f64[vectors] |
 * norms f64[4 * vectors] | moments f64[6 * C * F] | nonZero u32[C] | fired u32[C * F], each
 * 16-byte aligned; `bytes` in all. Norms and moments take space only when `needs` asks for them.
 */
function scratchLayout(count: number, learned: Axes | undefined, decoded: Axes | undefined, needs: ShardNeeds = {}) {
  const lv = learned ? count * learned.components : 0;
  const mv = decoded ? count * decoded.components : 0;
  const absAt = 0;
  const mseAt = absAt + align16(8 * lv);
  const normsAt = mseAt + align16(8 * mv);
  const momentsAt = normsAt + align16(needs.norms ? 32 * mv : 0);
  const moments = decoded && (needs.sourceMoments || needs.residualMoments) ? 48 * decoded.components * decoded.features : 0;
  const nonZeroAt = momentsAt + align16(moments);
  const firedAt = nonZeroAt + align16(learned ? 4 * learned.components : 0);
  const bytes = firedAt + align16(learned ? 4 * learned.components * learned.features : 0);
  return { lv, mv, absAt, mseAt, normsAt, momentsAt, nonZeroAt, firedAt, bytes };
}

/**
 * The scratch bytes `fused` needs for a shard of `rows` rows that reads `learned` (shape of the
 * learned activations, when abs, nonZero or fired counts are needed) and `decoded` (shape of the
 * decoded activations, when squared errors, norms or moments are needed), for `needs`.
 */
export function wasmScratchBytes(
  rows: number,
  learned: readonly number[] | undefined,
  decoded: readonly number[] | undefined,
  needs?: ShardNeeds,
): number {
  const axes = (shape: readonly number[] | undefined): Axes | undefined =>
    shape === undefined
      ? undefined
      : { components: shape.length === 3 ? (shape[1] as number) : 1, features: shape[shape.length - 1] as number };
  return scratchLayout(rows, axes(learned), axes(decoded), needs).bytes;
}

/** Which build of the fused pass: `shared` imports a shared memory (pools), `local` an unshared one. */
export type WasmBuild = 'shared' | 'local';

const FILES: Readonly<Record<WasmBuild, string>> = { shared: 'fused.wasm', local: 'fused-local.wasm' };

/**
 * Path of a compiled build of the fused pass, `dist/wasm/fused.wasm` (shared memory, the default)
 * or `dist/wasm/fused-local.wasm` at the package root, both from the compiled package
 * (`dist/src/kernels/wasm/index.js`) and from the sources (where `scripts/build-wasm.mjs` must
 * have run; `npm test` builds first).
 */
export function wasmFile(build: WasmBuild = 'shared'): string {
  // The path, not the URL: a loader may add a query (tsx's `tsImport` does).
  const fromSources = new URL(import.meta.url).pathname.endsWith('.ts');
  const relative = `${fromSources ? '../../../dist/wasm/' : '../../../wasm/'}${FILES[build]}`;
  return fileURLToPath(new URL(relative, import.meta.url));
}

const compiled: Partial<Record<WasmBuild, WebAssembly.Module>> = {};

/**
 * A compiled build, compiled once per thread (a `WebAssembly.Module` may also be posted to a
 * worker and passed to {@link createWasmKernel}).
 *
 * @throws {Error} when the file is missing (run `npm run build`) or invalid.
 */
export function wasmModule(build: WasmBuild = 'shared'): WebAssembly.Module {
  return (compiled[build] ??= compileWasmFile(wasmFile(build), NAME));
}

/**
 * Reads and compiles a module built by `scripts/build-wasm.mjs` (also used by the examples).
 *
 * @throws {Error} naming `who` and the path when the file cannot be read (run `npm run build`), or
 *   a `WebAssembly.CompileError` when it is not a valid module.
 */
export function compileWasmFile(path: string, who: string): WebAssembly.Module {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    throw new Error(`${who}: cannot read ${path} (build it with \`npm run build\`)`, { cause: error });
  }
  return new WebAssembly.Module(bytes);
}

interface Field {
  readonly pointer: number;
  readonly rows: number;
  readonly components: number;
  readonly features: number;
}

/** The byte address of a tensor that must be a float32 view on `memory`, and its axes. */
function fieldOf(memory: WebAssembly.Memory, name: string, value: unknown): Field {
  const t = value as Partial<TensorLike> | undefined;
  const data = t?.data;
  if (!(data instanceof Float32Array) || !Array.isArray(t?.shape)) {
    throw new TypeError(`${NAME}: ${name} must be a tensor whose data is a Float32Array view on the kernel's WebAssembly memory`);
  }
  const shape = t.shape;
  return { pointer: pointerOf(memory, name, data), ...axesOf(name, shape, data.length) };
}

/** The axes of a rank 2 or 3 tensor whose data holds `length` elements. */
export function axesOf(name: string, shape: readonly number[], length: number): Omit<Field, 'pointer'> {
  if (shape.length !== 2 && shape.length !== 3) {
    throw new RangeError(`${NAME}: ${name} must have rank 2 or 3, got shape ${formatShape(shape)}`);
  }
  const rows = shape[0] as number;
  const components = shape.length === 3 ? (shape[1] as number) : 1;
  const features = shape[shape.length - 1] as number;
  if (rows * components * features > length) {
    throw new RangeError(`${NAME}: ${name} has shape ${formatShape(shape)} but its data holds ${length} elements`);
  }
  return { rows, components, features };
}

/**
 * The byte address of `data` in `memory`. A view on the memory lives in a `SharedArrayBuffer` of
 * whole pages that ends within the memory, and agrees with the memory at both ends (cheap checks
 * that catch a view on another buffer; they cannot prove that two shared buffers are one).
 */
function pointerOf(memory: WebAssembly.Memory, name: string, data: Float32Array): number {
  const buffer: ArrayBufferLike = data.buffer;
  const reject = (why: string): never => {
    throw new TypeError(`${NAME}: ${name} must be a Float32Array view on the kernel's WebAssembly memory, got ${why}`);
  };
  if (!(buffer instanceof SharedArrayBuffer)) reject(`a view on ${buffer.constructor.name === 'ArrayBuffer' ? 'an ArrayBuffer' : 'a non-shared buffer'}`);
  const start = data.byteOffset;
  const end = start + data.byteLength;
  const size = memory.buffer.byteLength;
  if (buffer.byteLength % PAGE !== 0) reject(`a view on a SharedArrayBuffer of ${buffer.byteLength} bytes (not whole 64 KiB pages)`);
  if (end > buffer.byteLength || end > size) reject(`a view of bytes [${start}, ${end}) beyond the memory's ${size} bytes`);
  if (data.length > 0 && !sameEnds(new Uint32Array(data.buffer, start, data.length), new Uint32Array(memory.buffer, start, data.length))) {
    reject('a view on a SharedArrayBuffer that is not this memory');
  }
  return start;
}

/**
 * Whether two views of shared memory agree at both ends, at one of three reads (a concurrent
 * writer may race one read; atomic loads are never merged by the compiler).
 */
function sameEnds(a: Uint32Array, b: Uint32Array): boolean {
  const last = a.length - 1;
  for (let attempt = 0; attempt < 3; attempt++) {
    if (Atomics.load(a, 0) === Atomics.load(b, 0) && Atomics.load(a, last) === Atomics.load(b, last)) return true;
  }
  return false;
}

/** Checks that `rows` is a range within `[0, total]`. */
export function checkRows(rows: { start: number; end: number }, total: number): void {
  const { start, end } = rows;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || start > end || end > total) {
    throw new RangeError(`${NAME}: rows must be a range of integers within [0, ${total}], got [${start}, ${end})`);
  }
}

/**
 * A kernel over `memory` (a shared `WebAssembly.Memory`, as every worker of a pool imports it).
 * Instantiation is synchronous; the module is compiled once per thread unless `module` is given.
 * Each kernel keeps its own scratch regions, taken from `regions` when a shard needs more (by
 * default grown from `memory` and never reused; a pool's workers take them from its
 * `RegionRegistry`, so that a thread's regions go to the next thread once it is gone).
 *
 * `fused` computes what `jsFusedKernel` computes for batches whose tensors are float32 views on
 * `memory`: counts exactly; absolute sums and squared errors within 1e-6 relative of float64 (blocks
 * of 16 or 8 values per lane added in float32, each carried into float64; a vector whose float32
 * block would overflow or underflow is summed again in float64).
 *
 * @throws {TypeError} when `memory` is not a shared `WebAssembly.Memory`; `fused` and `readSum`
 *   throw a `TypeError` for a tensor that is not a view on `memory`, a `RangeError` for a row range
 *   outside the batch or when `memory` cannot grow for the scratch space.
 * @example
 * ```ts
 * const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
 * const kernel = createWasmKernel(memory);
 * const data = new Float32Array(memory.buffer, 0, 6);
 * data.set([1, -2, 0, 0, 3, 0]);
 * const stats = kernel.fused({ learnedActivations: { data, shape: [2, 3] } }, { start: 0, end: 2 }, { abs: true, fired: true });
 * Array.from(stats.abs); // [3, 3]
 * Array.from(stats.fired); // [1, 1, 0]
 * kernel.readSum(data); // 2
 * ```
 */
export function createWasmKernel(memory: WebAssembly.Memory, module?: WebAssembly.Module, regions: RegionSource = growingRegions(memory)): WasmKernel {
  if (!(memory instanceof WebAssembly.Memory) || !(memory.buffer instanceof SharedArrayBuffer)) {
    throw new TypeError(`${NAME}: memory must be a shared WebAssembly.Memory (created with shared: true)`);
  }
  const instance = new WebAssembly.Instance(module ?? wasmModule(), { env: { memory } });
  const exports = instance.exports as unknown as FusedExports;

  const own = ownRegion(regions);
  const positivesRegion = ownRegion(regions);
  const featuresRegion = ownRegion(regions);
  let lent: ScratchRegion | undefined;
  /** Start of a scratch region of at least `bytes` bytes that only this kernel uses. */
  const scratch = (bytes: number): number => {
    if (lent !== undefined) {
      if (bytes > lent.byteLength) {
        throw new RangeError(`${NAME}: the shard needs ${bytes} bytes of scratch space, but was lent ${lent.byteLength}`);
      }
      return lent.byteOffset;
    }
    return own(bytes);
  };
  // The density of fired entries in the last shard: the next shard's guess of its entries.
  let density = 0.05;

  const ownPass: FusedKernel = (batch, rows, needs) => {
    const out: {
      abs?: Float64Array;
      nonZero?: Float64Array;
      fired?: Float64Array;
      mse?: Float64Array;
      positives?: PositiveEntries;
      norms?: VectorNorms;
      sourceMoments?: Moments;
      residualMoments?: Moments;
      features?: FeatureStats;
    } = {};
    const flags = (needs.abs ? 1 : 0) | (needs.nonZero ? 2 : 0) | (needs.fired ? 4 : 0);
    const entries = needs.positives === true || needs.features !== undefined;
    const learned = flags !== 0 || entries ? fieldOf(memory, 'learnedActivations', batch.learnedActivations) : undefined;
    const pairs = needsPairs(needs);
    const decoded = pairs ? fieldOf(memory, 'decodedActivations', batch.decodedActivations) : undefined;
    const source = pairs ? fieldOf(memory, 'sourceActivations', batch.sourceActivations) : undefined;
    if (source !== undefined && decoded !== undefined) {
      if (source.rows !== decoded.rows || source.components !== decoded.components || source.features !== decoded.features) {
        throw new RangeError(`${NAME}: sourceActivations and decodedActivations must have the same shape`);
      }
    }
    for (const f of [learned, decoded]) if (f !== undefined) checkRows(rows, f.rows);

    const layout = scratchLayout(rows.end - rows.start, learned, decoded, needs);
    const { lv, mv, absAt, mseAt, nonZeroAt, firedAt } = layout;
    const base = scratch(layout.bytes);

    if (learned !== undefined) {
      const { pointer, components: c, features: f } = learned;
      if (entries) {
        // Abs sums, non-zero and fired counts and the positives in one read of each vector.
        const vectors = (rows.end - rows.start) * c;
        const elements = vectors * f;
        let at = positivesRegion(positivesBytes(vectors, entriesRoom(needs, elements, density)));
        let layout = positivesLayout(vectors, positivesRegion.bytes());
        const total = exports.learnedPositivesPass(pointer, rows.start, rows.end, c, f, base + absAt, base + nonZeroAt, base + firedAt, at, at + layout.featuresAt, at + layout.valuesAt, 0, layout.capacity, flags);
        if (elements > 0) density = total / elements;
        const { scanned, featureBytes, inWasm, listed } = entriesUse(needs, c * f, elements, total);
        if (scanned) {
          const x = new Float32Array(memory.buffer, pointer, learned.rows * c * f);
          out.features = { lastFired: lastFiredOf(x, rows.start, rows.end, c, f) };
        } else if (total > layout.capacity) {
          // More entries than the guess: room for all of them, and the entries again (no counts).
          at = positivesRegion(positivesBytes(vectors, total));
          layout = positivesLayout(vectors, positivesRegion.bytes());
          exports.positivesPass(pointer, rows.start, rows.end, c, f, 0, at, at + layout.featuresAt, at + layout.valuesAt, 0, layout.capacity, 0);
        }
        if (listed) out.positives = readPositives(memory.buffer, at, vectors, total, layout);
        if (needs.features !== undefined && inWasm) {
          // The per-feature statistics while the entries are in cache, in a region of their own.
          const scratchAt = featuresRegion(featureBytes);
          const p = { offsets: at, features: at + layout.featuresAt, values: at + layout.valuesAt, vectors, total };
          out.features = featureStatsAt(exports, () => memory.buffer, p, c, f, needs.features, scratchAt, needs.fired ? base + firedAt : 0);
        }
      } else {
        exports.learnedPass(pointer, rows.start, rows.end, c, f, base + absAt, base + nonZeroAt, base + firedAt, flags);
      }
      const buffer = memory.buffer;
      if (needs.abs) out.abs = new Float64Array(buffer, base + absAt, lv).slice();
      if (needs.nonZero) out.nonZero = toFloat64(new Uint32Array(buffer, base + nonZeroAt, c));
      if (needs.fired) out.fired = toFloat64(new Uint32Array(buffer, base + firedAt, c * f));
    }
    if (decoded !== undefined && source !== undefined) {
      const { components: c, features: f } = decoded;
      const count = rows.end - rows.start;
      const at = { mse: base + mseAt, norms: base + layout.normsAt, moments: base + layout.momentsAt };
      // Squared errors alone: msePass; with norms or moments, one pairPass reads both arrays once.
      if (pairFlags(needs) === 1) exports.msePass(decoded.pointer, source.pointer, rows.start, rows.end, c, f, at.mse);
      else exports.pairPass(decoded.pointer, source.pointer, rows.start, rows.end, c, f, at.mse, at.norms, at.moments, pairFlags(needs));
      Object.assign(out, pairStats(memory.buffer, needs, at, mv, count, c * f));
    }
    return out as ShardStats;
  };

  const readSum = (t: TensorLike | Float32Array): number => {
    const data = t instanceof Float32Array ? t : t.data;
    if (!(data instanceof Float32Array)) {
      throw new TypeError(`${NAME}: readSum needs a Float32Array view on the kernel's WebAssembly memory`);
    }
    return exports.readSum(pointerOf(memory, 'readSum input', data), data.length);
  };

  const useScratch = (region: ScratchRegion | undefined): void => {
    lent = region;
  };

  const fused = withFallback(ownPass, WASM_NEEDS);
  return { memory, fused, readSum, useScratch };
}

/**
 * Where a kernel's own regions of the shared memory come from. `take(bytes, want)`: a region of at
 * least `bytes` bytes that no other thread uses until it is given back (`want` bytes, when the
 * memory must grow for it); `give(start)`: the region at `start` is no longer used.
 */
export interface RegionSource {
  take(bytes: number, want: number): { readonly start: number; readonly size: number };
  give(start: number): void;
}

/** Regions grown with `memory.grow` (which hands each caller pages no other thread gets), never reused. */
export function growingRegions(memory: WebAssembly.Memory): RegionSource {
  return {
    take: (_bytes, want) => ({ start: growPages(memory, Math.ceil(want / PAGE)) * PAGE, size: Math.ceil(want / PAGE) * PAGE }),
    give: () => {},
  };
}

/**
 * Grows `memory` by `pages` pages; the index of the first.
 *
 * @throws {RangeError} when it cannot (4 GiB in all).
 */
export function growPages(memory: WebAssembly.Memory, pages: number): number {
  try {
    return memory.grow(pages);
  } catch (error) {
    throw new RangeError(
      `${NAME}: cannot grow the WebAssembly memory by ${pages * PAGE} bytes for scratch space (it is ${memory.buffer.byteLength} bytes; 4 GiB at most)`,
      { cause: error },
    );
  }
}

/**
 * A region that only its owner uses, taken from `regions` when a call asks for more than it has
 * (at least twice its size; the old one is given back): `region(bytes)` is its start,
 * `region.bytes()` its size.
 */
function ownRegion(regions: RegionSource): ((bytes: number) => number) & { bytes(): number } {
  let start = 0;
  let size = 0;
  const region = (bytes: number): number => {
    if (bytes > size) {
      const taken = regions.take(bytes, Math.max(bytes, 2 * size));
      if (size > 0) regions.give(start);
      start = taken.start;
      size = taken.size;
    }
    return start;
  };
  return Object.assign(region, { bytes: () => size });
}

/** A fresh Float64Array holding the (exact) values of unsigned 32-bit counts. */
export function toFloat64(counts: Uint32Array): Float64Array {
  const out = new Float64Array(counts.length);
  // A loop: V8's converting set() is several times slower.
  for (let i = 0; i < counts.length; i++) out[i] = counts[i] as number;
  return out;
}
