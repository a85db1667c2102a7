/**
 * The progress bar of `sae-metrics` on a terminal: vectors processed out of the total, the read
 * rate in GB/s and the time left, redrawn in place at most every `intervalMs`, and cleared at the
 * end.
 *
 * @module
 */

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
  /** The clock, in milliseconds (default `performance.now`). */
  readonly now?: () => number;
  /** Least time between two redraws (default 100 ms: at most 10 a second). */
  readonly intervalMs?: number;
}

/** `1234567` as `1,234,567`. */
export function groupDigits(n: number): string {
  return Math.round(n).toLocaleString('en-US');
}

/** Seconds as `m:ss` or `h:mm:ss`. */
export function formatDuration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return '--:--';
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const ss = String(s % 60).padStart(2, '0');
  return h > 0 ? `${h}:${String(m).padStart(2, '0')}:${ss}` : `${m}:${ss}`;
}

/** A one-line progress bar redrawn in place (`\r` ... erase to end of line). */
export class ProgressBar {
  readonly #stream: ProgressStream;
  readonly #total: number;
  readonly #now: () => number;
  readonly #interval: number;
  readonly #start: number;
  #last = -Infinity;
  #drawn = false;

  constructor(stream: ProgressStream, options: ProgressOptions) {
    this.#stream = stream;
    this.#total = options.total;
    this.#now = options.now ?? (() => performance.now());
    this.#interval = options.intervalMs ?? 100;
    this.#start = this.#now();
  }

  /** The line for `vectors` done and `bytes` read at `elapsedMs`. */
  line(vectors: number, bytes: number, elapsedMs: number): string {
    const seconds = elapsedMs / 1000;
    const fraction = this.#total > 0 ? Math.min(1, vectors / this.#total) : 1;
    const rate = seconds > 0 ? bytes / seconds / 1e9 : 0;
    const left = vectors > 0 && seconds > 0 ? ((this.#total - vectors) * seconds) / vectors : NaN;
    const text = `${groupDigits(vectors)}/${groupDigits(this.#total)} vectors  ${rate.toFixed(2)} GB/s  ${formatDuration(left)} left`;
    const percent = `${Math.floor(fraction * 100)}%`.padStart(4);
    const width = Math.max(10, Math.min(40, (this.#stream.columns ?? 80) - text.length - percent.length - 5));
    const filled = Math.round(fraction * width);
    return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${percent} ${text}`;
  }

  /** Redraws with `vectors` done and `bytes` read, unless the last redraw was under `intervalMs` ago. */
  update(vectors: number, bytes: number): void {
    const now = this.#now();
    if (now - this.#last < this.#interval) return;
    this.#last = now;
    this.#stream.write(`\r${this.line(vectors, bytes, now - this.#start)}\x1b[K`);
    this.#drawn = true;
  }

  /** Erases the bar, if it was drawn. */
  clear(): void {
    if (this.#drawn) this.#stream.write('\r\x1b[K');
    this.#drawn = false;
  }
}
