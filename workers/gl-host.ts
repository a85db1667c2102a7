/**
 * A pool's GL process (see `src/pool/gl-host.ts`): the one process that loads `gl`, holds the GL
 * context and runs the gpu.js kernels of every shard of its pool, for the worker threads that
 * connect to its socket.
 *
 * `gl-host SOCKET MODE` serves until its parent disconnects; `gl-host --probe MODE` builds the
 * kernels, prints `{ mode, renderer }` (or `{ error }`) as one JSON line, and exits.
 *
 * @module
 */
import { rmSync } from 'node:fs';
import { basename, dirname } from 'node:path';
import { createServer, type Socket } from 'node:net';
import type { Batch } from '../src/functional/core.js';
import { createGpujsKernel, type GpujsKernel, type GpujsMode } from '../src/kernels/gpujs/index.js';
import type { ShardFlag, ShardStats } from '../src/kernels/types.js';
import { encodeFrame, entryView, FrameReader, GL_STATS, type Frame, type OutgoingArray } from '../src/pool/gl-protocol.js';

const FIELDS = ['learnedActivations', 'decodedActivations', 'sourceActivations'];
const NEEDS = GL_STATS;

function build(mode: string): GpujsKernel | Error {
  try {
    return createGpujsKernel({ mode: mode as GpujsMode });
  } catch (error) {
    return error instanceof Error ? error : new Error(String(error));
  }
}

/** The statistics a request asks for, or throws why the request is malformed. */
function compute(kernel: GpujsKernel, frame: Frame): ShardStats {
  const batch: Record<string, { data: Float32Array; shape: readonly number[] }> = {};
  let rows: number | undefined;
  for (const entry of frame.header.entries) {
    const shape = entry.shape;
    if (!FIELDS.includes(entry.name) || !Array.isArray(shape) || shape.length < 2 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
      throw new RangeError(`GL process: bad field ${entry.name} of shape ${JSON.stringify(shape)}`);
    }
    const data = entryView(frame, entry, Float32Array);
    if (shape.reduce((a, b) => a * b, 1) !== data.length || (rows !== undefined && rows !== shape[0])) {
      throw new RangeError(`GL process: field ${entry.name} of shape [${shape.join(', ')}] does not match its ${data.length} values or the other fields' rows`);
    }
    rows = shape[0] as number;
    batch[entry.name] = { data, shape };
  }
  const needs: { -readonly [K in ShardFlag]?: boolean } = {};
  for (const n of NEEDS) if (frame.header.needs?.[n] === true) needs[n] = true;
  return kernel.fused(batch as unknown as Batch, { start: 0, end: rows ?? 0 }, needs);
}

function answerFrame(kernel: GpujsKernel | Error, frame: Frame): Buffer[] {
  const id = frame.header.id;
  if (kernel instanceof Error) return encodeFrame({ id, error: kernel.message }, []);
  try {
    const stats = compute(kernel, frame);
    const arrays: OutgoingArray[] = [];
    for (const n of NEEDS) {
      const a = stats[n];
      if (a !== undefined) arrays.push({ name: n, data: a });
    }
    return encodeFrame({ id }, arrays);
  } catch (error) {
    return encodeFrame({ id, error: (error as Error).message.split('\n')[0] as string }, []);
  }
}

/**
 * Serves shards one at a time, each read whole from one connection before the next connection's
 * is read: the process then holds one shard's rows (plus a stream buffer per connection, whose
 * sender waits meanwhile), whatever the number of workers, in one buffer that every shard of the
 * same size reuses (it is done with once the answer is made, and is not paged in again).
 */
function serve(path: string, mode: string): void {
  // The pool closed, or its process ended without closing (checked again once the kernels are
  // built, in case that came first): the socket goes with this process.
  const end = (): never => {
    const dir = dirname(path);
    if (basename(dir).startsWith('sae-metrics-gl-')) rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  };
  process.on('disconnect', end);
  let spare: Buffer | undefined;
  const allocate = (bytes: number): Buffer => (spare?.length === bytes ? spare : (spare = Buffer.allocUnsafeSlow(bytes)));
  const readers = new Map<Socket, FrameReader>();
  /** Connections with unread data, in the order it came. */
  const ready = new Set<Socket>();
  /** The connection whose shard is being read. */
  let current: Socket | undefined;

  const pump = (): void => {
    for (;;) {
      if (current === undefined) {
        current = ready.values().next().value;
        if (current === undefined) return;
        ready.delete(current);
      }
      const socket = current;
      const reader = readers.get(socket);
      try {
        for (let chunk: Buffer | null; reader !== undefined && (chunk = socket.read() as Buffer | null) !== null; ) reader.push(chunk);
      } catch {
        socket.destroy(); // a malformed stream: that worker's shards fail, the others go on
      }
      if (reader !== undefined && reader.partial && !socket.destroyed) return; // the rest of its shard is on its way
      current = undefined;
    }
  };

  const server = createServer((socket: Socket) => {
    readers.set(
      socket,
      new FrameReader((frame) => {
        for (const buffer of answerFrame(kernel, frame)) socket.write(buffer);
      }, allocate),
    );
    socket.on('readable', () => {
      if (socket !== current) ready.add(socket);
      pump();
    });
    socket.on('close', () => {
      readers.delete(socket);
      ready.delete(socket);
      if (current === socket) current = undefined;
      pump();
    });
    socket.on('error', () => undefined); // a worker that ends mid-shard (an abort): 'close' follows
  });
  // Listening first: workers connect (and queue their shards) while the kernels are built.
  server.listen(path);
  const kernel = build(mode);
  if (!process.connected) end();
}

const [first, second] = process.argv.slice(2);
if (first === '--probe') {
  const kernel = build(second ?? 'gpu');
  console.log(JSON.stringify(kernel instanceof Error ? { error: kernel.message } : { mode: kernel.mode, renderer: kernel.renderer ?? '' }));
  process.exit(0);
} else {
  serve(first ?? '', second ?? 'gpu');
}
