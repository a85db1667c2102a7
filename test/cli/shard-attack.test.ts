/**
 * Attacks on `sae-metrics merge`: parts edited by hand and resealed with a valid checksum (the
 * SHA-256 of `JSON.stringify(content)`, as src/cli/shard.ts writes it). A resealed part whose
 * states cannot come from any input must be refused with one line naming the part file, before
 * any output file is written; one whose edit is harmless must give the same bits.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createMetricPool, type MetricPool, type MetricPoolOptions } from '../../src/index.js';
import { run } from '../../src/cli/run.js';
import { mulberry32 } from '../support/random.js';
import { npyBytes, scratchDir, write } from './files.js';

const tmp = scratchDir('sae-metrics-shard-attack-');
const f = tmp.path;

let pool: MetricPool | undefined;
function createPool(options: MetricPoolOptions): MetricPool {
  const target = (pool ??= createMetricPool(options));
  return new Proxy(target, {
    get(t, k) {
      if (k === 'close') return async () => undefined;
      const v = Reflect.get(t, k, t) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(t) : v;
    },
  });
}
afterAll(async () => {
  await pool?.close();
  tmp.remove();
});

async function sae(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, {
    stdout: { write: (s: string) => out.push(s) > 0 },
    stderr: { write: (s: string) => err.push(s) > 0, isTTY: false },
    createPool,
  });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

const f64 = (b64: string): Float64Array => new Float64Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
const b64 = (a: Float64Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Part `from` edited by `edit` and resealed (a valid checksum), written as `name`. */
function reseal(from: string, name: string, edit: (content: Json) => void): string {
  const p = JSON.parse(readFileSync(from, 'utf8')) as Json;
  edit(p.content as Json);
  const content = JSON.stringify(p.content);
  const sha = createHash('sha256').update(content).digest('hex');
  writeFileSync(f(name), `{"format":"sae-metrics/shard-state","version":1,"sha256":"${sha}","content":${content}}\n`);
  return f(name);
}

/** The state of the part whose id starts with `prefix`, among the exact states or a node's. */
function stateAt(states: Json, prefix: string): Json {
  const key = Object.keys(states).find((k) => k.startsWith(prefix));
  if (key === undefined) throw new Error(`no state ${prefix} in ${Object.keys(states).join(', ')}`);
  return states[key] as Json;
}

/** Adds `delta` to element `i` of a Float64Array field of an encoded state. */
function bump(state: Json, field: string, i: number, delta: number): void {
  const a = f64((state[field] as Json).base64 as string);
  a[i] = (a[i] as number) + delta;
  (state[field] as Json).base64 = b64(a);
}

const METRICS = 'l1,l0,dead,density,fired,top,deadwindow,freq,actstats,acthist';
const ROWS = 2600;
const FEATURES = 5;
const parts = [0, 1, 2].map((i) => f(`p${i}.json`));

beforeAll(async () => {
  const r = mulberry32(14);
  const data = Float32Array.from({ length: ROWS * FEATURES }, () => (r() < 0.4 ? r() * 3 : 0));
  write(f('a.npy'), npyBytes(data, [ROWS, FEATURES]));
  for (const [i, p] of parts.entries()) {
    const s = await sae([f('a.npy'), '--metrics', METRICS, '--workers', '1', '--shard', `${i}/3`, '--state-out', p]);
    expect(s.stderr).toBe('');
    expect(s.code).toBe(0);
  }
}, 60_000);

describe('merge refuses resealed parts whose states no input can give, naming the part and writing nothing', () => {
  const outputs = (tag: string): string[] => ['--histogram', f(`${tag}.svg`), '--top-out', f(`${tag}-top.json`), '--acthist-out', f(`${tag}-acthist.json`)];
  const written = (tag: string): string[] => [`${tag}.svg`, `${tag}-top.json`, `${tag}-acthist.json`].filter((x) => existsSync(f(x)));

  it('the untouched parts merge (the attacks below start from them)', async () => {
    const m = await sae(['merge', ...parts, '--json', ...outputs('good')]);
    expect(m.stderr).toBe('');
    expect(m.code).toBe(0);
    expect(written('good')).toHaveLength(3);
  }, 30_000);

  const attacks: [string, (c: Json) => void, RegExp][] = [
    // One cell of a feature's histogram more than the shard's fired activations of that feature.
    ['acthist counts over the fired count', (c) => bump(stateAt(c.exact as Json, 'activationHistogram'), 'counts', 3, 1e6), /acthist|[Hh]istogram/],
    // The moments of a node count more activations than the fired counts of the shard.
    ['actstats moments count over the fired count', (c) => bump(stateAt((c.nodes as Json[])[0]?.states as Json, 'activationMoments'), 'count', 0, 1), /[Mm]oments|count/],
    // More non-zero activations than the shard's rows times the features: an l0 over the features.
    ['l0 non-zero count over rows x features', (c) => bump(stateAt(c.exact as Json, 'nonZeroCount'), 'nonZero', 0, (c.rows.end - c.rows.start) * FEATURES), /nonZero/],
  ];
  for (const [name, edit, about] of attacks) {
    it(name, async () => {
      const tag = name.replace(/\W+/g, '-');
      const bad = reseal(parts[1] as string, `${tag}.json`, edit);
      const m = await sae(['merge', parts[0] as string, bad, parts[2] as string, '--json', ...outputs(tag)]);
      expect(m.code).toBe(1);
      expect(m.stdout).toBe('');
      expect(m.stderr.trim().split('\n')).toHaveLength(1);
      expect(m.stderr).toContain(bad);
      expect(m.stderr).toMatch(about);
      expect(written(tag)).toEqual([]);
    }, 30_000);
  }

  it('a negative run time (the --json report sums the parts\' times)', async () => {
    const bad = reseal(parts[2] as string, 'negative-time.json', (c) => {
      (c.run as Json).elapsedSeconds = -1000;
    });
    const m = await sae(['merge', parts[0] as string, parts[1] as string, bad, '--json']);
    expect(m.stdout).toBe('');
    expect(m.code).toBe(1);
    expect(m.stderr).toContain(`${bad}: run.elapsedSeconds`);
  }, 30_000);
});
