/**
 * The metric definitions behind the command's metric names: the pure definitions of the
 * package's metric classes (`sae-metrics/functional`), so the command's numbers are theirs.
 *
 * @module
 */
import type { MetricDefinition } from '../functional/core.js';
import { featureActivationHistogram } from '../functional/feature-activation-histogram.js';
import { featureActivationStats } from '../functional/feature-activation-stats.js';
import { featureDensity } from '../functional/feature-density.js';
import { featureFrequencyStats } from '../functional/feature-frequency-stats.js';
import { l0Norm } from '../functional/l0-norm.js';
import { l1AbsoluteLoss } from '../functional/l1-absolute-loss.js';
import { l2ReconstructionLoss } from '../functional/l2-reconstruction-loss.js';
import { neuronActivity } from '../functional/neuron-activity.js';
import { neuronFiredCount } from '../functional/neuron-fired-count.js';
import { sparseAutoencoderLoss } from '../functional/sparse-autoencoder-loss.js';
import { topActivations, type TopActivationsMetricState, type TopActivationsResult } from '../functional/top-activations.js';
import { deadFeaturesOverWindow } from '../functional/dead-features-over-window.js';
import { float64, type Tensor } from '../tensor.js';
import { explainedVariance } from '../functional/explained-variance.js';
import { fractionOfVarianceUnexplained } from '../functional/fraction-of-variance-unexplained.js';
import { cosineSimilarity } from '../functional/cosine-similarity.js';
import { l2Ratio } from '../functional/l2-ratio.js';
import { relativeReconstructionBias } from '../functional/relative-reconstruction-bias.js';
import { normalizedMse } from '../functional/normalized-mse.js';
import type { CommandLine, MetricName } from './args.js';
import type { Inputs } from './inputs.js';

/** A metric definition whose value is one tensor. */
export type TensorDefinition = MetricDefinition<Parameters<MetricDefinition['compute']>[0], Tensor>;

/** A metric definition whose value is a record of tensors (the feature statistics). */
export type RecordDefinition = MetricDefinition<Parameters<MetricDefinition['compute']>[0], Readonly<Record<string, Tensor>>>;

/** The metrics whose value has one number per feature. */
export const PER_FEATURE: readonly MetricName[] = ['density', 'fired', 'top'];

/** The definitions for the chosen names (keyed by them), over inputs of this shape (`acthist` with its default bins). */
export function buildDefinitions(
  names: readonly MetricName[],
  inputs: Pick<Inputs, 'componentAxis' | 'components' | 'features'> & Partial<Pick<Inputs, 'inputFeatures'>>,
  cl: Pick<CommandLine, 'l1Coefficient' | 'deadThreshold' | 'topK' | 'deadWindow'>,
): Map<MetricName, TensorDefinition | RecordDefinition> {
  const numComponents = inputs.componentAxis ? inputs.components : undefined;
  const family = { numLearnedFeatures: inputs.features, ...(numComponents === undefined ? {} : { numComponents }) };
  const inputFeatures = (): number => {
    if (inputs.inputFeatures === undefined) throw new RangeError('buildDefinitions: ev and fvu need the width of the source activations');
    return inputs.inputFeatures;
  };
  const make: Record<MetricName, () => unknown> = {
    l1: () => l1AbsoluteLoss({ numComponents: inputs.components }),
    l2: () => l2ReconstructionLoss({ numComponents: inputs.components }),
    // SparseAutoencoderLoss takes a positive coefficient (as the Python class); with 0 its value,
    // l2 + 0 * l1, is l2's: the command computes that with L2ReconstructionLoss.
    loss: () =>
      cl.l1Coefficient === 0
        ? l2ReconstructionLoss({ numComponents: inputs.components })
        : sparseAutoencoderLoss({ numComponents: inputs.components, l1Coefficient: cl.l1Coefficient }),
    l0: () => l0Norm(numComponents === undefined ? {} : { numComponents }),
    dead: () => neuronActivity({ ...family, thresholdIsDeadPortionFires: cl.deadThreshold }),
    density: () => featureDensity(family),
    fired: () => neuronFiredCount(family),
    // The table shows each feature's largest activation (NaN: never fired); --top-out writes all K.
    top: () => {
      const d = topDefinition(inputs, cl.topK);
      return { ...d, compute: (s: TopActivationsMetricState) => largest(d.compute(s)) };
    },
    deadwindow: () => {
      const d = deadFeaturesOverWindow({ ...family, windowVectors: cl.deadWindow });
      return { ...d, compute: (s: Parameters<typeof d.compute>[0]) => d.compute(s).dead };
    },
    freq: () => featureFrequencyStats(family),
    actstats: () => featureActivationStats(family),
    acthist: () => featureActivationHistogram(family),
    ev: () => explainedVariance({ numComponents: inputs.components, numFeatures: inputFeatures() }),
    fvu: () => fractionOfVarianceUnexplained({ numComponents: inputs.components, numFeatures: inputFeatures() }),
    cos: () => cosineSimilarity({ numComponents: inputs.components }),
    l2ratio: () => l2Ratio({ numComponents: inputs.components }),
    shrinkage: () => relativeReconstructionBias({ numComponents: inputs.components }),
    nmse: () => normalizedMse({ numComponents: inputs.components }),
  };
  const out = new Map<MetricName, TensorDefinition | RecordDefinition>();
  for (const name of names) out.set(name, make[name]() as TensorDefinition | RecordDefinition);
  return out;
}

/** The `TopActivations` definition of the command's `top` (the state `--top-out` is written from). */
export function topDefinition(inputs: Pick<Inputs, 'componentAxis' | 'components' | 'features'>, k: number): ReturnType<typeof topActivations> {
  const numComponents = inputs.componentAxis ? inputs.components : undefined;
  return topActivations({ numLearnedFeatures: inputs.features, k, ...(numComponents === undefined ? {} : { numComponents }) });
}

/** Each feature's largest activation, `[F]` or `[C, F]` (NaN where it never fired). */
function largest(r: TopActivationsResult): Tensor<'float64'> {
  const k = r.values.shape[r.values.shape.length - 1] as number;
  const values = r.values.data as Float64Array;
  const out = new Float64Array(values.length / k);
  for (let g = 0; g < out.length; g++) out[g] = values[g * k] as number;
  return float64(out, r.values.shape.slice(0, -1));
}
