/** The full metric set (bench/sae-eval.ts's): the six standard metrics and the eleven SAE evaluation metrics. */
import {
  CosineSimilarity,
  DeadFeaturesOverWindow,
  ExplainedVariance,
  FeatureActivationHistogram,
  FeatureActivationStats,
  FeatureDensityMetric,
  FeatureFrequencyStats,
  FractionOfVarianceUnexplained,
  L0NormMetric,
  L1AbsoluteLoss,
  L2Ratio,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  NormalizedMse,
  RelativeReconstructionBias,
  SparseAutoencoderLoss,
  TopActivations,
} from '../../src/index.js';

/** A fresh collection of all seventeen over `features` learned features (`components` of them a row, if given) and `dim` input dimensions. */
export function fullSet(features: number, dim: number, components?: number): MetricCollection {
  const o = { numLearnedFeatures: features, ...(components === undefined ? {} : { numComponents: components }) };
  return new MetricCollection({
    sae: new SparseAutoencoderLoss({ l1Coefficient: 0.001 }),
    l1: new L1AbsoluteLoss(),
    l2: new L2ReconstructionLoss(),
    l0: new L0NormMetric(),
    density: new FeatureDensityMetric(o),
    dead: new NeuronActivityMetric(o),
    ev: new ExplainedVariance({ numFeatures: dim }),
    fvu: new FractionOfVarianceUnexplained({ numFeatures: dim }),
    cos: new CosineSimilarity(),
    l2ratio: new L2Ratio(),
    shrinkage: new RelativeReconstructionBias(),
    nmse: new NormalizedMse(),
    freq: new FeatureFrequencyStats(o),
    actstats: new FeatureActivationStats(o),
    acthist: new FeatureActivationHistogram(o),
    top: new TopActivations({ ...o, k: 5 }),
    deadwindow: new DeadFeaturesOverWindow({ ...o, windowVectors: 100 }),
  });
}
