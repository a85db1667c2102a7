/**
 * A second Ctrl-C exits at once, without waiting for the outputs to be written: the temporary files
 * that `--top-out` and `--acthist-out` are written through must not be left behind (nor, ever, a
 * partial output under the real name). It ends the process by the signal itself, not through
 * `process.exit`, whose teardown terminates the worker threads: one still loading its module
 * then aborts Node 20 (exit code 134, a native stack trace on stderr).
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { npyBytes, scratchDir } from './files.js';
import { main, requireBuilt, root } from './run-cli.js';

const FEATURES = 1 << 16;
const ROWS = 1 << 14;

describe('sae-metrics on two Ctrl-C', () => {
  const tmp = scratchDir('attack-pool-interrupt-');
  afterAll(() => tmp.remove());

  it('ends the process by SIGINT, leaves no temporary output file, and any output it left is whole', async () => {
    requireBuilt();
    // 4 GiB of zeros, sparse on disk: long enough to be interrupted.
    const big = tmp.path('big.npy');
    const header = npyBytes(new Float32Array(0), [ROWS, FEATURES]);
    writeFileSync(big, header);
    truncateSync(big, header.length + 4 * ROWS * FEATURES);
    const top = tmp.path('top.json');
    const hist = tmp.path('hist.json');
    const child = spawn(process.execPath, [main, big, '--workers', '1', '--metrics', 'l0,top', '--top-out', top, '--acthist-out', hist], {
      cwd: root,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout.resume();
    child.stderr.resume();
    const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
    // The temporary files are made before any input is read, once the SIGINT handler is installed.
    const temporaries = (): string[] => readdirSync(tmp.dir).filter((name) => name.endsWith('.tmp'));
    const since = performance.now();
    while (temporaries().length < 2 && performance.now() - since < 20_000) await new Promise((r) => setTimeout(r, 5));
    expect(temporaries()).toHaveLength(2);
    await new Promise((r) => setTimeout(r, 200));
    child.kill('SIGINT');
    await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGINT');
    // The outputs (a 20 MB histogram file) take far longer than 20 ms: the second Ctrl-C comes first.
    expect(await closed).toEqual({ code: null, signal: 'SIGINT' });
    expect(temporaries()).toEqual([]);
    // If the first Ctrl-C got as far as writing them, they are whole and say they are partial.
    for (const path of [top, hist]) {
      if (!readdirSync(tmp.dir).includes(path.slice(tmp.dir.length + 1))) continue;
      const out = JSON.parse(readFileSync(path, 'utf8')) as { vectors: number };
      expect(out.vectors).toBeLessThan(ROWS);
    }
  }, 60_000);
});
