/**
 * Capacity (Scherlis et al., "Polysemanticity and Capacity in Neural Networks"): for each
 * activation vector, the squared dot product with itself over the sum of its squared dot products
 * with every vector in the stream: `cap[c, i] = (x_i . x_i)^2 / sum_j (x_i . x_j)^2`, per component.
 * 1 for orthogonal vectors, 1/n for n equal ones.
 *
 * State: the activations themselves in arrival order (copied), merged by concatenation, receiver
 * first. It needs every vector at once, so its memory grows with the stream.
 *
 * @module
 */
import { checkActivations, checkBatch, checkOptions, defineMetric } from './core.js';
import type { Batch, MetricDefinition, MetricState } from './core.js';
import { batchError, formatShape } from '../errors.js';
import { float64, squeezeIfScalar, type Tensor, type TensorLike } from '../tensor.js';
import { activationListPart, type ActivationListState } from './parts/activation-list.js';
import { concat } from './parts/arrays.js';

/** The state of {@link capacity}. */
export type CapacityState = MetricState<{ readonly activations: ActivationListState }>;

const METRIC = 'CapacityMetric';

function capacitiesOf(x: ArrayLike<number>, rows: number, components: number, features: number): Float64Array {
  const out = new Float64Array(components * rows);
  const sq = new Float64Array(rows * rows);
  for (let c = 0; c < components; c++) {
    for (let i = 0; i < rows; i++) {
      const oi = (i * components + c) * features;
      for (let j = i; j < rows; j++) {
        const oj = (j * components + c) * features;
        let dot = 0;
        for (let f = 0; f < features; f++) dot += (x[oi + f] as number) * (x[oj + f] as number);
        sq[i * rows + j] = dot * dot;
        sq[j * rows + i] = dot * dot;
      }
    }
    for (let i = 0; i < rows; i++) {
      let sum = 0;
      for (let j = 0; j < rows; j++) sum += sq[i * rows + j] as number;
      out[c * rows + i] = (sq[i * rows + i] as number) / sum;
    }
  }
  return out;
}

/**
 * The capacity of each vector among `features` (`[batch, component, feature]` gives
 * `[component, batch]`; `[batch, feature]` gives `[batch]`), as the Python
 * `CapacityMetric.capacities`. A zero vector has capacity NaN (0 / 0).
 *
 * @throws {InvalidBatchError} when `features` is not a float32 tensor of rank 2 or 3.
 */
export function calculateCapacities(features: TensorLike): Tensor<'float64'> {
  const a = checkActivations('CapacityMetric.capacities', { features }, 'features', 'any');
  return float64(
    capacitiesOf(a.tensor.data, a.rows, a.components, a.features),
    a.componentAxis ? [a.components, a.rows] : [a.rows],
  );
}

/**
 * The pure definition of `CapacityMetric`.
 *
 * @example
 * ```ts
 * const cap = capacity();
 * const s = cap.update(cap.init(), { learnedActivations: tensor([[[1, 0, 1]], [[0, 1, 0]]]) });
 * cap.compute(s).toArray(); // [[1, 1]]
 * ```
 */
export function capacity(options?: Record<string, never>): MetricDefinition<CapacityState, Tensor<'float64'>> {
  checkOptions(METRIC, options, []);
  return defineMetric({
    metric: METRIC,
    config: {},
    parts: { activations: activationListPart() },
    validate(batch: Batch, state?: CapacityState): number {
      const a = checkActivations(METRIC, checkBatch(METRIC, batch), 'learnedActivations', 'any');
      const kept = state?.parts.activations.rowShape;
      if (kept != null && formatShape(kept) !== formatShape(a.tensor.shape.slice(1))) {
        throw batchError(
          METRIC,
          'learnedActivations',
          `learnedActivations must have rows of shape ${formatShape(kept)} like earlier batches, got shape ${formatShape(a.tensor.shape)}`,
        );
      }
      return a.rows;
    },
    compute(parts) {
      const { chunks, rowShape } = parts.activations;
      if (rowShape === null) return float64(new Float64Array(0), [0]);
      const x = concat(chunks, (n) => new Float32Array(n));
      const n = x.length;
      const components = rowShape.length === 2 ? (rowShape[0] as number) : 1;
      const features = rowShape[rowShape.length - 1] as number;
      const rows = n / (components * features);
      const out = capacitiesOf(x, rows, components, features);
      return squeezeIfScalar(float64(out, rowShape.length === 2 ? [components, rows] : [rows]));
    },
  });
}
