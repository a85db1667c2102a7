/**
 * The GL process of gpu.js's GL modes, tested without GL: the process runs gpu.js in mode `cpu`
 * here (the GL suite runs it in `gpu` and `headlessgl`), so that its frames, its answers, its
 * faults and its lifetime are checked on a machine with Node alone. Its results must be the bits
 * of the same kernel run in this thread.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PartRecipe } from '../../src/functional/core.js';
import { createGpujsKernel, type GpujsKernel } from '../../src/kernels/gpujs/index.js';
import type { ShardNeeds, ShardStats } from '../../src/kernels/types.js';
import { chooseBackend, hardwareFromProbe } from '../../src/pool/backend.js';
import { GlClient, startGlHost, type GlHost, type ShardInput } from '../../src/pool/gl-host.js';
import { encodeFrame, entryView, FrameReader, type Frame } from '../../src/pool/gl-protocol.js';
import { createGlShardRunner } from '../../src/pool/kernel-host.js';
import { toShared } from '../../src/pool/shared-memory.js';
import { runShardTask, type ShardTask } from '../../src/pool/task.js';
import { mulberry32 } from '../support/random.js';
import { inChild, NO_GL, source } from '../kernels/gpujs-fallback.js';

const TIMEOUT = 120_000;

function randomArray(n: number, seed: number, density = 0.4): Float32Array {
  const r = mulberry32(seed);
  const a = new Float32Array(new SharedArrayBuffer(n * 4));
  for (let i = 0; i < n; i++) a[i] = r() < density ? r() * 4 - 1 : 0;
  return a;
}

function bitsOf(stats: ShardStats): Record<string, string> {
  return Object.fromEntries(
    Object.entries(stats).map(([k, v]) => [k, Buffer.from((v as Float64Array).buffer, (v as Float64Array).byteOffset, (v as Float64Array).byteLength).toString('hex')]),
  );
}

describe('GL frames', () => {
  it('survive any cut of the stream into chunks: same headers, same values, arrays aligned to 8 bytes', () => {
    fc.assert(
      fc.property(
        fc.array(fc.array(fc.float({ noNaN: true }), { maxLength: 40 }), { minLength: 1, maxLength: 4 }),
        fc.array(fc.integer({ min: 1, max: 97 }), { minLength: 1, maxLength: 20 }),
        fc.boolean(),
        (arrays, cuts, wide) => {
          const sent = arrays.map((a, i) => ({ name: `a${i}`, data: wide ? Float64Array.from(a) : Float32Array.from(a), shape: [a.length] }));
          const bytes = Buffer.concat([
            ...encodeFrame({ id: 7, needs: { abs: true } }, sent),
            ...encodeFrame({ id: 8, error: 'boom' }, []),
          ]);
          const frames: Frame[] = [];
          const reader = new FrameReader((f) => frames.push(f));
          let at = 0;
          for (let i = 0; at < bytes.length; i++) {
            const n = cuts[i % cuts.length] as number;
            reader.push(bytes.subarray(at, at + n));
            at += n;
          }
          expect(frames.map((f) => f.header.id)).toEqual([7, 8]);
          const [first, second] = frames as [Frame, Frame];
          expect(first.header.needs).toEqual({ abs: true });
          expect(second.header.error).toBe('boom');
          first.header.entries.forEach((entry, i) => {
            expect(entry.offset % 8).toBe(0);
            expect(entry.shape).toEqual([arrays[i]?.length]);
            const view = wide ? entryView(first, entry, Float64Array) : entryView(first, entry, Float32Array);
            expect(Array.from(view)).toEqual(Array.from(sent[i]?.data ?? []));
          });
        },
      ),
      { numRuns: 200 },
    );
  });

  it('refuse an array outside the payload, naming it', () => {
    const [prefix, header] = encodeFrame({ id: 1 }, []) as [Buffer, Buffer];
    const frame: Frame = { header: { id: 1, payloadBytes: 8, entries: [] }, payload: Buffer.alloc(8) };
    expect(() => entryView(frame, { name: 'x', offset: 0, length: 3 }, Float32Array)).toThrow(
      new RangeError('GL frame: array x (offset 0, 3 elements) is outside the payload of 8 bytes'),
    );
    expect(() => entryView(frame, { name: 'y', offset: 4, length: 1 }, Float32Array)).toThrow(/array y \(offset 4/);
    expect(prefix.readUInt32LE(0)).toBe(header.length);
  });
});

describe('the GL process (gpu.js cpu mode in it)', () => {
  let host: GlHost;
  let local: GpujsKernel;
  beforeAll(() => {
    host = startGlHost('cpu');
    local = createGpujsKernel({ mode: 'cpu' });
  });
  afterAll(async () => {
    await host.close();
    await local.destroy();
  });

  const needsCase = fc.record({ abs: fc.boolean(), nonZero: fc.boolean(), fired: fc.boolean(), mse: fc.boolean() });

  it(
    'answers every statistic with the bits of the same kernel in this thread, for several workers at once in random order',
    async () => {
      const clients = [new GlClient(host.address), new GlClient(host.address), new GlClient(host.address)];
      await fc.assert(
        fc.asyncProperty(
          fc.array(
            fc.record({
              rows: fc.integer({ min: 1, max: 9 }),
              components: fc.constantFrom(undefined, 1, 3),
              features: fc.integer({ min: 1, max: 70 }),
              inputs: fc.integer({ min: 1, max: 20 }),
              needs: needsCase,
              client: fc.nat({ max: 2 }),
              seed: fc.integer(),
            }),
            { minLength: 1, maxLength: 6 },
          ),
          async (cases) => {
            const runs = cases.map(async (c) => {
              const cs = c.components === undefined ? [] : [c.components];
              const learned = { name: 'learnedActivations', data: randomArray(c.rows * (c.components ?? 1) * c.features, c.seed), shape: [c.rows, ...cs, c.features] };
              const decoded = { name: 'decodedActivations', data: randomArray(c.rows * (c.components ?? 1) * c.inputs, c.seed + 1, 1), shape: [c.rows, ...cs, c.inputs] };
              const src = { name: 'sourceActivations', data: randomArray(c.rows * (c.components ?? 1) * c.inputs, c.seed + 2, 1), shape: [c.rows, ...cs, c.inputs] };
              const needs: ShardNeeds = c.needs;
              const inputs: ShardInput[] = [
                ...(needs.abs || needs.nonZero || needs.fired ? [learned] : []),
                ...(needs.mse ? [decoded, src] : []),
              ];
              const got = await (clients[c.client] as GlClient).compute(inputs, needs);
              const batch = Object.fromEntries([learned, decoded, src].map((i) => [i.name, { data: i.data, shape: i.shape }]));
              expect(bitsOf(got)).toEqual(bitsOf(local.fused(batch, { start: 0, end: c.rows }, needs)));
            });
            await Promise.all(runs);
          },
        ),
        { numRuns: 25 },
      );
    },
    TIMEOUT,
  );

  it(
    'a shard runner makes the same partial states as a worker with the kernel in its thread (every part, rank 2 and 3, rows inside the batch)',
    async () => {
      const run = createGlShardRunner(host.address);
      for (const [components, seed] of [
        [undefined, 1],
        [2, 2],
      ] as const) {
        const C = components ?? 1;
        const rows = 23;
        const F = 37;
        const I = 5;
        const cs = components === undefined ? [] : [components];
        const recipes: PartRecipe[] = [
          { kind: 'rowLossSum', args: ['abs', C] },
          { kind: 'rowLossSum', args: ['mse', C] },
          { kind: 'rowLossItems', args: ['abs', C] },
          { kind: 'firedCount', args: [F, components ?? null] },
          { kind: 'nonZeroCount', args: [components ?? null] },
          { kind: 'activationList', args: [] },
          { kind: 'lossSums', args: [C] },
        ];
        const t = (data: Float32Array, shape: number[]) => toShared({ data, shape });
        const fields = {
          learnedActivations: t(randomArray(rows * C * F, seed), [rows, ...cs, F]),
          decodedActivations: t(randomArray(rows * C * I, seed + 1, 1), [rows, ...cs, I]),
          sourceActivations: t(randomArray(rows * C * I, seed + 2, 1), [rows, ...cs, I]),
          sourceModelLoss: t(randomArray(rows, seed + 3, 1), [rows]),
          sourceModelLossWithReconstruction: t(randomArray(rows, seed + 4, 1), [rows]),
          sourceModelLossWithZeroAblation: t(randomArray(rows, seed + 5, 1), [rows]),
        };
        for (const range of [
          { start: 0, end: 10 },
          { start: 10, end: 23 },
          { start: 4, end: 5 },
        ]) {
          const task: ShardTask = { recipes, fields, rows: range, batchIndex: 0, shardIndex: 0 };
          expect(await run(task)).toEqual(runShardTask(task, local.fused));
        }
      }
    },
    TIMEOUT,
  );

  it('answers a malformed shard with one line naming it, and goes on serving', async () => {
    const client = new GlClient(host.address);
    await expect(client.compute([{ name: 'learnedActivations', data: new Float32Array(6), shape: [2, 4] }], { abs: true })).rejects.toThrow(
      new Error('GL process: field learnedActivations of shape [2, 4] does not match its 6 values or the other fields\' rows'),
    );
    await expect(client.compute([{ name: 'weights', data: new Float32Array(6), shape: [2, 3] }], { abs: true })).rejects.toThrow(
      new Error('GL process: bad field weights of shape [2,3]'),
    );
    const stats = await client.compute([{ name: 'learnedActivations', data: Float32Array.from([1, -2, 0, 3]), shape: [2, 2] }], { abs: true, nonZero: true });
    expect(Array.from(stats.abs as Float64Array)).toEqual([3, 3]);
    expect(Array.from(stats.nonZero as Float64Array)).toEqual([3]);
  });
});

describe('GL process faults and lifetime', () => {
  it('a GL process whose kernels cannot be built answers every shard with why, in one line', async () => {
    const host = startGlHost('webgl');
    try {
      const client = new GlClient(host.address);
      const shard = [{ name: 'learnedActivations', data: new Float32Array(4), shape: [2, 2] }];
      const why = "createGpujsKernel: gpu.js mode 'webgl' cannot run here: webgl needs a browser canvas, and there is none in Node: use 'gpu' or 'headlessgl'";
      await expect(client.compute(shard, { abs: true })).rejects.toThrow(new Error(why));
      await expect(client.compute(shard, { fired: true })).rejects.toThrow(new Error(why));
    } finally {
      await host.close();
    }
  }, TIMEOUT);

  it('a GL process that dies fails the shard in flight and every later one with how it ended, and this process goes on', async () => {
    const host = startGlHost('cpu');
    try {
      const client = new GlClient(host.address);
      const shard = [{ name: 'learnedActivations', data: randomArray(64 * 512, 3), shape: [64, 512] }];
      expect((await client.compute(shard, { abs: true })).abs).toHaveLength(64);
      const inFlight = client.compute(shard, { abs: true, nonZero: true, fired: true });
      process.kill(host.pid as number, 'SIGKILL');
      const why = 'the gpu.js GL process exited on signal SIGKILL';
      await expect(inFlight).rejects.toThrow(why);
      await expect(client.compute(shard, { abs: true })).rejects.toThrow(new Error(why));
      await expect(new GlClient(host.address).compute(shard, { abs: true })).rejects.toThrow(new Error(why));
    } finally {
      await host.close();
    }
  }, TIMEOUT);

  it('holds the rows of one shard at a time, however many workers send at once (peak memory of the process, Linux)', async () => {
    // Kernels that cannot be built answer at once: what the process holds is what it reads.
    const host = startGlHost('webgl');
    try {
      const mib = (key: string): number => Number(new RegExp(`${key}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${host.pid}/status`, 'utf8'))?.[1]) / 1024;
      const rows = 32 * 256; // 32 MiB of float32 rows of 1024
      const shard = [{ name: 'learnedActivations', data: new Float32Array(new SharedArrayBuffer(rows * 1024 * 4)).fill(1), shape: [rows, 1024] }];
      await expect(new GlClient(host.address).compute(shard, { abs: true })).rejects.toThrow(/cannot run here/);
      writeFileSync(`/proc/${host.pid}/clear_refs`, '5'); // the peak (VmHWM) starts again from now
      const before = mib('VmRSS');
      const answers = await Promise.allSettled(Array.from({ length: 6 }, () => new GlClient(host.address).compute(shard, { abs: true })));
      expect(answers.map((a) => a.status)).toEqual(Array(6).fill('rejected'));
      // Six shards read side by side would add 192 MiB.
      expect(mib('VmHWM') - before).toBeLessThan(32);
    } finally {
      await host.close();
    }
  }, TIMEOUT);

  it('close() ends the process and removes its socket; a worker that connects afterwards is told, not left waiting', async () => {
    const host = startGlHost('cpu');
    const client = new GlClient(host.address);
    const shard = [{ name: 'learnedActivations', data: Float32Array.from([1, 0]), shape: [1, 2] }];
    expect(Array.from((await client.compute(shard, { nonZero: true })).nonZero as Float64Array)).toEqual([1]);
    await host.close();
    expect(existsSync(dirname(host.address.path))).toBe(false);
    expect(() => process.kill(host.pid as number, 0)).toThrow();
    const started = Date.now();
    await expect(new GlClient(host.address).compute(shard, { abs: true })).rejects.toThrow(new Error('the gpu.js GL process is closed (its pool was closed)'));
    expect(Date.now() - started).toBeLessThan(10_000);
  }, TIMEOUT);

  it.each(['exit', 'SIGKILL', 'SIGKILL while the GL process starts'] as const)('the GL process ends, and removes its socket, when the process that started it ends without closing it (%s)', async (how) => {
    const script = `const { startGlHost } = await import(${source('pool/gl-host.ts')});
const host = startGlHost('cpu');
console.log(JSON.stringify({ pid: host.pid, path: host.address.path }));
${how === 'exit' ? 'setTimeout(() => process.exit(0), 200);' : `setTimeout(() => process.kill(process.pid, 'SIGKILL'), ${how === 'SIGKILL' ? 1500 : 0});`}
setInterval(() => undefined, 1000);`;
    const parent = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    parent.stdout.on('data', (d: Buffer) => (out += d.toString()));
    await new Promise((r) => parent.on('exit', r));
    const { pid, path } = JSON.parse(out.trim()) as { pid: number; path: string };
    const deadline = Date.now() + 30_000;
    const alive = (): boolean => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    };
    while ((alive() || existsSync(dirname(path))) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    expect(alive()).toBe(false);
    expect(existsSync(dirname(path))).toBe(false);
  }, TIMEOUT);
});

describe('the hardware probe', () => {
  it('decides from the renderer string: a hardware renderer picks gpu.js, a software one or an error does not', () => {
    expect(hardwareFromProbe({ mode: 'headlessgl', renderer: 'NVIDIA GeForce RTX 4090/PCIe/SSE2 (WebGL 1.0)' })).toEqual({
      ok: true,
      reason: 'GL renderer NVIDIA GeForce RTX 4090/PCIe/SSE2 (WebGL 1.0)',
    });
    const llvmpipe = 'ANGLE (WebGL 1.0 stack-gl 8.1.6); driver: Mesa swrast_dri.so (llvmpipe, software)';
    expect(hardwareFromProbe({ mode: 'headlessgl', renderer: llvmpipe })).toEqual({ ok: false, reason: `the GL renderer is software: ${llvmpipe}` });
    expect(hardwareFromProbe({ error: 'no X server' })).toEqual({ ok: false, reason: 'no X server' });
  });

  it("an explicit gpujs backend that cannot run throws one line: why, and what to do", () => {
    const probes = { env: {}, gpujs: () => ({ why: 'gl is not built', todo: 'npm rebuild gl' }) };
    expect(() => chooseBackend('createMetricPool', 'gpujs', undefined, probes)).toThrow(
      new Error("createMetricPool: the gpujs backend (gpu.js mode 'gpu') cannot run here: gl is not built: npm rebuild gl"),
    );
    expect(() => chooseBackend('createMetricPool', 'gpujs', 'headlessgl', probes)).toThrow(/\(gpu\.js mode 'headlessgl'\) cannot run here/);
    expect(chooseBackend('t', 'gpujs', 'cpu', { env: {}, gpujs: () => undefined })).toEqual({ backend: 'gpujs', gpujsMode: 'cpu', reason: 'requested' });
  });

  it('where gpu.js is not installed, auto says so and picks the wasm pass, and an explicit gpujs pool says to install it (in a child process)', () => {
    const answer = inChild<{ backend: string; reason: string; error: string }>(
      `const { createMetricPool } = await import(${source('pool/metric-pool.ts')});
const pool = createMetricPool({ workers: 1 });
let error = '';
try { createMetricPool({ workers: 2, backend: 'gpujs' }); } catch (e) { error = e.message; }
console.log(JSON.stringify({ backend: pool.backend, reason: pool.backendReason, error }));
await pool.close();`,
      { preload: [NO_GL], env: { SAE_METRICS_TEST_BLOCK: 'gpu.js', DISPLAY: ':0' } },
    );
    expect(answer).toEqual({
      backend: 'wasm',
      reason: 'auto: no hardware GPU (gpu.js is not installed); WebAssembly SIMD is available',
      error: "createMetricPool: the gpujs backend (gpu.js mode 'gpu') cannot run here: gpu.js is not installed: npm install gpu.js (an optional peer dependency of sae-metrics)",
    });
  });
});
