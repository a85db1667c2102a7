/**
 * `--shard I/N --state-out PART.json` and `sae-metrics merge`: merging the N parts gives the same
 * bits as one run over all the files, whatever N (1 to 5, and more shards than leaves: empty ones),
 * whatever the workers of each shard (1 to 4) and its --batch-rows (1024 or more: batches are whole
 * leaves), for every metric (the float ones included) and every per-feature output (--top-out,
 * --acthist-out, the histogram). Files of random sizes, not multiples of 1024, some shorter than a
 * leaf; with and without a component axis; source and decoded activations. Values are random
 * floats, so that float sums and moments round differently in another grouping (the test fails
 * with a left fold of the shards: see the last test of the first block).
 */
import { readFileSync, rmSync, truncateSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { createMetricPool } from '../../src/index.js';
import { run } from '../../src/cli/run.js';
import { mulberry32 } from '../support/random.js';
import { comparable, floats } from '../support/reports.js';
import { npyBytes, safetensorsBytes, scratchDir, write } from './files.js';
import { cli, limited, requireBuilt } from './run-cli.js';
import { pooledCli, type Ran } from './in-process.js';

const tmp = scratchDir('sae-metrics-shard-');
const f = tmp.path;

const { sae, close } = pooledCli();
afterAll(async () => {
  await close();
  tmp.remove();
});

/** The table without its first line (files, workers, time). */
const tableRows = (stdout: string): string => stdout.split('\n').slice(1).join('\n');

interface FileSet {
  readonly name: string;
  /** The FILEs and input options, as a run takes them. */
  readonly args: readonly string[];
  readonly metrics: string;
  readonly leaves: number;
}

const LEARNED = 'l1,l0,dead,density,fired,top,deadwindow,freq,actstats,acthist';
const RECON = 'l2,loss,ev,fvu,cos,l2ratio,shrinkage,nmse';

/** Three sets of files, their sizes drawn from a seeded generator. */
function fileSets(): FileSet[] {
  const r = mulberry32(140);
  const rows = (min: number, max: number): number => min + Math.floor(r() * (max - min));
  const leaves = (ns: number[]): number => ns.reduce((a, n) => a + Math.ceil(n / 1024), 0);
  const F = 20;
  // .npy files: one shorter than a leaf, one with no rows, one of exactly a leaf.
  const npyRows = [rows(2100, 3300), rows(40, 900), 0, rows(1100, 2000), 1024];
  const npy = npyRows.map((n, i) => write(f(`n${i}.npy`), npyBytes(floats(n * F, 10 + i, 0.25), [n, F])));
  // .safetensors with a component axis, source and decoded: [n, 2, 12] and [n, 2, 6].
  const stRows = [rows(300, 1000), rows(2050, 3000), rows(1, 60)];
  const st = stRows.map((n, i) => {
    const source = floats(n * 2 * 6, 30 + i);
    const decoded = source.map((x, j) => x + (floats(1, 40 + i + j)[0] as number) * 0.2);
    return write(
      f(`s${i}.safetensors`),
      safetensorsBytes({
        learned: { dtype: 'F32', shape: [n, 2, 12], data: floats(n * 2 * 12, 20 + i, 0.3) },
        source: { dtype: 'F32', shape: [n, 2, 6], data: source },
        decoded: { dtype: 'F32', shape: [n, 2, 6], data: decoded },
      }),
    );
  });
  // One .npy with .npy source and decoded.
  const one = rows(3100, 4000);
  const src = floats(one * 8, 50);
  write(f('one.npy'), npyBytes(floats(one * 16, 51, 0.2), [one, 16]));
  write(f('one-source.npy'), npyBytes(src, [one, 8]));
  write(f('one-decoded.npy'), npyBytes(src.map((x, j) => x * 0.9 + (j % 7) * 0.01), [one, 8]));
  // Quarters with many ties (top's and deadwindow's order across shard boundaries), one FILE a leaf short.
  const tieRows = [rows(1500, 2500), 1023, rows(500, 1500)];
  const ties = tieRows.map((n, i) => write(f(`t${i}.npy`), npyBytes(floats(n * 8, 80 + i, 0.3).map((x) => Math.round(x * 4) / 4), [n, 8])));
  return [
    { name: '.npy files', args: npy, metrics: LEARNED, leaves: leaves(npyRows) },
    { name: '.npy files with ties', args: ties, metrics: 'top,deadwindow,acthist,dead,density,fired,l0', leaves: leaves(tieRows) },
    {
      name: '.safetensors with components, source and decoded',
      args: [...st, '--tensor', 'learned', '--source', 'source', '--decoded', 'decoded'],
      metrics: `${LEARNED},${RECON}`,
      leaves: leaves(stRows),
    },
    { name: 'one .npy with source and decoded files', args: [f('one.npy'), '--source', f('one-source.npy'), '--decoded', f('one-decoded.npy')], metrics: `${LEARNED},${RECON}`, leaves: leaves([one]) },
  ];
}

describe('merge of N shards = one run, bit for bit', () => {
  const sets = fileSets();
  const options = (s: FileSet): string[] => [...s.args, '--metrics', s.metrics, '--top', '3', '--dead-window', '1500', '--l1-coefficient', '0.003'];
  const outputs = (tag: string): string[] => ['--top-out', f(`${tag}-top.json`), '--acthist-out', f(`${tag}-acthist.json`), '--histogram', f(`${tag}-hist.svg`)];
  const files = (tag: string): string[] => ['top.json', 'acthist.json', 'hist.svg'].map((x) => readFileSync(f(`${tag}-${x}`), 'utf8'));

  for (const [k, set] of sets.entries()) {
    it(`${set.name} (${set.leaves} leaves): N = 1..5 and ${set.leaves + 2}, 1 to 4 workers a shard, --batch-rows 1024 to 5000`, async () => {
      const r = mulberry32(700 + k);
      const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;
      const single = await sae([...options(set), '--json', '--workers', String(pick([1, 2, 3, 4])), ...outputs(`single${k}`)]);
      expect(single.stderr).toBe('');
      expect(single.code).toBe(0);
      const want = comparable(single.stdout);
      const wantFiles = files(`single${k}`);
      const table = await sae([...options(set), '--workers', '2', '--batch-rows', '3000']);
      expect(table.code).toBe(0);
      for (const n of [1, 2, 3, 4, 5, set.leaves + 2]) {
        const parts: string[] = [];
        for (let i = 0; i < n; i++) {
          const part = f(`set${k}-n${n}-${i}.json`);
          const batch = pick(['1024', '2048', '3000', '4096', '5000', 'default']);
          const shard = await sae([...options(set), '--workers', String(pick([1, 2, 3, 4])), ...(batch === 'default' ? [] : ['--batch-rows', batch]), '--shard', `${i}/${n}`, '--state-out', part]);
          expect(shard.stderr).toBe('');
          expect(shard.code).toBe(0);
          expect(shard.stdout).toMatch(new RegExp(`^shard ${i} of ${n}: `));
          parts.push(part);
        }
        // Any order on the command line.
        const shuffled = [...parts].sort(() => r() - 0.5);
        const merged = await sae(['merge', ...shuffled, '--json', ...outputs(`merged${k}-${n}`)]);
        expect(merged.stderr).toBe('');
        expect(merged.code).toBe(0);
        expect(comparable(merged.stdout), `N = ${n}`).toEqual(want);
        expect(files(`merged${k}-${n}`), `N = ${n}: the output files`).toEqual(wantFiles);
        if (n === 3) {
          const mergedTable = await sae(['merge', ...parts]);
          expect(tableRows(mergedTable.stdout)).toBe(tableRows(table.stdout));
        }
      }
    }, 240_000);
  }

  it('--batch-rows under a leaf: leaves folded from pieces, the same bits when every shard and the run take the same --batch-rows', async () => {
    const set = sets[0] as FileSet;
    const single = await sae([...options(set), '--json', '--batch-rows', '300', '--workers', '3']);
    expect(single.code).toBe(0);
    const parts = [0, 1, 2, 3].map((i) => f(`pieces-${i}.json`));
    for (const [i, part] of parts.entries()) {
      const shard = await sae([...options(set), '--batch-rows', '300', '--workers', String(1 + i), '--shard', `${i}/4`, '--state-out', part]);
      expect(shard.code).toBe(0);
    }
    const merged = await sae(['merge', ...parts, '--json']);
    expect(merged.stderr).toBe('');
    expect(comparable(merged.stdout)).toEqual(comparable(single.stdout));
  }, 120_000);

  it('a run gives the same bits with any --workers and any --batch-rows of 1024 or more (batches are aligned runs of leaves)', async () => {
    const set = sets[2] as FileSet;
    const runs = [];
    for (const [w, b] of [
      [1, '1024'],
      [4, '5000'],
      [2, '2048'],
      [3, '4096'],
    ] as const) {
      runs.push(await sae([...options(set), '--json', '--workers', String(w), '--batch-rows', b]));
    }
    for (const x of runs) expect(comparable(x.stdout)).toEqual(comparable((runs[0] as Ran).stdout));
  }, 120_000);
});

describe('merge refuses parts that do not make one run: one line naming the part, exit code 1, no output touched', () => {
  const F = 10;
  const a = write(f('ra.npy'), npyBytes(floats(2500 * F, 60, 0.3), [2500, F]));
  const b = write(f('rb.npy'), npyBytes(floats(900 * F, 61, 0.3), [900, F]));
  const base = [a, b, '--workers', '1'];
  const part = async (name: string, i: number, n: number, extra: readonly string[] = [], files: readonly string[] = base): Promise<string> => {
    const path = f(name);
    const r = await sae([...files, ...extra, '--shard', `${i}/${n}`, '--state-out', path]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    return path;
  };
  /** Runs merge and checks the one-line refusal. */
  const refuses = async (args: readonly string[], line: RegExp, code = 1): Promise<void> => {
    const r = await sae(['merge', ...args]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^sae-metrics: [^\n]+\n$/);
    expect(r.stderr).toMatch(line);
    expect(r.code).toBe(code);
  };
  const esc = (s: string): string => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  // The three parts of one run, made once (by the first test that needs them).
  let made: Promise<string[]> | undefined;
  const threeParts = (): Promise<string[]> => (made ??= (async () => [await part('p0.json', 0, 3), await part('p1.json', 1, 3), await part('p2.json', 2, 3)])());

  it('a missing, duplicate or overlapping shard', async () => {
    const p = await threeParts();
    const ok = await sae(['merge', ...p]);
    expect(ok.code).toBe(0);
    await refuses([p[0] as string, p[2] as string], /^sae-metrics: merge: shard 1 of 3 is missing \(given: 0, 2\)\n$/);
    await refuses([p[1] as string], /^sae-metrics: merge: 2 of 3 shards are missing \(missing: 0, 2; given: 1\)\n$/);
    const copy = f('p1-copy.json');
    write(copy, readFileSync(p[1] as string));
    await refuses([p[0] as string, p[1] as string, copy, p[2] as string], new RegExp(`^sae-metrics: ${esc(copy)}: is shard 1 of 3 again \\(${esc(p[1] as string)} is too\\): give each shard once\\n$`));
    const half = await part('h0.json', 0, 2);
    await refuses(
      [half, p[1] as string, p[2] as string],
      new RegExp(`^sae-metrics: ${esc(p[1] as string)}: is shard 1 of 3 \\(rows \\[1024, 2048\\)\\), but ${esc(half)} is shard 0 of 2 \\(rows \\[0, 2048\\)\\): shards of different N overlap or leave gaps`),
    );
  }, 60_000);

  it('other metrics, options, backend or leaf pieces', async () => {
    const cases: [string, readonly string[], RegExp][] = [
      ['m.json', ['--metrics', 'l1,l0'], /--metrics is l1,l0, not l1,l0,dead,density\n$/],
      ['t.json', ['--dead-threshold', '0.1'], /--dead-threshold is 0\.1, not 0\n$/],
      ['k.json', ['--metrics', 'l1,l0,dead,density,top', '--top', '4'], /--metrics is l1,l0,dead,density,top, not l1,l0,dead,density\n$/],
      ['js.json', ['--backend', 'js'], /the backend \(give every shard the same --backend\) is "js", not "wasm"\n$/],
      ['br.json', ['--batch-rows', '100'], /leaves folded from pieces of this many rows \(--batch-rows under 1024; give every shard the same --batch-rows\) is 100, not 1024\n$/],
    ];
    const wasm = await part('w0.json', 0, 3, ['--backend', 'wasm']);
    const wasm2 = await part('w2.json', 2, 3, ['--backend', 'wasm']);
    for (const [name, extra, line] of cases) {
      const other = await part(name, 1, 3, extra.includes('--backend') ? extra : [...extra, '--backend', 'wasm']);
      await refuses([wasm, other, wasm2], new RegExp(`^sae-metrics: ${esc(other)}: does not belong with ${esc(wasm)}: ${line.source}`));
    }
  }, 60_000);

  it('other inputs: another file order, another size or header (the same path)', async () => {
    const p = await threeParts();
    const swapped = await part('sw1.json', 1, 3, [], [b, a, '--workers', '1']);
    await refuses([p[0] as string, swapped, p[2] as string], new RegExp(`${esc(swapped)}: does not belong with ${esc(p[0] as string)}: other inputs: input file 1 is ${esc(b)}, not ${esc(a)}\\n$`));
    // b.npy rewritten with one more row: its size and header change.
    const bytes = readFileSync(b);
    write(b, npyBytes(floats(901 * F, 62, 0.3), [901, F]));
    try {
      const grown = await part('g2.json', 2, 3);
      await refuses([p[0] as string, p[1] as string, grown], new RegExp(`${esc(grown)}: does not belong with ${esc(p[0] as string)}: other inputs: ${esc(b)} has 36,168 bytes, not 36,128\\n$`));
    } finally {
      write(b, bytes);
    }
  }, 60_000);

  it('a corrupted, truncated, future or foreign file, a missing one, and a hostile one with a valid checksum', async () => {
    const p = await threeParts();
    const text = readFileSync(p[1] as string, 'utf8');
    const bad = (name: string, content: string): string => write(f(name), Buffer.from(content));
    // One base64 character changed inside a state.
    const at = text.indexOf('"base64":"') + 12;
    const flipped = bad('flip.json', text.slice(0, at) + (text[at] === 'A' ? 'B' : 'A') + text.slice(at + 1));
    await refuses([p[0] as string, flipped, p[2] as string], new RegExp(`^sae-metrics: ${esc(flipped)}: is corrupted: the SHA-256 of its content is [0-9a-f]{12}\\.\\.\\., but the file says [0-9a-f]{12}\\.\\.\\.\\n$`));
    const cut = bad('cut.json', text.slice(0, Math.floor(text.length / 2)));
    await refuses([p[0] as string, cut, p[2] as string], new RegExp(`^sae-metrics: ${esc(cut)}: is not a shard state: not JSON \\(truncated or corrupted\\?\\)\\n$`));
    const future = bad('future.json', text.replace('"version":2,', '"version":3,'));
    await refuses([future], new RegExp(`^sae-metrics: ${esc(future)}: is version 3 of sae-metrics/shard-state, newer than this sae-metrics reads \\(2\\)`));
    const foreign = bad('foreign.json', JSON.stringify({ format: 'sae-metrics/state', version: 1, metric: 'L0NormMetric', config: {}, parts: {} }));
    await refuses([foreign], /is not a shard state of sae-metrics \(its format is "sae-metrics\/state", not "sae-metrics\/shard-state"\)\n$/);
    await refuses([f('nowhere.json')], new RegExp(`^sae-metrics: ${esc(f('nowhere.json'))}: no such file\\n$`));
    // Longer than the longest string Node makes (a sparse file: no disk, read as zeros).
    const huge = f('huge.json');
    write(huge, Buffer.alloc(0));
    truncateSync(huge, 2 ** 29);
    await refuses([huge], new RegExp(`^sae-metrics: ${esc(huge)}: is longer than the 536,870,888 characters a part file can hold: not a part sae-metrics wrote\\n$`));
    rmSync(huge);
    // Hostile: a state changed and the checksum made again. Every state is checked as untrusted.
    const { createHash } = await import('node:crypto');
    const reseal = (name: string, edit: (content: Record<string, unknown>) => void): string => {
      const o = JSON.parse(text) as { content: Record<string, unknown> };
      edit(o.content);
      const content = JSON.stringify(o.content);
      const sha = createHash('sha256').update(content).digest('hex');
      return bad(name, `{"format":"sae-metrics/shard-state","version":2,"sha256":"${sha}","content":${content}}\n`);
    };
    const moreVectors = reseal('vectors.json', (c) => {
      const exact = c.exact as Record<string, { vectors: number }>;
      const id = Object.keys(exact).find((k) => k.startsWith('firedCount')) as string;
      (exact[id] as { vectors: number }).vectors += 5;
    });
    await refuses([p[0] as string, moreVectors, p[2] as string], new RegExp(`^sae-metrics: ${esc(moreVectors)}: exact\\["firedCount\\(components=none,features=10\\)"\\] counts 1029 vectors, but covers 1024 rows\\n$`));
    const otherLeaves = reseal('leaves.json', (c) => {
      c.leaves = { start: 0, end: 2 };
    });
    await refuses([otherLeaves], /: leaves must be \[1, 2\) for shard 1 of 3, got \[0, 2\)\n$/);
    const badState = reseal('state.json', (c) => {
      const nodes = c.nodes as { states: Record<string, unknown> }[];
      const states = (nodes[0] as { states: Record<string, unknown> }).states;
      const id = Object.keys(states)[0] as string;
      states[id] = { sum: 1 };
    });
    await refuses([badState], /: nodes\[0\]\.states\["rowLossSum\([^"]*\)"\] is not a state of rowLossSum/);
    const notComputed = reseal('notcomputed.json', (c) => {
      (c.setup as { metrics: string[] }).metrics = ['l1', 'fired'];
    });
    await refuses([notComputed], /: setup\.computed must hold every metric of setup\.metrics, but not fired\n$/);
    const noRows = reseal('norows.json', (c) => {
      for (const seg of (c.inputs as { segments: { learned: { shape: number[] } }[] }).segments) seg.learned.shape[0] = 0;
    });
    await refuses([noRows], /: inputs\.segments must have rows: every FILE has none\n$/);
  }, 60_000);

  it('refuses a part file that changed between the check and the merge (each is read twice)', async () => {
    const p = await threeParts();
    const { mergePartFiles } = await import('../../src/cli/shard.js');
    const other = readFileSync(await part('other-1.json', 1, 3, ['--workers', '2', '--batch-rows', '1024']), 'utf8');
    const reads = new Map<string, number>();
    const read = (name: string): string => {
      const n = (reads.get(name) ?? 0) + 1;
      reads.set(name, n);
      // The second read of shard 1 finds another valid part (same run, other batches).
      return name === p[1] && n === 2 ? other : readFileSync(name, 'utf8');
    };
    expect(() => mergePartFiles(p, read)).toThrow(new RegExp(`^${esc(p[1] as string)}: changed while it was being merged: merge again$`));
    expect([...reads.values()]).toEqual([2, 2, 1]);
    expect(mergePartFiles(p, (name) => readFileSync(name, 'utf8')).parts.size).toBeGreaterThan(0);
  });

  it('leaves an existing output file as it was, and asks for the states an output needs', async () => {
    const p = await threeParts();
    const top = write(f('kept-top.json'), Buffer.from('before'));
    const r = await sae(['merge', p[0] as string, p[2] as string, '--json', '--top-out', top]);
    expect(r.code).toBe(1);
    expect(readFileSync(top, 'utf8')).toBe('before');
    await refuses([...p, '--top-out', top], /^sae-metrics: --top-out: needs the state of top, which the parts do not hold \(their metrics: l1,l0,dead,density\): run the shards with top in --metrics\n$/);
    expect(readFileSync(top, 'utf8')).toBe('before');
    await refuses([...p, '--acthist-out', f('ah.json')], /^sae-metrics: --acthist-out: needs the state of acthist/);
    const l1only = [0, 1].map((i) => part(`l1-${i}.json`, i, 2, ['--metrics', 'l1']));
    await refuses([...(await Promise.all(l1only)), '--histogram', f('h.svg')], /^sae-metrics: --histogram: needs the state of dead, density or fired/);
  }, 60_000);

  it('a bad merge command line: exit code 2', async () => {
    const p = await threeParts();
    await refuses([], /^sae-metrics: PART\.json: no part file given \(see sae-metrics merge --help\)\n$/, 2);
    await refuses([...p, '--workers', '2'], /^sae-metrics: --workers: unknown option \(see sae-metrics merge --help\)\n$/, 2);
    await refuses([...p, '--log-y'], /^sae-metrics: --log-y: shapes the histogram: give --histogram OUT\.svg too\n$/, 2);
    await refuses([...p, '--top-out', f('x.txt')], /^sae-metrics: --top-out: must be a path ending in \.json/, 2);
    const help = await sae(['merge', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: sae-metrics merge PART\.json\.\.\. \[options\]/);
  });
});

describe('--shard and --state-out on the command line', () => {
  const a = write(f('u.npy'), npyBytes(floats(300 * 4, 70, 0.5), [300, 4]));
  const usage = async (args: readonly string[], line: RegExp, code = 2): Promise<void> => {
    const r = await sae([a, ...args]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^sae-metrics: [^\n]+\n$/);
    expect(r.stderr).toMatch(line);
    expect(r.code).toBe(code);
  };

  it('counts I from 0, to N - 1, and refuses anything else with a usage error', async () => {
    await usage(['--shard', '3/3', '--state-out', f('x.json')], /^sae-metrics: --shard: I counts from 0: it must be in \[0, 2\] for N = 3, got "3\/3"\n$/);
    await usage(['--shard', '0/0', '--state-out', f('x.json')], /^sae-metrics: --shard: must be I\/N with N an integer in \[1, 1000000\] and I in \[0, N\) \(counted from 0\), got "0\/0"\n$/);
    await usage(['--shard', '1', '--state-out', f('x.json')], /--shard: must be I\/N/);
    await usage(['--shard', '-1/3', '--state-out', f('x.json')], /--shard: /);
    await usage(['--shard', '0/2'], /^sae-metrics: --shard: writes the shard's state: give --state-out PART\.json too\n$/);
    await usage(['--state-out', f('x.json')], /^sae-metrics: --state-out: writes the state of a shard: give --shard I\/N too/);
    for (const option of [['--json'], ['--histogram', f('h.svg')], ['--top-out', f('t.json')], ['--acthist-out', f('a.json')]]) {
      await usage(['--shard', '0/2', '--state-out', f('x.json'), ...option], new RegExp(`^sae-metrics: ${option[0]}: is an output of sae-metrics merge: give it there, not with --shard\\n$`));
    }
    const help = await sae(['--help']);
    expect(help.stdout).toMatch(/--shard I\/N {12}compute only shard I of N \(I counts from 0, as SLURM_ARRAY_TASK_ID and\n/);
  });

  it('checks --state-out before reading any input, and writes nothing when the shard fails', async () => {
    await usage(['--shard', '0/2', '--state-out', f('no-dir/x.json')], new RegExp(`^sae-metrics: ${f('no-dir/x.json').replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: cannot write the shard state \\(no such directory\\)\\n$`), 1);
    const out = f('not-written.json');
    await usage([f('missing.npy'), '--shard', '0/2', '--state-out', out], /missing\.npy: no such file\n$/, 1);
    expect(() => readFileSync(out)).toThrow(/ENOENT/);
  });

  it('--top K too large for the inputs is a usage error (exit 2), not a run-time one', async () => {
    const wide = write(f('wide.npy'), npyBytes(new Float32Array(2 * 512), [2, 512]));
    const r = await sae([wide, '--metrics', 'top', '--top', String(2 ** 20)]);
    expect(r.stdout).toBe('');
    expect(r.stderr).toBe('sae-metrics: --top: K = 1048576 is too large for 512 features: top keeps components x features x K values, at most 268435456, got 536870912\n');
    expect(r.code).toBe(2);
  });
});

describe('a shard stopped (Ctrl-C), and the built command', () => {
  const a = write(f('i.npy'), npyBytes(floats(3000 * 6, 90, 0.4), [3000, 6]));

  it('writes nothing when interrupted, says so, and exits 130', async () => {
    const controller = new AbortController();
    const out = f('stopped.json');
    const err: string[] = [];
    const code = await run([a, '--batch-rows', '100', '--workers', '1', '--shard', '0/2', '--state-out', out], {
      stdout: { write: () => true },
      stderr: { write: (s: string) => err.push(s) > 0, isTTY: false },
      signal: controller.signal,
      createPool: (options) => {
        const pool = createMetricPool(options);
        const evaluate = pool.evaluate.bind(pool);
        let calls = 0;
        pool.evaluate = (...args) => {
          if (++calls === 2) controller.abort();
          return evaluate(...args);
        };
        return pool;
      },
    });
    expect(err.join('')).toBe('sae-metrics: interrupted: shard 0 of 2 was stopped: nothing was written\n');
    expect(code).toBe(130);
    expect(() => readFileSync(out)).toThrow(/ENOENT/);
  });

  it('runs as a process: two shards, then merge, with the exit codes and output of a run', async () => {
    requireBuilt();
    const args = [a, '--metrics', 'l1,l0,dead,actstats', '--workers', '1'];
    const single = await cli([...args, '--json']);
    expect(single.code).toBe(0);
    const parts = [0, 1].map((i) => f(`proc-${i}.json`));
    const shards = await limited(parts.map((p, i) => () => cli([...args, '--shard', `${i}/2`, '--state-out', p])));
    for (const [i, s] of shards.entries()) {
      expect(s.stderr).toBe('');
      // 3 leaves: shard 0 has leaf 0 (floor(1 x 3 / 2) = 1), shard 1 leaves 1 and 2.
      expect(s.stdout).toBe(`shard ${i} of 2: ${i === 0 ? '1,024' : '1,976'} of 3,000 vectors (rows ${i === 0 ? '0 to 1,024' : '1,024 to 3,000'}), state written to ${parts[i]}\n`);
      expect(s.code).toBe(0);
    }
    const merged = await cli(['merge', ...parts.reverse(), '--json']);
    expect(merged.stderr).toBe('');
    expect(merged.code).toBe(0);
    expect(comparable(merged.stdout)).toEqual(comparable(single.stdout));
    const missing = await cli(['merge', parts[0] as string]);
    expect(missing).toEqual({ code: 1, stdout: '', stderr: 'sae-metrics: merge: shard 0 of 2 is missing (given: 1)\n' });
    const usage = await cli([a, '--shard', '2/2', '--state-out', f('u.json')]);
    expect(usage.code).toBe(2);
  }, 60_000);
});
