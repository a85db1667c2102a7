/**
 * Runs the compiled `sae-metrics` command (dist/src/cli/main.js, built by `npm test` before vitest)
 * as a child process, with stdout and stderr as pipes.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The repository root. */
export const root = fileURLToPath(new URL('../..', import.meta.url));
/** The compiled command. */
export const main = fileURLToPath(new URL('../../dist/src/cli/main.js', import.meta.url));

/** Throws when the command is not built. */
export function requireBuilt(): void {
  if (!existsSync(main)) throw new Error(`${main} is missing: run \`npm run build\` (npm test does)`);
}

/** What a run of the command gave. */
export interface CliRun {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs `sae-metrics ...args` and waits for it to exit (killed after `timeoutMs`, which rejects). */
export function cli(args: readonly string[], env: Record<string, string> = {}, timeoutMs = 60_000): Promise<CliRun> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [main, ...args],
      { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : (error as { code?: unknown }).code;
        if (typeof code !== 'number') {
          reject(error ?? new Error('no exit code'));
          return;
        }
        resolve({ code, stdout, stderr });
      },
    );
    child.stdin?.end();
  });
}

/** Runs `tasks` with at most `limit` at once; results in order. */
export async function limited<T>(tasks: readonly (() => Promise<T>)[], limit = 2): Promise<T[]> {
  const out: T[] = new Array<T>(tasks.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < tasks.length) {
      const i = next++;
      out[i] = await (tasks[i] as () => Promise<T>)();
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, tasks.length) }, worker));
  return out;
}
