/**
 * SpareBuffers under seeded sequences of give and take (sizes from a few to many, buffers given
 * again after they were taken): never more than `limit` buffers in all nor `perSize` of a size,
 * `bytes` their sum, a buffer handed out only once per give and only of the size asked for, and
 * the buffers kept are the ones a least-recently-given model keeps.
 */
import { describe, expect, it } from 'vitest';
import { SpareBuffers } from '../../src/pool/spare-buffers.js';
import { mulberry32 } from '../support/random.js';

describe('SpareBuffers against a model', () => {
  it('2000 seeded operations on each of 12 settings', () => {
    for (let seed = 1; seed <= 12; seed++) {
      const r = mulberry32(seed * 7919);
      const limit = 1 + Math.floor(r() * 10);
      const perSize = 1 + Math.floor(r() * limit);
      const sizes = Array.from({ length: 1 + Math.floor(r() * 20) }, (_, i) => 8 * (i + 1));
      const spare = new SpareBuffers(limit, perSize);
      // The model: lists by size, the size given last at the end.
      const model = new Map<number, SharedArrayBuffer[]>();
      const out = new Set<SharedArrayBuffer>();
      const kept = (): number => [...model.values()].reduce((n, l) => n + l.length, 0);
      for (let op = 0; op < 2000; op++) {
        const size = sizes[Math.floor(r() * sizes.length)] as number;
        if (r() < 0.55) {
          // Give a buffer taken before, or a new one.
          const back = [...out].find((b) => b.byteLength === size);
          const buffer = back ?? new SharedArrayBuffer(size);
          out.delete(buffer);
          spare.give(buffer);
          const list = model.get(size) ?? [];
          model.delete(size);
          model.set(size, list);
          if (list.length < perSize) list.push(buffer);
          while (kept() > limit) {
            const [oldest, l] = model.entries().next().value as [number, SharedArrayBuffer[]];
            l.pop();
            if (l.length === 0) model.delete(oldest);
          }
        } else {
          const got = spare.take(size);
          const list = model.get(size);
          const want = list?.pop();
          if (list !== undefined && list.length === 0) model.delete(size);
          expect(got, `seed ${seed}, op ${op}: take(${size})`).toBe(want);
          if (got !== undefined) {
            expect(got.byteLength).toBe(size);
            expect(out.has(got)).toBe(false);
            out.add(got);
          }
        }
        expect(kept()).toBeLessThanOrEqual(limit);
        expect(spare.bytes, `seed ${seed}, op ${op}`).toBe([...model.values()].flat().reduce((n, b) => n + b.byteLength, 0));
      }
    }
  });
});
