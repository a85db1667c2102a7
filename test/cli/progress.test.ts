import { describe, expect, it } from 'vitest';
import { formatDuration, groupDigits } from '../../src/cli/numbers.js';
import { ProgressBar } from '../../src/cli/progress.js';

function fakeTerminal(columns?: number): { writes: string[]; write(s: string): void; columns?: number } {
  const writes: string[] = [];
  return { writes, write: (s) => void writes.push(s), ...(columns === undefined ? {} : { columns }) };
}

describe('ProgressBar', () => {
  it('shows vectors done of the total, the read rate in GB/s, the time elapsed, the time left and the file', () => {
    let now = 1000;
    const term = fakeTerminal(140);
    const bar = new ProgressBar(term, { total: 4_000_000, files: ['a.npy', 'acts-2.npy'], now: () => now, intervalMs: 0 });
    // The first batch, after 1 s of start-up: no estimate yet.
    now += 1000;
    bar.update(200_000, 0.6e9, 'a.npy');
    // 1,000,000 vectors and 3 GB in 3 s: 1.00 GB/s; since the first batch, 800,000 vectors in 2 s:
    // 3,000,000 left at 400,000 a second is 7.5 s, shown as 0:08.
    now += 2000;
    bar.update(1_000_000, 3e9, 'acts-2.npy');
    const [first, line] = term.writes as [string, string];
    expect(first).toContain(' 5% 200,000/4,000,000 vectors  0.60 GB/s  0:01 elapsed  a.npy (1/2)');
    expect(first).not.toContain('left');
    expect(line.startsWith('\r[')).toBe(true);
    expect(line.endsWith('\x1b[K')).toBe(true);
    expect(line).toContain('  25% 1,000,000/4,000,000 vectors  1.00 GB/s  0:03 elapsed  0:08 left  acts-2.npy (2/2)');
    const bar40 = /\[([#-]+)\]/.exec(line)?.[1] as string;
    expect(bar40.replace(/-/g, '')).toHaveLength(Math.round(bar40.length / 4));
    expect(line.length - '\r'.length - '\x1b[K'.length).toBeLessThan(140);
  });

  it('shows no time left before 2 s and 5% of the vectors, whatever the first batches suggest', () => {
    let now = 0;
    const term = fakeTerminal(200);
    const bar = new ProgressBar(term, { total: 1000, now: () => now, intervalMs: 0 });
    const seen: [number, boolean][] = [];
    for (const [t, v] of [[1500, 10], [1900, 300], [2100, 40], [2100, 49], [2500, 50], [6000, 500]] as const) {
      now = t;
      bar.update(v, v * 1000);
      seen.push([v, (term.writes[term.writes.length - 1] as string).includes('left')]);
    }
    // 300 vectors at 1.9 s: too early; 40 at 2.1 s (4%): too few; 50 (5%) at 2.5 s: shown.
    expect(seen).toEqual([[10, false], [300, false], [40, false], [49, false], [50, true], [500, true]]);
    // From the first batch (10 vectors at 1.5 s): 490 vectors in 4.5 s, 500 left: 4.6 s.
    expect(term.writes[term.writes.length - 1]).toContain('0:06 elapsed  0:05 left');
  });

  it('keeps the line within the terminal, shortening a long file name from the left', () => {
    const term = fakeTerminal(80);
    const long = `/data/${'x'.repeat(100)}/acts-000017.safetensors`;
    const bar = new ProgressBar(term, { total: 10, files: [long], now: () => 5000, intervalMs: 0 });
    bar.update(5, 100, long);
    const line = (term.writes[0] as string).slice(1, -3);
    expect(line.length).toBeLessThan(80);
    expect(line).toMatch(/ 0:00 elapsed  …\S+-000017\.safetensors$/);
  });

  it('redraws at most every intervalMs and clears only what it drew', () => {
    let now = 0;
    const term = fakeTerminal();
    const bar = new ProgressBar(term, { total: 100, now: () => now, intervalMs: 100 });
    for (let i = 1; i <= 100; i++) {
      now += 10;
      bar.update(i, i * 1000);
    }
    // 1000 ms of updates, every 10 ms: the first, then one per 100 ms.
    expect(term.writes).toHaveLength(10);
    bar.clear();
    expect(term.writes[10]).toBe('\r\x1b[K');
    bar.clear();
    expect(term.writes).toHaveLength(11);
    const quiet = fakeTerminal();
    new ProgressBar(quiet, { total: 5 }).clear();
    expect(quiet.writes).toEqual([]);
  });

  it('formats counts and durations', () => {
    expect(groupDigits(1234567)).toBe('1,234,567');
    expect(formatDuration(5)).toBe('0:05');
    expect(formatDuration(61)).toBe('1:01');
    expect(formatDuration(3725)).toBe('1:02:05');
    expect(formatDuration(NaN)).toBe('--:--');
  });
});
