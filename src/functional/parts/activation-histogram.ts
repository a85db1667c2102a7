/**
 * Per feature (and component), counts of its fired activations (`x > 0`) in fixed log10 bins:
 * the state of `FeatureActivationHistogram`, made from the `positives` statistic.
 *
 * The bins are fixed by the options, so merging adds counts (exact and order-free). A value is
 * binned by comparing it with precomputed edges, never through `Math.log10` of the value: the
 * edges are float32 numbers (the activations are float32, so a value can lie exactly on an edge,
 * and then it belongs to the bin above), computed once from the options, and every path that bins
 * (any kernel, any worker, any platform) compares against the same numbers.
 *
 * @module
 */
import { fromFusedPass, type StatePart } from '../core.js';
import type { PositiveEntries } from '../../kernels/types.js';
import { addCount, addCounts, notCounts, notRecord } from './arrays.js';
import { firedByFeature } from './fired-by-feature.js';

/** The shape of a histogram: `binsPerDecade` bins a decade from 10^lowLog10 to 10^highLog10. */
export interface HistogramBins {
  readonly lowLog10: number;
  readonly highLog10: number;
  readonly binsPerDecade: number;
}

/** Counts `[component, feature, slot]` row-major; slot 0 underflow, 1..B the bins, B + 1 overflow. */
export interface ActivationHistogramState {
  readonly counts: Float64Array;
}

/** Bins between the lowest and the highest edge. */
export function binCount(bins: HistogramBins): number {
  return (bins.highLog10 - bins.lowLog10) * bins.binsPerDecade;
}

/**
 * The `B + 1` edges, float32 values in a Float64Array: edge `j` is 10^(lowLog10 + j / binsPerDecade)
 * rounded to float32 (a power of ten read from its decimal form, so correctly rounded; the others
 * through `**`, whose last-bit differences between engines the rounding to float32 absorbs).
 *
 * @throws {RangeError} if the edges would not increase strictly (options are checked before).
 */
export function histogramEdges(bins: HistogramBins): Float64Array {
  const n = bins.binsPerDecade;
  const count = binCount(bins);
  const edges = new Float64Array(count + 1);
  for (let j = 0; j <= count; j++) {
    const step = bins.lowLog10 * n + j;
    const exact = step % n === 0 ? Number(`1e${step / n}`) : 10 ** (step / n);
    edges[j] = Math.fround(exact);
    if (j > 0 && !((edges[j] as number) > (edges[j - 1] as number))) {
      throw new RangeError(`histogramEdges: edges ${j - 1} and ${j} are equal in float32 (${edges[j]})`);
    }
  }
  return edges;
}

/** The slot of `x > 0`: the number of edges at or below it (0 underflow, `edges.length` overflow). */
export function slotOf(edges: Float64Array, x: number): number {
  let lo = 0;
  let hi = edges.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((edges[mid] as number) <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The tables {@link float32Binner} and {@link histogramOf} bin float32 values by. */
export interface Float32Bins {
  /** The edges' float32 bit patterns. */
  readonly edgeBits: Uint32Array;
  /** Per top-16-bit prefix, the slot of the smallest value with that prefix. */
  readonly start: Int32Array;
}

/** The tables of {@link float32Binner} for `edges`. */
export function float32Bins(edges: Float64Array): Float32Bins {
  const edgeBits = new Uint32Array(new Float32Array(edges).buffer);
  const start = new Int32Array(1 << 16);
  const probe = new Float32Array(1);
  const probeBits = new Uint32Array(probe.buffer);
  for (let prefix = 0; prefix < 1 << 15; prefix++) {
    probeBits[0] = prefix << 16;
    start[prefix] = slotOf(edges, probe[0] as number);
  }
  return { edgeBits, start };
}

/**
 * A fast {@link slotOf} for float32 values, by their bits: positive float32 numbers order as
 * their bit patterns do, so the top 16 bits of a value (its exponent and 7 bits of mantissa) index
 * a table of the slot of the smallest value with those bits, and the few edges above that within
 * the same 16 bits are passed by comparing bit patterns. The same slots as `slotOf`, exactly.
 */
export function float32Binner(edges: Float64Array): (bits: number) => number {
  const { edgeBits, start } = float32Bins(edges);
  const n = edgeBits.length;
  return (bits) => {
    let slot = start[bits >>> 16] as number;
    while (slot < n && (edgeBits[slot] as number) <= bits) slot++;
    return slot;
  };
}

/** The cells one shard's entries touched, and their counts. */
export interface HistogramCells {
  /** Cell indices `(component * features + feature) * slots + slot`, ascending, each once. */
  readonly cells: Uint32Array;
  /** The count of each cell (positive exact integers). */
  readonly cellCounts: Float64Array;
}

/**
 * A histogram partial state made of shards' cells: a shard of a wide SAE touches a few percent of
 * the `features x slots` counts, and the dense form of every partial was most of the cost of this
 * metric through the pool (allocated, moved between threads, added and collected: 10.7 MB a
 * shard at 16384 features). Merging two of them lists both shards' cells (no work: counts are
 * added once, into a dense value). Internal: the part's `merge` takes either form, and a state
 * (what `init` gives, and any merge with a dense value) is always dense.
 */
export interface SparseHistogram {
  readonly shards: readonly HistogramCells[];
}

/** Whether a value of the histogram part is a sparse partial. */
export function isSparseHistogram(v: ActivationHistogramState | SparseHistogram): v is SparseHistogram {
  return (v as Partial<SparseHistogram>).shards !== undefined;
}

/** The dense counts (`size` of them) of a value of the histogram part: its own, or a sparse partial's spread out. */
export function denseHistogram(v: ActivationHistogramState, size: number): Float64Array {
  const h = v as ActivationHistogramState | SparseHistogram;
  return isSparseHistogram(h) ? addSparse(new Float64Array(size), h) : h.counts;
}

/** `sparse`'s counts added into `dense` (exactly; see `addCount`), which it returns. */
function addSparse(dense: Float64Array, sparse: SparseHistogram): Float64Array {
  for (const { cells, cellCounts } of sparse.shards) {
    for (let i = 0; i < cells.length; i++) {
      const c = cells[i] as number;
      const sum = (dense[c] as number) + (cellCounts[i] as number);
      if (!(sum <= Number.MAX_SAFE_INTEGER)) addCount(dense[c] as number, cellCounts[i] as number);
      dense[c] = sum;
    }
  }
  return dense;
}

/**
 * `a` then `b` (sums: the order only decides which memory the result takes). Dense with dense or
 * sparse is dense (with `owned`, in `b`'s memory when `b` is dense); sparse with sparse lists both.
 */
function mergeHistograms(
  a: ActivationHistogramState | SparseHistogram,
  b: ActivationHistogramState | SparseHistogram,
  owned: boolean,
): ActivationHistogramState | SparseHistogram {
  const sa = isSparseHistogram(a);
  const sb = isSparseHistogram(b);
  if (sa && sb) return { shards: [...a.shards, ...b.shards] };
  if (sb) return { counts: addSparse((a as ActivationHistogramState).counts.slice(), b) };
  if (sa) return { counts: addSparse(owned ? b.counts : b.counts.slice(), a) };
  return { counts: addCounts(a.counts, b.counts, owned ? b.counts : undefined) };
}

/**
 * The histogram of the positive entries of a shard, `components` vectors a row, binned by `bins`
 * ({@link float32Bins}; the binner is inlined: a call per entry cost twice the loop), as the
 * cells it touched: feature by feature (entries grouped by `fired-by-feature.ts`), each
 * feature's slots counted in a small table and read back in slot order.
 */
export function histogramOf(
  p: PositiveEntries,
  components: number,
  features: number,
  slots: number,
  bins: Float32Bins,
): SparseHistogram {
  const { starts, bits } = firedByFeature(p, components, features);
  const size = components * features;
  const { edgeBits, start } = bins;
  const ne = edgeBits.length;
  // At most one cell an entry.
  const cells = new Uint32Array(bits.length);
  const cellCounts = new Float64Array(bits.length);
  const local = new Uint32Array(slots);
  let o = 0;
  for (let g = 0; g < size; g++) {
    const s = starts[g] as number;
    const e = starts[g + 1] as number;
    if (s === e) continue;
    let lo = slots;
    let hi = -1;
    for (let i = s; i < e; i++) {
      const b = bits[i] as number;
      let slot = start[b >>> 16] as number;
      while (slot < ne && (edgeBits[slot] as number) <= b) slot++;
      local[slot] = (local[slot] as number) + 1;
      if (slot < lo) lo = slot;
      if (slot > hi) hi = slot;
    }
    const base = g * slots;
    for (let j = lo; j <= hi; j++) {
      const c = local[j] as number;
      if (c === 0) continue;
      cells[o] = base + j;
      cellCounts[o++] = c;
      local[j] = 0;
    }
  }
  return { shards: [{ cells: cells.slice(0, o), cellCounts: cellCounts.slice(0, o) }] };
}

/** The activation-histogram part for `numFeatures` features, `numComponents` components (or none) and `bins`. */
export function activationHistogramPart(
  numFeatures: number,
  numComponents: number | undefined,
  bins: HistogramBins,
): StatePart<ActivationHistogramState> {
  const components = numComponents ?? 1;
  const edges = histogramEdges(bins);
  const slots = edges.length + 1;
  const size = components * numFeatures * slots;
  let tables: Float32Bins | undefined;
  const { lowLog10, highLog10, binsPerDecade } = bins;
  const key = `lowLog10=${lowLog10},highLog10=${highLog10},binsPerDecade=${binsPerDecade}`;
  const histogram = { key, edgeBits: new Uint32Array(new Float32Array(edges).buffer) };
  const part: StatePart<ActivationHistogramState> = {
    id: `activationHistogram(components=${numComponents ?? 'none'},features=${numFeatures},lowLog10=${lowLog10},highLog10=${highLog10},binsPerDecade=${binsPerDecade})`,
    recipe: { kind: 'activationHistogram', args: [numFeatures, numComponents ?? null, lowLog10, highLog10, binsPerDecade] },
    reads: ['learnedActivations'],
    needs: { features: { histogram } },
    init: () => ({ counts: new Float64Array(size) }),
    // A sparse partial, typed as the state (see SparseHistogram: compute reads it through denseHistogram):
    // the kernel's cells for these bins (the WebAssembly pass bins them, the same slots), else
    // binned from the entries (the table is built when the first shard comes: a part is also
    // declared where nothing is computed).
    fromStats(stats) {
      const given = stats.features?.histogram;
      const partial: SparseHistogram =
        given !== undefined && given.key === key
          ? { shards: [{ cells: given.cells, cellCounts: given.cellCounts }] }
          : histogramOf(stats.positives as PositiveEntries, components, numFeatures, slots, (tables ??= float32Bins(edges)));
      return partial as unknown as ActivationHistogramState;
    },
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: (a, b) => mergeHistograms(a, b, false) as ActivationHistogramState,
    // Dense counts (features x slots) are large: a dense partial takes the sum.
    mergeOwned: (a, b) => mergeHistograms(a, b, true) as ActivationHistogramState,
    invalid: (v) => notRecord(v, ['counts']) ?? notCounts((v as ActivationHistogramState).counts, size, 'counts'),
  };
  return part;
}
