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
import { addCounts, notCounts, notRecord } from './arrays.js';

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

/**
 * The histogram of the positive entries of a shard, `components` vectors a row, binned by `bins`
 * ({@link float32Bins}; the binner is inlined: a call per entry cost twice the loop).
 */
export function histogramOf(
  p: PositiveEntries,
  components: number,
  features: number,
  slots: number,
  bins: Float32Bins,
): ActivationHistogramState {
  const counts = new Float64Array(components * features * slots);
  const { edgeBits, start } = bins;
  const ne = edgeBits.length;
  const bits = new Uint32Array(p.values.buffer, p.values.byteOffset, p.values.length);
  const feature = p.features;
  const vectors = p.offsets.length - 1;
  // One component: every entry's feature is its index; no walk over the vectors is needed.
  const groups = components === 1 ? 1 : vectors;
  for (let v = 0; v < groups; v++) {
    const base = components === 1 ? 0 : (v % components) * features;
    const end = components === 1 ? bits.length : (p.offsets[v + 1] as number);
    for (let i = components === 1 ? 0 : (p.offsets[v] as number); i < end; i++) {
      const b = bits[i] as number;
      let slot = start[b >>> 16] as number;
      while (slot < ne && (edgeBits[slot] as number) <= b) slot++;
      const at = (base + (feature[i] as number)) * slots + slot;
      counts[at] = (counts[at] as number) + 1;
    }
  }
  return { counts };
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
  const part: StatePart<ActivationHistogramState> = {
    id: `activationHistogram(components=${numComponents ?? 'none'},features=${numFeatures},lowLog10=${lowLog10},highLog10=${highLog10},binsPerDecade=${binsPerDecade})`,
    recipe: { kind: 'activationHistogram', args: [numFeatures, numComponents ?? null, lowLog10, highLog10, binsPerDecade] },
    reads: ['learnedActivations'],
    needs: { positives: true },
    init: () => ({ counts: new Float64Array(size) }),
    // The table is built when the first shard comes (a part is also declared where nothing is computed).
    fromStats: (stats) => histogramOf(stats.positives as PositiveEntries, components, numFeatures, slots, (tables ??= float32Bins(edges))),
    fromBatch: (batch, rows) => fromFusedPass(part, batch, rows),
    merge: (a, b) => ({ counts: addCounts(a.counts, b.counts) }),
    // The counts (features x slots) are large: added into the partial's.
    mergeOwned: (a, b) => ({ counts: addCounts(a.counts, b.counts, b.counts) }),
    invalid: (v) => notRecord(v, ['counts']) ?? notCounts((v as ActivationHistogramState).counts, size, 'counts'),
  };
  return part;
}
