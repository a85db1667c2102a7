/**
 * The log10 feature-density histogram, the standard SAE diagnostic: how many learned features fire
 * for what portion of activation vectors, on a log scale, with the dead features (density 0, whose
 * log is -infinity) counted apart. Written as a standalone SVG image.
 *
 * @module
 */

/** One bin of a {@link DensityHistogram}: features with `lo <= log10(density) < hi` (the last bin includes `hi` = 0). */
export interface HistogramBin {
  readonly lo: number;
  readonly hi: number;
  readonly count: number;
}

/** A log10 density histogram of one set of features. */
export interface DensityHistogram {
  /** Features with density 0. */
  readonly dead: number;
  /** Bins from the lowest edge up to log10(1) = 0. */
  readonly bins: readonly HistogramBin[];
  /** Features in all (dead ones included). */
  readonly features: number;
}

/**
 * The lowest bin edge for a set of densities: the multiple of `binWidth` at or below the log10 of
 * the smallest non-zero density (at most `-binWidth`, so that there is at least one bin; `-1`
 * when every density is 0).
 */
export function lowestEdge(densities: Iterable<number>, binWidth = 0.25): number {
  let min = Infinity;
  for (const d of densities) if (d > 0 && d < min) min = d;
  if (min === Infinity) return -1;
  return Math.min(-binWidth, Math.floor(Math.log10(min) / binWidth) * binWidth);
}

/**
 * Bins densities (portions in [0, 1]) by log10, `binWidth` wide from `lo` (default
 * {@link lowestEdge}) to 0. Densities of 0 are counted as dead; densities below `lo` go to the
 * first bin.
 *
 * @throws {RangeError} on a density outside [0, 1] or NaN, or a bad `binWidth` / `lo`.
 */
export function densityHistogram(densities: ArrayLike<number>, binWidth = 0.25, lo?: number): DensityHistogram {
  if (!(binWidth > 0) || !Number.isFinite(binWidth)) throw new RangeError(`densityHistogram: binWidth must be a positive number, got ${binWidth}`);
  const values = densities;
  const low = lo ?? lowestEdge(Array.prototype.values.call(values) as Iterable<number>, binWidth);
  if (!(low < 0) || !Number.isFinite(low)) throw new RangeError(`densityHistogram: lo must be a negative number, got ${low}`);
  const n = Math.max(1, Math.round(-low / binWidth));
  const counts = new Array<number>(n).fill(0);
  let dead = 0;
  for (let i = 0; i < values.length; i++) {
    const d = values[i] as number;
    if (!(d >= 0 && d <= 1)) throw new RangeError(`densityHistogram: densities must be in [0, 1], got ${d}`);
    if (d === 0) {
      dead++;
      continue;
    }
    const k = Math.min(n - 1, Math.max(0, Math.floor((Math.log10(d) - low) / binWidth)));
    counts[k] = (counts[k] as number) + 1;
  }
  const bins = counts.map((count, k) => ({ lo: low + k * binWidth, hi: low + (k + 1) * binWidth, count }));
  return { dead, bins, features: values.length };
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

function num(x: number): string {
  return String(Math.round(x * 100) / 100);
}

/** What the image says about the run. */
export interface HistogramLabels {
  /** The title's subject, e.g. the file names. */
  readonly title: string;
  /** Activation vectors counted. */
  readonly vectors: number;
}

/**
 * A standalone SVG image of one histogram per panel (one panel per component): a bar per bin
 * (`<rect class="bin" data-lo data-hi data-count>`, zero-height for empty bins) on a shared scale,
 * and a separate labelled bar for the dead features (`<rect class="dead" data-count>`), with axes,
 * ticks and a title.
 */
export function histogramSvg(panels: readonly { readonly label: string; readonly histogram: DensityHistogram }[], labels: HistogramLabels): string {
  const width = 760;
  const panelHeight = 300;
  const top = 56;
  const left = 64;
  const right = 24;
  const bottom = 52;
  const gap = 28;
  const deadWidth = 36;
  const plotLeft = left + deadWidth + gap;
  const plotWidth = width - plotLeft - right;
  const height = top + panels.length * (panelHeight + bottom) + 8;
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="12">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="white"/>`);
  const features = panels[0]?.histogram.features ?? 0;
  out.push(
    `<text class="title" x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(`Feature density: ${labels.title}`)}</text>`,
  );
  out.push(
    `<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${escapeXml(`${features} features, ${labels.vectors} vectors; density = portion of vectors a feature fired for (x > 0)`)}</text>`,
  );
  const maxCount = Math.max(1, ...panels.flatMap((p) => [p.histogram.dead, ...p.histogram.bins.map((b) => b.count)]));
  const ticks = niceTicks(maxCount);
  const yMax = ticks[ticks.length - 1] as number;
  panels.forEach(({ label, histogram }, index) => {
    const y0 = top + index * (panelHeight + bottom) + panelHeight;
    const plotTop = y0 - panelHeight + 24;
    const scale = (y0 - plotTop) / yMax;
    out.push(`<g class="panel" data-label="${escapeXml(label)}">`);
    if (label !== '') out.push(`<text x="${left}" y="${plotTop - 8}" font-weight="bold">${escapeXml(label)}</text>`);
    // y axis, ticks and grid
    out.push(`<line x1="${left}" y1="${plotTop}" x2="${left}" y2="${y0}" stroke="black"/>`);
    for (const t of ticks) {
      const y = num(y0 - t * scale);
      out.push(`<line x1="${left - 4}" y1="${y}" x2="${left}" y2="${y}" stroke="black"/>`);
      if (t > 0) out.push(`<line x1="${left}" y1="${y}" x2="${width - right}" y2="${y}" stroke="#ddd"/>`);
      out.push(`<text x="${left - 7}" y="${y}" text-anchor="end" dominant-baseline="middle">${t}</text>`);
    }
    out.push(
      `<text x="16" y="${num((plotTop + y0) / 2)}" text-anchor="middle" transform="rotate(-90 16 ${num((plotTop + y0) / 2)})">features</text>`,
    );
    // dead features, apart
    const deadX = left + gap / 2;
    const deadH = histogram.dead * scale;
    out.push(
      `<rect class="dead" data-count="${histogram.dead}" x="${num(deadX)}" y="${num(y0 - deadH)}" width="${deadWidth}" height="${num(deadH)}" fill="#c0392b"><title>dead (density 0): ${histogram.dead}</title></rect>`,
    );
    out.push(`<text x="${num(deadX + deadWidth / 2)}" y="${num(y0 - deadH - 4)}" text-anchor="middle">${histogram.dead}</text>`);
    out.push(`<text x="${num(deadX + deadWidth / 2)}" y="${y0 + 16}" text-anchor="middle" fill="#c0392b">dead</text>`);
    // the bins
    const bins = histogram.bins;
    const lo = bins[0]?.lo ?? -1;
    const xOf = (v: number): number => plotLeft + ((v - lo) / (0 - lo)) * plotWidth;
    out.push(`<line x1="${plotLeft}" y1="${y0}" x2="${width - right}" y2="${y0}" stroke="black"/>`);
    for (const b of bins) {
      const x = xOf(b.lo);
      const w = xOf(b.hi) - x;
      const h = b.count * scale;
      out.push(
        `<rect class="bin" data-lo="${b.lo}" data-hi="${b.hi}" data-count="${b.count}" x="${num(x + 0.5)}" y="${num(y0 - h)}" width="${num(Math.max(0, w - 1))}" height="${num(h)}" fill="#2e86c1"><title>log10 density in [${b.lo}, ${b.hi}): ${b.count}</title></rect>`,
      );
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
