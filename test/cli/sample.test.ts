/**
 * The README's command-line walk-through: `scripts/make-sample.mjs` writes a .npy file and
 * `sae-metrics` reads it. The file's densities, L0 and L1 are counted here straight from its bytes
 * (its header parsed by hand), and the command's --json must agree; every 50th feature never fires.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import { scratchDir } from './files.js';
import { cli, requireBuilt, root } from './run-cli.js';

const run = promisify(execFile);
const dir = scratchDir('sae-metrics-sample-');
afterAll(() => dir.remove());

describe('scripts/make-sample.mjs, then sae-metrics on its file', () => {
  it('writes a .npy file whose statistics the command reports', async () => {
    requireBuilt();
    const [N, F] = [3000, 200];
    const file = dir.path('sample.npy');
    await run(process.execPath, ['scripts/make-sample.mjs', file, String(N), String(F)], { cwd: root });
    expect(existsSync(file)).toBe(true);

    const bytes = readFileSync(file);
    expect(bytes.subarray(0, 6).toString('latin1')).toBe('\x93NUMPY');
    const headerEnd = 10 + bytes.readUInt16LE(8);
    expect(bytes.subarray(10, headerEnd).toString('latin1')).toContain(`'shape': (${N}, ${F})`);
    const data = new Float32Array(bytes.buffer.slice(bytes.byteOffset + headerEnd, bytes.byteOffset + bytes.length));
    expect(data.length).toBe(N * F);
    const fired = new Array<number>(F).fill(0);
    let l1 = 0;
    let l0 = 0;
    for (let i = 0; i < data.length; i++) {
      const x = data[i] as number;
      l1 += Math.abs(x);
      if (x !== 0) l0++;
      if (x > 0) fired[i % F]!++;
    }

    const r = await cli([file, '--json', '--workers', '2']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const out = JSON.parse(r.stdout) as { vectors: number; metrics: Record<string, unknown> };
    expect(out.vectors).toBe(N);
    expect(out.metrics.density).toEqual(fired.map((n) => n / N));
    expect(out.metrics.dead).toBe(fired.filter((n) => n === 0).length);
    for (let f = 0; f < F; f += 50) expect(fired[f], `feature ${f} never fires`).toBe(0);
    expect(Math.abs((out.metrics.l0 as number) - l0 / N)).toBeLessThanOrEqual(1e-12 * (l0 / N));
    expect(Math.abs((out.metrics.l1 as number) - l1 / N)).toBeLessThanOrEqual(1e-6 * (l1 / N));
  }, 60_000);
});
