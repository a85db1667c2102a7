/**
 * The log10 feature-density histogram: the binning, the tick choice, and the SVG that
 * `sae-metrics --histogram` writes (well-formed, one bar per bin, the dead features apart, bar
 * heights in proportion to the counts of the densities the library computes).
 */
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FeatureDensityMetric, tensor } from '../../src/index.js';
import { densityHistogram, escapeXml, lowestEdge, niceTicks } from '../../src/cli/histogram.js';
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
  height: number;
}

function attr(tag: string, name: string): number {
  const m = new RegExp(`\\s${name}="([^"]*)"`).exec(tag);
  if (!m) throw new Error(`no ${name} in ${tag}`);
  return Number(m[1]);
}

/** The bars of each panel of the image: bins and the dead bar. */
function panels(svg: string): { bins: Bar[]; dead: { count: number; height: number } }[] {
  return svg.split('<g class="panel"').slice(1).map((panel) => {
    const bins = [...panel.matchAll(/<rect class="bin"[^>]*>/g)].map(([tag]) => ({
      lo: attr(tag, 'data-lo'),
      hi: attr(tag, 'data-hi'),
      count: attr(tag, 'data-count'),
      height: attr(tag, 'height'),
    }));
    const deadTags = [...panel.matchAll(/<rect class="dead"[^>]*>/g)];
    expect(deadTags).toHaveLength(1);
    const tag = (deadTags[0] as RegExpMatchArray)[0];
    return { bins, dead: { count: attr(tag, 'data-count'), height: attr(tag, 'height') } };
  });
}

/** The expected histogram of densities, from its definition: 0.25-wide log10 bins from the smallest non-zero density up to 0. */
function expectedBins(densities: number[], lo: number): { dead: number; counts: number[] } {
  const n = Math.round(-lo * 4);
  const counts = new Array<number>(n).fill(0);
  let dead = 0;
  for (const d of densities) {
    if (d === 0) dead++;
    else {
      const k = Math.min(n - 1, Math.floor((Math.log10(d) - lo) * 4));
      counts[k] = (counts[k] as number) + 1;
    }
  }
  return { dead, counts };
}

function checkImage(svg: string, densityPanels: number[][]): void {
  expect(wellFormed(svg).root).toBe('svg');
  expect(svg).toMatch(/<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="\d+" height="\d+" viewBox="0 0 \d+ \d+"/);
  expect(svg).toContain('log10(feature density)');
  expect(svg).toMatch(/<text class="title"[^>]*>Feature density: /);
  const minNonZero = Math.min(...densityPanels.flat().filter((d) => d > 0));
  const lo = Math.floor(Math.log10(minNonZero) * 4) / 4;
  const drawn = panels(svg);
  expect(drawn).toHaveLength(densityPanels.length);
  // One scale for every bar of every panel (heights are rounded to 0.01).
  const all = drawn.flatMap((p) => [...p.bins, p.dead]);
  const top = all.reduce((a, b) => (b.count > a.count ? b : a));
  const scale = top.height / top.count;
  drawn.forEach((p, i) => {
    const want = expectedBins(densityPanels[i] as number[], lo);
    expect(p.bins.map((b) => b.count)).toEqual(want.counts);
    expect(p.bins.map((b) => [b.lo, b.hi])).toEqual(want.counts.map((_, k) => [lo + k / 4, lo + (k + 1) / 4]));
    expect(p.dead.count).toBe(want.dead);
    for (const b of all) expect(Math.abs(b.height - b.count * scale)).toBeLessThanOrEqual(0.011);
  });
}

describe('densityHistogram', () => {
  it('bins by log10 in 0.25 steps from the smallest non-zero density, with dead features apart', () => {
    const densities = [0, 0, 0.001, 0.0015, 0.01, 0.0178, 0.5, 1, 0.99];
    const h = densityHistogram(densities);
    expect(h.dead).toBe(2);
    expect(h.features).toBe(9);
    expect(h.bins).toHaveLength(12);
    expect(h.bins[0]).toEqual({ lo: -3, hi: -2.75, count: 2 }); // 0.001, 0.0015 (log10 -2.82)
    expect(h.bins[4]).toEqual({ lo: -2, hi: -1.75, count: 1 }); // 0.01
    expect(h.bins[5]?.count).toBe(1); // 0.0178: log10 = -1.7496
    expect(h.bins[11]).toEqual({ lo: -0.25, hi: 0, count: 2 }); // 0.99 and 1 (the last bin includes 0)
    expect(h.bins[10]?.count).toBe(1); // 0.5: log10 = -0.301
    expect(h.bins.reduce((n, b) => n + b.count, 0) + h.dead).toBe(densities.length);
  });

  it('has one bin at least, and a default range when every feature is dead', () => {
    expect(densityHistogram([1, 1]).bins).toEqual([{ lo: -0.25, hi: 0, count: 2 }]);
    expect(lowestEdge([0, 0])).toBe(-1);
    expect(densityHistogram([0, 0])).toEqual({ dead: 2, features: 2, bins: [0, 1, 2, 3].map((k) => ({ lo: -1 + k / 4, hi: -0.75 + k / 4, count: 0 })) });
  });

  it('rejects densities outside [0, 1]', () => {
    expect(() => densityHistogram([0.5, 1.5])).toThrow(/densities must be in \[0, 1\], got 1\.5/);
    expect(() => densityHistogram([NaN])).toThrow(/got NaN/);
  });

  it('chooses whole-number ticks of 1, 2 or 5 times a power of 10 reaching the maximum', () => {
    expect(niceTicks(1)).toEqual([0, 1]);
    expect(niceTicks(7)).toEqual([0, 2, 4, 6, 8]);
    expect(niceTicks(100)).toEqual([0, 20, 40, 60, 80, 100]);
    expect(niceTicks(1234)).toEqual([0, 500, 1000, 1500]);
    expect(escapeXml('a<b & "c">')).toBe('a&lt;b &amp; &quot;c&quot;&gt;');
  });
});

describe('sae-metrics --histogram', () => {
  beforeAll(requireBuilt);

  it('writes a well-formed SVG whose bars count the densities the library computes', async () => {
    // 1000 vectors, 60 features; feature f fires in exactly k[f] vectors (densities over three decades, 4 dead).
    const N = 1000;
    const fires = [0, 0, 0, 0, 1, 2, 3, 5, 10, 18, 31, 56, 100, 178, 316, 562, 1000];
    const r = mulberry32(61);
    while (fires.length < 60) fires.push(Math.floor(10 ** (r() * 3)));
    const F = fires.length;
    const learned = new Float32Array(N * F);
    fires.forEach((k, f) => {
      for (let n = 0; n < k; n++) learned[((n * 7919) % N) * F + f] = 0.5 + r();
    });
    const path = write(tmp.path('designed <&>.npy'), npyBytes(learned, [N, F]));
    const out = tmp.path('designed.svg');
    const run = await cli([path, '--histogram', out, '--json', '--metrics', 'l1']);
    expect(run).toMatchObject({ code: 0, stderr: '' });
    expect(Object.keys((JSON.parse(run.stdout) as { metrics: object }).metrics)).toEqual(['l1']);

    const metric = new FeatureDensityMetric({ numLearnedFeatures: F });
    metric.update({ learnedActivations: tensor(learned, [N, F]) });
    const densities = Array.from(metric.compute().data);
    expect(densities).toEqual(fires.map((k) => k / N));
    const svg = readFileSync(out, 'utf8');
    checkImage(svg, [densities]);
    // The smallest density is 1/1000: bins from -3 to 0.
    expect(panels(svg)[0]?.bins).toHaveLength(12);
    expect(panels(svg)[0]?.dead.count).toBe(4);
    expect(svg).toContain('designed &lt;&amp;&gt;.npy');
  });

  it('draws one panel per component on a shared scale, and reports where it wrote', async () => {
    const N = 500;
    const F = 24;
    const r = mulberry32(62);
    const learned = Float32Array.from({ length: N * 2 * F }, (_, i) => (r() < 10 ** (-3 * (((i % (2 * F)) % F) / F) - (i % (2 * F) >= F ? 0.5 : 0)) ? r() : 0));
    const path = write(tmp.path('two.safetensors'), safetensorsBytes({ acts: { dtype: 'F32', shape: [N, 2, F], data: learned } }));
    const out = tmp.path('two.svg');
    const run = await cli([path, '--histogram', out]);
    expect(run.code).toBe(0);
    expect(run.stdout.trimEnd().split('\n').pop()).toBe(`histogram written to ${out}`);
    const metric = new FeatureDensityMetric({ numLearnedFeatures: F, numComponents: 2 });
    metric.update({ learnedActivations: tensor(learned, [N, 2, F]) });
    const d = Array.from(metric.compute().data);
    const svg = readFileSync(out, 'utf8');
    checkImage(svg, [d.slice(0, F), d.slice(F)]);
    expect(svg).toContain('data-label="component 0"');
    expect(svg).toContain('data-label="component 1"');
  });
});
