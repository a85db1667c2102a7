/**
 * Attacks on `sae-metrics merge`: parts edited by hand and resealed with a valid checksum (the
 * SHA-256 of `JSON.stringify(content)`, as src/cli/shard.ts writes it). A resealed part whose
 * states cannot come from any input must be refused with one line naming the part file, before
 * any output file is written; one whose edit is harmless must give the same bits.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../support/random.js';
import { comparable } from '../support/reports.js';
import { npyBytes, safetensorsBytes, scratchDir, toFloat16, write } from './files.js';
import { pooledCli } from './in-process.js';
import { run } from '../../src/cli/run.js';
import { cli, main, requireBuilt, root } from './run-cli.js';

const tmp = scratchDir('sae-metrics-shard-attack-');
const f = tmp.path;

const { sae, close } = pooledCli();
afterAll(async () => {
  await close();
  tmp.remove();
});

const f64 = (b64: string): Float64Array => new Float64Array(new Uint8Array(Buffer.from(b64, 'base64')).buffer);
const b64 = (a: Float64Array): string => Buffer.from(a.buffer, a.byteOffset, a.byteLength).toString('base64');

type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Part `from` edited by `edit` and resealed (a valid checksum), written as `name`. */
function reseal(from: string, name: string, edit: (content: Json) => void): string {
  const p = JSON.parse(readFileSync(from, 'utf8')) as Json;
  edit(p.content as Json);
  const content = JSON.stringify(p.content);
  const sha = createHash('sha256').update(content).digest('hex');
  writeFileSync(f(name), `{"format":"sae-metrics/shard-state","version":2,"sha256":"${sha}","content":${content}}\n`);
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

describe('merge refuses shards computed in different gpu.js modes', () => {
  // gpu.js's cpu and webasm modes round l1's sums differently: both are backend "gpujs".
  it('SAE_METRICS_GPUJS_MODE cpu for shard 0 and webasm for shard 1: one line naming the part, exit code 1', async () => {
    const saved = process.env.SAE_METRICS_GPUJS_MODE;
    // run() without the kept pools: a pool keeps the mode it was made with.
    const plain = async (args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
      const out: string[] = [];
      const err: string[] = [];
      const code = await run(args, { stdout: { write: (t: string) => out.push(t) > 0 }, stderr: { write: (t: string) => err.push(t) > 0, isTTY: false } });
      return { code, stdout: out.join(''), stderr: err.join('') };
    };
    const base = [f('a.npy'), '--metrics', 'l1,l0', '--backend', 'gpujs', '--workers', '1'];
    const modes = ['cpu', 'webasm'] as const;
    const l1: number[] = [];
    try {
      for (const [i, mode] of modes.entries()) {
        process.env.SAE_METRICS_GPUJS_MODE = mode;
        const single = await plain([...base, '--json']);
        expect(single.stderr).toBe('');
        l1.push((JSON.parse(single.stdout) as { metrics: { l1: number } }).metrics.l1);
        const s = await plain([...base, '--shard', `${i}/2`, '--state-out', f(`mode-${mode}.json`)]);
        expect(s.stderr).toBe('');
      }
    } finally {
      if (saved === undefined) delete process.env.SAE_METRICS_GPUJS_MODE;
      else process.env.SAE_METRICS_GPUJS_MODE = saved;
    }
    // The modes round differently: merged, the shards would give neither run's bits.
    expect(l1[0]).not.toBe(l1[1]);
    const m = await plain(['merge', f('mode-cpu.json'), f('mode-webasm.json'), '--json']);
    expect(m).toMatchObject({ code: 1, stdout: '' });
    expect(m.stderr).toBe(
      `sae-metrics: ${f('mode-webasm.json')}: does not belong with ${f('mode-cpu.json')}: the gpu.js mode of the gpujs backend (give every shard the same SAE_METRICS_GPUJS_MODE, or --backend wasm) is "webasm", not "cpu"\n`,
    );
  }, 60_000);
});

describe('merge given a part that is not a regular file', () => {
  // The built command: a FIFO read in this process would block it for good.
  it('a pipe (`merge <(cat part)`) and a FIFO with no writer: refused at once with one line, not "changed while it was being merged" and not a wait for ever', async () => {
    requireBuilt();
    const line = (name: string): RegExp =>
      new RegExp(`^sae-metrics: ${name}: is not a regular file \\(a pipe\\): merge reads each part twice \\(to check them all, then to fold them one at a time\\); save it to a file first\\n$`);
    const piped = await new Promise<{ code: number; stderr: string }>((resolve, reject) => {
      const script = `exec "$0" "$1" merge <(cat "$2") "$3" "$4" --json`;
      execFile('bash', ['-c', script, process.execPath, main, ...(parts as [string, string, string])], { cwd: root, timeout: 20_000, encoding: 'utf8' }, (error, _stdout, stderr) => {
        const code = error === null ? 0 : (error as { code?: unknown }).code;
        if (typeof code === 'number') resolve({ code, stderr });
        else reject(error ?? new Error('no exit code'));
      });
    });
    expect(piped.code).toBe(1);
    expect(piped.stderr).toMatch(line('/dev/fd/\\d+'));
    const fifo = f('fifo.json');
    execFileSync('mkfifo', [fifo]);
    const waited = await cli(['merge', fifo, parts[1] as string, parts[2] as string], {}, 20_000);
    expect(waited.code).toBe(1);
    expect(waited.stderr).toMatch(line(fifo.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
  }, 60_000);
});

/** Values with NaN, +-Infinity, -0, subnormals, the largest float32 and the histogram's edges. */
function special(n: number, r: () => number, density: number): Float32Array {
  const SPECIAL = [NaN, Infinity, -Infinity, -0, 0, 1e-45, 1e-40, 3.4028234663852886e38, 1e-4, 9.999999e-5, 1e4, 10000.001, 1];
  return Float32Array.from({ length: n }, () => (r() < 0.02 ? (SPECIAL[Math.floor(r() * SPECIAL.length)] as number) : r() < density ? (r() - 0.1) * 3.7 : 0));
}

describe('merge of shards = one run, bit for bit, over NaN, Infinity, -0 and half-precision files', () => {
  const ALL = `${METRICS},l2,loss,ev,fvu,cos,l2ratio,shrinkage,nmse`;
  const sets: { name: string; args: () => string[]; metrics: string }[] = [
    {
      name: '.npy with a component axis, sizes 1023, 1025, 0, 2049, 1',
      metrics: METRICS,
      args: () => {
        const r = mulberry32(901);
        return [1023, 1025, 0, 2049, 1].map((n, i) => write(f(`sp${i}.npy`), npyBytes(special(n * 2 * 6, r, 0.3), [n, 2, 6])));
      },
    },
    {
      name: 'bfloat16 .safetensors with source and decoded (non-finite values in every tensor)',
      metrics: ALL,
      args: () => {
        const r = mulberry32(902);
        const bf16 = (a: Float32Array): Uint16Array => Uint16Array.from(new Uint32Array(a.buffer), (u) => u >>> 16);
        const files = [1500, 1024, 700].map((n, i) => {
          const src = special(n * 4, r, 1);
          return write(
            f(`bf${i}.safetensors`),
            safetensorsBytes({
              learned: { dtype: 'BF16', shape: [n, 9], data: bf16(special(n * 9, r, 0.3)) },
              source: { dtype: 'BF16', shape: [n, 4], data: bf16(src) },
              decoded: { dtype: 'BF16', shape: [n, 4], data: bf16(src.map((x) => x * 0.75 + 0.01)) },
            }),
          );
        });
        return [...files, '--tensor', 'learned', '--source', 'source', '--decoded', 'decoded'];
      },
    },
    {
      name: 'float16 .safetensors',
      metrics: METRICS,
      args: () => {
        const r = mulberry32(903);
        const half = (a: Float32Array): Uint16Array => toFloat16(a.map((x) => (Number.isFinite(x) && Math.abs(x) < 60000 ? Math.round(x * 256) / 256 : x > 0 ? 0.5 : 0)));
        return [2048, 1, 1025].map((n, i) => write(f(`hf${i}.safetensors`), safetensorsBytes({ a: { dtype: 'F16', shape: [n, 11], data: half(special(n * 11, r, 0.4)) } })));
      },
    },
  ];
  const outputs = (tag: string): string[] => ['--top-out', f(`${tag}-top.json`), '--acthist-out', f(`${tag}-acthist.json`), '--histogram', f(`${tag}.svg`)];
  const files = (tag: string): string[] => [`${tag}-top.json`, `${tag}-acthist.json`, `${tag}.svg`].map((x) => readFileSync(f(x), 'utf8'));
  for (const [k, set] of sets.entries()) {
    it(set.name, async () => {
      const r = mulberry32(950 + k);
      const options = [...set.args(), '--metrics', set.metrics, '--top', String(1 + Math.floor(r() * 5)), '--dead-window', '1300'];
      const single = await sae([...options, '--json', '--workers', '2', ...outputs(`single-sp${k}`)]);
      expect(single.stderr).toBe('');
      expect(single.code).toBe(0);
      for (const n of [2, 3 + Math.floor(r() * 4)]) {
        const names: string[] = [];
        for (let i = 0; i < n; i++) {
          const part = f(`sp${k}-${n}-${i}.json`);
          const batch = ['1024', '2048', '3000'][Math.floor(r() * 3)] as string;
          const s = await sae([...options, '--workers', String(1 + Math.floor(r() * 3)), '--batch-rows', batch, '--shard', `${i}/${n}`, '--state-out', part]);
          expect(s.stderr).toBe('');
          names.push(part);
        }
        const merged = await sae(['merge', ...names.sort(() => r() - 0.5), '--json', ...outputs(`merged-sp${k}-${n}`)]);
        expect(merged.stderr).toBe('');
        expect(comparable(merged.stdout), `N = ${n}`).toEqual(comparable(single.stdout));
        expect(merged.stdout.replace(/"(workers|batches|batchRows|elapsedSeconds)":[^,}]*/g, ''), `N = ${n}: the report's text`).toBe(
          single.stdout.replace(/"(workers|batches|batchRows|elapsedSeconds)":[^,}]*/g, ''),
        );
        expect(files(`merged-sp${k}-${n}`), `N = ${n}: the output files`).toEqual(files(`single-sp${k}`));
      }
    }, 60_000);
  }
});

describe('neither --shard nor merge writes over the files it reads', () => {
  it('--top-out and --acthist-out naming one file (any spelling) are refused before any input is read, in a run and in merge', async () => {
    const same = [f('both.json'), `${tmp.dir}/./both.json`];
    const expected = `sae-metrics: --acthist-out: ${JSON.stringify(same[1])} is --top-out's file too: give each output its own path\n`;
    // The input does not exist: a refusal after reading it would say so instead.
    const one = await sae([f('missing.npy'), '--top-out', same[0] as string, '--acthist-out', same[1] as string]);
    expect(one).toMatchObject({ code: 2, stdout: '', stderr: expected });
    const merged = await sae(['merge', f('missing.json'), '--top-out', same[0] as string, '--acthist-out', same[1] as string]);
    expect(merged).toMatchObject({ code: 2, stdout: '', stderr: expected });
    expect(existsSync(f('both.json'))).toBe(false);
  });

  it('--state-out naming an input FILE is refused (it must end in .json, as --top-out does), and the FILE is left as it was', async () => {
    copyFileSync(f('a.npy'), f('input.npy'));
    const before = readFileSync(f('input.npy'));
    const s = await sae([f('input.npy'), '--metrics', 'l0', '--workers', '1', '--shard', '0/2', '--state-out', f('input.npy')]);
    expect(s.code).toBe(2);
    expect(s.stderr).toMatch(/^sae-metrics: --state-out: must be a path ending in \.json, got ".*input\.npy"\n$/);
    expect(readFileSync(f('input.npy')).equals(before)).toBe(true);
  }, 30_000);

  it('an input FILE named like an output (a .npy is known by its magic, whatever its name) is refused as every output, in a run, a shard and coordinate, and left as it was', async () => {
    const data = readFileSync(f('a.npy'));
    const input = write(f('acts.json'), data);
    const svg = write(f('acts.svg'), data);
    const source = write(f('src.json'), npyBytes(new Float32Array(ROWS * 2).fill(0.5), [ROWS, 2]));
    const recon = [input, '--source', source, '--decoded', f('a.npy')];
    const cases: [string, string[]][] = [
      ['--top-out', [input, '--top-out', input]],
      // Another spelling of the same path.
      ['--acthist-out', [input, '--acthist-out', `${tmp.dir}/./acts.json`]],
      ['--histogram', [svg, '--histogram', svg]],
      ['--state-out', [input, '--shard', '1/3', '--state-out', input]],
      // The source activations' file, not the FILE.
      ['--top-out', [...recon.slice(0, 3), '--decoded', source, '--top-out', source]],
      ['--top-out', ['coordinate', '--redis', 'redis://127.0.0.1:9', '--connect-timeout', '0.1', input, '--top-out', input]],
    ];
    for (const [option, args] of cases) {
      const s = await sae([...args, '--workers', '1']);
      expect(s, args.join(' ')).toMatchObject({ code: 2, stdout: '' });
      expect(s.stderr).toMatch(new RegExp(`^sae-metrics: ${option}: ".*" is the input file ".*": it would be written over; write the output elsewhere\n$`));
    }
    expect(readFileSync(input).equals(data)).toBe(true);
    expect(readFileSync(svg).equals(data)).toBe(true);
    expect(readFileSync(source).length).toBe(npyBytes(new Float32Array(ROWS * 2), [ROWS, 2]).length);
  }, 30_000);

  it('merge: an output naming a part through a linked folder is refused, and the part is left as it was', async () => {
    mkdirSync(f('real'));
    const copies = parts.map((p, i) => {
      copyFileSync(p, f(`real/q${i}.json`));
      return f(`real/q${i}.json`);
    });
    symlinkSync(f('real'), f('linked'));
    const before = readFileSync(copies[2] as string, 'utf8');
    const m = await sae(['merge', ...copies, '--top-out', f('linked/q2.json')]);
    expect(m).toMatchObject({ code: 2, stdout: '' });
    expect(m.stderr).toMatch(/^sae-metrics: --top-out: ".*linked\/q2\.json" is one of the parts: write the output elsewhere\n$/);
    expect(readFileSync(copies[2] as string, 'utf8')).toBe(before);
  }, 30_000);

  for (const option of ['--top-out', '--acthist-out'] as const) {
    it(`merge ${option} naming one of the parts is refused, and the part is left as it was`, async () => {
      const copies = parts.map((p, i) => {
        copyFileSync(p, f(`copy${i}.json`));
        return f(`copy${i}.json`);
      });
      const before = readFileSync(copies[1] as string, 'utf8');
      // Another spelling of the same path.
      const same = `${tmp.dir}/./copy1.json`;
      const m = await sae(['merge', ...copies, option, same]);
      expect(m.code).toBe(2);
      expect(m.stdout).toBe('');
      expect(m.stderr).toContain(`sae-metrics: ${option}: `);
      expect(m.stderr).toContain('is one of the parts');
      expect(readFileSync(copies[1] as string, 'utf8')).toBe(before);
    }, 30_000);
  }
});
