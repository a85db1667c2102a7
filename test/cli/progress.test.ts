import { describe, expect, it } from 'vitest';
import { formatDuration, groupDigits, ProgressBar } from '../../src/cli/progress.js';

function fakeTerminal(columns?: number): { writes: string[]; write(s: string): void; columns?: number } {
  const writes: string[] = [];
  return { writes, write: (s) => void writes.push(s), ...(columns === undefined ? {} : { columns }) };
}

describe('ProgressBar', () => {
  it('shows vectors done of the total, the read rate in GB/s and the time left', () => {
    let now = 1000;
    const term = fakeTerminal(100);
    const bar = new ProgressBar(term, { total: 4_000_000, now: () => now });
    now += 2000;
    // 1,000,000 vectors and 3 GB in 2 s: 1.5 GB/s; 3,000,000 left at 500,000 a second: 6 s.
    bar.update(1_000_000, 3e9);
    expect(term.writes).toHaveLength(1);
    const line = term.writes[0] as string;
    expect(line.startsWith('\r[')).toBe(true);
    expect(line.endsWith('\x1b[K')).toBe(true);
    expect(line).toContain('  25% 1,000,000/4,000,000 vectors  1.50 GB/s  0:06 left');
    const bar40 = /\[([#-]+)\]/.exec(line)?.[1] as string;
    expect(bar40.replace(/-/g, '')).toHaveLength(Math.round(bar40.length / 4));
    expect(line.length - '\r'.length - '\x1b[K'.length).toBeLessThanOrEqual(100);
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
