/**
 * What the reconstruction-quality metrics share: their options (`numComponents`, and
 * `numFeatures` for the metrics that keep per-dimension moments), their batch check (source and
 * decoded activations of one shape) and their per-component results.
 *
 * @module
 */
import { checkBatch, checkOptions, defineMetric, orDefault, positiveInteger } from './core.js';
import type { Batch, MetricDefinition, MetricState, StatePart } from './core.js';
import { checkReconstruction } from './l2-reconstruction-loss.js';
import { batchError, formatShape } from '../errors.js';
import { float64, squeezeIfScalar, type Tensor } from '../tensor.js';

/** Options of the reconstruction metrics read per vector (`CosineSimilarity`, `L2Ratio`, ...). */
export interface ReconstructionOptions {
  /** Number of components (default 1); inputs are `[batch, feature]` or `[batch, numComponents, feature]`. */
  readonly numComponents?: number;
}

/** Options of the metrics that keep per-dimension moments (`ExplainedVariance`, `FractionOfVarianceUnexplained`). */
export interface VarianceOptions extends ReconstructionOptions {
  /** The width of source and decoded activations: their last axis (required). */
  readonly numFeatures: number;
}

/** The checked options of a reconstruction metric. */
export interface ReconstructionShape {
  readonly numComponents: number;
  /** Set for the metrics that take `numFeatures`. */
  readonly numFeatures: number | undefined;
}

/** Checks the options of a reconstruction metric; `withFeatures` makes `numFeatures` required. */
export function reconstructionShape(metric: string, options: unknown, withFeatures: boolean): ReconstructionShape {
  if (withFeatures && options === undefined) {
    throw new TypeError(`${metric}: options.numFeatures must be a positive integer, got undefined`);
  }
  const o = checkOptions(metric, options as VarianceOptions | undefined, withFeatures ? ['numFeatures', 'numComponents'] : ['numComponents']);
  const numComponents = positiveInteger(metric, 'numComponents', orDefault(o.numComponents, 1));
  const numFeatures = withFeatures ? positiveInteger(metric, 'numFeatures', o.numFeatures) : undefined;
  // The state's arrays (numComponents, or numComponents × numFeatures moments) are allocated up front.
  const cells = numComponents * (numFeatures ?? 1);
  if (cells > MAX_RECONSTRUCTION_CELLS) {
    throw new RangeError(
      numFeatures === undefined
        ? `${metric}: options.numComponents must be at most ${MAX_RECONSTRUCTION_CELLS}, got ${numComponents}`
        : `${metric}: options.numFeatures must leave at most ${MAX_RECONSTRUCTION_CELLS} per-dimension values (numComponents × numFeatures), got ${numComponents} × ${numFeatures} = ${cells}`,
    );
  }
  return { numComponents, numFeatures };
}

/** Values per state array (numComponents, or numComponents × numFeatures) a reconstruction metric allows, as the feature statistics do. */
export const MAX_RECONSTRUCTION_CELLS = 2 ** 28;

/**
 * Defines a reconstruction metric over `parts`: the batch must hold `sourceActivations` and
 * `decodedActivations` of one shape, with `numComponents` components (and `numFeatures` features
 * when set); `compute` gives one value per component, squeezed to 0-d for one component.
 */
export function defineReconstructionMetric<P extends object>(
  metric: string,
  shape: ReconstructionShape,
  parts: { readonly [K in keyof P]: StatePart<P[K]> },
  compute: (parts: P) => Float64Array,
  invalid?: (parts: P) => string | undefined,
): MetricDefinition<MetricState<P>, Tensor<'float64'>> {
  const { numComponents, numFeatures } = shape;
  return defineMetric<P, Tensor<'float64'>>({
    metric,
    config: numFeatures === undefined ? { numComponents } : { numComponents, numFeatures },
    parts,
    validate(batch: Batch): number {
      const a = checkReconstruction(metric, checkBatch(metric, batch, 'sourceActivations'), numComponents);
      if (numFeatures !== undefined && a.features !== numFeatures) {
        throw batchError(
          metric,
          'sourceActivations',
          `sourceActivations must have ${numFeatures} features on its last axis (numFeatures), got shape ${formatShape(a.tensor.shape)}`,
        );
      }
      return a.rows;
    },
    compute: (p) => squeezeIfScalar(float64(compute(p), [numComponents])),
    ...(invalid === undefined ? {} : { invalid }),
  });
}

/** `f(i)` for each component `i`. */
export function perComponent(numComponents: number, f: (c: number) => number): Float64Array {
  const out = new Float64Array(numComponents);
  for (let c = 0; c < numComponents; c++) out[c] = f(c);
  return out;
}

/** A reason two parts folded from the same batches disagree on their vector counts, or undefined. */
export function sameVectors(a: { vectors: number }, an: string, b: { vectors: number }, bn: string): string | undefined {
  return a.vectors === b.vectors
    ? undefined
    : `${an}.vectors (${a.vectors}) and ${bn}.vectors (${b.vectors}) must agree (both count the vectors seen)`;
}
