/**
 * The log10 feature-density histogram, the standard SAE diagnostic: how many learned features fire
 * for what portion of activation vectors, on a log scale, with the dead features counted apart
 * (by the dead threshold, as the `dead` metric counts them), and the summary counts SAE training
 * logs report. Written as a standalone SVG image (and as PNG from it, see `png.ts`).
 *
 * The bins are computed from the exact fired counts: a feature that fired for k of N vectors has
 * density k / N, so densities lie on the grid 1/N, 2/N, ...; the bin edges are anchored at 1/N
 * (log10 density -log10 N, +1/n a bin, n bins a decade), so the first bin starts at the smallest
 * possible density and no bin at the low end is empty only because it falls between 1/N and 2/N.
 * A bin that no k/N can fall in (possible with more than 3 bins a decade, just above 1/N) is
 * marked as such.
 *
 * @module
 */
import { frequencySummary } from '../functional/feature-frequency-stats.js';
import { formatNumber, groupDigits, shortNumber } from './numbers.js';

/** Features with `lo <= log10(density) < hi` (the last bin includes its `hi` = 0). */
export interface HistogramBin {
  readonly lo: number;
  readonly hi: number;
  readonly count: number;
  /** Whether any density k / N (k = 1 ... N) lies in the bin. */
  readonly possible: boolean;
}

/** The counts SAE training logs report about densities (SAELens' `sparsity/...`). */
export interface DensityStats {
  /** Features with density < 1e-6 (dead ones included). */
  readonly below1e6: number;
  /** Features with density < 1e-5 (dead ones included). */
  readonly below1e5: number;
  /** Features with density > 0.01. */
  readonly above1e2: number;
  /** Features with density > 0.1 (dense features). */
  readonly above1e1: number;
  /** The mean over features of log10(density + 1e-10). */
  readonly meanLog10: number;
}

/** A log10 density histogram of one set of features (one component). */
export interface DensityHistogram {
  /** Features in all (dead ones included). */
  readonly features: number;
  /** Vectors the fired counts are over (N). */
  readonly vectors: number;
  /** A feature is dead when it fired for at most this portion of the vectors. */
  readonly deadThreshold: number;
  /** Dead features: `fired <= deadThreshold * N`, as the `dead` metric decides. */
  readonly dead: number;
  readonly binsPerDecade: number;
  /** The features that are not dead, by log10 density, from log10(1/N) up to 0. */
  readonly bins: readonly HistogramBin[];
  readonly stats: DensityStats;
}

/**
 * {@link DensityStats} of the features whose fired counts over `vectors` vectors are `fired`: the
 * counts of `FeatureFrequencyStats` (the same function computes both).
 */
export function densityStats(fired: ArrayLike<number>, vectors: number): DensityStats {
  const s = frequencySummary(fired, vectors);
  return { below1e6: s.below1e6, below1e5: s.below1e5, above1e2: s.above1e2, above1e1: s.above1e1, meanLog10: s.meanLog10 };
}

/** The bin of a fired count k >= 1 with n bins a decade: floor(n log10 k) (exact at powers of ten). */
function binOf(k: number, n: number): number {
  return Math.floor(Math.log10(k) * n);
}

/** Whether some integer k in [1, N] has binOf(k) = j. */
function possibleBin(j: number, n: number, vectors: number, last: number): boolean {
  let k = Math.max(1, Math.ceil(10 ** (j / n)));
  while (k > 1 && binOf(k - 1, n) >= j) k--;
  while (k <= vectors && binOf(k, n) < j) k++;
  return k <= vectors && (binOf(k, n) === j || (j === last && binOf(k, n) > j));
}

/**
 * Bins the features by log10 density from their exact fired counts over `vectors` vectors: the
 * dead ones (`fired <= deadThreshold * vectors`, compared in float64 as `NeuronActivityMetric`
 * does) apart, the others in `binsPerDecade` bins a decade anchored at 1/N.
 *
 * @throws {RangeError} on a fired count that is not an integer in [0, vectors], no vectors, or a
 *   bad option.
 */
export function densityHistogram(
  fired: ArrayLike<number>,
  vectors: number,
  options: { readonly binsPerDecade?: number; readonly deadThreshold?: number } = {},
): DensityHistogram {
  const n = options.binsPerDecade ?? 4;
  const threshold = options.deadThreshold ?? 0;
  if (!Number.isSafeInteger(n) || n < 1 || n > 100) throw new RangeError(`densityHistogram: binsPerDecade must be an integer in [1, 100], got ${n}`);
  if (!(threshold >= 0 && threshold <= 1)) throw new RangeError(`densityHistogram: deadThreshold must be in [0, 1], got ${threshold}`);
  if (!Number.isSafeInteger(vectors) || vectors < 1) throw new RangeError(`densityHistogram: vectors must be a positive integer, got ${vectors}`);
  // With one vector every density is 0 or 1: one bin below 1, so that the axis has a width.
  const lo = vectors === 1 ? -1 / n : -Math.log10(vectors);
  const bins = Math.max(1, Math.ceil(Math.log10(vectors) * n - 1e-9));
  const counts = new Array<number>(bins).fill(0);
  const limit = threshold * vectors;
  let dead = 0;
  for (let i = 0; i < fired.length; i++) {
    const k = fired[i] as number;
    if (!Number.isInteger(k) || k < 0 || k > vectors) throw new RangeError(`densityHistogram: fired counts must be integers in [0, ${vectors}], got ${k}`);
    if (k <= limit) {
      dead++;
      continue;
    }
    const j = Math.min(bins - 1, binOf(k, n));
    counts[j] = (counts[j] as number) + 1;
  }
  return {
    features: fired.length,
    vectors,
    deadThreshold: threshold,
    dead,
    binsPerDecade: n,
    bins: counts.map((count, j) => ({
      lo: lo + j / n,
      hi: j === bins - 1 ? 0 : lo + (j + 1) / n,
      count,
      possible: possibleBin(j, n, vectors, bins - 1),
    })),
    stats: densityStats(fired, vectors),
  };
}

/** Escapes text for XML. */
export function escapeXml(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/**
 * Whole-number tick values for a count axis from 0 to at least `max`: 0, step, 2 step, ... with
 * step 1, 2 or 5 × 10^k (at least 1).
 */
export function niceTicks(max: number, target = 5): number[] {
  if (!(max > 0)) return [0];
  const raw = max / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = Math.max(1, [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude);
  const ticks: number[] = [];
  for (let k = 0; ; k++) {
    ticks.push(k * step);
    if (k * step >= max) return ticks;
  }
}

/** Powers of ten from 1 up to the first at or above `max` (at least 1 and 10). */
export function logTicks(max: number): number[] {
  const ticks = [1, 10];
  while ((ticks[ticks.length - 1] as number) < max) ticks.push((ticks[ticks.length - 1] as number) * 10);
  return ticks;
}

function num(x: number): string {
  return String(Math.round(x * 100) / 100);
}

/** What the image says about the run. */
export interface HistogramLabels {
  /** The files, e.g. `acts.safetensors` or `12 files`. */
  readonly title: string;
  /** The tensor name in safetensors files. */
  readonly tensor?: string | undefined;
  /** Whether the run was interrupted (the counts are over the vectors read). */
  readonly interrupted?: boolean;
  /** Vectors in the files, when the run was interrupted. */
  readonly totalVectors?: number;
  /** Draw counts on a log scale (small bars stay visible). */
  readonly logY?: boolean;
}

/** The line of summary counts drawn above each panel. */
export function statsLine(s: DensityStats): string {
  return `density < 1e-6: ${groupDigits(s.below1e6)} · < 1e-5: ${groupDigits(s.below1e5)} · > 0.01: ${groupDigits(s.above1e2)} · > 0.1: ${groupDigits(s.above1e1)} · mean log10(density + 1e-10): ${formatNumber(s.meanLog10)}`;
}

/**
 * A standalone SVG image of one histogram per panel (one panel per component), on a shared scale:
 * a bar per bin (`<rect class="bin" data-lo data-hi data-count data-possible>`, zero-height when
 * empty, with its count written above it), from the first bin with a feature in any panel (or the
 * dead threshold, if lower) up to density 1; the dead features apart in their own labelled bar
 * (`<rect class="dead" data-count>`), the dead threshold drawn as a dashed line when it is above 0
 * (`<line class="threshold">`); the summary counts above each panel; axes, ticks and a title
 * naming the files and the tensor. Counts are linear, or on a log scale with `logY` (a bar of 1
 * stays visible next to one of 100,000).
 */
export function histogramSvg(panels: readonly { readonly label: string; readonly histogram: DensityHistogram }[], labels: HistogramLabels): string {
  const width = 820;
  const panelHeight = 340;
  const top = 56;
  const left = 72;
  const right = 24;
  const bottom = 56;
  const gap = 28;
  const deadWidth = 40;
  const plotLeft = left + deadWidth + gap;
  const plotWidth = width - plotLeft - right;
  const height = top + panels.length * (panelHeight + bottom) + 8;
  const first = panels[0]?.histogram;
  const features = first?.features ?? 0;
  const vectors = first?.vectors ?? 0;
  const threshold = first?.deadThreshold ?? 0;
  const perDecade = first?.binsPerDecade ?? 4;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif" font-size="12">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`);
  const title = `Feature density: ${labels.title}${labels.tensor === undefined ? '' : ` [${labels.tensor}]`}`;
  out.push(`<text class="title" x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(title)}</text>`);
  const over = labels.interrupted === true ? `${groupDigits(vectors)} of ${groupDigits(labels.totalVectors ?? vectors)} vectors (interrupted)` : `${groupDigits(vectors)} vectors`;
  out.push(
    `<text class="subtitle" x="${width / 2}" y="40" text-anchor="middle" fill="#555">${escapeXml(
      `${groupDigits(features)} features, ${over}; density = portion of vectors a feature fired for (x > 0); ${perDecade} bins a decade from 1/N`,
    )}</text>`,
  );
  // The bins shown: from the first with a feature in any panel (or holding the threshold) up.
  const all = first?.bins ?? [];
  let start = all.length - 1;
  for (const { histogram } of panels) {
    const j = histogram.bins.findIndex((b) => b.count > 0);
    if (j >= 0) start = Math.min(start, j);
  }
  if (threshold > 0) {
    const t = Math.log10(threshold);
    const j = all.findIndex((b) => t < b.hi);
    if (j >= 0) start = Math.min(start, j);
  }
  if (panels.every(({ histogram }) => histogram.bins.every((b) => b.count === 0))) start = 0;
  start = Math.max(0, start);
  const lo = all[start]?.lo ?? -1;
  const xOf = (v: number): number => plotLeft + ((v - lo) / (0 - lo)) * plotWidth;
  const maxCount = Math.max(1, ...panels.flatMap((p) => [p.histogram.dead, ...p.histogram.bins.slice(start).map((b) => b.count)]));
  const logY = labels.logY === true;
  const ticks = logY ? logTicks(maxCount) : niceTicks(maxCount);
  const yMax = ticks[ticks.length - 1] as number;
  // On the log scale the baseline is a count of 1/2, so that a bar of 1 has a height.
  const heightOf = (count: number, plotHeight: number): number =>
    count <= 0 ? 0 : logY ? ((Math.log10(count) + Math.log10(2)) / (Math.log10(yMax) + Math.log10(2))) * plotHeight : (count / yMax) * plotHeight;

  panels.forEach(({ label, histogram }, index) => {
    const panelTop = top + index * (panelHeight + bottom);
    const y0 = panelTop + panelHeight;
    const plotTop = panelTop + 44;
    const plotHeight = y0 - plotTop;
    out.push(`<g class="panel" data-label="${escapeXml(label)}">`);
    const heading = `${label === '' ? '' : `${label}: `}${statsLine(histogram.stats)}`;
    out.push(`<text class="stats" x="${left}" y="${panelTop + 22}" font-size="11">${escapeXml(heading)}</text>`);
    // y axis, ticks and grid
    out.push(`<line x1="${left}" y1="${plotTop}" x2="${left}" y2="${y0}" stroke="black"/>`);
    for (const t of ticks) {
      if (logY && t < 1) continue;
      const y = num(y0 - (logY ? heightOf(t, plotHeight) : (t / yMax) * plotHeight));
      out.push(`<line x1="${left - 4}" y1="${y}" x2="${left}" y2="${y}" stroke="black"/>`);
      if (t > 0) out.push(`<line x1="${left}" y1="${y}" x2="${width - right}" y2="${y}" stroke="#ddd"/>`);
      out.push(`<text x="${left - 7}" y="${y}" text-anchor="end" dominant-baseline="middle">${groupDigits(t)}</text>`);
    }
    const mid = num((plotTop + y0) / 2);
    out.push(`<text x="16" y="${mid}" text-anchor="middle" transform="rotate(-90 16 ${mid})">features${logY ? ' (log scale)' : ''}</text>`);
    // the dead features, apart
    const deadX = left + gap / 2;
    const deadH = heightOf(histogram.dead, plotHeight);
    const deadWhat = threshold === 0 ? 'dead (density 0)' : `dead (density <= ${shortNumber(threshold)})`;
    out.push(
      `<rect class="dead" data-count="${histogram.dead}" x="${num(deadX)}" y="${num(y0 - deadH)}" width="${deadWidth}" height="${num(deadH)}" fill="#c0392b"><title>${escapeXml(`${deadWhat}: ${groupDigits(histogram.dead)}`)}</title></rect>`,
    );
    out.push(`<text class="count" x="${num(deadX + deadWidth / 2)}" y="${num(y0 - deadH - 4)}" text-anchor="middle" font-size="10">${groupDigits(histogram.dead)}</text>`);
    out.push(`<text x="${num(deadX + deadWidth / 2)}" y="${y0 + 16}" text-anchor="middle" fill="#c0392b">dead</text>`);
    if (threshold > 0) out.push(`<text x="${num(deadX + deadWidth / 2)}" y="${y0 + 30}" text-anchor="middle" fill="#c0392b" font-size="10">${escapeXml(`<= ${shortNumber(threshold)}`)}</text>`);
    // the bins
    out.push(`<line x1="${plotLeft}" y1="${y0}" x2="${width - right}" y2="${y0}" stroke="black"/>`);
    for (const b of histogram.bins.slice(start)) {
      const x = xOf(b.lo);
      const w = xOf(b.hi) - x;
      const h = heightOf(b.count, plotHeight);
      if (!b.possible) {
        out.push(
          `<rect class="impossible" x="${num(x + 0.5)}" y="${plotTop}" width="${num(Math.max(0, w - 1))}" height="${num(plotHeight)}" fill="#f2f2f2"><title>${escapeXml(`no density k/N lies in [${num(b.lo)}, ${num(b.hi)})`)}</title></rect>`,
        );
      }
      out.push(
        `<rect class="bin" data-lo="${b.lo}" data-hi="${b.hi}" data-count="${b.count}" data-possible="${b.possible}" x="${num(x + 0.5)}" y="${num(y0 - h)}" width="${num(Math.max(0, w - 1))}" height="${num(h)}" fill="#2e86c1"><title>${escapeXml(`log10 density in [${num(b.lo)}, ${num(b.hi)}): ${groupDigits(b.count)}`)}</title></rect>`,
      );
      if (b.count > 0) {
        const text = groupDigits(b.count);
        const cx = x + w / 2;
        const cy = y0 - h - 4;
        // A count wider than its bar is written upwards.
        const upright = text.length * 6 <= w + 2;
        out.push(
          upright
            ? `<text class="count" x="${num(cx)}" y="${num(cy)}" text-anchor="middle" font-size="10">${text}</text>`
            : `<text class="count" x="${num(cx + 3)}" y="${num(cy)}" font-size="9" transform="rotate(-90 ${num(cx + 3)} ${num(cy)})">${text}</text>`,
        );
      }
    }
    if (threshold > 0 && Math.log10(threshold) >= lo) {
      const x = num(xOf(Math.log10(threshold)));
      out.push(`<line class="threshold" x1="${x}" y1="${plotTop - 6}" x2="${x}" y2="${y0}" stroke="#c0392b" stroke-width="1.5" stroke-dasharray="5 3"/>`);
      out.push(`<text x="${x}" y="${plotTop - 10}" text-anchor="middle" fill="#c0392b" font-size="10">${escapeXml(`dead threshold ${shortNumber(threshold)}`)}</text>`);
    }
    for (let t = Math.ceil(lo); t <= 0; t++) {
      const x = num(xOf(t));
      out.push(`<line x1="${x}" y1="${y0}" x2="${x}" y2="${y0 + 5}" stroke="black"/>`);
      out.push(`<text x="${x}" y="${y0 + 18}" text-anchor="middle">${t}</text>`);
    }
    out.push(`<text x="${num(plotLeft + plotWidth / 2)}" y="${y0 + 38}" text-anchor="middle">log10(feature density)</text>`);
    out.push('</g>');
  });
  out.push('</svg>');
  return `<?xml version="1.0" encoding="UTF-8"?>\n${out.join('\n')}\n`;
}
