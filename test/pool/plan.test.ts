/**
 * The shard plan and the merge tree (src/pool/plan.ts): what makes a result independent of the
 * worker count and of the order workers finish in.
 *
 * - `planShards(rows, shardRows)` covers rows 0..rows-1 exactly once, in order, with shards of
 *   `shardRows` rows and a shorter last one, and no empty shard;
 * - `treeMerge(items, merge)` merges in index order through a fixed balanced tree (left operand:
 *   the first ceil(n / 2) items), calls `merge` n - 1 times, equals a left fold for an associative
 *   merge, and throws a RangeError on an empty list.
 *
 * Expected trees are written by hand from the rule above.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { planShards, treeMerge, DEFAULT_SHARD_ROWS } from '../../src/index.js';
import type { RowRange } from '../../src/index.js';

/** Every broken invariant of a plan, checked against rows and shardRows (empty when valid). */
function planProblems(plan: readonly RowRange[], rows: number, shardRows: number): string[] {
  const problems: string[] = [];
  if (plan.length !== Math.ceil(rows / shardRows)) problems.push(`${plan.length} shards`);
  let next = 0;
  plan.forEach((shard, i) => {
    if (shard.start !== next) problems.push(`shard ${i} starts at ${shard.start}, not ${next}`);
    const length = shard.end - shard.start;
    if (i < plan.length - 1 && length !== shardRows) problems.push(`shard ${i} has ${length} rows`);
    if (i === plan.length - 1 && (length <= 0 || length > shardRows)) problems.push(`last shard has ${length} rows`);
    next = shard.end;
  });
  if (next !== rows) problems.push(`the plan ends at ${next}`);
  return problems;
}

describe('planShards', () => {
  it('cuts rows into consecutive shards of shardRows rows, the last one shorter (hand-written cases)', () => {
    expect(planShards(10, 4)).toEqual([
      { start: 0, end: 4 },
      { start: 4, end: 8 },
      { start: 8, end: 10 },
    ]);
    expect(planShards(8, 4)).toEqual([
      { start: 0, end: 4 },
      { start: 4, end: 8 },
    ]);
    expect(planShards(3, 1)).toEqual([
      { start: 0, end: 1 },
      { start: 1, end: 2 },
      { start: 2, end: 3 },
    ]);
    expect(planShards(3, 1024)).toEqual([{ start: 0, end: 3 }]);
    expect(planShards(1, 1)).toEqual([{ start: 0, end: 1 }]);
    expect(planShards(0, 4)).toEqual([]);
  });

  it('covers every row exactly once, in order, for every (rows, shardRows) up to 70 x 70', () => {
    for (let rows = 0; rows <= 70; rows++) {
      for (let shardRows = 1; shardRows <= 70; shardRows++) {
        const plan = planShards(rows, shardRows);
        const seen: number[] = [];
        for (const { start, end } of plan) for (let r = start; r < end; r++) seen.push(r);
        expect(seen.every((r, i) => r === i) && seen.length === rows, `rows ${rows}, shardRows ${shardRows}`).toBe(true);
        expect(planProblems(plan, rows, shardRows), `rows ${rows}, shardRows ${shardRows}`).toEqual([]);
      }
    }
  });

  it('has ceil(rows / shardRows) shards of shardRows rows and a shorter last one, for large random sizes', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 100_000 }), fc.integer({ min: 1, max: 5000 }), (rows, shardRows) => {
        expect(planProblems(planShards(rows, shardRows), rows, shardRows)).toEqual([]);
      }),
      { numRuns: 100 },
    );
  });

  it('does not depend on anything but rows and shardRows (same plan twice, fresh objects)', () => {
    const a = planShards(2500, 1024);
    const b = planShards(2500, 1024);
    expect(a).toEqual(b);
    expect(a).not.toBe(b);
    expect(a).toEqual([
      { start: 0, end: 1024 },
      { start: 1024, end: 2048 },
      { start: 2048, end: 2500 },
    ]);
  });

  it('defaults to 1024 rows per shard', () => {
    expect(DEFAULT_SHARD_ROWS).toBe(1024);
  });
});

/** A merge tree as data: a leaf index, or a node. */
type Tree = number | { readonly l: Tree; readonly r: Tree };

function leaves(t: Tree): number[] {
  return typeof t === 'number' ? [t] : [...leaves(t.l), ...leaves(t.r)];
}

function depth(t: Tree): number {
  return typeof t === 'number' ? 0 : 1 + Math.max(depth(t.l), depth(t.r));
}

/** The nodes whose left operand does not hold ceil(size / 2) leaves, as "left/size". */
function unbalancedNodes(t: Tree): string[] {
  const bad: string[] = [];
  const size = (n: Tree): number => {
    if (typeof n === 'number') return 1;
    const l = size(n.l);
    const all = l + size(n.r);
    if (l !== Math.ceil(all / 2)) bad.push(`${l}/${all}`);
    return all;
  };
  size(t);
  return bad;
}

const letters = (n: number): string[] => Array.from({ length: n }, (_, i) => String.fromCharCode(97 + i));
const paren = (a: string, b: string): string => `(${a}${b})`;

describe('treeMerge', () => {
  it('merges in index order through the fixed balanced tree (hand-written trees)', () => {
    expect(treeMerge(letters(1), paren)).toBe('a');
    expect(treeMerge(letters(2), paren)).toBe('(ab)');
    expect(treeMerge(letters(3), paren)).toBe('((ab)c)');
    expect(treeMerge(letters(4), paren)).toBe('((ab)(cd))');
    expect(treeMerge(letters(5), paren)).toBe('(((ab)c)(de))');
    expect(treeMerge(letters(6), paren)).toBe('(((ab)c)((de)f))');
    expect(treeMerge(letters(7), paren)).toBe('(((ab)(cd))((ef)g))');
    expect(treeMerge(letters(8), paren)).toBe('(((ab)(cd))((ef)(gh)))');
    expect(treeMerge(letters(9), paren)).toBe('((((ab)c)(de))((fg)(hi)))');
  });

  it('for every n up to 300: leaves in index order, left operand ceil(size / 2) at every node, depth ceil(log2 n), n - 1 merges', () => {
    for (let n = 1; n <= 300; n++) {
      let calls = 0;
      const items = Array.from({ length: n }, (_, i) => i);
      const tree = treeMerge<Tree>(items, (l, r) => {
        calls++;
        return { l, r };
      });
      expect(leaves(tree), `n = ${n}`).toEqual(items);
      expect(unbalancedNodes(tree), `n = ${n}`).toEqual([]);
      expect(depth(tree), `depth for n = ${n}`).toBe(Math.ceil(Math.log2(n)));
      expect(calls, `merges for n = ${n}`).toBe(n - 1);
    }
  });

  it('returns a single item itself, without calling merge', () => {
    const item = { x: 1 };
    let calls = 0;
    expect(
      treeMerge([item], (a) => {
        calls++;
        return a;
      }),
    ).toBe(item);
    expect(calls).toBe(0);
  });

  it('equals a left fold for associative merges (exact integer sums, string and array concatenation, 2x2 integer matrix products)', () => {
    type M = readonly [number, number, number, number];
    const mul = (a: M, b: M): M => [
      a[0] * b[0] + a[1] * b[2],
      a[0] * b[1] + a[1] * b[3],
      a[2] * b[0] + a[3] * b[2],
      a[2] * b[1] + a[3] * b[3],
    ];
    const small = fc.integer({ min: -2, max: 2 });
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: -1_000_000, max: 1_000_000 }), { minLength: 1, maxLength: 80 }),
        fc.array(fc.string({ maxLength: 3 }), { minLength: 1, maxLength: 80 }),
        fc.array(fc.array(fc.nat(9), { maxLength: 3 }), { minLength: 1, maxLength: 80 }),
        fc.array(fc.tuple(small, small, small, small), { minLength: 1, maxLength: 12 }),
        (ints, strings, arrays, matrices) => {
          const fold = <T>(xs: readonly T[], f: (a: T, b: T) => T): T => xs.slice(1).reduce(f, xs[0] as T);
          const add = (a: number, b: number): number => a + b;
          expect(treeMerge(ints, add)).toBe(fold(ints, add));
          const cat = (a: string, b: string): string => a + b;
          expect(treeMerge(strings, cat)).toBe(fold(strings, cat));
          const join = (a: number[], b: number[]): number[] => [...a, ...b];
          expect(treeMerge(arrays, join)).toEqual(fold(arrays, join));
          // (+ 0 turns -0 into 0: a product may give either, and both are the same integer)
          const plain = (m: M): number[] => m.map((v) => v + 0);
          expect(plain(treeMerge<M>(matrices, mul))).toEqual(plain(fold<M>(matrices, mul)));
        },
      ),
      { numRuns: 100 },
    );
  });

  it('throws a RangeError on an empty list, without calling merge', () => {
    let calls = 0;
    const merge = (a: number, b: number): number => {
      calls++;
      return a + b;
    };
    expect(() => treeMerge([], merge)).toThrow(RangeError);
    expect(() => treeMerge([], merge)).toThrow('treeMerge: nothing to merge');
    expect(calls).toBe(0);
  });
});
