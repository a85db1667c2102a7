import { Metric } from './metric.js';
import { checkOptions } from '../functional/core.js';
import type { Batch, MetricDefinition, MetricState } from '../functional/core.js';
import { describeValue, formatShape } from '../errors.js';
import { float64, Tensor } from '../tensor.js';

/** Options of {@link ClasswiseWrapperWithMean}. */
export interface ClasswiseWrapperOptions {
  /** One name per component (default `'0'`, `'1'`, ...). */
  readonly componentNames?: readonly string[];
  /** Key prefix (default, and for `''`: the wrapped metric's class name in lower case). */
  readonly prefix?: string;
}

const NAME = 'ClasswiseWrapperWithMean';

/** Entry `i` along the first axis, with the result's dtype (counts stay int64, as torch slices do). */
function slice(t: Tensor, i: number): Tensor {
  const width = t.size / (t.shape[0] as number);
  const data = t.data.slice(i * width, (i + 1) * width);
  return new Tensor(data, t.shape.slice(1), t.dtype);
}

function meanOverFirstAxis(t: Tensor): Tensor<'float64'> {
  const n = t.shape[0] as number;
  const width = t.size / n;
  const out = new Float64Array(width);
  for (let i = 0; i < n; i++) for (let j = 0; j < width; j++) out[j] = (out[j] as number) + (t.data[i * width + j] as number);
  for (let j = 0; j < width; j++) out[j] = (out[j] as number) / n;
  return float64(out, t.shape.slice(1));
}

/**
 * Splits a per-component result into one entry per component, `prefix/name`, and adds their mean,
 * `prefix/mean` (torchmetrics' `ClasswiseWrapper` as extended by sparse_autoencoder). A 0-d result
 * counts as one component.
 *
 * The wrapper starts from the wrapped metric's current state and keeps its own from then on;
 * the state is the wrapped metric's, so states merge with it.
 *
 * @throws {TypeError | RangeError} when `componentNames` is not an array of distinct strings, has a
 *   length other than the metric's `numComponents`, or `prefix` is not a string.
 * @example
 * ```ts
 * const l0 = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 }), {
 *   componentNames: ['mlp_0', 'mlp_1'],
 *   prefix: 'l0',
 * });
 * l0.forward({ learnedActivations: tensor([[[1, 0, 1], [1, 1, 1]]]) }); // { 'l0/mlp_0': tensor(2), 'l0/mlp_1': tensor(3), 'l0/mean': tensor(2.5) }
 * ```
 */
export class ClasswiseWrapperWithMean<S extends MetricState<object> = MetricState, B extends Batch = Batch> extends Metric<
  S,
  Record<string, Tensor>,
  B
> {
  /** The key prefix. */
  readonly prefix: string;
  /** The component names, or undefined for `'0'`, `'1'`, ... */
  readonly componentNames: readonly string[] | undefined;

  constructor(metric: Metric<S, Tensor, B>, options: ClasswiseWrapperOptions = {}) {
    if (!(metric instanceof Metric)) {
      throw new TypeError(`${NAME}: metric must be a sae-metrics Metric, got ${describeValue(metric)}`);
    }
    const o = checkOptions(NAME, options, ['componentNames', 'prefix']);
    const inner = metric.definition;
    const names = o.componentNames;
    if (names !== undefined) {
      if (!Array.isArray(names) || !names.every((n) => typeof n === 'string')) {
        throw new TypeError(`${NAME}: options.componentNames must be an array of strings, got ${describeValue(names)}`);
      }
      if (new Set(names).size !== names.length) {
        throw new RangeError(`${NAME}: options.componentNames must be distinct, got ${JSON.stringify(names)}`);
      }
      const n = inner.config.numComponents;
      if (typeof n === 'number' && names.length !== n) {
        throw new RangeError(
          `${NAME}: options.componentNames must have ${n} names (the ${inner.metric}'s numComponents), got ${names.length}`,
        );
      }
    }
    if (o.prefix !== undefined && typeof o.prefix !== 'string') {
      throw new TypeError(`${NAME}: options.prefix must be a string, got ${describeValue(o.prefix)}`);
    }
    // An empty prefix counts as unset, as Python's `if not self._prefix`.
    const prefix = o.prefix || inner.metric.toLowerCase();
    const convert = (x: Tensor): Record<string, Tensor> => {
      const t = x.ndim === 0 ? new Tensor(x.data, [1], x.dtype) : x;
      const n = t.shape[0] as number;
      if (names !== undefined && names.length !== n) {
        throw new RangeError(
          `${NAME}: ${inner.metric}'s result has ${n} entries on its first axis (shape ${formatShape(x.shape)}) but componentNames has ${names.length}`,
        );
      }
      const out: Record<string, Tensor> = {};
      for (let i = 0; i < n; i++) out[`${prefix}/${names?.[i] ?? String(i)}`] = slice(t, i);
      out[`${prefix}/mean`] = meanOverFirstAxis(t);
      return out;
    };
    const definition: MetricDefinition<S, Record<string, Tensor>> = Object.freeze({
      ...inner,
      compute: (state: S) => convert(inner.compute(state)),
      computeParts: (parts: Readonly<Record<string, unknown>>) => convert(inner.computeParts(parts)),
    });
    const blankInner = metric.clone();
    blankInner.reset();
    super(definition, [blankInner, { ...options }]);
    this.prefix = prefix;
    this.componentNames = names === undefined ? undefined : Object.freeze([...names]);
    this.adopt(metric);
  }
}
