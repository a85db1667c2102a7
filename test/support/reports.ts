/**
 * Helpers of the tests that compare a run cut in shards with one run: random float values whose
 * sums round differently in another grouping, and the JSON report without what describes the cut.
 */
import { mulberry32 } from './random.js';

/** Random float32 values (not dyadic: sums round), sparse for learned activations when `density` < 1. */
export function floats(n: number, seed: number, density = 1): Float32Array {
  const r = mulberry32(seed);
  return Float32Array.from({ length: n }, () => (r() < density ? (r() - (density < 1 ? 0.05 : 0.5)) * 3.7 : 0));
}

/** The JSON report without what describes how the work was cut (workers, batches, batch size, time). */
export function comparable(stdout: string): unknown {
  const o = JSON.parse(stdout) as Record<string, unknown>;
  for (const k of ['workers', 'batches', 'batchRows', 'elapsedSeconds']) delete o[k];
  return o;
}
