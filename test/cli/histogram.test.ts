/**
 * The log10 feature-density histogram: the binning (from exact fired counts, bins anchored at 1/N,
 * the dead features apart by the dead threshold), the summary counts, the ticks, and the image
 * that `sae-metrics --histogram` writes: a well-formed SVG (bars counting what the library
 * computes, counts on bars, the threshold drawn, a log scale on request, the tensor in the
 * title) or a PNG rendered from it. Expected bins are computed here with integer arithmetic
 * (k^n against powers of ten), not with the code's logarithms.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { inflateSync } from 'node:zlib';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeatureDensityMetric, NeuronActivityMetric, tensor } from '../../src/index.js';
import { densityHistogram, densityStats, escapeXml, histogramSvg, logTicks, niceTicks } from '../../src/cli/histogram.js';
import { findFont, loadPngRenderer } from '../../src/cli/png.js';
import { npyBytes, safetensorsBytes, scratchDir, write } from './files.js';
import { mulberry32 } from '../support/random.js';
import { cli, requireBuilt } from './run-cli.js';

const tmp = scratchDir();
afterAll(() => tmp.remove());

/** Checks that `xml` is well-formed: one root element, tags nested and closed, attributes quoted, text escaped. */
function wellFormed(xml: string): { root: string; elements: number } {
  const body = xml.replace(/^<\?xml [^?]*\?>\s*/, '');
  const stack: string[] = [];
  let root = '';
  let elements = 0;
  let last = 0;
  for (const m of body.matchAll(/<[^<>]*>/g)) {
    const text = body.slice(last, m.index);
    if (/[<>]|&(?!amp;|lt;|gt;|quot;|apos;)/.test(text)) throw new Error(`unescaped text ${JSON.stringify(text)}`);
    if (stack.length === 0 && text.trim() !== '') throw new Error(`text outside the root: ${JSON.stringify(text)}`);
    last = (m.index as number) + m[0].length;
    const tag = m[0];
    const close = /^<\/([A-Za-z][\w:.-]*)\s*>$/.exec(tag);
    if (close) {
      const top = stack.pop();
      if (top !== close[1]) throw new Error(`${tag} does not close <${top ?? 'nothing open'}>`);
      continue;
    }
    const open = /^<([A-Za-z][\w:.-]*)((?:\s+[A-Za-z][\w:.-]*="[^"<&]*(?:&(?:amp|lt|gt|quot);[^"<&]*)*")*)\s*(\/?)>$/.exec(tag);
    if (!open) throw new Error(`malformed tag ${tag}`);
    const names = [...(open[2] as string).matchAll(/([A-Za-z][\w:.-]*)=/g)].map((a) => a[1]);
    if (new Set(names).size !== names.length) throw new Error(`repeated attribute in ${tag}`);
    if (stack.length === 0) {
      if (root !== '') throw new Error('more than one root element');
      root = open[1] as string;
    }
    elements++;
    if (open[3] !== '/') stack.push(open[1] as string);
  }
  if (stack.length > 0) throw new Error(`unclosed ${stack.join(', ')}`);
  if (body.slice(last).trim() !== '') throw new Error('text after the root');
  return { root, elements };
}

interface Bar {
  lo: number;
  hi: number;
  count: number;
  possible: boolean;
  height: number;
  x: number;
  width: number;
}

function attr(tag: string, name: string): number {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  if (!m) throw new Error(`no ${name} in ${tag}`);
  return Number(m[1]);
}

/** The bars of each panel of the image: bins, the dead bar, the counts written, the threshold line. */
function panels(svg: string): { bins: Bar[]; dead: { count: number; height: number }; counts: string[]; threshold: number | undefined; stats: string }[] {
  return svg.split('<g class="panel"').slice(1).map((panel) => {
    const bins = [...panel.matchAll(/<rect class="bin"[^>]*>/g)].map(([tag]) => ({
      lo: attr(tag, 'data-lo'),
      hi: attr(tag, 'data-hi'),
      count: attr(tag, 'data-count'),
      possible: /data-possible="true"/.test(tag),
      height: attr(tag, 'height'),
      x: attr(tag, 'x'),
      width: attr(tag, 'width'),
    }));
    const deadTags = [...panel.matchAll(/<rect class="dead"[^>]*>/g)];
    expect(deadTags).toHaveLength(1);
    const tag = (deadTags[0] as RegExpMatchArray)[0];
    const line = /<line class="threshold" x1="([\d.]+)"/.exec(panel);
    return {
      bins,
      dead: { count: attr(tag, 'data-count'), height: attr(tag, 'height') },
      counts: [...panel.matchAll(/<text class="count"[^>]*>([^<]*)<\/text>/g)].map((m) => m[1] as string),
      threshold: line ? Number(line[1]) : undefined,
      stats: /<text class="stats"[^>]*>([^<]*)<\/text>/.exec(panel)?.[1] ?? '',
    };
  });
}

/** The bin of a fired count k >= 1 with n bins a decade: the j with 10^j <= k^n < 10^(j+1), in integers. */
function binOfCount(k: number, n: number): number {
  return String(BigInt(k) ** BigInt(n)).length - 1;
}

/** The expected histogram of fired counts over N vectors: dead (k <= t N) apart, bins from the definition. */
function expected(fired: readonly number[], N: number, n: number, t = 0): { dead: number; counts: number[]; possible: boolean[] } {
  const bins = Math.max(1, binOfCount(N, n) + (String(BigInt(N) ** BigInt(n)) === `1${'0'.repeat(binOfCount(N, n))}` ? 0 : 1));
  const counts = new Array<number>(bins).fill(0);
  const possible = new Array<boolean>(bins).fill(false);
  for (let k = 1; k <= N; k++) possible[Math.min(bins - 1, binOfCount(k, n))] = true;
  let dead = 0;
  for (const k of fired) {
    if (k <= t * N) dead++;
    else counts[Math.min(bins - 1, binOfCount(k, n))]! += 1;
  }
  return { dead, counts, possible };
}

/** Fired counts designed over three decades, for N = 1000: 4 never fire. */
function designedCounts(seed: number, features: number): number[] {
  const fires = [0, 0, 0, 0, 1, 2, 3, 5, 10, 18, 31, 56, 100, 178, 316, 562, 1000];
  const r = mulberry32(seed);
  while (fires.length < features) fires.push(Math.floor(10 ** (r() * 3)));
  return fires;
}

/** Activations [N, F] in which feature f fires (x > 0) in exactly fired[f] vectors. */
function activations(fired: readonly number[], N: number, seed: number): Float32Array {
  const F = fired.length;
  const r = mulberry32(seed);
  const learned = new Float32Array(N * F);
  fired.forEach((k, f) => {
    for (let i = 0; i < k; i++) learned[((i * 7919) % N) * F + f] = 0.5 + r();
  });
  return learned;
}

describe('densityHistogram', () => {
  it('anchors the bins at 1/N: at N = 200,000 densities 1/N and 2/N fall in adjacent bins, with none empty between', () => {
    const N = 200_000;
    const fired = [1, 1, 2, 3, 4, 7, 9, 10, 12, 100, 1000, 199_999, 200_000];
    const h = densityHistogram(fired, N);
    const want = expected(fired, N, 4);
    expect(h.bins.map((b) => b.count)).toEqual(want.counts);
    expect(h.bins[0]).toMatchObject({ lo: -Math.log10(N), count: 2 });
    // 1/N, 2/N and 3/N, ..., 10/N: the first four bins, each with a count.
    expect(h.bins.slice(0, 5).map((b) => b.count)).toEqual([2, 2, 1, 2, 2]);
    // With 4 bins a decade, every bin can hold a density k/N.
    expect(h.bins.every((b) => b.possible)).toBe(true);
    // The last bin ends at density 1 and holds it.
    expect(h.bins[h.bins.length - 1]).toMatchObject({ hi: 0, count: 2 });
    expect(h.bins).toHaveLength(Math.ceil(4 * Math.log10(N)));
    for (let j = 1; j < h.bins.length; j++) expect(h.bins[j]?.lo).toBeCloseTo(h.bins[j - 1]?.hi as number, 12);
  });

  it('takes finer bins on request and marks the ones no k/N can fall in', () => {
    const N = 1000;
    const fired = designedCounts(71, 80);
    for (const n of [1, 3, 4, 10, 20]) {
      const h = densityHistogram(fired, N, { binsPerDecade: n });
      const want = expected(fired, N, n);
      expect(h.bins.map((b) => b.count), `n = ${n}`).toEqual(want.counts);
      expect(h.bins.map((b) => b.possible), `n = ${n}`).toEqual(want.possible);
      expect(h.dead).toBe(4);
      expect(h.binsPerDecade).toBe(n);
    }
    // 10 a decade: [1, 1.26) holds 1/N; [1.26, 1.58) and [1.58, 2.0) hold none.
    expect(densityHistogram(fired, N, { binsPerDecade: 10 }).bins.slice(0, 4).map((b) => b.possible)).toEqual([true, false, false, true]);
  });

  it('counts dead features by the dead threshold, as NeuronActivityMetric does, and leaves them out of the bins', () => {
    const N = 1000;
    const fired = designedCounts(72, 200);
    const learned = activations(fired, N, 73);
    for (const t of [0, 0.001, 0.0049, 0.005, 0.1, 1]) {
      const h = densityHistogram(fired, N, { deadThreshold: t });
      const metric = new NeuronActivityMetric({ numLearnedFeatures: fired.length, thresholdIsDeadPortionFires: t });
      metric.update({ learnedActivations: tensor(learned, [N, fired.length]) });
      expect(h.dead, `t = ${t}`).toBe(metric.compute().item());
      expect(h.dead + h.bins.reduce((a, b) => a + b.count, 0)).toBe(fired.length);
      expect(h.bins.map((b) => b.count)).toEqual(expected(fired, N, 4, t).counts);
    }
  });

  it('gives the counts SAE training logs report: below 1e-6 and 1e-5, above 0.01 and 0.1, mean log10(density + 1e-10)', () => {
    const N = 2_000_000;
    const fired = [0, 1, 2, 19, 20, 21, 20_000, 20_001, 200_000, 200_001, 2_000_000];
    const s = densityStats(fired, N);
    // densities 0, 5e-7, 1e-6, 9.5e-6, 1e-5, 1.05e-5, 0.01, 0.0100005, 0.1, 0.1000005, 1
    expect(s).toMatchObject({ below1e6: 2, below1e5: 4, above1e2: 4, above1e1: 2 });
    const logs = fired.map((k) => Math.log10(k / N + 1e-10));
    expect(s.meanLog10).toBeCloseTo(logs.reduce((a, b) => a + b, 0) / logs.length, 12);
    expect(densityHistogram(fired, N).stats).toEqual(s);
  });

  it('rejects counts that are not integers in [0, N], and bad options', () => {
    expect(() => densityHistogram([1, 5], 4)).toThrow(/fired counts must be integers in \[0, 4\], got 5/);
    expect(() => densityHistogram([0.5], 4)).toThrow(/got 0\.5/);
    expect(() => densityHistogram([1], 0)).toThrow(/vectors must be a positive integer, got 0/);
    expect(() => densityHistogram([1], 4, { binsPerDecade: 0 })).toThrow(/binsPerDecade must be an integer in \[1, 100\], got 0/);
    expect(() => densityHistogram([1], 4, { deadThreshold: 2 })).toThrow(/deadThreshold must be in \[0, 1\], got 2/);
    expect(densityHistogram([1, 1, 0], 1).bins).toEqual([{ lo: -0.25, hi: 0, count: 2, possible: true }]);
  });

  it('chooses whole-number ticks of 1, 2 or 5 times a power of 10, or powers of 10, reaching the maximum', () => {
    expect(niceTicks(1)).toEqual([0, 1]);
    expect(niceTicks(7)).toEqual([0, 2, 4, 6, 8]);
    expect(niceTicks(100)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(1234)).toEqual([0, 500, 1000, 1500]);
    expect(logTicks(1)).toEqual([1, 10]);
    expect(logTicks(12_345)).toEqual([1, 10, 100, 1000, 10_000, 100_000]);
    expect(escapeXml('a<b & "c">')).toBe('a&lt;b &amp; &quot;c&quot;&gt;');
  });
});

describe('histogramSvg', () => {
  const N = 1000;
  const fired = designedCounts(74, 300);
  const h = densityHistogram(fired, N, { deadThreshold: 0.005 });

  it('draws every bin from the first with a feature (or the threshold), the dead bar, counts on bars, the threshold and the summary', () => {
    const svg = histogramSvg([{ label: '', histogram: h }], { title: 'acts.safetensors', tensor: 'blocks.6 <resid>' });
    expect(wellFormed(svg).root).toBe('svg');
    expect(svg).toMatch(/<text class="title"[^>]*>Feature density: acts\.safetensors \[blocks\.6 &lt;resid&gt;\]<\/text>/);
    expect(svg).toContain('300 features, 1,000 vectors');
    const [p] = panels(svg);
    const first = h.bins.findIndex((b) => b.count > 0 || b.hi > Math.log10(0.005));
    expect(p?.bins.map((b) => b.count)).toEqual(h.bins.slice(first).map((b) => b.count));
    expect(p?.dead.count).toBe(h.dead);
    // A count above the dead bar and above every non-empty bin, digits grouped.
    expect(p?.counts).toEqual([h.dead, ...h.bins.slice(first).filter((b) => b.count > 0).map((b) => b.count)].map((c) => c.toLocaleString('en-US')));
    // One scale: heights in proportion to counts.
    const all = [...(p?.bins ?? []), p?.dead as { count: number; height: number }];
    const top = all.reduce((a, b) => (b.count > a.count ? b : a));
    for (const b of all) expect(Math.abs(b.height - (b.count * top.height) / top.count)).toBeLessThanOrEqual(0.011);
    // The threshold line sits at log10(0.005) on the bins' axis.
    const bins = p?.bins as Bar[];
    const b0 = bins[0] as Bar;
    const b1 = bins[bins.length - 1] as Bar;
    const xOf = (v: number): number => b0.x - 0.5 + ((v - b0.lo) / (b1.hi - b0.lo)) * (b1.x + b1.width + 0.5 - (b0.x - 0.5));
    expect(Math.abs((p?.threshold as number) - xOf(Math.log10(0.005)))).toBeLessThan(0.6);
    expect(svg).toContain('dead threshold 0.005');
    expect(p?.stats).toBe(
      `density &lt; 1e-6: ${h.stats.below1e6} · &lt; 1e-5: ${h.stats.below1e5} · &gt; 0.01: ${h.stats.above1e2} · &gt; 0.1: ${h.stats.above1e1} · mean log10(density + 1e-10): ${h.stats.meanLog10.toPrecision(6)}`,
    );
  });

  it('on a log scale: a bar of 1 is visible beside one of 5,000, heights grow with log10(2 count)', () => {
    const small = densityHistogram([0, 0, 1, 7, 7, ...new Array<number>(5000).fill(300)], N);
    const svg = histogramSvg([{ label: '', histogram: small }], { title: 't', logY: true });
    const [p] = panels(svg);
    const bars = [...(p?.bins ?? []), p?.dead as Bar].filter((b) => b.count > 0);
    expect(bars.some((b) => b.count === 1)).toBe(true);
    const top = bars.reduce((x, y) => (y.count > x.count ? y : x));
    const unit = top.height / Math.log10(2 * top.count);
    for (const b of bars) {
      expect(b.height).toBeGreaterThan(0);
      expect(Math.abs(b.height - unit * Math.log10(2 * b.count))).toBeLessThanOrEqual(0.02);
    }
    expect(svg).toContain('features (log scale)');
  });
});

describe('sae-metrics --histogram', () => {
  beforeAll(requireBuilt);

  it('writes an SVG whose bars count the library densities and whose dead bar is the dead metric at the threshold', async () => {
    const N = 1000;
    const fired = designedCounts(75, 60);
    const F = fired.length;
    const learned = activations(fired, N, 76);
    const path = write(tmp.path('designed <&>.npy'), npyBytes(learned, [N, F]));
    const out = tmp.path('designed.svg');
    const run = await cli([path, '--histogram', out, '--json', '--metrics', 'l1,dead,density', '--dead-threshold', '0.004']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const json = JSON.parse(run.stdout) as { metrics: { dead: number; density: number[] }; densityStats: Record<string, number> };
    const metric = new FeatureDensityMetric({ numLearnedFeatures: F });
    metric.update({ learnedActivations: tensor(learned, [N, F]) });
    expect(json.metrics.density).toEqual(Array.from(metric.compute().data));
    const svg = readFileSync(out, 'utf8');
    expect(wellFormed(svg).root).toBe('svg');
    const [p] = panels(svg);
    expect(p?.dead.count).toBe(json.metrics.dead);
    const want = expected(fired, N, 4, 0.004);
    expect(p?.dead.count).toBe(want.dead);
    expect(p?.bins.map((b) => b.count)).toEqual(want.counts.slice(want.counts.length - (p?.bins.length ?? 0)));
    expect(svg).toContain('designed &lt;&amp;&gt;.npy');
    const d = json.metrics.density;
    expect(json.densityStats).toEqual({
      'below1e-6': d.filter((x) => x < 1e-6).length,
      'below1e-5': d.filter((x) => x < 1e-5).length,
      'above1e-2': d.filter((x) => x > 0.01).length,
      'above1e-1': d.filter((x) => x > 0.1).length,
      meanLog10: d.reduce((a, x) => a + Math.log10(x + 1e-10), 0) / F,
    });
  });

  it('draws one panel per component on a shared scale, names the tensor, and reports where it wrote', async () => {
    const N = 500;
    const F = 24;
    const r = mulberry32(62);
    const learned = Float32Array.from({ length: N * 2 * F }, (_, i) => (r() < 10 ** (-3 * (((i % (2 * F)) % F) / F) - (i % (2 * F) >= F ? 0.5 : 0)) ? r() : 0));
    const path = write(tmp.path('two.safetensors'), safetensorsBytes({ acts: { dtype: 'F32', shape: [N, 2, F], data: learned } }));
    const out = tmp.path('two.svg');
    const run = await cli([path, '--histogram', out, '--bins-per-decade', '8']);
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd().split('\n').pop()).toBe(`histogram written to ${out}`);
    const metric = new NeuronActivityMetric({ numLearnedFeatures: F, numComponents: 2 });
    metric.update({ learnedActivations: tensor(learned, [N, 2, F]) });
    const svg = readFileSync(out, 'utf8');
    expect(svg).toMatch(/Feature density: \S+two\.safetensors \[acts\]/);
    const drawn = panels(svg);
    expect(drawn.map((p) => p.dead.count)).toEqual(Array.from(metric.compute().data));
    expect(drawn.map((p) => p.bins.length)).toEqual([drawn[0]?.bins.length, drawn[0]?.bins.length]);
    expect((drawn[0]?.bins[1]?.lo as number) - (drawn[0]?.bins[0]?.lo as number)).toBeCloseTo(1 / 8, 12);
    expect(svg).toContain('data-label="component 0"');
    expect(svg).toContain('data-label="component 1"');
    // The table has the density summary per component.
    expect(run.stdout).toMatch(/^ {2}< 1e-5 +\d+ \/ 24 +\d+ \/ 24 +features with density below 1e-5/m);
  });

  it('writes a PNG of the same image (with a font to draw its text), or says why it cannot, before reading', async () => {
    const N = 1000;
    const fired = designedCounts(77, 40);
    const path = write(tmp.path('png.npy'), npyBytes(activations(fired, N, 78), [N, fired.length]));
    const out = tmp.path('density.png');
    const run = await cli([path, '--histogram', out, '--log-y']);
    // A font from the usual places, looked up here by its own rule: any DejaVu/Liberation/Noto/Free Sans .ttf.
    const fontHere = ['/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf', '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf', '/usr/share/fonts/truetype/noto/NotoSans-Regular.ttf', '/usr/share/fonts/truetype/freefont/FreeSans.ttf'].some((f) => {
      try {
        readFileSync(f, { flag: 'r' });
        return true;
      } catch {
        return false;
      }
    });
    if (!fontHere) {
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/^sae-metrics: \S+density\.png: cannot write the histogram as PNG: no font to draw its text with/);
      return;
    }
    expect(run).toMatchObject({ code: 0, stderr: '' });
    const png = decodePng(readFileSync(out));
    expect([png.width, png.height]).toEqual([820, 56 + 340 + 56 + 8]);
    const at = (x: number, y: number): [number, number, number] => {
      const i = (y * png.width + x) * 4;
      return [png.pixels[i] as number, png.pixels[i + 1] as number, png.pixels[i + 2] as number];
    };
    const count = (x0: number, y0: number, x1: number, y1: number, test: (p: [number, number, number]) => boolean): number => {
      let n = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (test(at(x, y))) n++;
      return n;
    };
    // The dead bar (red #c0392b), the bins (blue #2e86c1), and dark text in the title band.
    expect(count(72, 100, 140, 396, ([r, g, b]) => r > 170 && g < 80 && b < 70)).toBeGreaterThan(100);
    expect(count(140, 100, 800, 396, ([r, g, b]) => r < 70 && g > 110 && b > 170)).toBeGreaterThan(100);
    expect(count(0, 0, 820, 30, ([r, g, b]) => r + g + b < 200)).toBeGreaterThan(50);
  });

  it('says, for PNG, when there is no font or no renderer', async () => {
    const empty = scratchDir('sae-metrics-no-fonts-');
    try {
      await expect(loadPngRenderer('/x/h.png', [empty.dir])).rejects.toThrow(
        /^\/x\/h\.png: cannot write the histogram as PNG: no font to draw its text with \(one of DejaVuSans\.ttf, .*; on Debian: apt-get install fonts-dejavu-core\), or write an \.svg$/,
      );
      mkdirSync(join(empty.dir, 'truetype/dejavu'), { recursive: true });
      writeFileSync(join(empty.dir, 'truetype/dejavu/DejaVuSans.ttf'), '');
      expect(findFont([empty.dir])).toEqual({ path: join(empty.dir, 'truetype/dejavu/DejaVuSans.ttf'), family: 'DejaVu Sans' });
    } finally {
      empty.remove();
    }
  });
});

/** A minimal PNG decoder (8-bit RGB or RGBA, no interlace): the chunks, inflate, then the five row filters. */
function decodePng(bytes: Buffer): { width: number; height: number; pixels: Uint8Array } {
  expect(bytes.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true);
  let width = 0;
  let height = 0;
  let channels = 4;
  const idat: Buffer[] = [];
  for (let at = 8; at < bytes.length; ) {
    const length = bytes.readUInt32BE(at);
    const type = bytes.toString('latin1', at + 4, at + 8);
    const data = bytes.subarray(at + 8, at + 8 + length);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      expect(data[8]).toBe(8);
      channels = data[9] === 6 ? 4 : data[9] === 2 ? 3 : NaN;
      expect(data[12]).toBe(0);
    } else if (type === 'IDAT') idat.push(data);
    at += 12 + length;
  }
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * channels;
  const out = new Uint8Array(width * height * 4).fill(255);
  let prev = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const filter = raw[y * (stride + 1)] as number;
    const line = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const cur = new Uint8Array(stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= channels ? (cur[i - channels] as number) : 0;
      const b = prev[i] as number;
      const c = i >= channels ? (prev[i - channels] as number) : 0;
      const p = a + b - c;
      const pr = Math.abs(p - a) <= Math.abs(p - b) && Math.abs(p - a) <= Math.abs(p - c) ? a : Math.abs(p - b) <= Math.abs(p - c) ? b : c;
      const add = [0, a, b, (a + b) >> 1, pr][filter] as number;
      cur[i] = ((line[i] as number) + add) & 255;
    }
    for (let x = 0; x < width; x++) for (let k = 0; k < channels; k++) out[(y * width + x) * 4 + k] = cur[x * channels + k] as number;
    prev = cur;
  }
  return { width, height, pixels: out };
}
