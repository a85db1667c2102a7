/** Seeded pseudo-random numbers for tests (mulberry32, the examples' generator): the same data on every run. */
export { seededRandom as mulberry32 } from '../../examples/random.js';

/** Fills `out` with deterministic float32 values (a linear congruential generator): about 30% exact zeros, the rest in (-2, 2). */
export function lcgFill(out: Float32Array, seed: number): Float32Array {
  let s = (seed * 2654435761 + 12345) >>> 0;
  for (let i = 0; i < out.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    const u = s / 2 ** 32;
    out[i] = u < 0.3 ? 0 : (u - 0.5) * 4;
  }
  return out;
}
