/**
 * How `sae-metrics` writes numbers for people (the table, the progress bar, the plot): counts with
 * their digits grouped, other values to 6 significant digits. Error messages keep plain integers,
 * as in shapes and byte offsets.
 *
 * @module
 */

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

/**
 * A number for people (the table, the plot): integers with their digits grouped (`16,384`), others
 * to 6 significant digits, in exponent form below 1e-4 or from 1e9.
 */
export function formatNumber(x: number): string {
  if (!Number.isFinite(x)) return String(x);
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return groupDigits(x);
  if (x !== 0 && (Math.abs(x) < 1e-4 || Math.abs(x) >= 1e9)) return x.toExponential(5);
  return x.toPrecision(6);
}

/** A threshold or edge as a short number: `1e-5`, `5e-6` below 1e-3 and past 1e3, else as it is (`0.25`). */
export function shortNumber(x: number): string {
  if (!(x > 0) || !Number.isFinite(x)) return String(x);
  const e = Math.floor(Math.log10(x));
  const m = x / 10 ** e;
  return (e < -3 || e > 3) && Math.abs(m - Math.round(m)) < 1e-9 ? `${Math.round(m)}e${e}` : String(x);
}
