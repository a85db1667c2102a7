import { Metric } from './metric.js';
import { booleanOption } from '../functional/core.js';
import type { Batch, MetricDefinition, MetricState } from '../functional/core.js';
import type { Tensor } from '../tensor.js';

/** Options shared by the loss metrics. */
interface LossOptions {
  readonly numComponents?: number;
  readonly keepBatchDim?: boolean;
}

/**
 * Base of the loss metrics whose `keepBatchDim` can be changed after creation (which resets the
 * metric, as the Python property setter does).
 */
export abstract class LossMetric<O extends LossOptions, S extends MetricState<object>, B extends Batch> extends Metric<S, Tensor<'float64'>, B> {
  readonly #define: (options: O) => MetricDefinition<S, Tensor<'float64'>>;
  #options: O;

  protected constructor(define: (options: O) => MetricDefinition<S, Tensor<'float64'>>, options: O) {
    super(define(options), [{ ...options }]);
    this.#define = define;
    this.#options = options;
  }

  /** Number of components. */
  get numComponents(): number {
    return this.definition.config.numComponents as number;
  }

  /** Whether one value is kept per activation vector. Setting it resets the metric, as in Python. */
  get keepBatchDim(): boolean {
    return this.definition.config.keepBatchDim as boolean;
  }

  set keepBatchDim(value: boolean) {
    booleanOption(this.definition.metric, 'keepBatchDim', value);
    const options = { ...this.#options, keepBatchDim: value };
    this.redefine(this.#define(options), [options]);
    this.#options = options;
  }
}
