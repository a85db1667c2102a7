/**
 * Soak: a long stream through one pool, to see that memory stays flat. `npm run soak` (or
 * `npm run soak -- 20000` for fewer batches) sends 100,000 batches through `fromBatches` (pulled
 * at the pool's pace), then the same 100,000 through a pushing `Subject` (a training loop that
 * pushes each batch as it makes it, after `await pool.whenReady()`), into `accumulateMetric` over a collection of metrics on a
 * 2-worker pool, and prints every 10,000 batches the process's RSS and JavaScript heap and the
 * pool's shared memory (reserved: what its memory grew by, which never shrinks; used: what is in
 * use now) and its queue. Each batch is a fresh ordinary Float32Array (64 x 512 learned, 64 x 128
 * source and decoded), which the pool copies in `next`. At the end it checks that both runs gave
 * the same bits. A script, not a test: it asserts nothing.
 *
 * @module
 */
import { Subject, type Observable } from 'rxjs';
import {
  accumulateMetric,
  createMetricPool,
  fromBatches,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  tensor,
  type Batch,
  type MetricPool,
} from '../src/index.js';
import { seededRandom } from '../examples/random.js';

const BATCHES = Number(process.argv[2] ?? 100_000);
const EVERY = Math.max(1, Math.round(BATCHES / 10));
const ROWS = 64;
const FEATURES = 512;
const DIM = 128;
const MiB = 2 ** 20;

/** Batch `i`: deterministic values, about a third zeros (a cheap generator, as a model's output would be). */
function makeBatch(i: number): Batch {
  const fill = (n: number, seed: number): Float32Array => {
    const rng = seededRandom(seed);
    const out = new Float32Array(n);
    for (let k = 0; k < n; k++) {
      const u = rng();
      out[k] = u < 0.3 ? 0 : (u - 0.5) * 4;
    }
    return out;
  };
  return {
    learnedActivations: tensor(fill(ROWS * FEATURES, 3 * i), [ROWS, FEATURES]),
    sourceActivations: tensor(fill(ROWS * DIM, 3 * i + 1), [ROWS, DIM]),
    decodedActivations: tensor(fill(ROWS * DIM, 3 * i + 2), [ROWS, DIM]),
  };
}

function metrics() {
  return new MetricCollection({
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    dead: new NeuronActivityMetric({ numLearnedFeatures: FEATURES }),
  });
}

const mib = (bytes: number): string => (bytes / MiB).toFixed(1).padStart(7);

function report(label: string, pool: MetricPool, done: number, started: number): void {
  const m = process.memoryUsage();
  const shared = pool.memoryUsage();
  console.log(
    `${label.padEnd(12)} ${String(done).padStart(7)} batches ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s | RSS ${mib(m.rss)} MiB | heap ${mib(m.heapUsed)} MiB | shared reserved ${mib(shared.reserved)} MiB, used ${mib(shared.used)} MiB | queued ${pool.queued}`,
  );
}

/** Runs `source` through the metrics on `pool`; resolves with the last value's text. */
function run(label: string, pool: MetricPool, source: Observable<Batch>): Promise<string> {
  const started = Date.now();
  let done = 0;
  let last = '';
  return new Promise((resolve, reject) => {
    source.pipe(accumulateMetric(metrics(), { pool })).subscribe({
      next: (value) => {
        done++;
        if (done % EVERY === 0) report(label, pool, done, started);
        if (done === BATCHES) {
          const v = value as Record<string, { data: ArrayLike<number> }>;
          last = JSON.stringify(Object.fromEntries(Object.entries(v).map(([k, t]) => [k, Array.from(t.data)])));
        }
      },
      error: reject,
      complete: () => resolve(last),
    });
  });
}

async function main(): Promise<void> {
  const pool = createMetricPool({ workers: 2 });
  console.log(`soak: ${BATCHES} batches of ${ROWS} x ${FEATURES} learned + 2 x ${ROWS} x ${DIM}, pool of ${pool.workers} workers (${pool.backend}), Node ${process.version}`);
  report('start', pool, 0, Date.now());

  function* pulled(): Generator<Batch> {
    for (let i = 0; i < BATCHES; i++) yield makeBatch(i);
  }
  const viaPull = await run('fromBatches', pool, fromBatches(pulled(), { pool }));

  const subject = new Subject<Batch>();
  const pushed = run('Subject', pool, subject);
  for (let i = 0; i < BATCHES; i++) {
    // A loop that pushes is paced by awaiting the pool (without it, a producer faster than the
    // pool fills the queue: the pool warns, and past maxQueuedBytes the stream errors).
    await pool.whenReady();
    subject.next(makeBatch(i));
  }
  subject.complete();
  const viaPush = await pushed;

  await pool.close();
  console.log(`both runs gave the same values: ${viaPull === viaPush ? 'yes' : 'NO'}`);
  const m = process.memoryUsage();
  console.log(`after close: RSS ${mib(m.rss)} MiB, heap ${mib(m.heapUsed)} MiB`);
}

await main();
