/**
 * The workers' regions of a pool's shared memory (src/pool/region-registry.ts): a region is held by
 * one thread at a time; one given back, or whose thread exited, goes to the next thread that needs
 * as much before the memory grows; the smallest that fits is taken.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { RegionRegistry, registryRegions } from '../../src/pool/region-registry.js';

const stress = new URL('../fixtures/region-stress.ts', import.meta.url);

/** The URL of tsx's ESM API (its CommonJS build cannot register the loader from an eval worker). */
function tsxApi(): string {
  const root = dirname(createRequire(import.meta.url).resolve('tsx/package.json'));
  const exports = (JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { exports: Record<string, { import: { default: string } }> }).exports;
  return pathToFileURL(join(root, (exports['./esm/api'] as { import: { default: string } }).import.default)).href;
}

const PAGE = 65536;

function setup() {
  const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
  const registry = new RegionRegistry();
  return { memory, registry, thread: (id: number) => registryRegions(registry.buffer, memory, id) };
}

describe('RegionRegistry', () => {
  it('two threads get disjoint regions; the memory grows by what they asked for', () => {
    const { memory, registry, thread } = setup();
    const a = thread(1).take(1000, 3 * PAGE);
    const b = thread(2).take(PAGE + 1, 2 * PAGE);
    expect(a).toEqual({ start: PAGE, size: 3 * PAGE });
    expect(b).toEqual({ start: 4 * PAGE, size: 2 * PAGE });
    expect(memory.buffer.byteLength).toBe(6 * PAGE);
    expect(registry.usage()).toEqual({ owned: 5 * PAGE, free: 0 });
  });

  it("an exited thread's regions go to the next thread, smallest first, and are not handed out twice", () => {
    const { memory, registry, thread } = setup();
    const one = thread(1);
    const big = one.take(4 * PAGE, 4 * PAGE);
    const small = one.take(PAGE, PAGE);
    registry.releaseThread(1);
    expect(registry.usage()).toEqual({ owned: 0, free: 5 * PAGE });
    const two = thread(2);
    expect(two.take(100, 100)).toEqual(small);
    expect(two.take(2 * PAGE, 2 * PAGE)).toEqual(big);
    // Both held by thread 2: a third region grows the memory.
    const size = memory.buffer.byteLength;
    expect(two.take(100, 100).start).toBe(size);
    expect(registry.usage()).toEqual({ owned: 6 * PAGE, free: 0 });
  });

  it('a region given back is reused; releasing another thread leaves it held', () => {
    const { registry, thread } = setup();
    const one = thread(1);
    const two = thread(2);
    const r = one.take(PAGE, PAGE);
    registry.releaseThread(2);
    expect(two.take(PAGE, PAGE).start).not.toBe(r.start);
    one.give(r.start);
    expect(two.take(PAGE, PAGE)).toEqual(r);
    // Giving back what it does not hold changes nothing.
    one.give(r.start);
    expect(registry.usage()).toEqual({ owned: 2 * PAGE, free: 0 });
  });
});

describe('RegionRegistry across threads', () => {
  it('4 threads taking and giving back regions at once, one exiting with regions held: no region is ever held by two', async () => {
    const memory = new WebAssembly.Memory({ initial: 1, maximum: 65536, shared: true });
    const registry = new RegionRegistry();
    const run = (seed: number, rounds: number) =>
      new Promise<{ clashes: number; held: number; threadId: number }>((resolve, reject) => {
        // The entry loads the TypeScript fixture through tsx's ESM API (as test/kernels/wasm.test.ts).
        const entry = `import(${JSON.stringify(tsxApi())}).then(({ tsImport }) => tsImport(${JSON.stringify(stress.href)}, ${JSON.stringify(import.meta.url)}))`;
        const worker = new Worker(entry, { eval: true, workerData: { registry: registry.buffer, memory, rounds, seed } });
        const threadId = worker.threadId;
        let result: { clashes: number; held: number } | undefined;
        worker.on('message', (m: { clashes: number; held: number }) => (result = m));
        worker.on('error', reject);
        // Its regions are free once it has exited, as the pool frees them.
        worker.on('exit', () => {
          registry.releaseThread(threadId);
          if (result === undefined) reject(new Error('no result'));
          else resolve({ ...result, threadId });
        });
      });
    const results = await Promise.all([run(1, 8000), run(2, 8000), run(3, 8000), run(4, 401)]);
    expect(results.map((r) => r.clashes)).toEqual([0, 0, 0, 0]);
    // The short one left with regions held; they were freed and taken again by the others.
    expect(results[3]?.held).toBeGreaterThan(0);
    expect(registry.usage().owned).toBe(0);
    // Grown no more than the threads held at once and the sizes they asked for allow.
    expect(memory.buffer.byteLength).toBeLessThan(4 * 3 * 4 * 65536 * 4);
  }, 60_000);
});
