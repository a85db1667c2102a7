/**
 * Two Ctrl-C at seeded random moments (from the first milliseconds, while modules and threads
 * load, to well into the computation), on runs with --top-out and --acthist-out and on a
 * --shard run with --state-out: the process ends by SIGINT (never an abort, exit code 134, or a
 * hang), no temporary file is left, and an output left under its real name is whole JSON. A
 * SIGTERM (\`timeout\`, \`kill\`, a supervisor) ends a run by SIGTERM at once, its temporary files removed.
 */
import { spawn } from 'node:child_process';
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { mulberry32 } from '../support/random.js';
import { npyBytes, scratchDir } from './files.js';
import { main, requireBuilt, root } from './run-cli.js';

const FEATURES = 1 << 16;
const ROWS = 1 << 14;
const RUNS = 14;

describe('sae-metrics on two Ctrl-C at random moments', () => {
  const tmp = scratchDir('reattack-pool-interrupts-');
  const big = tmp.path('big.npy');
  beforeAll(() => {
    // 4 GiB of zeros, sparse on disk: long enough to be interrupted.
    const header = npyBytes(new Float32Array(0), [ROWS, FEATURES]);
    writeFileSync(big, header);
    truncateSync(big, header.length + 4 * ROWS * FEATURES);
  });
  afterAll(() => tmp.remove());

  it(`${RUNS} seeded runs: ended by SIGINT, no temporary file, whole outputs`, async () => {
    requireBuilt();
    const r = mulberry32(0x2c7c);
    const outcomes: string[] = [];
    let bySignal = 0;
    for (let run = 0; run < RUNS; run++) {
      const dir = `r${run}`;
      const out = (name: string): string => tmp.path(`${dir}-${name}`);
      const shard = run % 3 === 2;
      const workers = String(1 + Math.floor(r() * 2));
      const args = shard
        ? [big, '--workers', workers, '--metrics', 'l0,top,acthist', '--shard', '0/2', '--state-out', out('state.json')]
        : [big, '--workers', workers, '--metrics', 'l0,top', '--top-out', out('top.json'), '--acthist-out', out('hist.json')];
      const child = spawn(process.execPath, [main, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      let stderr = '';
      child.stdout.resume();
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
      // The first Ctrl-C from 150 ms (the handler is installed once main.js runs) to 1.5 s in.
      await new Promise((resolve) => setTimeout(resolve, 150 + Math.floor(r() * 1350)));
      child.kill('SIGINT');
      await new Promise((resolve) => setTimeout(resolve, Math.floor(r() * 120)));
      child.kill('SIGINT');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      const ended = await closed;
      clearTimeout(timer);
      outcomes.push(`${run}: ${JSON.stringify(ended)}`);
      // A run that ended before the second Ctrl-C (130 on the first one, 0 when it was done) is fine too.
      const byInterrupt = ended.signal === 'SIGINT' || (ended.signal === null && (ended.code === 130 || ended.code === 0));
      if (ended.signal === 'SIGINT') bySignal++;
      expect(byInterrupt, `run ${run} (${args.slice(1).join(' ')}): ${JSON.stringify(ended)}, stderr ${stderr.slice(0, 400)}`).toBe(true);
      expect(stderr, `run ${run}`).not.toMatch(/IsGraphAsync|FATAL|Abort/i);
      const left = readdirSync(tmp.dir).filter((name) => name.startsWith(`.${dir}-`) || name.endsWith('.tmp'));
      expect(left, `run ${run}: temporary files`).toEqual([]);
      for (const name of readdirSync(tmp.dir).filter((n) => n.startsWith(`${dir}-`))) {
        expect(() => JSON.parse(readFileSync(tmp.path(name), 'utf8')), `run ${run}: ${name} is whole`).not.toThrow();
      }
    }
    console.log(outcomes.join('\n'));
    // Most runs were still going at the second Ctrl-C.
    expect(bySignal).toBeGreaterThan(RUNS / 2);
  }, 120_000);

  it('SIGTERM at seeded moments: ended by SIGTERM, no temporary file left', async () => {
    requireBuilt();
    const r = mulberry32(0x7e4a);
    for (let run = 0; run < 4; run++) {
      const dir = `t${run}`;
      const out = (name: string): string => tmp.path(`${dir}-${name}`);
      const args = [big, '--workers', '1', '--metrics', 'l0,top', '--top-out', out('top.json'), '--acthist-out', out('hist.json')];
      const child = spawn(process.execPath, [main, ...args], { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
      child.stdout.resume();
      child.stderr.resume();
      const closed = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.on('close', (code, signal) => resolve({ code, signal })));
      const temporaries = (): string[] => readdirSync(tmp.dir).filter((name) => name.startsWith(`.${dir}-`));
      // The first run once both temporary files exist; the others at random moments.
      const since = performance.now();
      if (run === 0) while (temporaries().length < 2 && performance.now() - since < 20_000) await new Promise((resolve) => setTimeout(resolve, 5));
      await new Promise((resolve) => setTimeout(resolve, 150 + Math.floor(r() * 1000)));
      child.kill('SIGTERM');
      expect(await closed, `run ${run}`).toEqual({ code: null, signal: 'SIGTERM' });
      expect(temporaries(), `run ${run}: temporary files`).toEqual([]);
    }
  }, 60_000);
});
