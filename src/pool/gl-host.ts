/**
 * gpu.js's GL modes in a pool: one child process per pool (the GL process, `workers/gl-host`)
 * holds the GL context and runs the kernels of every shard; the pool's worker threads send it the
 * rows their shard's kernels read, over a local socket, and make the shard's partial states from
 * the statistics it sends back.
 *
 * Why a process: the native `gl` addon is not context-aware, so it loads in one thread of a
 * process only (`Module did not self-register` in any other), and never again in a thread that
 * replaces one that exited. A process of its own is the one place where it always loads, whatever
 * the calling process has loaded, however many pools exist; a crash in a GL driver ends that
 * process, not the user's. The price is one copy of each shard's rows through the socket.
 *
 * @module
 */
import { fork, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ShardNeeds, ShardStats } from '../kernels/types.js';
import type { GpujsMode } from './backend.js';
import { encodeFrame, entryView, FrameReader, GL_STATS, type Frame, type GlStat, type OutgoingArray } from './gl-protocol.js';

/** Where a pool's GL process listens, and where its exit is recorded (plain data, for workers). */
export interface GlHostAddress {
  /** The socket path (a named pipe on Windows). */
  readonly path: string;
  /** Written by the pool when the GL process exits unasked: why. */
  readonly exitFile: string;
}

/** A started GL process. */
export interface GlHost {
  readonly address: GlHostAddress;
  /** The process id. */
  readonly pid: number | undefined;
  /** Ends the process and removes its socket. */
  close(): Promise<void>;
}

/** A file of this package's `workers/` folder, `.ts` when running from source (then through tsx). */
export function workerEntry(name: string): { file: string; execArgv: string[] } {
  // The path, not the whole URL: a loader may add a query (tsx does: ?tsx-namespace=...).
  const here = new URL(import.meta.url);
  here.search = '';
  const ext = here.pathname.endsWith('.ts') ? 'ts' : 'js';
  const file = fileURLToPath(new URL(`../../workers/${name}.${ext}`, here));
  return { file, execArgv: ext === 'ts' ? ['--import', 'tsx'] : [] };
}

const live = new Set<() => void>();
let exitHook = false;

/**
 * Starts a GL process for gpu.js mode `mode`: it creates its kernels at once, then serves shards.
 * A failure to create them is answered to every shard (one line: why, and what to do).
 */
export function startGlHost(mode: GpujsMode): GlHost {
  const dir = mkdtempSync(join(tmpdir(), 'sae-metrics-gl-'));
  const path = process.platform === 'win32' ? `\\\\.\\pipe\\${dir.replace(/[\\/:]/g, '-')}` : join(dir, 'gl.sock');
  const address: GlHostAddress = { path, exitFile: join(dir, 'exit') };
  const { file, execArgv } = workerEntry('gl-host');
  const child: ChildProcess = fork(file, [path, mode], { execArgv, stdio: ['ignore', 'ignore', 'pipe', 'ipc'] });
  let stderr = '';
  child.stderr?.setEncoding('utf8').on('data', (text: string) => {
    stderr = (stderr + text).slice(-4000);
  });
  let closing = false;
  const exited = once(child, 'exit').catch(() => undefined); // rejects on a failed spawn (then 'error')
  child.on('exit', (code, signal) => {
    if (closing) return;
    const last = stderr.trim().split('\n').pop()?.trim();
    const how = signal === null ? `with code ${String(code)}` : `on signal ${signal}`;
    try {
      writeFileSync(address.exitFile, `the gpu.js GL process exited ${how}${last ? ` (${last})` : ''}`);
    } catch {
      // The directory is gone: the pool is closing.
    }
  });
  child.on('error', () => undefined); // reported through 'exit' and the exit file
  // Neither the process nor its pipes keep this one alive; it ends when this one disconnects.
  child.unref();
  child.channel?.unref();
  (child.stderr as (NodeJS.ReadableStream & { unref?: () => void }) | null)?.unref?.();
  const kill = (): void => {
    closing = true;
    child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  };
  live.add(kill);
  if (!exitHook) {
    exitHook = true;
    process.once('exit', () => {
      for (const k of live) k();
    });
  }
  return {
    address,
    pid: child.pid,
    async close() {
      if (closing) return;
      closing = true;
      live.delete(kill);
      if (child.exitCode === null && child.signalCode === null) {
        if (child.connected) child.disconnect();
        const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
        await exited;
        clearTimeout(timer);
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** What a GL probe found: the mode gpu.js runs and the renderer, or why it cannot run. */
export type GlProbe = { readonly mode: string; readonly renderer: string } | { readonly error: string };

/**
 * Creates gpu.js kernels in mode `mode` in a short-lived child process (the same entry as the GL
 * process, so the same place as the pool's kernels) and reports the renderer: `gl` is never
 * loaded in the calling process. Takes about half a second.
 */
export function probeGlProcess(mode: GpujsMode, timeoutMs = 60_000): GlProbe {
  const { file, execArgv } = workerEntry('gl-host');
  const child = spawnSync(process.execPath, [...execArgv, file, '--probe', mode], { encoding: 'utf8', timeout: timeoutMs });
  const line = child.stdout?.trim().split('\n').pop();
  try {
    if (line) return JSON.parse(line) as GlProbe;
  } catch {
    // reported below
  }
  const why = child.error?.message ?? child.stderr?.trim().split('\n').pop() ?? `exit code ${String(child.status)}`;
  return { error: `the GL probe process failed (${why})` };
}

/** The arrays a shard's kernels read: the rows `[start, end)` of the fields they need. */
export interface ShardInput {
  readonly name: string;
  readonly data: Float32Array;
  readonly shape: readonly number[];
}


/**
 * A worker thread's connection to its pool's GL process: sends a shard's rows, answers with their
 * statistics. Connects on first use, waiting for the process to listen.
 */
export class GlClient {
  readonly #address: GlHostAddress;
  #socket: Promise<Socket> | undefined;
  #nextId = 0;
  readonly #pending = new Map<number, { resolve: (stats: ShardStats) => void; reject: (error: Error) => void }>();

  constructor(address: GlHostAddress) {
    this.#address = address;
  }

  /** The statistics `needs` (flags: what the GL process computes) of a shard whose rows are `inputs`, computed by the GL process. */
  async compute(inputs: readonly ShardInput[], needs: Omit<ShardNeeds, 'features'>): Promise<ShardStats> {
    const socket = await this.#connect();
    const id = this.#nextId++;
    const answer = new Promise<ShardStats>((resolve, reject) => this.#pending.set(id, { resolve, reject }));
    const arrays: OutgoingArray[] = inputs.map((i) => ({ name: i.name, data: i.data, shape: i.shape }));
    socket.cork();
    for (const buffer of encodeFrame({ id, needs: { ...needs } }, arrays)) socket.write(buffer);
    socket.uncork();
    return answer;
  }

  #connect(): Promise<Socket> {
    this.#socket ??= this.#open(Date.now() + 60_000).catch((error: unknown) => {
      this.#socket = undefined;
      throw error;
    });
    return this.#socket;
  }

  async #open(deadline: number): Promise<Socket> {
    for (;;) {
      const exit = this.#exitReason();
      if (exit !== undefined) throw new Error(exit);
      const socket = connect(this.#address.path);
      try {
        await once(socket, 'connect');
        this.#listen(socket);
        return socket;
      } catch (error) {
        socket.destroy();
        const code = (error as NodeJS.ErrnoException).code;
        if (!existsSync(dirname(this.#address.exitFile))) throw new Error('the gpu.js GL process is closed (its pool was closed)');
        // Not listening yet (the process is starting), or gone (then the exit file says why).
        if ((code !== 'ENOENT' && code !== 'ECONNREFUSED') || Date.now() > deadline) {
          throw new Error(this.#exitReason() ?? `cannot reach the gpu.js GL process at ${this.#address.path} (${code ?? (error as Error).message})`);
        }
        await new Promise((r) => setTimeout(r, 20));
      }
    }
  }

  #listen(socket: Socket): void {
    const reader = new FrameReader((frame) => this.#answer(frame));
    socket.on('data', (chunk: Buffer) => reader.push(chunk));
    const fail = (error?: Error): void => {
      this.#socket = undefined;
      if (this.#pending.size === 0) return;
      // The pool writes the exit file when it sees the process exit, which may be a moment later.
      setTimeout(() => {
        const why = this.#exitReason() ?? `the gpu.js GL process closed the connection${error ? ` (${error.message})` : ''}`;
        for (const p of this.#pending.values()) p.reject(new Error(why));
        this.#pending.clear();
      }, 200);
    };
    socket.on('error', fail);
    socket.on('close', () => fail());
  }

  #answer(frame: Frame): void {
    const pending = this.#pending.get(frame.header.id);
    if (pending === undefined) return;
    this.#pending.delete(frame.header.id);
    if (frame.header.error !== undefined) {
      pending.reject(new Error(frame.header.error));
      return;
    }
    const stats: { -readonly [K in GlStat]?: Float64Array } = {};
    for (const entry of frame.header.entries) {
      if (!GL_STATS.includes(entry.name as GlStat)) continue;
      stats[entry.name as GlStat] = entryView(frame, entry, Float64Array);
    }
    pending.resolve(stats);
  }

  #exitReason(): string | undefined {
    return existsSync(this.#address.exitFile) ? readFileSync(this.#address.exitFile, 'utf8') : undefined;
  }
}
