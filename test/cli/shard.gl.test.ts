/**
 * `--shard` and `merge` with the gpu.js backend (headlessgl under Xvfb, run by `npm run test:gl`):
 * the kernels differ, the tree does not, so three shards merged give the single run's bits.
 */
import { readFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../support/random.js';
import { npyBytes, scratchDir, write } from './files.js';
import { cli, requireBuilt } from './run-cli.js';
import { comparable } from '../support/reports.js';

const tmp = scratchDir('sae-metrics-shard-gl-');
afterAll(() => tmp.remove());

function floats(n: number, seed: number): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (r() < 0.3 ? r() * 2.9 : 0));
}

describe('--shard with --backend gpujs', () => {
  it('three shards at 1 and 2 workers merge into the single run’s bits', async () => {
    requireBuilt();
    const files = [
      write(tmp.path('a.npy'), npyBytes(floats(2500 * 16, 1), [2500, 16])),
      write(tmp.path('b.npy'), npyBytes(floats(700 * 16, 2), [700, 16])),
    ];
    const args = [...files, '--backend', 'gpujs', '--metrics', 'l1,l0,dead,density,actstats,top'];
    const single = await cli([...args, '--json', '--workers', '2']);
    expect(single.stderr).toBe('');
    expect(single.code).toBe(0);
    const parts = [0, 1, 2].map((i) => tmp.path(`p${i}.json`));
    for (const [i, part] of parts.entries()) {
      const r = await cli([...args, '--workers', String(1 + (i % 2)), '--shard', `${i}/3`, '--state-out', part]);
      expect(r.stderr).toBe('');
      expect(r.code).toBe(0);
    }
    expect((JSON.parse(readFileSync(parts[0] as string, 'utf8')) as { content: { setup: { backend: string } } }).content.setup.backend).toBe('gpujs');
    const merged = await cli(['merge', ...parts, '--json']);
    expect(merged.stderr).toBe('');
    expect(merged.code).toBe(0);
    expect(comparable(merged.stdout)).toEqual(comparable(single.stdout));
  }, 180_000);
});
