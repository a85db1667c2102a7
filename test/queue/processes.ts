/**
 * What the queue tests run: a real `redis-server` (Debian's package) on a free loopback port with
 * its own temporary directory, stopped after; `sae-metrics worker` and `coordinate` processes
 * (the compiled command) whose stderr lines can be waited for. Nothing here talks to any address
 * but 127.0.0.1.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main, root } from '../cli/run-cli.js';

/** A free TCP port on 127.0.0.1 (free when asked; the caller retries if it is taken since). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => (typeof address === 'object' && address !== null ? resolve(address.port) : reject(new Error('no port'))));
    });
  });
}

/** Resolves when something answers PING with PONG (or asks for a password) on 127.0.0.1:port. */
function pong(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = new Socket();
    const done = (ok: boolean): void => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1000, () => done(false));
    socket.once('error', () => done(false));
    socket.connect(port, '127.0.0.1', () => socket.write('PING\r\n'));
    socket.on('data', (d) => done(/^(\+PONG|-NOAUTH)/.test(d.toString())));
  });
}

/** A running redis-server. */
export interface RedisServer {
  readonly port: number;
  readonly url: string;
  readonly process: ChildProcess;
  /** Stops it (SIGTERM, then SIGKILL) and removes its directory. */
  stop(): Promise<void>;
}

const exited = (child: ChildProcess): Promise<void> =>
  child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((r) => child.once('exit', () => r()));

/** Stops a child: `signal`, then SIGKILL after `graceMs`. */
export async function stopChild(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited(child);
  clearTimeout(timer);
}

/** Throws a clear error when redis-server is not installed. */
export function requireRedisServer(): void {
  const r = spawnSync('redis-server', ['--version'], { encoding: 'utf8' });
  if (r.error !== undefined || r.status !== 0) {
    throw new Error('redis-server is not installed: apt-get install redis-server (the queue suite, npm run test:redis, needs it; .ci/run installs it)');
  }
}

/** Every redis-server started and not yet stopped (a test that times out skips its own stop). */
const running = new Set<RedisServer>();

/** Stops every redis-server still running. */
export async function stopAllRedis(): Promise<void> {
  await Promise.all([...running].map((r) => r.stop()));
}

/** Starts redis-server on a free loopback port (or `onPort`) with a temporary directory, no persistence (and `extra` arguments). */
export async function startRedis(extra: readonly string[] = [], onPort?: number): Promise<RedisServer> {
  requireRedisServer();
  for (let attempt = 0; ; attempt++) {
    const port = onPort ?? (await freePort());
    const dir = mkdtempSync(join(tmpdir(), 'i14-queue-redis-'));
    const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--appendonly', 'no', ...extra], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let log = '';
    child.stdout?.on('data', (d: Buffer) => (log += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (log += d.toString()));
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline && child.exitCode === null && !(await pong(port))) await new Promise((r) => setTimeout(r, 50));
    if (child.exitCode === null && (await pong(port))) {
      const server: RedisServer = {
        port,
        url: `redis://127.0.0.1:${port}`,
        process: child,
        async stop() {
          running.delete(server);
          await stopChild(child, 'SIGTERM', 5000);
          rmSync(dir, { recursive: true, force: true });
        },
      };
      running.add(server);
      return server;
    }
    await stopChild(child, 'SIGKILL');
    rmSync(dir, { recursive: true, force: true });
    if (attempt >= 3) throw new Error(`redis-server did not start on port ${port}: ${log.slice(-500)}`);
  }
}

/** A `sae-metrics` process with its stderr (and stdout) kept, line by line. */
export interface CliProcess {
  readonly child: ChildProcess;
  readonly stdout: () => string;
  readonly stderrLines: () => string[];
  /** Waits for a stderr line matching `pattern` (rejects after `timeoutMs` or when the process exits first). */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** Waits for the exit: the code (or 128 + the signal's number for a killed one) and the time it took from `since`. */
  exit(): Promise<{ code: number; at: number }>;
}

const SIGNALS: Partial<Record<NodeJS.Signals, number>> = { SIGTERM: 15, SIGKILL: 9, SIGINT: 2 };

/** Starts `sae-metrics ...args` (the compiled command) from the repository root. */
export function startCli(args: readonly string[], env: Record<string, string> = {}): CliProcess {
  const child = spawn(process.execPath, [main, ...args], { cwd: root, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  const lines: string[] = [];
  const waiters = new Set<() => void>();
  child.stdout?.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr?.on('data', (d: Buffer) => {
    err += d.toString();
    const parts = err.split('\n');
    err = parts.pop() ?? '';
    lines.push(...parts);
    for (const w of waiters) w();
  });
  const exitPromise = new Promise<{ code: number; at: number }>((resolve) => {
    child.once('exit', (code, signal) => {
      if (err !== '') lines.push(err);
      err = '';
      for (const w of waiters) w();
      resolve({ code: code ?? 128 + (SIGNALS[signal as NodeJS.Signals] ?? 0), at: Date.now() });
    });
  });
  return {
    child,
    stdout: () => out,
    stderrLines: () => [...lines],
    waitFor(pattern, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`no stderr line matching ${pattern} within ${timeoutMs} ms; got:\n${lines.join('\n')}`));
        }, timeoutMs);
        const check = (): void => {
          const hit = lines.find((l) => pattern.test(l));
          if (hit !== undefined) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve(hit);
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            waiters.delete(check);
            reject(new Error(`exited before a stderr line matching ${pattern}; got:\n${lines.join('\n')}`));
          }
        };
        waiters.add(check);
        check();
      });
    },
    exit: () => exitPromise,
  };
}

/** Starts a worker on `url` and waits until it waits for jobs. */
export async function startWorker(url: string, args: readonly string[] = []): Promise<CliProcess> {
  const w = startCli(['worker', '--redis', url, '--workers', '1', ...args]);
  await w.waitFor(/waiting for shard jobs/);
  return w;
}
