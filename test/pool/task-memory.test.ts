/**
 * A worker's view of the pool's shared memory may lag a growth made by another thread just before
 * the task was sent (V8 delivers the new length to each thread by an interrupt). A task must then
 * read the memory as it is now, never fail on the old length. The lag cannot be produced on
 * demand, so a memory whose `buffer` keeps its old length until `grow(0)` stands in for it.
 */
import { describe, expect, it } from 'vitest';
import type { PartRecipe } from '../../src/functional/core.js';
import { coverTask, runShardTask, type ShardTask } from '../../src/pool/task.js';

const PAGE = 65536;

/** A shared memory of `pages` pages whose `buffer` shows one page until `grow` is called. */
function lagging(pages: number): { memory: WebAssembly.Memory; real: WebAssembly.Memory; grows: number[] } {
  const real = new WebAssembly.Memory({ initial: pages, maximum: 64, shared: true });
  const old = new SharedArrayBuffer(PAGE);
  const grows: number[] = [];
  let caughtUp = false;
  const memory = {
    get buffer() {
      return caughtUp ? real.buffer : old;
    },
    grow(n: number) {
      grows.push(n);
      caughtUp = true;
      return real.grow(n);
    },
  } as unknown as WebAssembly.Memory;
  return { memory, real, grows };
}

describe('a shard task over shared memory another thread grew', () => {
  const recipes: PartRecipe[] = [
    { kind: 'rowLossSum', args: ['abs', 1] },
    { kind: 'firedCount', args: [8, null] },
  ];

  it('reads the fields where they are now (past the old length), as over an up-to-date memory', () => {
    const { memory, real, grows } = lagging(3);
    const at = 2 * PAGE + 64;
    const values = new Float32Array(real.buffer, at, 40);
    for (let i = 0; i < values.length; i++) values[i] = ((i * 7) % 11) - 5;
    const task: ShardTask = {
      recipes,
      fields: { learnedActivations: { wasm: true, byteOffset: at, length: 40, shape: [5, 8] } },
      rows: { start: 0, end: 5 },
      batchIndex: 0,
      shardIndex: 0,
    };
    const got = runShardTask(task, undefined, memory);
    expect(grows).toEqual([0]);
    expect(got).toEqual(runShardTask(task, undefined, real));
    // The fired counts and the absolute sum of the 5 x 8 values above, computed here.
    const fired = new Array<number>(8).fill(0);
    let abs = 0;
    for (let i = 0; i < 40; i++) {
      const x = values[i] as number;
      if (x > 0) fired[i % 8] = (fired[i % 8] as number) + 1;
      abs += Math.abs(x);
    }
    const partials = got as Record<string, { fired?: Float64Array; sum?: Float64Array }>;
    expect(Array.from(partials['firedCount(components=none,features=8)']?.fired ?? [])).toEqual(fired);
    expect(Array.from(partials['rowLossSum(loss=abs,components=1)']?.sum ?? [])).toEqual([abs]);
  });

  it('covers the scratch the pool lent too, and leaves an up-to-date memory alone', () => {
    const { memory, grows } = lagging(4);
    const task: ShardTask = { recipes, fields: {}, rows: { start: 0, end: 0 }, batchIndex: 2, shardIndex: 1, scratch: { byteOffset: 3 * PAGE, byteLength: PAGE } };
    coverTask(task, memory);
    expect(grows).toEqual([0]);
    expect(memory.buffer.byteLength).toBe(4 * PAGE);
    coverTask(task, memory);
    expect(grows).toEqual([0]);
  });

  it('refuses a task past the memory with its sizes, instead of reading elsewhere', () => {
    const { memory } = lagging(2);
    const task: ShardTask = {
      recipes,
      fields: { learnedActivations: { wasm: true, byteOffset: 2 * PAGE - 64, length: 40, shape: [5, 8] } },
      rows: { start: 0, end: 5 },
      batchIndex: 3,
      shardIndex: 1,
    };
    expect(() => runShardTask(task, undefined, memory)).toThrow(
      new RangeError(`shard 1 of batch 3 reads WebAssembly memory up to byte ${2 * PAGE + 96}, but the memory has ${2 * PAGE} bytes`),
    );
  });
});
