/**
 * Reconstruction score: how much of the source model's performance the SAE's reconstruction
 * keeps, per component: `(sum zeroAblation - sum reconstruction) / (sum zeroAblation - sum source)`
 * (a ratio of sums over all items, as the Python code computes it). 1 is perfect; 0 is no better
 * than zero ablation.
 *
 * State: float64 sums of the three losses per component, merged by addition.
 *
 * @module
 */
import { checkBatch, checkOptions, checkTensorField, defineMetric, orDefault, positiveInteger } from './core.js';
import type { Batch, MetricDefinition, MetricState } from './core.js';
import { batchError, describeValue, formatShape } from '../errors.js';
import { float64, squeezeIfScalar, type Tensor } from '../tensor.js';
import { lossSumsPart, type LossSumsState } from './parts/loss-sums.js';

/** Options of {@link reconstructionScore} and `ReconstructionScoreMetric`. */
export interface ReconstructionScoreOptions {
  /** Number of components (default 1). */
  readonly numComponents?: number;
}

/** The state of {@link reconstructionScore}. */
export type ReconstructionScoreState = MetricState<{ readonly losses: LossSumsState }>;

const METRIC = 'ReconstructionScoreMetric';
const FIELDS = ['sourceModelLoss', 'sourceModelLossWithReconstruction', 'sourceModelLossWithZeroAblation'] as const;

/**
 * The pure definition of `ReconstructionScoreMetric`. A batch holds the three losses (float32
 * tensors of one shape, items along the first axis) and an optional `componentIdx` (default 0;
 * negative counts from the end, as Python indexing does).
 *
 * @throws {TypeError | RangeError} on a bad option.
 * @example
 * ```ts
 * const score = reconstructionScore();
 * const s = score.update(score.init(), {
 *   sourceModelLoss: tensor([2, 2, 2]),
 *   sourceModelLossWithReconstruction: tensor([3, 3, 3]),
 *   sourceModelLossWithZeroAblation: tensor([5, 5, 5]),
 * });
 * score.compute(s).item(); // 0.6667
 * ```
 */
export function reconstructionScore(
  options?: ReconstructionScoreOptions,
): MetricDefinition<ReconstructionScoreState, Tensor<'float64'>> {
  const o = checkOptions(METRIC, options, ['numComponents']);
  const numComponents = positiveInteger(METRIC, 'numComponents', orDefault(o.numComponents, 1));
  return defineMetric({
    metric: METRIC,
    config: { numComponents },
    parts: { losses: lossSumsPart(numComponents) },
    validate(batch: Batch): number {
      const b = checkBatch(METRIC, batch, 'sourceModelLoss');
      const tensors = FIELDS.map((f) => checkTensorField(METRIC, b, f, 'a float32 Tensor of losses, one per item'));
      const shape = (tensors[0] as { shape: readonly number[] }).shape;
      FIELDS.forEach((f, i) => {
        const s = (tensors[i] as { shape: readonly number[] }).shape;
        if (formatShape(s) !== formatShape(shape)) {
          throw batchError(METRIC, f, `${FIELDS[0]} and ${f} must have the same shape, got ${formatShape(shape)} and ${formatShape(s)}`);
        }
      });
      if ((tensors[0] as { data: Float32Array }).data.length === 0) {
        throw batchError(METRIC, FIELDS[0], `${FIELDS[0]} is an empty batch (no losses), got shape ${formatShape(shape)}`);
      }
      const c = b.componentIdx;
      if (c !== undefined && (typeof c !== 'number' || !Number.isInteger(c) || c < -numComponents || c >= numComponents)) {
        throw batchError(
          METRIC,
          'componentIdx',
          `componentIdx must be an integer in [${-numComponents}, ${numComponents}) (numComponents is ${numComponents}; negative counts from the end, as in Python), got ${describeValue(c)}`,
        );
      }
      return shape.length === 0 ? 1 : (shape[0] as number);
    },
    compute(parts) {
      const { source, reconstruction, zeroAblation } = parts.losses;
      const out = new Float64Array(numComponents);
      for (let c = 0; c < numComponents; c++) {
        const zero = zeroAblation[c] as number;
        out[c] = (zero - (reconstruction[c] as number)) / (zero - (source[c] as number));
      }
      return squeezeIfScalar(float64(out, [numComponents]));
    },
  });
}
