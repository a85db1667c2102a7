/**
 * A Node service that watches an SAE: activations arrive as events (as they would from a training
 * process or a socket), several metrics are computed together on a worker pool, and their values
 * are logged every `logEvery` activation vectors.
 */
import { EventEmitter } from 'node:events';
import { fromEvent, lastValueFrom, map, takeUntil, tap, toArray } from 'rxjs';
import {
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  SparseAutoencoderLoss,
  computeEvery,
  createMetricPool,
  tensor,
  type Batch,
} from '../../src/index.js';
import { seededRandom } from '../random.js';

/** Settings of {@link runService}. */
export interface ServiceOptions {
  readonly batches: number;
  readonly batchRows: number;
  readonly learnedFeatures: number;
  readonly inputFeatures: number;
  readonly logEvery: number;
  readonly workers: number;
  readonly seed: number;
  readonly log: (line: string) => void;
}

/** One logged window: its number (from 1), the vectors it covers, the metric values as plain numbers. */
export interface WindowReport {
  readonly window: number;
  readonly vectors: number;
  readonly loss: number;
  readonly l1: number;
  readonly l2: number;
  readonly l0: number;
  readonly dead: number;
  readonly meanDensity: number;
}

export { seededRandom };

/** A stand-in for an SAE's forward pass: sparse ReLU codes and a noisy reconstruction. */
export function makeBatch(random: () => number, o: Pick<ServiceOptions, 'batchRows' | 'learnedFeatures' | 'inputFeatures'>): Batch {
  const learned = new Float32Array(o.batchRows * o.learnedFeatures);
  for (let i = 0; i < learned.length; i++) {
    const feature = i % o.learnedFeatures;
    // Feature f fires with probability decaying in f; the last eighth never fires (dead).
    const p = feature < (o.learnedFeatures * 7) / 8 ? 0.2 / (1 + feature / 16) : 0;
    learned[i] = random() < p ? random() : 0;
  }
  const source = new Float32Array(o.batchRows * o.inputFeatures).map(() => random() * 2 - 1);
  const decoded = source.map((x) => x + (random() - 0.5) * 0.2);
  return {
    learnedActivations: tensor(learned, [o.batchRows, o.learnedFeatures]),
    sourceActivations: tensor(source, [o.batchRows, o.inputFeatures]),
    decodedActivations: tensor(decoded, [o.batchRows, o.inputFeatures]),
  };
}

/** The metrics the service reports. */
export function serviceMetrics(learnedFeatures: number): MetricCollection {
  return new MetricCollection({
    loss: new SparseAutoencoderLoss({ l1Coefficient: 0.001 }),
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    dead: new NeuronActivityMetric({ numLearnedFeatures: learnedFeatures }),
    density: new FeatureDensityMetric({ numLearnedFeatures: learnedFeatures }),
  });
}

/** The columns of the log: a name and a width each. */
const COLUMNS = [
  ['window', 6],
  ['vectors', 9],
  ['loss', 9],
  ['l1', 8],
  ['l2', 9],
  ['l0', 7],
  ['dead', 11],
  ['mean density', 12],
] as const;

/** The header line the service logs first. */
export const HEADER = COLUMNS.map(([name, width]) => name.padStart(width)).join('  ');

/** The log line of a window, under {@link HEADER}. */
export function windowLine(w: WindowReport, learnedFeatures: number): string {
  const cells = [
    String(w.window),
    String(w.window * w.vectors),
    w.loss.toFixed(5),
    w.l1.toFixed(3),
    w.l2.toFixed(5),
    w.l0.toFixed(2),
    `${w.dead}/${learnedFeatures}`,
    w.meanDensity.toFixed(4),
  ];
  return cells.map((c, i) => c.padStart((COLUMNS[i] as readonly [string, number])[1])).join('  ');
}

/** Runs the service: logs a header, emits `batches` batches as events and returns the logged windows (one line each). */
export async function runService(o: ServiceOptions): Promise<WindowReport[]> {
  const pool = createMetricPool({ workers: o.workers, shardRows: 256 });
  const activations = new EventEmitter();
  try {
    const reports = lastValueFrom(
      fromEvent(activations, 'batch').pipe(
        takeUntil(fromEvent(activations, 'end')),
        map((b) => b as Batch),
        computeEvery(serviceMetrics(o.learnedFeatures), { vectors: o.logEvery }, { pool }),
        map((r, index): WindowReport => {
          const density = r.density as { data: Float64Array };
          return {
            window: index + 1,
            vectors: o.logEvery,
            loss: r.loss!.item(),
            l1: r.l1!.item(),
            l2: r.l2!.item(),
            l0: r.l0!.item(),
            dead: r.dead!.item(),
            meanDensity: density.data.reduce((a, b) => a + b, 0) / density.data.length,
          };
        }),
        tap((w) => o.log(windowLine(w, o.learnedFeatures))),
        toArray(),
      ),
    );
    o.log(HEADER);
    const random = seededRandom(o.seed);
    for (let i = 0; i < o.batches; i++) {
      activations.emit('batch', makeBatch(random, o));
      // Yield to the event loop between batches, as a real source would.
      await new Promise((resolve) => setImmediate(resolve));
    }
    activations.emit('end');
    return await reports;
  } finally {
    await pool.close();
    activations.removeAllListeners();
  }
}


