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
  const c = components === undefined ? {} : { numComponents: components };
  const o = { numLearnedFeatures: features, ...c };
  return new MetricCollection({
    sae: new SparseAutoencoderLoss({ l1Coefficient: 0.001, ...c }),
    l1: new L1AbsoluteLoss(c),
    l2: new L2ReconstructionLoss(c),
    l0: new L0NormMetric(c),
    density: new FeatureDensityMetric(o),
    dead: new NeuronActivityMetric(o),
    ev: new ExplainedVariance({ numFeatures: dim, ...c }),
    fvu: new FractionOfVarianceUnexplained({ numFeatures: dim, ...c }),
    cos: new CosineSimilarity(c),
    l2ratio: new L2Ratio(c),
    shrinkage: new RelativeReconstructionBias(c),
    nmse: new NormalizedMse(c),
    freq: new FeatureFrequencyStats(o),
    actstats: new FeatureActivationStats(o),
    acthist: new FeatureActivationHistogram(o),
    top: new TopActivations({ ...o, k: 5 }),
    deadwindow: new DeadFeaturesOverWindow({ ...o, windowVectors: 100 }),
  });
}
