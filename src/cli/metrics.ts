/**
 * The metric classes behind the command's metric names.
 *
 * @module
 */
import { MetricCollection, type AnyMetric } from '../collection.js';
import { FeatureDensityMetric } from '../metrics/feature-density-metric.js';
import { L0NormMetric } from '../metrics/l0-norm-metric.js';
import { L1AbsoluteLoss } from '../metrics/l1-absolute-loss.js';
import { L2ReconstructionLoss } from '../metrics/l2-reconstruction-loss.js';
import { NeuronActivityMetric } from '../metrics/neuron-activity-metric.js';
import { NeuronFiredCountMetric } from '../metrics/neuron-fired-count-metric.js';
import { SparseAutoencoderLoss } from '../metrics/sparse-autoencoder-loss.js';
import type { CommandLine, MetricName } from './args.js';
import type { Inputs } from './inputs.js';

/** A collection of the metric classes for the chosen names (keyed by them), over inputs of this shape. */
export function buildMetrics(
  names: readonly MetricName[],
  inputs: Pick<Inputs, 'componentAxis' | 'components' | 'features'>,
  cl: Pick<CommandLine, 'l1Coefficient' | 'deadThreshold'>,
): MetricCollection {
  const numComponents = inputs.componentAxis ? inputs.components : undefined;
  const family = { numLearnedFeatures: inputs.features, ...(numComponents === undefined ? {} : { numComponents }) };
  const make: Record<MetricName, () => AnyMetric> = {
    l1: () => new L1AbsoluteLoss({ numComponents: inputs.components }),
    l2: () => new L2ReconstructionLoss({ numComponents: inputs.components }),
    loss: () => new SparseAutoencoderLoss({ numComponents: inputs.components, l1Coefficient: cl.l1Coefficient }),
    l0: () => new L0NormMetric(numComponents === undefined ? {} : { numComponents }),
    dead: () => new NeuronActivityMetric({ ...family, thresholdIsDeadPortionFires: cl.deadThreshold }),
    density: () => new FeatureDensityMetric(family),
    fired: () => new NeuronFiredCountMetric(family),
  };
  const out: Partial<Record<MetricName, AnyMetric>> = {};
  for (const name of names) out[name] = make[name]();
  return new MetricCollection(out as Record<string, AnyMetric>);
}

