/**
 * Parts computed by different builds of sae-metrics: their kernels and trees may round
 * differently, so that merged they would give bits that neither build's single run gives. A part
 * records the version that computed it, and merge refuses parts of different versions (the build
 * is told apart here by stubbing the version a shard records), and a part of the earlier format,
 * which recorded none.
 */
import { createHash } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { npyBytes, scratchDir, write } from './files.js';
import { pooledCli } from './in-process.js';
import { floats } from '../support/reports.js';

const build = vi.hoisted(() => ({ version: '0.1.0' }));
vi.mock('../../src/cli/version.js', () => ({ packageVersion: () => build.version }));

const tmp = scratchDir('sae-metrics-shard-version-');
const f = tmp.path;
const { sae, close } = pooledCli();
afterAll(async () => {
  await close();
  tmp.remove();
});

describe('merge refuses parts computed by different versions of sae-metrics', () => {
  it('shard 1 of 3 computed by another version: one line naming it, exit code 1; a part of the earlier format is refused as such', async () => {
    const input = write(f('a.npy'), npyBytes(floats(2600 * 6, 5, 0.3), [2600, 6]));
    const parts: string[] = [];
    for (const [i, version] of ['0.1.0', '0.2.0', '0.1.0'].entries()) {
      build.version = version;
      const part = f(`p${i}.json`);
      const s = await sae([input, '--metrics', 'l1,l0,top,actstats', '--workers', '1', '--shard', `${i}/3`, '--state-out', part]);
      expect(s.stderr).toBe('');
      parts.push(part);
    }
    build.version = '0.1.0';
    const m = await sae(['merge', ...parts, '--json']);
    expect(m).toMatchObject({ code: 1, stdout: '' });
    expect(m.stderr).toBe(
      `sae-metrics: ${parts[1]}: does not belong with ${parts[0]}: the sae-metrics version that computed it (give every shard the same version) is "0.2.0", not "0.1.0"\n`,
    );
    // The same parts, all of one version, merge.
    const again = f('p1-again.json');
    expect((await sae([input, '--metrics', 'l1,l0,top,actstats', '--workers', '1', '--shard', '1/3', '--state-out', again])).code).toBe(0);
    expect((await sae(['merge', parts[0] as string, again, parts[2] as string])).code).toBe(0);
    // A part of format version 1 (no version recorded), resealed: refused by its format version.
    const o = JSON.parse(readFileSync(again, 'utf8')) as { content: { setup: Record<string, unknown> } };
    delete o.content.setup.packageVersion;
    const content = JSON.stringify(o.content);
    const old = f('old.json');
    writeFileSync(old, `{"format":"sae-metrics/shard-state","version":1,"sha256":"${createHash('sha256').update(content).digest('hex')}","content":${content}}\n`);
    const r = await sae(['merge', parts[0] as string, old, parts[2] as string]);
    expect(r).toMatchObject({ code: 1, stdout: '' });
    expect(r.stderr).toBe(`sae-metrics: ${old}: has version 1 of sae-metrics/shard-state; this sae-metrics reads version 2\n`);
  }, 60_000);
});
