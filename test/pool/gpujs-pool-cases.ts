/**
 * Batches and metrics for the gpu.js pool tests of the GL suite, shared with the child processes
 * they start (so both sides build the same data): seeded, of several shapes, with sums whose
 * float32 rounding shows any change of which rows a kernel call sums.
 */
import { lastValueFrom, from } from 'rxjs';
import {
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  SparseAutoencoderLoss,
  reduceMetric,
  tensor,
  type Batch,
  type MetricPool,
  type Tensor,
} from '../../src/index.js';
import { mulberry32 } from '../support/random.js';

/** Rows per shard: small, so that a batch has many shards. */
export const SHARD_ROWS = 16;

/** A shape: components undefined for `[batch, feature]`. */
export interface PoolShape {
  readonly components: number | undefined;
  readonly features: number;
  readonly inputs: number;
}

export const SHAPES: readonly PoolShape[] = [
  { components: undefined, features: 37, inputs: 11 },
  { components: 2, features: 300, inputs: 8 },
];

/** Batches of `rows[i]` rows of a shape; values spread over decades, so float32 sums round. */
export function poolBatches(shape: PoolShape, rows: readonly number[], seed: number): Batch[] {
  return rows.map((n, b) => {
    const r = mulberry32(seed * 1000 + b);
    const c = shape.components ?? 1;
    const dims = (f: number): number[] => (shape.components === undefined ? [n, f] : [n, shape.components, f]);
    const learned = new Float32Array(n * c * shape.features).map(() => (r() < 0.6 ? 0 : (r() - 0.3) * 10 ** Math.floor(r() * 6 - 2)));
    const source = new Float32Array(n * c * shape.inputs).map(() => r() * 2 - 1);
    const decoded = source.map((x) => x + (r() - 0.5) * 0.3);
    return {
      learnedActivations: tensor(learned, dims(shape.features)),
      sourceActivations: tensor(source, dims(shape.inputs)),
      decodedActivations: tensor(decoded, dims(shape.inputs)),
    };
  });
}

export function poolMetrics(shape: PoolShape): MetricCollection {
  const c = shape.components === undefined ? {} : { numComponents: shape.components };
  return new MetricCollection({
    sae: new SparseAutoencoderLoss(c),
    l1: new L1AbsoluteLoss(c),
    l1Items: new L1AbsoluteLoss({ ...c, keepBatchDim: true }),
    l2: new L2ReconstructionLoss(c),
    l0: new L0NormMetric(c),
    density: new FeatureDensityMetric({ numLearnedFeatures: shape.features, ...c }),
    dead: new NeuronActivityMetric({ numLearnedFeatures: shape.features, ...c }),
    fired: new NeuronFiredCountMetric({ numLearnedFeatures: shape.features, ...c }),
  });
}

export type Values = Record<string, Tensor>;

/** The metrics over the batches, on a pool. */
export async function onPool(shape: PoolShape, batches: readonly Batch[], pool: MetricPool): Promise<Values> {
  return (await lastValueFrom(from(batches).pipe(reduceMetric(poolMetrics(shape), { pool })))) as Values;
}

/** The metrics over the batches, in this thread, with the same shard plan as the pools. */
export async function inThread(shape: PoolShape, batches: readonly Batch[], backend: 'js' | 'headlessgl'): Promise<Values> {
  const options = backend === 'js' ? { backend } : { backend: 'gpujs' as const, gpujsMode: backend };
  return (await lastValueFrom(from(batches).pipe(reduceMetric(poolMetrics(shape), { shardRows: SHARD_ROWS, ...options })))) as Values;
}

/** Each result's bytes, hex: equal strings are equal bits. */
export function bitsOf(values: Values): Record<string, string> {
  return Object.fromEntries(
    Object.entries(values).map(([k, t]) => [k, `${t.dtype}[${t.shape.join(',')}]:${Buffer.from(t.data.buffer, t.data.byteOffset, t.data.byteLength).toString('hex')}`]),
  );
}

/** Whether every value is within `relative` of the reference's (a message for the first that is not). */
export function within(values: Values, reference: Values, relative: number): string | undefined {
  for (const [k, e] of Object.entries(reference)) {
    const a = values[k];
    if (a === undefined || a.data.length !== e.data.length) return `${k}: missing or of another size`;
    for (let i = 0; i < e.data.length; i++) {
      const x = e.data[i] as number;
      const y = a.data[i] as number;
      if (!(Math.abs(x - y) <= relative * Math.max(1, Math.abs(x)))) return `${k}[${i}]: ${y} against ${x}`;
    }
  }
  return undefined;
}
