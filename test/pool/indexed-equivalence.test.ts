/**
 * TopActivations and DeadFeaturesOverWindow through the pool: the same bits at 1, 2 and 4 workers
 * and in-thread at the same shardRows, and the same as the class path (one batch at a time,
 * shards of 1024 rows), for `reduceMetric` and `accumulateMetric`, alone and in a collection; the
 * numbering crosses shards, batches and workers with no help from the operators (each shard's
 * partial numbers from its own first row and merges shift it), `firstVectorIndex` included. A
 * batch declaring a first vector below those already numbered errors the stream, even when it is
 * validated while earlier batches are still on the pool.
 */
import { describe, it, expect, beforeAll, afterAll } from 'vitest';
import { fileURLToPath } from 'node:url';
import { BroadcastChannel } from 'node:worker_threads';
import { from, lastValueFrom, toArray } from 'rxjs';
import {
  accumulateMetric,
  reduceMetric,
  createMetricPool,
  tensor,
  Tensor,
  TopActivations,
  DeadFeaturesOverWindow,
  MetricCollection,
} from '../../src/index.js';
import { inThreadExecutor } from '../../src/pool/executor.js';
import type { Batch, LearnedBatch, MetricPool, MetricOperatorOptions, MetricTarget } from '../../src/index.js';
import { refTopActivations, type RefIndexedBatch } from '../reference/indexed.js';
import { mulberry32 } from '../support/random.js';
import { SHUFFLE_CHANNEL, type ShuffleCompletion } from '../fixtures/equivalence-shuffle.js';

const SHUFFLE = fileURLToPath(new URL('../fixtures/equivalence-shuffle.ts', import.meta.url));

/** A result (a metric's object of tensors and numbers, or a collection's of those) as comparable text. */
function bitsOf(value: unknown): unknown {
  if (value instanceof Tensor) return `${value.dtype}[${value.shape.join(',')}]:${Buffer.from(value.data.buffer, value.data.byteOffset, value.data.byteLength).toString('hex')}`;
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : String(value);
  if (typeof value === 'object' && value !== null) return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, bitsOf(v)]));
  return value;
}

interface Scenario {
  readonly name: string;
  readonly seed: number;
  readonly components: number | undefined;
  readonly features: number;
  readonly sizes: readonly number[];
  /** Per batch: vectors skipped before it (declared with firstVectorIndex), or undefined. */
  readonly gaps: readonly (number | undefined)[];
}

const SCENARIOS: readonly Scenario[] = [
  { name: 'rank 2', seed: 5, components: undefined, features: 5, sizes: [1, 7, 13, 300, 2], gaps: [undefined, 3, undefined, 0, 1000] },
  { name: 'rank 3, 2 components', seed: 6, components: 2, features: 6, sizes: [129, 1, 7, 1000], gaps: [4, undefined, 2, undefined] },
  { name: 'rank 3, 1 component', seed: 7, components: 1, features: 3, sizes: [2500, 13], gaps: [undefined, 9] },
];

function streamOf(s: Scenario): { batches: Batch[]; refs: RefIndexedBatch[] } {
  const r = mulberry32(s.seed);
  const width = (s.components ?? 1) * s.features;
  let next = 0;
  const batches: Batch[] = [];
  const refs: RefIndexedBatch[] = [];
  s.sizes.forEach((rows, b) => {
    // Sparse, with ties (quarters) and non-candidates.
    const data = Float32Array.from({ length: rows * width }, () => {
      const u = r();
      return u < 0.8 ? 0 : u < 0.85 ? -1 : u < 0.86 ? NaN : Math.floor(r() * 12) / 4;
    });
    const shape = s.components === undefined ? [rows, s.features] : [rows, s.components, s.features];
    const gap = s.gaps[b];
    const first = gap === undefined ? undefined : next + gap;
    const t = tensor(data, shape);
    batches.push(first === undefined ? { learnedActivations: t } : { learnedActivations: t, firstVectorIndex: first });
    refs.push(first === undefined ? { data: [...data], shape } : { data: [...data], shape, firstVectorIndex: first });
    next = (first ?? next) + rows;
  });
  return { batches, refs };
}

function targetsOf(s: Scenario): { name: string; make: () => MetricTarget }[] {
  const o = { numLearnedFeatures: s.features, ...(s.components === undefined ? {} : { numComponents: s.components }) };
  return [
    { name: 'TopActivations', make: () => new TopActivations({ ...o, k: 4 }) },
    { name: 'DeadFeaturesOverWindow', make: () => new DeadFeaturesOverWindow({ ...o, windowVectors: 200 }) },
    {
      name: 'collection',
      make: () => new MetricCollection({ top: new TopActivations({ ...o, k: 2 }), dead: new DeadFeaturesOverWindow({ ...o, windowVectors: 50 }) }),
    },
  ];
}

/** The class path: update batch by batch (default executor), compute after each. */
function classPath(target: MetricTarget, batches: readonly Batch[]): unknown[] {
  const m = target as unknown as { update(b: Batch): void; compute(): unknown };
  return batches.map((b) => {
    m.update(b);
    return bitsOf(m.compute());
  });
}

async function through(target: MetricTarget, batches: readonly Batch[], options: MetricOperatorOptions, accumulate: boolean): Promise<unknown[]> {
  const op = accumulate ? accumulateMetric(target, options) : reduceMetric(target, options);
  const out = await lastValueFrom(from(batches).pipe(op, toArray()));
  return out.map(bitsOf);
}

const SHARD_ROWS = 7;

describe(`indexed metrics through pools of 1, 2 and 4 workers (shardRows ${SHARD_ROWS}) and in-thread`, () => {
  const pools: MetricPool[] = [];
  beforeAll(() => {
    for (const workers of [1, 2, 4]) pools.push(createMetricPool({ workers, shardRows: SHARD_ROWS }));
  });
  afterAll(async () => {
    await Promise.all(pools.map((p) => p.close()));
  });

  for (const s of SCENARIOS) {
    for (const t of targetsOf(s)) {
      it(`${s.name}, ${t.name}: the same bits everywhere, and the class path's`, async () => {
        const { batches, refs } = streamOf(s);
        const expected = classPath(t.make(), batches);
        for (const accumulate of [true, false]) {
          const want = accumulate ? expected : expected.slice(-1);
          const inThread = await through(t.make(), batches, { shardRows: SHARD_ROWS, backend: 'js' }, accumulate);
          expect(inThread, `in-thread, ${accumulate ? 'accumulate' : 'reduce'}`).toEqual(want);
          for (const pool of pools) {
            const got = await through(t.make(), batches, { pool }, accumulate);
            expect(got, `${pool.workers} workers, ${accumulate ? 'accumulate' : 'reduce'}`).toEqual(want);
          }
        }
        if (t.name === 'TopActivations') {
          // And the reference's answer (a full sort over the whole stream).
          const want = refTopActivations(refs, 4);
          const top = t.make() as TopActivations;
          for (const b of batches) top.update(b as LearnedBatch);
          const indices = Array.from(top.compute().indices.data);
          want.entries.forEach((e, g) => expect(indices.slice(g * 4, g * 4 + e.length)).toEqual(e.map((x) => x[1])));
          expect(top.compute().vectors.item()).toBe(want.vectors);
        }
        // Every pool and both operators over the stream: seconds on a loaded 2-core machine.
      }, 30_000);
    }
  }

  it('numbers across shards of every size in-thread the same (shardRows 1, 3, 1024)', () => {
    const { batches } = streamOf(SCENARIOS[1] as Scenario);
    const bits = [1, 3, 1024].map((shardRows) => {
      const top = new TopActivations({ numLearnedFeatures: 6, numComponents: 2, k: 3 });
      const d = top.definition;
      const executor = inThreadExecutor(shardRows, 'js');
      let state = d.init();
      for (const b of batches) {
        const byId = executor.evaluate(Object.values(d.parts), b, b.learnedActivations!.shape[0] as number);
        state = d.fold(state, { top: byId.get(d.parts.top!.id) });
      }
      return bitsOf(d.compute(state));
    });
    expect(bits[1]).toEqual(bits[0]);
    expect(bits[2]).toEqual(bits[0]);
  });

  it('a batch going back errors the stream, naming the metric and the values, also when validated while earlier batches are on the pool', async () => {
    const batches: Batch[] = [
      { learnedActivations: tensor(new Float32Array(50 * 2).fill(1), [50, 2]) },
      { learnedActivations: tensor([[1, 1]]), firstVectorIndex: 20 },
    ];
    for (const options of [{ pool: pools[2] as MetricPool }, { shardRows: SHARD_ROWS }]) {
      const run = lastValueFrom(from(batches).pipe(reduceMetric(new TopActivations({ numLearnedFeatures: 2, k: 1 }), options)));
      await expect(run).rejects.toThrow(/^TopActivations: .*firstVectorIndex 20 is below the 50 vectors/);
    }
  });
});

describe('indexed metrics through a pool whose shards and batches finish out of order', () => {
  let pool: MetricPool;
  let channel: BroadcastChannel;
  const completions: ShuffleCompletion[] = [];
  beforeAll(() => {
    pool = createMetricPool({ workers: 4, shardRows: SHARD_ROWS, filename: SHUFFLE });
    channel = new BroadcastChannel(SHUFFLE_CHANNEL);
    channel.onmessage = (event) => completions.push(event.data as ShuffleCompletion);
  });
  afterAll(async () => {
    channel.close();
    await pool.close();
  });

  it('numbers the vectors as in-thread, bit for bit, while shards complete out of order', async () => {
    const s = SCENARIOS[0] as Scenario;
    const { batches } = streamOf(s);
    const tasks = s.sizes.reduce((n, rows) => n + Math.ceil(rows / SHARD_ROWS), 0);
    for (const t of targetsOf(s)) {
      completions.length = 0;
      const got = await through(t.make(), batches, { pool }, true);
      expect(got, t.name).toEqual(await through(t.make(), batches, { shardRows: SHARD_ROWS, backend: 'js' }, true));
      const deadline = Date.now() + 10_000;
      while (completions.length < tasks && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
      const order = [...completions].sort((a, b) => a.at - b.at);
      const rank = (c: ShuffleCompletion): number => c.batchIndex * 1e6 + c.shardIndex;
      expect(order.filter((c, i) => i > 0 && rank(c) < rank(order[i - 1] as ShuffleCompletion)).length, `${t.name}: shards out of order`).toBeGreaterThan(0);
    }
  });
});
