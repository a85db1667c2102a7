/**
 * The fused WebAssembly pass over ordinary `Float32Array`s, in the calling thread: the rows of a
 * shard are copied into this kernel's own (unshared) memory a cache-sized chunk at a time, and the
 * pass runs on each chunk while it is still in cache. The batch is read from main memory once (by
 * the copy); the copy's writes and the pass's reads stay in cache.
 *
 * It runs the code of the pool's kernel (`fused-local.wasm` is `fused.wasm` built for an unshared
 * memory, into which a copy is a plain `memcpy`) on consecutive rows, with counts added across
 * chunks: every vector's sums and every count are those of one call over the shard, so its results
 * are the same bits as {@link createWasmKernel}'s on the same shard.
 *
 * @module
 */
import type { TensorLike } from '../../tensor.js';
import type { FeatureStats, FusedKernel, PositiveEntries, ShardStats } from '../types.js';
import {
  axesOf,
  checkRows,
  entriesRoom,
  entriesUse,
  featureStatsAt,
  needsPairs,
  pairFlags,
  pairStats,
  positivesBytes,
  positivesLayout,
  readPositives,
  toFloat64,
  wasmModule,
  WASM_NEEDS,
  type FusedExports,
} from './index.js';
import { withFallback } from '../fallback.js';
import { lastFiredOf } from './dense.js';

const PAGE = 65536;
const NAME = 'wasm kernel';

/**
 * Input bytes per chunk: small enough that a chunk, the fired counts and the outputs stay in a
 * core's L2 cache (1 MiB and up on current x86 and ARM cores), large enough that the calls into
 * WebAssembly cost nothing.
 */
export const CHUNK_BYTES = 256 * 1024;

/** Options of {@link createChunkedWasmKernel}. */
export interface ChunkedWasmKernelOptions {
  /** Input bytes per chunk (default {@link CHUNK_BYTES}); a chunk holds at least one row. */
  readonly chunkBytes?: number;
  /** The compiled `fused-local.wasm` (default: compiled once per thread). */
  readonly module?: WebAssembly.Module;
}

interface Input {
  readonly data: Float32Array;
  readonly rows: number;
  readonly components: number;
  readonly features: number;
}

function inputOf(name: string, value: unknown): Input {
  const t = value as Partial<TensorLike> | undefined;
  const data = t?.data;
  if (!(data instanceof Float32Array) || !Array.isArray(t?.shape)) {
    throw new TypeError(`${NAME}: ${name} must be a tensor whose data is a Float32Array`);
  }
  // A literal, not a spread: a spread's hidden class dies with its objects at each collection.
  const { rows, components, features } = axesOf(name, t.shape, data.length);
  return { data, rows, components, features };
}

/** Rows per chunk for rows of `rowBytes` bytes: whole groups of four rows (the pass's unit) when they fit. */
function rowsPerChunk(rowBytes: number, chunkBytes: number): number {
  if (rowBytes === 0) return 2 ** 30;
  const rows = Math.max(1, Math.floor(chunkBytes / rowBytes));
  return rows >= 4 ? rows - (rows % 4) : rows;
}

const align64 = (bytes: number): number => Math.ceil(bytes / 64) * 64;

/**
 * A fused kernel for tensors anywhere in memory, with the contract and results of
 * `jsFusedKernel` (counts exact; sums within 1e-6 relative of float64, as `createWasmKernel`'s,
 * and the same bits as those). Its memory grows to the largest chunk and shard outputs it has
 * seen, and is reused by every call.
 *
 * @throws {TypeError} from the kernel, for a tensor that is not float32; {RangeError} for a row
 *   range outside the batch, or when the memory cannot grow.
 * @example
 * ```ts
 * const fused = createChunkedWasmKernel();
 * const stats = fused({ learnedActivations: tensor([[1, -2, 0], [0, 3, 0]]) }, { start: 0, end: 2 }, { abs: true, fired: true });
 * Array.from(stats.abs); // [3, 3]
 * Array.from(stats.fired); // [1, 1, 0]
 * ```
 */
export function createChunkedWasmKernel(options: ChunkedWasmKernelOptions = {}): FusedKernel {
  const chunkBytes = options.chunkBytes ?? CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes <= 0) {
    throw new RangeError(`${NAME}: options.chunkBytes must be a positive integer, got ${String(chunkBytes)}`);
  }
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536 });
  const exports = new WebAssembly.Instance(options.module ?? wasmModule('local'), { env: { memory } })
    .exports as unknown as FusedExports;
  let heap = new Float32Array(memory.buffer);

  const reserve = (bytes: number): void => {
    const have = memory.buffer.byteLength;
    if (bytes <= have) return;
    const pages = Math.ceil((Math.max(bytes, 2 * have) - have) / PAGE);
    try {
      memory.grow(pages);
    } catch (error) {
      throw new RangeError(`${NAME}: cannot grow the WebAssembly memory to ${bytes} bytes (4 GiB at most)`, { cause: error });
    }
    heap = new Float32Array(memory.buffer);
  };

  // The density of fired entries in the last shard: the next shard's guess of its entries.
  let density = 0.05;
  const ownPass: FusedKernel = (batch, rows, needs) => {
    const flags = (needs.abs ? 1 : 0) | (needs.nonZero ? 2 : 0) | (needs.fired ? 4 : 0);
    const entries = needs.positives === true || needs.features !== undefined;
    const learned = flags !== 0 || entries ? inputOf('learnedActivations', batch.learnedActivations) : undefined;
    const pairs = needsPairs(needs);
    const decoded = pairs ? inputOf('decodedActivations', batch.decodedActivations) : undefined;
    const source = pairs ? inputOf('sourceActivations', batch.sourceActivations) : undefined;
    if (source !== undefined && decoded !== undefined) {
      if (source.rows !== decoded.rows || source.components !== decoded.components || source.features !== decoded.features) {
        throw new RangeError(`${NAME}: sourceActivations and decodedActivations must have the same shape`);
      }
    }
    if (learned !== undefined) checkRows(rows, learned.rows);
    if (decoded !== undefined) checkRows(rows, decoded.rows);

    // Layout: input chunk | abs f64[vectors] | mse f64[vectors] | norms f64[4 * vectors] | moments
    // f64[6 * C * F] | nonZero u32[C] | fired u32[C * F] | fired f64[C * F] | positives (offsets
    // u32[vectors + 1] | features u32[n] | values f32[n]).
    const count = rows.end - rows.start;
    const learnedRow = learned ? learned.components * learned.features : 0;
    const pairRow = decoded ? decoded.components * decoded.features : 0;
    const learnedPer = learned ? rowsPerChunk(4 * learnedRow, chunkBytes) : 0;
    const pairPer = decoded ? rowsPerChunk(8 * pairRow, chunkBytes) : 0;
    const half = align64(4 * pairRow * Math.min(pairPer, count));
    const inputBytes = Math.max(align64(4 * learnedRow * Math.min(learnedPer, count)), 2 * half);
    const lv = learned ? count * learned.components : 0;
    const mv = decoded ? count * decoded.components : 0;
    const absAt = inputBytes;
    const mseAt = absAt + align64(8 * lv);
    const normsAt = mseAt + align64(8 * mv);
    const momentsAt = normsAt + align64(needs.norms ? 32 * mv : 0);
    const momentsBytes = needs.sourceMoments || needs.residualMoments ? 6 * 8 * pairRow : 0;
    const nonZeroAt = momentsAt + align64(momentsBytes);
    const firedAt = nonZeroAt + align64(learned ? 4 * learned.components : 0);
    const firedCount = learned && needs.fired ? learned.components * learned.features : 0;
    const fired64At = firedAt + align64(learned ? 4 * learned.components * learned.features : 0);
    const positivesAt = align64(fired64At + 8 * firedCount);
    const elements = learned ? lv * learned.features : 0;
    reserve(entries ? positivesAt + positivesBytes(lv, entriesRoom(needs, elements, density)) : fired64At + 8 * firedCount);

    const out: { abs?: Float64Array; nonZero?: Float64Array; fired?: Float64Array; positives?: PositiveEntries; features?: FeatureStats } = {};
    if (learned !== undefined) {
      const { data, components: c, features: f } = learned;
      // With positives, learnedPositivesPass gives them with the learned statistics (one read of a chunk).
      let layout = positivesLayout(lv, memory.buffer.byteLength - positivesAt);
      let total = 0;
      const chunks = (withLearned: boolean, positives: boolean): void => {
        // The first call zeroes the counts (also for an empty range); the others add to them.
        let r = rows.start;
        do {
          const k = Math.min(learnedPer, rows.end - r);
          heap.set(data.subarray(r * learnedRow, (r + k) * learnedRow), 0);
          const first = r === rows.start ? 0 : 8;
          const absOut = absAt + 8 * (r - rows.start) * c;
          const offsetsOut = positivesAt + 4 * (r - rows.start) * c;
          const featuresOut = positivesAt + layout.featuresAt;
          const valuesOut = positivesAt + layout.valuesAt;
          if (!positives) exports.learnedPass(0, 0, k, c, f, absOut, nonZeroAt, firedAt, flags | first);
          else if (withLearned) total = exports.learnedPositivesPass(0, 0, k, c, f, absOut, nonZeroAt, firedAt, offsetsOut, featuresOut, valuesOut, total, layout.capacity, flags | first);
          else total = exports.positivesPass(0, 0, k, c, f, firedAt, offsetsOut, featuresOut, valuesOut, total, layout.capacity, 0);
          r += k;
        } while (r < rows.end);
      };
      chunks(true, entries);
      const use = entries ? entriesUse(needs, c * f, elements, total) : undefined;
      if (use?.scanned) out.features = { lastFired: lastFiredOf(data, rows.start, rows.end, c, f) };
      else if (use !== undefined) {
        if (total > layout.capacity) {
          // More entries than the guess: room for all of them, and the entries again (no counts).
          reserve(positivesAt + positivesBytes(lv, total));
          layout = positivesLayout(lv, memory.buffer.byteLength - positivesAt);
          total = 0;
          chunks(false, true);
        }
        if (elements > 0) density = total / elements;
        const { featureBytes, inWasm, listed } = use;
        if (listed) out.positives = readPositives(memory.buffer, positivesAt, lv, total, layout);
        if (needs.features !== undefined && inWasm) {
          // The per-feature statistics while the entries are in cache, their scratch right after them.
          const scratchAt = align64(positivesAt + layout.valuesAt + 4 * total);
          reserve(scratchAt + featureBytes);
          const p = { offsets: positivesAt, features: positivesAt + layout.featuresAt, values: positivesAt + layout.valuesAt, vectors: lv, total };
          out.features = featureStatsAt(exports, () => memory.buffer, p, c, f, needs.features, scratchAt, needs.fired ? firedAt : 0);
        }
      }
      const buffer = memory.buffer;
      if (needs.abs) out.abs = new Float64Array(buffer, absAt, lv).slice();
      if (needs.nonZero) out.nonZero = toFloat64(new Uint32Array(buffer, nonZeroAt, c));
      if (needs.fired) {
        exports.countsToF64(firedAt, fired64At, firedCount);
        out.fired = new Float64Array(buffer, fired64At, firedCount).slice();
      }
    }
    if (decoded !== undefined && source !== undefined) {
      const { components: c, features: f } = decoded;
      const pair = pairFlags(needs);
      for (let r = rows.start; r < rows.end; r += pairPer) {
        const k = Math.min(pairPer, rows.end - r);
        heap.set(decoded.data.subarray(r * pairRow, (r + k) * pairRow), 0);
        heap.set(source.data.subarray(r * pairRow, (r + k) * pairRow), half >> 2);
        const v = r - rows.start;
        // The first chunk sets the moments' shifts (the shard's first row); the others add to the sums.
        if (pair === 1) exports.msePass(0, half, 0, k, c, f, mseAt + 8 * v * c);
        else exports.pairPass(0, half, 0, k, c, f, mseAt + 8 * v * c, normsAt + 32 * v * c, momentsAt, pair | (v === 0 ? 0 : 16));
      }
      const at = { mse: mseAt, norms: normsAt, moments: momentsAt };
      return { ...out, ...pairStats(memory.buffer, needs, at, mv, count, pairRow) } as ShardStats;
    }
    return out as ShardStats;
  };
  return withFallback(ownPass, WASM_NEEDS);
}
