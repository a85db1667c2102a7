/**
 * Output files of `sae-metrics` (the histogram), checked before any input is read and written at
 * the end through a temporary file beside them: a bad path fails at once, and a run that fails or
 * is stopped leaves the file as it was.
 *
 * @module
 */
import { constants, unlinkSync } from 'node:fs';
import { open, rename, stat, unlink, type FileHandle } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { CliError } from './errors.js';

/** An output file that can be written: {@link prepareOutput} made its temporary file. */
export interface PreparedOutput {
  readonly path: string;
  /** Writes `data` (or its pieces, in order) and puts it in place (a rename over the path). */
  commit(data: string | Uint8Array | Iterable<string>): Promise<void>;
  /** Removes the temporary file (after a failure); the path is left as it was. */
  discard(): Promise<void>;
}

/** Temporary files made and not yet renamed or removed. */
const pending = new Set<string>();

/**
 * Removes every temporary output file still there, synchronously: for an exit that does not wait
 * for the run to finish (a second Ctrl-C, an error that escaped), which would leave them behind.
 */
export function removePendingOutputs(): void {
  for (const temp of pending) {
    try {
      unlinkSync(temp);
    } catch {
      // Gone already.
    }
  }
  pending.clear();
}

/**
 * Lists `temp`, a temporary file about to be written, for {@link removePendingOutputs}; the
 * function returned unlists it (once it is renamed or removed).
 */
export function trackTemporary(temp: string): () => void {
  pending.add(temp);
  return () => void pending.delete(temp);
}

function reason(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such directory';
  if (code === 'ENOTDIR') return 'a part of the path is not a directory';
  if (code === 'EACCES' || code === 'EPERM') return 'permission denied';
  if (code === 'EROFS') return 'read-only file system';
  if (code === 'ENOSPC') return 'no space left on the device';
  return code ?? (error as Error).message;
}

/**
 * Checks that `path` can be written (its directory exists and takes a new file; the path, if it
 * exists, is a regular file) by creating the temporary file it will be written through.
 *
 * @param what what the file is, for messages (`the histogram`).
 * @throws {CliError} naming the path and the problem.
 */
export async function prepareOutput(path: string, what: string): Promise<PreparedOutput> {
  try {
    const existing = await stat(path);
    if (!existing.isFile()) throw new CliError(path, `cannot write ${what}: ${existing.isDirectory() ? 'it is a directory' : 'it exists and is not a regular file'}`);
  } catch (error) {
    if (error instanceof CliError) throw error;
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw new CliError(path, `cannot write ${what} (${reason(error)})`);
  }
  const temp = join(dirname(path), `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  let handle: FileHandle;
  // Listed before it exists: an exit may come between the file's creation and this continuation.
  const untrack = trackTemporary(temp);
  try {
    handle = await open(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644);
  } catch (error) {
    untrack();
    throw new CliError(path, `cannot write ${what} (${reason(error)})`);
  }
  let done = false;
  const discard = async (): Promise<void> => {
    if (!done) await handle.close().catch(() => undefined);
    done = true;
    await unlink(temp).catch(() => undefined);
    untrack();
  };
  return {
    path,
    discard,
    async commit(data) {
      try {
        if (typeof data === 'string' || data instanceof Uint8Array) await handle.writeFile(data);
        // Pieces one at a time: a file larger than the longest string (about 512 MiB) can be written.
        else for (const piece of data) await handle.write(piece);
        await handle.close();
        done = true;
        await rename(temp, path);
        untrack();
      } catch (error) {
        await discard();
        throw new CliError(path, `cannot write ${what} (${reason(error)})`);
      }
    },
  };
}
