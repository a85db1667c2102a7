/**
 * Hostile activation files with the per-feature outputs asked for (`--metrics` with top, acthist
 * and deadwindow, `--top-out`, `--acthist-out`): each bad file is refused with one line naming it
 * and the problem, exit code 1, nothing on stdout, and no output file (nor temporary file) left
 * beside the outputs; a file of NaN and infinities is read, and its outputs are whole JSON.
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { npyBytes, safetensorsBytes, scratchDir } from './files.js';
import { cli, limited, requireBuilt } from './run-cli.js';

const values = Float32Array.from({ length: 60 }, (_, i) => (i % 3 === 0 ? i / 7 : 0));
const header = (h: string): Buffer => npyBytes(values, [6, 10], { header: h });

const BAD: [string, Buffer, RegExp][] = [
  ['truncated.npy', npyBytes(values, [6, 10]).subarray(0, 150), /the data is truncated: shape \[6, 10\] of '<f4' needs 240 bytes/],
  ['fortran.npy', npyBytes(values, [6, 10], { fortranOrder: true }), /fortran_order is True/],
  ['int.npy', npyBytes(values, [6, 10], { descr: '<i8' }), /unsupported dtype '<i8'/],
  ['lying-rows.npy', npyBytes(values, [6e9, 10]), /needs 240000000000 bytes after the header/],
  ['huge-shape.npy', header("{'descr': '<f4', 'fortran_order': False, 'shape': (9007199254740992, 1024), }"), /shape must be a tuple of non-negative integers/],
  ['no-rows-huge-width.npy', npyBytes(new Float32Array(0), [0, 2 ** 40]), /no activation vectors/],
  ['no-features.npy', npyBytes(new Float32Array(0), [4, 0]), /no features on its last axis/],
  ['rank-1.npy', npyBytes(values, [60]), /expected rank 2/],
  ['lying.safetensors', safetensorsBytes({ a: { dtype: 'F32', shape: [6, 11], data: values, offsets: [0, 264] } }), /past the end of the file/],
  ['int.safetensors', safetensorsBytes({ a: { dtype: 'I32', shape: [6, 10], data: values } }), /dtype I32/],
  ['huge.safetensors', safetensorsBytes({ a: { dtype: 'F32', shape: [2 ** 53, 2], data: values, offsets: [0, 240] } }), /shape must be an array of non-negative integers/],
];

describe('sae-metrics with per-feature outputs, on hostile files', () => {
  const tmp = scratchDir('attack-pool-hostile-');
  afterAll(() => tmp.remove());
  const args = (out: string): string[] => ['--metrics', 'l1,top,acthist,deadwindow', '--top-out', join(out, 'top.json'), '--acthist-out', join(out, 'hist.json'), '--workers', '2'];

  it('refuses each bad file in one line, exit code 1, and leaves no output behind', async () => {
    requireBuilt();
    const runs = await limited(
      BAD.map(([name, bytes]) => () => {
        const file = tmp.path(name);
        writeFileSync(file, bytes);
        const out = tmp.path(`out-${name}`);
        mkdirSync(out);
        return cli([file, ...args(out)]);
      }),
    );
    runs.forEach((run, i) => {
      const [name, , problem] = BAD[i] as [string, Buffer, RegExp];
      expect(run.code, name).toBe(1);
      expect(run.stdout, name).toBe('');
      const lines = run.stderr.trimEnd().split('\n');
      expect(lines, name).toHaveLength(1);
      expect(lines[0], name).toContain(`sae-metrics: ${tmp.path(name)}: `);
      expect(lines[0], name).toMatch(problem);
      expect(readdirSync(tmp.path(`out-${name}`)), name).toEqual([]);
    });
  }, 60_000);

  it('reads a file of NaN, infinities, -0 and subnormals: whole JSON outputs, no temporary file', async () => {
    const x = Float32Array.from({ length: 60 }, (_, i) => [NaN, Infinity, -Infinity, 0, -0, 1e-45, 3e38, 2][i % 8] as number);
    const file = tmp.path('nan.npy');
    writeFileSync(file, npyBytes(x, [6, 10]));
    const out = tmp.path('out-nan');
    mkdirSync(out);
    const run = await cli([file, ...args(out), '--json']);
    expect(run.code, run.stderr).toBe(0);
    expect(readdirSync(out).sort()).toEqual(['hist.json', 'top.json']);
    const top = JSON.parse(readFileSync(join(out, 'top.json'), 'utf8')) as { vectors: number; top: { values: unknown[]; vectors: number[] }[] };
    expect(top.vectors).toBe(6);
    // Feature 1: +Infinity on rows 0 and 4, 2 on row 3, the subnormal on row 2 (NaN and -0 never fire).
    expect(top.top[1]).toEqual({ values: ['Infinity', 'Infinity', 2, 1.401298464324817e-45], vectors: [0, 4, 3, 2] });
    const hist = JSON.parse(readFileSync(join(out, 'hist.json'), 'utf8')) as { components: { features: { fired: number }[] }[] };
    // Value i is pattern[i % 8]; feature f holds values f, 10 + f, ..., 50 + f (by hand: feature 4
    // holds 3e38 twice and no other positive value, feature 5 all but one 0).
    expect(hist.components[0]?.features.map((f) => f.fired)).toEqual([1, 4, 1, 4, 2, 5, 2, 5, 1, 4]);
    const report = JSON.parse(run.stdout) as { metrics: { l1: unknown } };
    expect(report.metrics.l1).toBe('NaN');
  }, 60_000);
});
