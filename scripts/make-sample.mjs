#!/usr/bin/env node
// Writes a sample .npy file of SAE-like learned activations, for trying `sae-metrics`:
//   node scripts/make-sample.mjs [out.npy] [vectors] [features]
// Feature f fires with a probability spread over four decades (10^-4 to 1); every 50th never fires.
import { openSync, writeSync, closeSync } from 'node:fs';

const [out = 'sample.npy', vectors = '100000', features = '1024'] = process.argv.slice(2);
const N = Number(vectors);
const F = Number(features);
let seed = 1;
const random = () => {
  seed = (seed + 0x6d2b79f5) >>> 0;
  let t = seed;
  t = Math.imul(t ^ (t >>> 15), t | 1);
  t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
  return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
};
const p = Float64Array.from({ length: F }, (_, f) => (f % 50 === 0 ? 0 : 10 ** (-4 * random())));
const dict = `{'descr': '<f4', 'fortran_order': False, 'shape': (${N}, ${F}), }`;
const total = Math.ceil((10 + dict.length + 1) / 64) * 64;
const header = Buffer.alloc(total, 0x20);
Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0]).copy(header);
header.writeUInt16LE(total - 10, 8);
header.write(dict, 10, 'latin1');
header[total - 1] = 0x0a;
const fd = openSync(out, 'w');
writeSync(fd, header);
const rows = 1024;
const chunk = new Float32Array(rows * F);
for (let n = 0; n < N; n += rows) {
  const r = Math.min(rows, N - n);
  chunk.fill(0);
  for (let i = 0; i < r * F; i++) if (random() < p[i % F]) chunk[i] = random() * 4;
  writeSync(fd, new Uint8Array(chunk.buffer, 0, r * F * 4));
}
closeSync(fd);
console.log(`wrote ${out}: ${N} x ${F} float32`);
