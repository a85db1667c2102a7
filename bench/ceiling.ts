/**
 * How fast can this machine read the large batches? The read-only ceiling every other script
 * divides by: WebAssembly SIMD sums on one and two threads, and the fastest plain JavaScript loop.
 * Run: node --expose-gc --import tsx bench/ceiling.ts
 *
 * @module
 */
import { bytesOf, Ceiling, f2, footer, header, isMain, LARGE, measure, ordinaryArrays, rate, table, type ReadmeRow } from './harness.js';

/** The same bytes as float64 words, 8 accumulators: the fastest read-only JavaScript loop we found. */
function readJs(a: Float32Array): number {
  const v = new Float64Array(a.buffer, a.byteOffset, a.length >>> 1);
  let s0 = 0, s1 = 0, s2 = 0, s3 = 0, s4 = 0, s5 = 0, s6 = 0, s7 = 0; // prettier-ignore
  for (let i = 0; i + 8 <= v.length; i += 8) {
    s0 += v[i] as number; s1 += v[i + 1] as number; s2 += v[i + 2] as number; s3 += v[i + 3] as number; // prettier-ignore
    s4 += v[i + 4] as number; s5 += v[i + 5] as number; s6 += v[i + 6] as number; s7 += v[i + 7] as number; // prettier-ignore
  }
  return s0 + s1 + s2 + s3 + s4 + s5 + s6 + s7;
}

export async function run(): Promise<ReadmeRow[]> {
  header('ceiling: read-only passes over two large batches (GB/s of the three arrays)', [
    'learned 2048 x 16384, source and decoded 2048 x 4096 float32 (192 MiB a batch); 7 interleaved repetitions, median (min-max)',
  ]);
  const batches = [ordinaryArrays(LARGE, 1), ordinaryArrays(LARGE, 2)];
  const ceiling = new Ceiling(batches, LARGE);
  let sink = 0;
  try {
    const [one, two] = ceiling.cases();
    const cases = [one, two, { name: 'read-only pass, 1 thread (JavaScript, 8 float64 sums)', run: () => batches.forEach((b) => (sink += readJs(b.learned) + readJs(b.source) + readJs(b.decoded))) }];
    const rates = (await measure(cases)).map((t) => rate(t, 2 * bytesOf(LARGE)));
    console.log(table(['pass', 'GB/s', '(min-max)', 'x 1 thread'], cases.map((c, i) => {
      const r = rates[i]!;
      return [c.name, f2(r.median), `(${f2(r.min)}-${f2(r.max)})`, f2(r.median / rates[0]!.median)];
    })));
    footer();
    return cases.map((c, i) => ({ path: c.name, figure: `${f2(rates[i]!.median)} GB/s`, ratio: f2(rates[i]!.median / rates[0]!.median) }));
  } finally {
    await ceiling.close();
    if (sink === 1) console.log(''); // keeps the reads live
  }
}

if (isMain(import.meta.url)) await run();
