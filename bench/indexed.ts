/**
 * How long do the indexed parts take to make a shard's partial state from its fired entries
 * (`positives`, computed once, untimed)? TopActivations' partial against the arrival-order
 * insertion it replaced (kept here as the baseline, and checked to give the same bits), beside
 * DeadFeaturesOverWindow's partial, the merge of two top partials and a plain count of the entries
 * by feature (the least a pass over the entries costs). One shard: the first 1024 rows of a large
 * bench batch (1024 x 16384, 1.8% fired).
 * Run: node --expose-gc --import tsx bench/indexed.ts
 *
 * @module
 */
import { jsFusedKernel } from '../src/kernels/js-fused.js';
import type { PositiveEntries } from '../src/kernels/types.js';
import type { Batch } from '../src/functional/core.js';
import { firedByFeature } from '../src/functional/parts/fired-by-feature.js';
import { lastFiredPart } from '../src/functional/parts/last-fired.js';
import { topActivationsPart, type TopActivationsState } from '../src/functional/parts/top-activations.js';
import { batchOf, f2, footer, header, isMain, LARGE, measure, ordinaryArrays, table, type Case, type ReadmeRow } from './harness.js';

const SHARD_ROWS = 1024;
const KS = [1, 2, 4, 10, 100];

/** The partial as first built: entries in arrival order, each inserted into its feature's sorted slots. */
function arrivalOrderTop(p: PositiveEntries, numFeatures: number, k: number): { counts: Float64Array; values: Float32Array; indices: Float64Array } {
  const { offsets, features, values: entries } = p;
  const n = offsets.length - 1;
  const counts = new Float64Array(numFeatures);
  for (let i = 0; i < features.length; i++) counts[features[i] as number] = (counts[features[i] as number] as number) + 1;
  const from = new Uint32Array(numFeatures);
  let total = 0;
  for (let g = 0; g < numFeatures; g++) {
    const c = Math.min(k, counts[g] as number);
    counts[g] = c;
    from[g] = total;
    total += c;
  }
  const values = new Float32Array(total);
  const indices = new Float64Array(total);
  const filled = new Uint32Array(numFeatures);
  for (let v = 0; v < n; v++) {
    const end = offsets[v + 1] as number;
    for (let i = offsets[v] as number; i < end; i++) {
      const g = features[i] as number;
      const x = entries[i] as number;
      const start = from[g] as number;
      const have = filled[g] as number;
      const full = have === (counts[g] as number);
      if (full && (values[start + have - 1] as number) >= x) continue;
      let q = start + (full ? have - 1 : have);
      while (q > start && (values[q - 1] as number) < x) {
        values[q] = values[q - 1] as number;
        indices[q] = indices[q - 1] as number;
        q--;
      }
      values[q] = x;
      indices[q] = v;
      if (!full) filled[g] = have + 1;
    }
  }
  return { counts, values, indices };
}

function countByFeature(p: PositiveEntries, numFeatures: number): Uint32Array {
  const counts = new Uint32Array(numFeatures);
  const f = p.features;
  for (let i = 0; i < f.length; i++) counts[f[i] as number] = (counts[f[i] as number] as number) + 1;
  return counts;
}

function sameBits(a: ArrayLike<number>, b: ArrayLike<number>): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (!Object.is(a[i], b[i])) return false;
  return true;
}

export async function run(): Promise<ReadmeRow[]> {
  header('indexed parts: a shard\'s partial state from its fired entries, this thread', [
    `one shard of ${SHARD_ROWS} x ${LARGE.learned} (the first rows of a large bench batch), its positives computed once, untimed; medians of 7, ms`,
  ]);
  const batch = batchOf(ordinaryArrays(LARGE, 1), LARGE) as Batch;
  const rows = { start: 0, end: SHARD_ROWS };
  const stats = jsFusedKernel(batch, rows, { positives: true });
  const positives = stats.positives as PositiveEntries;
  const entries = positives.values.length;
  console.log(`${entries} fired entries (${f2((100 * entries) / (SHARD_ROWS * LARGE.learned))}%)\n`);
  const out: ReadmeRow[] = [];
  let sink = 0;
  for (const k of KS) {
    const part = topActivationsPart(LARGE.learned, undefined, k);
    const fresh = part.fromStats?.(stats, rows, batch) as TopActivationsState;
    const old = arrivalOrderTop(positives, LARGE.learned, k);
    if (!sameBits(fresh.counts, old.counts) || !sameBits(fresh.values, old.values) || !sameBits(fresh.indices, old.indices)) {
      throw new Error(`bench: TopActivations' partial (k=${k}) differs from the arrival-order baseline`);
    }
    const second = part.fromStats?.(stats, { start: SHARD_ROWS, end: 2 * SHARD_ROWS }, batch) as TopActivationsState;
    const last = lastFiredPart(LARGE.learned, undefined);
    // A fresh `positives` object: not grouped by feature (as for top alone); `stats`' positives
    // are grouped (as when actstats or acthist grouped them first: top then takes the groups).
    const fresh2 = (): typeof stats => ({ positives: { ...positives } });
    firedByFeature(positives, 1, LARGE.learned);
    const cases: Case[] = [
      { name: `top partial, arrival-order insertion (baseline), k=${k}`, run: () => (sink += arrivalOrderTop(positives, LARGE.learned, k).values.length) },
      { name: `top partial (${k <= 4 ? 'arrival order into k fixed slots' : 'bucketed by value, then inserted'}), k=${k}`, run: () => (sink += (part.fromStats?.(fresh2(), rows, batch) as TopActivationsState).values.length) },
      { name: `top partial from the entries grouped by feature (by another part), k=${k}`, run: () => (sink += (part.fromStats?.(stats, rows, batch) as TopActivationsState).values.length) },
      { name: 'the grouping by feature (once a shard, shared by the per-feature parts)', run: () => (sink += firedByFeature({ ...positives }, 1, LARGE.learned).rows.length) },
      { name: `top merge of two shards' partials, k=${k}`, run: () => (sink += part.merge(fresh, second).values.length) },
      { name: 'last-fired partial (DeadFeaturesOverWindow)', run: () => (sink += (last.fromStats?.(stats, rows, batch) as { vectors: number }).vectors) },
      { name: 'count of the entries by feature (one plain pass)', run: () => (sink += countByFeature(positives, LARGE.learned).length) },
    ];
    const times = await measure(cases, 7);
    const base = times[0]!.median;
    console.log(
      table(
        ['case', 'ms', '(min-max)', 'ns/entry', 'x baseline time'],
        cases.map((c, i) => {
          const t = times[i]!;
          return [c.name, f2(t.median), `(${f2(t.min)}-${f2(t.max)})`, f2((t.median * 1e6) / entries), f2(t.median / base)];
        }),
      ),
    );
    console.log('');
    out.push({ path: `TopActivations partial, one 1024 x 16384 shard, k=${k}`, figure: `${f2(times[1]!.median)} ms`, ratio: `${f2(base / times[1]!.median)}x faster than arrival order` });
  }
  if (sink < 0) console.log(sink);
  footer();
  return out;
}

if (isMain(import.meta.url)) await run();
