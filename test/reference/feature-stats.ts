/**
 * Plain float64 references for the feature statistics of issue 13 (`FeatureFrequencyStats`,
 * `FeatureActivationStats`, `FeatureActivationHistogram`), written from the definitions with
 * nested loops over a whole stream of batches at once (every fired value kept in a list), sharing
 * nothing with src/.
 *
 * A batch is row-major `number[]` data with shape `[B, F]` or `[B, C, F]`. Results are per
 * component (`[c]`) or per component and feature (`[c][f]`).
 */

export interface RefBatch {
  readonly data: ArrayLike<number>;
  readonly shape: readonly number[];
}

/** For each (component, feature): every fired (> 0) activation in stream order, and the vector count. */
export function firedValues(batches: readonly RefBatch[], components: number, features: number): { values: number[][][]; vectors: number } {
  const values: number[][][] = [];
  for (let c = 0; c < components; c++) {
    values.push([]);
    for (let f = 0; f < features; f++) (values[c] as number[][]).push([]);
  }
  let vectors = 0;
  for (const b of batches) {
    const rows = b.shape[0] as number;
    for (let r = 0; r < rows; r++) {
      vectors++;
      for (let c = 0; c < components; c++) {
        for (let f = 0; f < features; f++) {
          const x = b.data[(r * components + c) * features + f] as number;
          if (x > 0) ((values[c] as number[][])[f] as number[]).push(x);
        }
      }
    }
  }
  return { values, vectors };
}

export interface RefFrequency {
  aliveFraction: number;
  deadCount: number;
  freqOver1Percent: number;
  freqOver10Percent: number;
  normalizedFreqOver1Percent: number;
  normalizedFreqOver10Percent: number;
  below1e5: number;
  below1e6: number;
  meanLog10Density: number;
}

/** SAEBench / SAELens forms over the whole stream: densities first, then each statistic from them. */
export function refFeatureFrequency(batches: readonly RefBatch[], components: number, features: number): RefFrequency[] {
  const { values, vectors } = firedValues(batches, components, features);
  const out: RefFrequency[] = [];
  for (let c = 0; c < components; c++) {
    const density = (values[c] as number[][]).map((list) => list.length / vectors);
    const total = density.reduce((a, d) => a + d, 0);
    const over = (t: number) => density.filter((d) => d > t);
    const sum = (list: number[]) => list.reduce((a, d) => a + d, 0);
    out.push({
      aliveFraction: density.filter((d) => d > 0).length / features,
      deadCount: density.filter((d) => d === 0).length,
      freqOver1Percent: over(0.01).length / features,
      freqOver10Percent: over(0.1).length / features,
      normalizedFreqOver1Percent: sum(over(0.01)) / total,
      normalizedFreqOver10Percent: sum(over(0.1)) / total,
      below1e5: density.filter((d) => d < 1e-5).length,
      below1e6: density.filter((d) => d < 1e-6).length,
      meanLog10Density: sum(density.map((d) => Math.log10(d + 1e-10))) / features,
    });
  }
  return out;
}

export interface RefActivationStats {
  max: number[][];
  mean: number[][];
  std: number[][];
  meanOverAll: number[][];
}

/** Max, mean and population std of the fired values (two passes), and their sum over all vectors. */
export function refFeatureActivationStats(batches: readonly RefBatch[], components: number, features: number): RefActivationStats {
  const { values, vectors } = firedValues(batches, components, features);
  const out: RefActivationStats = { max: [], mean: [], std: [], meanOverAll: [] };
  for (let c = 0; c < components; c++) {
    const max: number[] = [];
    const mean: number[] = [];
    const std: number[] = [];
    const all: number[] = [];
    for (let f = 0; f < features; f++) {
      const list = (values[c] as number[][])[f] as number[];
      let m = NaN;
      let s = 0;
      for (const x of list) {
        if (Number.isNaN(m) || x > m) m = x;
        s += x;
      }
      const mu = s / list.length;
      let ss = 0;
      for (const x of list) ss += (x - mu) * (x - mu);
      max.push(m);
      mean.push(list.length === 0 ? NaN : mu);
      std.push(list.length === 0 ? NaN : Math.sqrt(ss / list.length));
      all.push(s / vectors);
    }
    out.max.push(max);
    out.mean.push(mean);
    out.std.push(std);
    out.meanOverAll.push(all);
  }
  return out;
}

/** The edges 10^(low + j / n), j = 0 .. (high - low) n, as float32 numbers. */
export function refEdges(low: number, high: number, n: number): number[] {
  const edges: number[] = [];
  for (let j = 0; j <= (high - low) * n; j++) edges.push(Math.fround(Math.pow(10, low + j / n)));
  return edges;
}

/** Per (component, feature): counts of [below edges[0], each [edges[j], edges[j+1]), at or above the last]. */
export function refHistogram(batches: readonly RefBatch[], components: number, features: number, edges: readonly number[]): number[][][] {
  const { values } = firedValues(batches, components, features);
  return (values as number[][][]).map((byFeature) =>
    byFeature.map((list) => {
      const counts = new Array<number>(edges.length + 1).fill(0);
      for (const x of list) {
        let slot = 0;
        for (const e of edges) if (x >= e) slot++;
        counts[slot] = (counts[slot] as number) + 1;
      }
      return counts;
    }),
  );
}

/**
 * `max(1, ceil(q n))` in exact arithmetic for `q` as the decimal it is written as (`String(q)`:
 * 0.07 is 7/100, so 0.07 x 100 is 7, where float64's `0.07 * 100` is 7.000000000000001).
 */
export function decimalRank(q: number, n: number): number {
  const [mantissa = '0', exponent = '0'] = String(q).split('e');
  const [whole = '0', fraction = ''] = mantissa.split('.');
  const scale = fraction.length - Number(exponent);
  let num = BigInt(whole + fraction) * BigInt(n);
  let den = 1n;
  if (scale >= 0) den = 10n ** BigInt(scale);
  else num *= 10n ** BigInt(-scale);
  const rank = (num + den - 1n) / den;
  return Math.max(1, Number(rank));
}

/** The k-th smallest fired value, k = max(1, ceil(q n)) (see {@link decimalRank}), of each (component, feature); NaN where none fired. */
export function refQuantile(batches: readonly RefBatch[], components: number, features: number, q: number): number[][] {
  const { values } = firedValues(batches, components, features);
  return values.map((byFeature) =>
    byFeature.map((list) => {
      if (list.length === 0) return NaN;
      const sorted = [...list].sort((a, b) => a - b);
      return sorted[decimalRank(q, sorted.length) - 1] as number;
    }),
  );
}
