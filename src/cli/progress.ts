/**
 * The progress bar of `sae-metrics` on a terminal: vectors processed out of the total, the read
 * rate in GB/s, the time elapsed, the time left (once an estimate means something) and the file
 * being read, redrawn in place at most every `intervalMs`, and cleared at the end.
 *
 * @module
 */
import { formatDuration, groupDigits } from './numbers.js';

/** What the progress bar writes to: a stream (a terminal's stderr in the command). */
export interface ProgressStream {
  write(text: string): unknown;
  /** The terminal width, when known. */
  readonly columns?: number;
}

/** Options of {@link ProgressBar}. */
export interface ProgressOptions {
  /** Vectors in all. */
  readonly total: number;
  /** The files read in order (the current one is shown, with its place when there are several). */
  readonly files?: readonly string[];
  /** The clock, in milliseconds (default `performance.now`). */
  readonly now?: () => number;
  /** Least time between two redraws (default 100 ms: at most 10 a second). */
  readonly intervalMs?: number;
}

/**
 * When the time left is first shown: after this long, and this portion of the vectors. Before,
 * the rate is that of the first batches, which pay for starting the workers, and an estimate
 * from it says little (1:36 left was once shown for a run of 21 s).
 */
export const ESTIMATE_AFTER_MS = 2000;
/** See {@link ESTIMATE_AFTER_MS}. */
export const ESTIMATE_AFTER_FRACTION = 0.05;

/** A one-line progress bar redrawn in place (`\r` ... erase to end of line). */
export class ProgressBar {
  readonly #stream: ProgressStream;
  readonly #total: number;
  readonly #files: readonly string[];
  readonly #now: () => number;
  readonly #interval: number;
  readonly #start: number;
  /** The first update: the estimate's rate is measured from it, past the start-up. */
  #first: { at: number; vectors: number } | undefined;
  #last = -Infinity;
  #drawn = false;

  constructor(stream: ProgressStream, options: ProgressOptions) {
    this.#stream = stream;
    this.#total = options.total;
    this.#files = options.files ?? [];
    this.#now = options.now ?? (() => performance.now());
    this.#interval = options.intervalMs ?? 100;
    this.#start = this.#now();
  }

  /** The estimated seconds left at `elapsedMs` with `vectors` done, or undefined while it means little. */
  #left(vectors: number, elapsedMs: number): number | undefined {
    const first = this.#first;
    if (first === undefined || vectors <= first.vectors || this.#total <= 0) return undefined;
    if (elapsedMs < ESTIMATE_AFTER_MS || vectors / this.#total < ESTIMATE_AFTER_FRACTION) return undefined;
    const perVector = (elapsedMs - first.at) / 1000 / (vectors - first.vectors);
    return Math.max(0, this.#total - vectors) * perVector;
  }

  /** The line for `vectors` done and `bytes` read at `elapsedMs`, reading `file`. */
  line(vectors: number, bytes: number, elapsedMs: number, file?: string): string {
    const seconds = elapsedMs / 1000;
    const fraction = this.#total > 0 ? Math.min(1, vectors / this.#total) : 1;
    const rate = seconds > 0 ? bytes / seconds / 1e9 : 0;
    const left = this.#left(vectors, elapsedMs);
    let text = `${groupDigits(vectors)}/${groupDigits(this.#total)} vectors  ${rate.toFixed(2)} GB/s  ${formatDuration(seconds)} elapsed`;
    if (left !== undefined) text += `  ${formatDuration(left)} left`;
    const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
    const columns = this.#stream.columns ?? 80;
    const index = file === undefined ? -1 : this.#files.indexOf(file);
    const place = this.#files.length > 1 && index >= 0 ? ` (${index + 1}/${this.#files.length})` : '';
    // The file takes up to 30 columns from the bar (down to 10 wide), then what is left.
    const want = file === undefined ? 0 : Math.min(30, 2 + file.length + place.length);
    const width = Math.max(10, Math.min(40, columns - 1 - text.length - percent.length - 4 - want));
    const filled = Math.round(fraction * width);
    let out = `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${percent} ${text}`;
    if (file !== undefined) {
      const room = columns - 1 - out.length - 2 - place.length;
      if (room >= 8) out += `  ${file.length <= room ? file : `…${file.slice(file.length - room + 1)}`}${place}`;
    }
    return out;
  }

  /** Redraws with `vectors` done and `bytes` read, unless the last redraw was under `intervalMs` ago. */
  update(vectors: number, bytes: number, file?: string): void {
    const now = this.#now();
    this.#first ??= { at: now - this.#start, vectors };
    if (now - this.#last < this.#interval) return;
    this.#last = now;
    this.#stream.write(`\r${this.line(vectors, bytes, now - this.#start, file)}\x1b[K`);
    this.#drawn = true;
  }

  /** Erases the bar, if it was drawn. */
  clear(): void {
    if (this.#drawn) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
  }
}
