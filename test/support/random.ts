/** Seeded pseudo-random numbers for tests (mulberry32): the same data on every run. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

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
