/**
 * The Redis side of `sae-metrics coordinate` and `sae-metrics worker`: the optional packages
 * (BullMQ and ioredis, loaded only by these commands), the `--redis` URL, and connections watched
 * by a timeout, so that a Redis that cannot be reached, or that goes away, is one line and a
 * non-zero exit instead of a hang.
 *
 * @module
 */
import type { Redis } from 'ioredis';
import { CliError, UsageError } from '../errors.js';

/** The two optional packages the queue commands need, loaded. */
export interface QueueModules {
  readonly bullmq: typeof import('bullmq');
  readonly ioredis: { readonly Redis: typeof Redis };
}

/**
 * Loads BullMQ and ioredis (optional peer dependencies: the library and the other commands never
 * need them).
 *
 * @throws {CliError} naming the command and the packages to install when one is missing.
 */
export async function loadQueueModules(command: string): Promise<QueueModules> {
  try {
    const [bullmq, ioredis] = await Promise.all([import('bullmq'), import('ioredis')]);
    return { bullmq, ioredis: { Redis: ioredis.Redis } };
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_MODULE_NOT_FOUND' || code === 'MODULE_NOT_FOUND') {
      throw new CliError(command, 'needs the optional packages bullmq and ioredis: npm install bullmq ioredis');
    }
    throw error;
  }
}

/** `--redis URL`: `redis://[user:password@]host[:port][/db]` or `rediss://` (TLS). */
export function checkRedisUrl(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError('--redis', `must be a redis:// or rediss:// URL, got ${JSON.stringify(value)}`);
  }
  if (url.protocol !== 'redis:' && url.protocol !== 'rediss:') {
    throw new UsageError('--redis', `must be a redis:// or rediss:// URL, got ${JSON.stringify(redactUrl(url))}`);
  }
  if (url.hostname === '') throw new UsageError('--redis', `needs a host, got ${JSON.stringify(redactUrl(url))}`);
  const db = url.pathname.replace(/^\//, '');
  if (db !== '' && !/^\d+$/.test(db)) throw new UsageError('--redis', `the path must be a database number, got ${JSON.stringify(redactUrl(url))}`);
  return url;
}

/** The URL as messages show it: without its password. */
export function redactUrl(url: URL): string {
  if (url.password === '') return url.href;
  const copy = new URL(url.href);
  copy.password = '***';
  return copy.href;
}

/** A set of connections to one Redis, watched together. */
export interface RedisLink {
  /** The URL as messages show it (no password). */
  readonly shown: string;
  /**
   * Rejects with a {@link CliError} once a connection has been down (or never up) for the
   * timeout; never resolves. Race every wait on Redis against it.
   */
  readonly lost: Promise<never>;
  /** A new connection, watched like the others (give each BullMQ object its own). */
  connection(): Redis;
  /** Waits until every connection made so far is ready (or {@link lost} rejects). */
  ready(): Promise<void>;
  /** Disconnects every connection at once, without waiting for replies. */
  close(): void;
}

/**
 * Opens a watched link to the Redis at `url`: ioredis reconnects by itself, and a connection that
 * is not ready within `timeoutMs` (at the start, or after it dropped) fails the whole link with
 * one line naming the URL and the last error.
 */
export function openRedis(modules: QueueModules, url: URL, timeoutMs: number): RedisLink {
  const shown = redactUrl(url);
  const clients: Redis[] = [];
  let failed = false;
  // Once any connection was ready, Redis was reached: a later failure is a loss, not an address problem.
  let everReady = false;
  let fail!: (error: CliError) => void;
  const lost = new Promise<never>((_, reject) => {
    fail = reject;
  });
  // Callers race against it: a rejection no one awaits yet is not an unhandled one.
  lost.catch(() => undefined);
  const seconds = `${timeoutMs / 1000} s`;
  const waiters = new Set<() => void>();
  const watch = (client: Redis): void => {
    let lastError = '';
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (timer !== undefined || failed) return;
      timer = setTimeout(() => {
        if (failed) return;
        failed = true;
        const why = lastError === '' ? '' : ` (${lastError})`;
        fail(
          new CliError(
            '--redis',
            everReady ? `${shown}: the connection to Redis was lost and not back within ${seconds}${why}` : `${shown}: cannot connect to Redis within ${seconds}${why}`,
          ),
        );
        closeAll();
      }, timeoutMs);
    };
    client.on('error', (error: Error) => {
      lastError = error.message.split('\n', 1)[0] ?? '';
    });
    client.on('ready', () => {
      everReady = true;
      clearTimeout(timer);
      timer = undefined;
      for (const w of waiters) w();
    });
    client.on('close', arm);
    client.on('end', arm);
    arm();
  };
  const closeAll = (): void => {
    for (const c of clients) c.disconnect(false);
  };
  const db = Number(url.pathname.replace(/^\//, '') || '0');
  return {
    shown,
    lost,
    connection() {
      const client = new modules.ioredis.Redis({
        connectTimeout: timeoutMs,
        // BullMQ's blocking commands need it; a command waits for the reconnection, which the watch bounds.
        maxRetriesPerRequest: null,
        retryStrategy: (times: number) => Math.min(100 * times, 1000),
        host: url.hostname.replace(/^\[|\]$/g, ''),
        port: url.port === '' ? 6379 : Number(url.port),
        db,
        ...(url.username === '' ? {} : { username: decodeURIComponent(url.username) }),
        ...(url.password === '' ? {} : { password: decodeURIComponent(url.password) }),
        ...(url.protocol === 'rediss:' ? { tls: {} } : {}),
      });
      clients.push(client);
      watch(client);
      if (failed) client.disconnect(false);
      return client;
    },
    async ready() {
      const allReady = (): boolean => clients.every((c) => c.status === 'ready');
      if (allReady()) return;
      await Promise.race([
        lost,
        new Promise<void>((resolve) => {
          const check = (): void => {
            if (!allReady()) return;
            waiters.delete(check);
            resolve();
          };
          waiters.add(check);
          check();
        }),
      ]);
    },
    close: closeAll,
  };
}

/** Waits for `work`, or fails as soon as the link is lost. */
export function overLink<T>(link: RedisLink, work: Promise<T>): Promise<T> {
  return Promise.race([work, link.lost]);
}
