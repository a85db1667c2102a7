/**
 * The canonical merge tree of the command (src/cli/merge-tree.ts): the leaves of a run cut at any
 * places into shards, each shard's nodes pushed through one counter, give the single run's tree,
 * written out as an expression (a string merge shows the grouping, which float merges are not
 * blind to).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { canonicalNodes } from '../../src/cli/shard.js';
import { floorPowerOfTwo, leafGrid, leafRowRange, leafRuns, MergeCounter, shardLeaves, type TreeNode } from '../../src/cli/merge-tree.js';

const paren = (a: string, b: string): string => `(${a} ${b})`;

/** The single run's expression over leaves [0, n), written from the definition: dyadic nodes, roots left to right. */
function reference(n: number): string {
  const node = (start: number, size: number): string => (size === 1 ? `${start}` : paren(node(start, size / 2), node(start + size / 2, size / 2)));
  const roots: string[] = [];
  let at = 0;
  for (let size = 2 ** 40; size >= 1; size /= 2) {
    if (at + size <= n) {
      roots.push(node(at, size));
      at += size;
    }
  }
  return roots.reduce((a, b) => paren(a, b));
}

/** The expression a shard holds: its leaves pushed one by one, its nodes kept. */
function shardNodes(start: number, end: number): readonly TreeNode<string>[] {
  const c = new MergeCounter<string>(paren);
  for (let j = start; j < end; j++) c.push({ start: j, size: 1, state: `${j}` });
  return c.nodes();
}

describe('MergeCounter', () => {
  it('folds leaves [0, n) into the dyadic tree of the reference, for n from 1 to 70', () => {
    for (let n = 1; n <= 70; n++) {
      const c = new MergeCounter<string>(paren);
      for (let j = 0; j < n; j++) c.push({ start: j, size: 1, state: `${j}` });
      expect(c.fold()).toBe(reference(n));
    }
  });

  it('gives the same expression for any cut into shards, and any batching inside a shard (property)', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.array(fc.integer({ min: 0, max: 300 }), { maxLength: 8 }), fc.integer({ min: 0, max: 5 }), (n, cutsRaw, maxLog) => {
        const cuts = [...new Set(cutsRaw.map((c) => c % (n + 1)))].sort((a, b) => a - b);
        const bounds = [0, ...cuts, n];
        const merged = new MergeCounter<string>(paren);
        for (let i = 0; i + 1 < bounds.length; i++) {
          const [a, b] = [bounds[i] as number, bounds[i + 1] as number];
          // Inside a shard, batches of aligned runs of at most 2^maxLog leaves (as the stream reads them).
          const c = new MergeCounter<string>(paren);
          const grid = leafGrid([n * 1024]);
          for (const run of leafRuns(grid, { start: a, end: b }, 2 ** maxLog)) c.push({ start: run.start, size: run.size, state: shardNodes(run.start, run.start + run.size)[0]?.state as string });
          expect(c.nodes().map((x) => [x.start, x.size])).toEqual(canonicalNodes({ start: a, end: b }).map((x) => [x.start, x.size]));
          for (const node of c.nodes()) merged.push(node);
        }
        expect(merged.fold()).toBe(reference(n));
      }),
      { numRuns: 300, seed: 1414 },
    );
  });

  it('differs from a left fold of the shards (what the tree replaces): the cut shows in the grouping', () => {
    // Leaves 0..5 in shards [0, 3) and [3, 6): left folds of each, then of the two.
    const left = (a: number, b: number): string => Array.from({ length: b - a }, (_, i) => `${a + i}`).reduce(paren);
    expect(paren(left(0, 3), left(3, 6))).not.toBe(reference(6));
    expect(paren(left(0, 2), left(2, 6))).not.toBe(paren(left(0, 3), left(3, 6)));
  });

  it('refuses nodes that are not aligned, not a power of two, or not in order', () => {
    const c = new MergeCounter<string>(paren);
    expect(() => c.push({ start: 1, size: 2, state: 'x' })).toThrow(/MergeCounter: a node must be 2\^k leaves from a multiple of 2\^k, got 2 from 1/);
    expect(() => c.push({ start: 0, size: 3, state: 'x' })).toThrow(/got 3 from 0/);
    c.push({ start: 0, size: 1, state: '0' });
    expect(() => c.push({ start: 2, size: 1, state: '2' })).toThrow(/MergeCounter: nodes must come in order, without gaps: leaves from 2 after leaves \[0, 1\)/);
    expect(c.fold()).toBe('0');
  });
});

describe('the leaf grid', () => {
  it('cuts each file from its first row; a leaf never spans two files', () => {
    const grid = leafGrid([1500, 300, 0, 2048, 1]);
    expect(grid.firstLeaf).toEqual([0, 2, 3, 3, 5, 6]);
    expect(grid.leaves).toBe(6);
    expect(leafRowRange(grid, { start: 1, end: 3 })).toEqual({ start: 1024, end: 1800 });
    expect(leafRowRange(grid, { start: 3, end: 6 })).toEqual({ start: 1800, end: 1800 + 2048 + 1 });
    expect(leafRowRange(grid, { start: 6, end: 6 })).toEqual({ start: 3849, end: 3849 });
    const runs = [...leafRuns(grid, { start: 0, end: 6 }, 4)].map((r) => [r.file, r.start, r.size]);
    expect(runs).toEqual([
      [0, 0, 2],
      [1, 2, 1],
      [3, 3, 1],
      [3, 4, 1],
      [4, 5, 1],
    ]);
  });

  it('gives shard I of N leaves [floor(I L / N), floor((I + 1) L / N)): every leaf once, empty shards when N > L', () => {
    for (const leaves of [0, 1, 5, 17]) {
      for (const n of [1, 2, 3, 5, 9, 40]) {
        let at = 0;
        for (let i = 0; i < n; i++) {
          const r = shardLeaves(leaves, i, n);
          expect(r.start).toBe(at);
          expect(r.end - r.start).toBeGreaterThanOrEqual(Math.floor(leaves / n));
          expect(r.end - r.start).toBeLessThanOrEqual(Math.ceil(leaves / n));
          at = r.end;
        }
        expect(at).toBe(leaves);
      }
    }
    expect(() => shardLeaves(4, 4, 4)).toThrow(/index must be an integer in \[0, 4\), got 4/);
    expect(floorPowerOfTwo(7)).toBe(4);
    expect(floorPowerOfTwo(8)).toBe(8);
  });
});
