/**
 * Seeded random schedules of `--shard I/N`, then `merge`, against one run over the same files. Each
 * case draws its files (.npy float16, float32 or float64; .safetensors F16, BF16, F32 or F64, one
 * dtype a tensor; row counts around the 1024-row leaves, some empty), a component axis or none,
 * source and decoded activations or none, a subset of the metrics, --top K and --dead-window, N,
 * each shard's --workers and --batch-rows, and the order of the parts on merge's command line. The
 * report (less what describes the cut) and the --top-out and --acthist-out files must be the
 * single run's bytes.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../support/random.js';
import { comparable } from '../support/reports.js';
import { npyBytes, safetensorsBytes, scratchDir, toFloat16, write, type SafetensorsTensor } from './files.js';
import { pooledCli } from './in-process.js';

const tmp = scratchDir('sae-metrics-shard-schedules-');
const f = tmp.path;
const { sae, close } = pooledCli();
afterAll(async () => {
  await close();
  tmp.remove();
});

const LEARNED = ['l1', 'l0', 'dead', 'density', 'fired', 'top', 'deadwindow', 'freq', 'actstats', 'acthist'];
const RECON = ['l2', 'loss', 'ev', 'fvu', 'cos', 'l2ratio', 'shrinkage', 'nmse'];
const ROWS = [0, 1, 37, 1023, 1024, 1025, 2100, 3071];

type Rand = () => number;
const pick = <T>(r: Rand, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)] as T;

/** `n` values of a dtype as stored: exact binary16 for F16, truncated float32 for BF16. */
function values(r: Rand, n: number, dtype: string, density: number): ArrayBufferView {
  const x = (): number => (r() < density ? (r() - 0.15) * 3.7 : 0);
  if (dtype === 'F16') return toFloat16(Float32Array.from({ length: n }, () => Math.round(x() * 256) / 256));
  if (dtype === 'BF16') return Uint16Array.from(new Uint32Array(Float32Array.from({ length: n }, x).buffer), (u) => u >>> 16);
  if (dtype === 'F64') return Float64Array.from({ length: n }, () => x() * (1 + r() * 1e-9));
  return Float32Array.from({ length: n }, x);
}

/** A case's files and run options, drawn from `seed`. */
function drawCase(seed: number): string[] {
  const r = mulberry32(seed);
  const recon = r() < 0.5;
  const components = r() < 0.4 ? 2 : undefined;
  const F = 3 + Math.floor(r() * 10);
  const D = 2 + Math.floor(r() * 5);
  const shape = (n: number, w: number): number[] => (components === undefined ? [n, w] : [n, components, w]);
  const size = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
  const files: string[] = [];
  const rows: number[] = Array.from({ length: 1 + Math.floor(r() * 3) }, () => pick(r, ROWS));
  // Every FILE empty is refused: the last one has rows then.
  if (!rows.some((n) => n > 0)) rows[rows.length - 1] = 1025;
  for (const [i, n] of rows.entries()) {
    // Without source and decoded, some FILEs are .npy (one tensor each).
    if (!recon && r() < 0.5) {
      const dtype = pick(r, ['F16', 'F32', 'F64']);
      files.push(write(f(`s${seed}-${i}.npy`), npyBytes(values(r, size(shape(n, F)), dtype, 0.3) as Float32Array, shape(n, F))));
      continue;
    }
    const tensor = (w: number, density: number): SafetensorsTensor => {
      const dtype = pick(r, ['F16', 'BF16', 'F32', 'F64']);
      return { dtype, shape: shape(n, w), data: values(r, size(shape(n, w)), dtype, density) };
    };
    const tensors: Record<string, SafetensorsTensor> = { learned: tensor(F, 0.3) };
    if (recon) Object.assign(tensors, { source: tensor(D, 1), decoded: tensor(D, 1) });
    files.push(write(f(`s${seed}-${i}.safetensors`), safetensorsBytes(tensors)));
  }
  const all = [...LEARNED, ...(recon ? RECON : [])];
  // top and acthist always: a shard takes --top only with top, and merge --acthist-out needs acthist.
  const metrics = all.filter((m) => m === 'top' || m === 'acthist' || r() < 0.4);
  const args = [...files, ...(recon ? ['--tensor', 'learned', '--source', 'source', '--decoded', 'decoded'] : []), '--metrics', metrics.join(',')];
  if (metrics.includes('deadwindow')) args.push('--dead-window', String(1 + Math.floor(r() * 4000)));
  args.push('--top', String(1 + Math.floor(r() * 4)), '--l1-coefficient', String(r() * 0.01));
  return args;
}

describe('merge of randomly scheduled shards = one run, bit for bit', () => {
  for (const seed of [1, 2, 3, 4, 5, 6, 7, 8]) {
    it(`seed ${seed}`, async () => {
      const args = drawCase(seed);
      const r = mulberry32(1000 + seed);
      const outputs = (tag: string): string[] => ['--top-out', f(`${tag}-top.json`), '--acthist-out', f(`${tag}-acthist.json`)];
      const files = (tag: string): string[] => ['top', 'acthist'].map((x) => readFileSync(f(`${tag}-${x}.json`), 'utf8'));
      const single = await sae([...args, '--json', '--workers', String(1 + Math.floor(r() * 3)), ...outputs(`single${seed}`)]);
      expect(single.stderr, args.join(' ')).toBe('');
      for (const n of [1 + Math.floor(r() * 3), 3 + Math.floor(r() * 4)]) {
        const parts: string[] = [];
        for (let i = 0; i < n; i++) {
          const part = f(`seed${seed}-n${n}-${i}.json`);
          const batch = pick(r, ['1024', '2048', '3000', 'default']);
          const s = await sae([...args, '--workers', String(1 + Math.floor(r() * 3)), ...(batch === 'default' ? [] : ['--batch-rows', batch]), '--shard', `${i}/${n}`, '--state-out', part]);
          expect(s.stderr, `shard ${i} of ${n}`).toBe('');
          parts.push(part);
        }
        const merged = await sae(['merge', ...parts.sort(() => r() - 0.5), '--json', ...outputs(`merged${seed}-${n}`)]);
        expect(merged.stderr).toBe('');
        expect(comparable(merged.stdout), `${args.join(' ')}: N = ${n}`).toEqual(comparable(single.stdout));
        expect(files(`merged${seed}-${n}`), `N = ${n}: --top-out and --acthist-out`).toEqual(files(`single${seed}`));
      }
    }, 60_000);
  }
});
