/**
 * The command's memory bound, measured: a child process reads a file one row of which is 64 MiB
 * (2^24 features), computes every per-feature metric, and its peak resident memory (every thread)
 * must stay within the bound the README states:
 *
 *   peak RSS <= 250 MB + B + (4 + W / 2) * S
 *
 * and with acthist (at 2^20 features: its counts H = 82 S are 688 MB) 3 H more.
 *
 * with S = 8 * components * features bytes (the fired counts), B the bytes of one batch, W the
 * workers. The file is sparse on disk (a few rows written, the rest holes).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, readFileSync, writeSync, ftruncateSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { liveBatchLimit, LIVE_BYTES } from '../../src/cli/stream.js';
import { npyBytes, scratchDir } from './files.js';
import { main, requireBuilt, root } from './run-cli.js';

const tmp = scratchDir('sae-metrics-memory-');
afterAll(() => tmp.remove());

const F = 2 ** 24;
const S = 8 * F;
const B = 4 * F; // one row per batch: a row is past the 16 MiB batch size

/** A [2, features] float32 .npy file: row 0 fires features [0, 1024), row 1 features [0, 512); holes elsewhere. */
function wideFile(features = F): string {
  const path = tmp.path(`wide-${features}.npy`);
  const header = npyBytes(new Float32Array(0), [2, features]);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header);
    ftruncateSync(fd, header.length + 8 * features);
    writeSync(fd, new Uint8Array(new Float32Array(1024).fill(1).buffer), 0, 4096, header.length);
    writeSync(fd, new Uint8Array(new Float32Array(512).fill(2).buffer), 0, 2048, header.length + 4 * features);
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * A [rows, features] float32 .npy file of dense learned activations: every value fired but one
 * in 97 (0), each in [0.5, 1.5).
 */
function denseFile(rows: number, features: number): string {
  const path = tmp.path(`dense-${rows}x${features}.npy`);
  const header = npyBytes(new Float32Array(0), [rows, features]);
  const chunk = new Float32Array(2 ** 20);
  const fd = openSync(path, 'w');
  try {
    writeSync(fd, header);
    // Value i (row-major) is 0 where i is a multiple of 97: no feature is 0 on every row.
    for (let from = 0; from < rows * features; from += chunk.length) {
      const n = Math.min(chunk.length, rows * features - from);
      for (let j = 0; j < n; j++) chunk[j] = (from + j) % 97 === 0 ? 0 : 0.5 + (((from + j) * 7919) % 1000) / 1000;
      writeSync(fd, new Uint8Array(chunk.buffer, 0, 4 * n));
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

/**
 * The README's bound: 250 MB + B + (4 + W/2) S, and with deadwindow (4 + W) S + W x (8 MB + B/4)
 * more (its last-fired rows, a second state of S, and each worker's scratch for them: S/2, up to
 * S, and room for at most 2^17 fired entries of a shard or one for 8 of its values).
 */
function boundOf(b: number, s: number, workers: number, deadwindow: boolean): number {
  return 250e6 + b + (4 + workers / 2) * s + (deadwindow ? (4 + workers) * s + workers * (8e6 + b / 4) : 0);
}

/** Runs the command with its stdout to a file; resolves with the exit code, stdout and peak RSS in bytes. */
function measured(args: readonly string[]): Promise<{ code: number | null; stdout: string; stderr: string; peak: number }> {
  const rssFile = tmp.path(`rss-${Math.random().toString(36).slice(2)}`);
  const outFile = `${rssFile}.out`;
  const out = openSync(outFile, 'w');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', `${root}test/cli/max-rss.mjs`, main, ...args], {
      cwd: root,
      env: { ...process.env, SAE_METRICS_MAX_RSS_FILE: rssFile },
      stdio: ['ignore', out, 'pipe'],
    });
    let stderr = '';
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      closeSync(out);
      resolve({ code, stdout: readFileSync(outFile, 'utf8'), stderr, peak: 1024 * Number(readFileSync(rssFile, 'utf8')) });
    });
  });
}

describe('the command line stays within its stated memory bound, whatever the width', () => {
  it('at 2^24 features: every per-feature metric, as a table and as JSON, with 1 and 2 workers', async () => {
    requireBuilt();
    const file = wideFile();
    for (const workers of [1, 2]) {
      const bound = 250e6 + B + (4 + workers / 2) * S;
      const args = [file, '--workers', String(workers), '--metrics', 'l1,l0,dead,density,fired'];
      const table = await measured(args);
      expect(table.stderr).toBe('');
      expect(table.code).toBe(0);
      expect(table.stdout).toMatch(new RegExp(`^dead +${(F - 1024).toLocaleString('en-US')} / `, 'm'));
      expect(table.peak, `table, ${workers} workers: ${(table.peak / 1e6).toFixed(0)} MB`).toBeLessThanOrEqual(bound);
      const json = await measured([...args, '--json']);
      expect(json.code).toBe(0);
      expect(json.stdout.length).toBeGreaterThan(2 * 2 * F);
      expect(json.stdout.slice(0, 200)).toContain(`"features":${F}`);
      expect(json.peak, `json, ${workers} workers: ${(json.peak / 1e6).toFixed(0)} MB`).toBeLessThanOrEqual(bound);
    }
  }, 240_000);

  it('at 2^20 features with acthist and --acthist-out: within the bound plus 3 H (H its counts, 82 S), with 1 and 2 workers', async () => {
    requireBuilt();
    const features = 2 ** 20;
    const s = 8 * features;
    const h = 82 * s;
    const file = wideFile(features);
    for (const workers of [1, 2]) {
      // B: both rows are one batch (8 MiB, under the default 16 MiB).
      const bound = 250e6 + 8 * features + (4 + workers / 2) * s + 3 * h;
      const out = tmp.path(`acthist-${workers}.json`);
      const run = await measured([file, '--workers', String(workers), '--metrics', 'l1,l0,dead,density,fired,acthist', '--acthist-out', out]);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(/^ {2}fired +1,536 /m);
      const head = readFileSync(out, 'utf8').slice(0, 4000);
      expect(head).toContain('"format":"sae-metrics/feature-activation-histogram"');
      expect(head).toContain('{"feature":0,"fired":2,');
      expect(run.peak, `acthist, ${workers} workers: ${(run.peak / 1e6).toFixed(0)} MB`).toBeLessThanOrEqual(bound);
    }
  }, 240_000);

  it('with deadwindow at 2^24 features (sparse): within the bound plus its term, with 1 and 2 workers', async () => {
    requireBuilt();
    const file = wideFile();
    for (const workers of [1, 2]) {
      const run = await measured([file, '--workers', String(workers), '--metrics', 'l1,l0,dead,density,fired,deadwindow', '--dead-window', '2']);
      expect(run.stderr).toBe('');
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(new RegExp(`^deadwindow +${(F - 1024).toLocaleString('en-US')} / `, 'm'));
      const bound = boundOf(B, S, workers, true);
      expect(run.peak, `deadwindow, ${workers} workers: ${(run.peak / 1e6).toFixed(0)} MB, bound ${(bound / 1e6).toFixed(0)} MB`).toBeLessThanOrEqual(bound);
    }
  }, 240_000);

  it('on dense learned activations (every value fired but one in 97): wide and narrow, the defaults, every per-feature metric and deadwindow, with 1 and 2 workers', async () => {
    requireBuilt();
    const cases: { rows: number; features: number; metrics: string | undefined }[] = [
      // A row is a batch and a shard (16 MiB, 4 Mi entries): S = 32 MiB.
      { rows: 2, features: 2 ** 22, metrics: undefined },
      { rows: 2, features: 2 ** 22, metrics: 'l1,l0,dead,density,fired,deadwindow' },
      // 1024 rows a batch and a shard (16 MiB, 4 Mi entries), S tiny: a worker's room for the
      // entries (32 MiB, kept) would be past the bound.
      { rows: 4096, features: 4096, metrics: 'deadwindow' },
      { rows: 4096, features: 4096, metrics: 'l1,l0,dead,density,fired,deadwindow' },
    ];
    for (const c of cases) {
      const file = denseFile(c.rows, c.features);
      const s = 8 * c.features;
      const b = 4 * c.features * Math.min(c.rows, Math.max(1, Math.floor(2 ** 24 / (4 * c.features))));
      for (const workers of [1, 2]) {
        const metrics = c.metrics === undefined ? [] : ['--metrics', c.metrics, '--dead-window', '2'];
        const run = await measured([file, '--workers', String(workers), ...metrics]);
        const what = `[${c.rows}, ${c.features}], ${c.metrics ?? 'defaults'}, ${workers} workers`;
        expect(run.stderr, what).toBe('');
        expect(run.code, what).toBe(0);
        // Every feature fired (one in 97 values is 0, never a whole column).
        if (c.metrics === undefined || c.metrics.includes('dead,')) expect(run.stdout, what).toMatch(new RegExp(`^dead +0 / ${c.features.toLocaleString('en-US')} `, 'm'));
        const deadwindow = c.metrics?.includes('deadwindow') === true;
        if (deadwindow) expect(run.stdout, what).toMatch(new RegExp(`^deadwindow +0 / ${c.features.toLocaleString('en-US')} `, 'm'));
        const bound = boundOf(b, s, workers, deadwindow);
        expect(run.peak, `${what}: ${(run.peak / 1e6).toFixed(0)} MB, bound ${(bound / 1e6).toFixed(0)} MB`).toBeLessThanOrEqual(bound);
      }
    }
  }, 240_000);

  it('keeps one wide batch alive at a time, and up to maxInFlight + 1 narrow ones', () => {
    expect(liveBatchLimit(B, S, 4)).toBe(1);
    expect(liveBatchLimit(B, 0, 4)).toBe(1);
    expect(liveBatchLimit(16 * 2 ** 20, 8 * 16384, 4)).toBe(5);
    expect(liveBatchLimit(16 * 2 ** 20, 8 * 2 ** 20, 4)).toBe(4);
    expect(liveBatchLimit(2 ** 20, 0, 1)).toBe(2);
    // Whatever fits: at most LIVE_BYTES of batches and partial states, unless one batch is more.
    for (const [b, s] of [[3e6, 1e6], [40e6, 10e6], [1e9, 2e9]] as const) {
      const n = liveBatchLimit(b, s, 8);
      expect(n === 1 || n * (b + s) <= LIVE_BYTES).toBe(true);
    }
  });
});
