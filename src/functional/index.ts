/**
 * The pure metric definitions (`init`, `update`, `merge`, `compute`): all the math of sae-metrics,
 * with no mutable state. Import from `sae-metrics/functional`.
 *
 * @module
 */
export { defineMetric, configKey, snapshotBatch } from './core.js';
export type {
  Batch,
  BatchInput,
  LearnedBatch,
  ReconstructionBatch,
  SparseAutoencoderBatch,
  ReconstructionScoreBatch,
  RowRange,
  MetricConfig,
  MetricDefinition,
  MetricSpec,
  MetricState,
  StatePart,
  StateOf,
  ResultOf,
} from './core.js';
export { l1AbsoluteLoss, calculateAbsSum } from './l1-absolute-loss.js';
export type { L1AbsoluteLossOptions, L1AbsoluteLossState } from './l1-absolute-loss.js';
export { l2ReconstructionLoss, calculateMse } from './l2-reconstruction-loss.js';
export type { L2ReconstructionLossOptions, L2ReconstructionLossState } from './l2-reconstruction-loss.js';
export { sparseAutoencoderLoss } from './sparse-autoencoder-loss.js';
export type { SparseAutoencoderLossOptions, SparseAutoencoderLossState } from './sparse-autoencoder-loss.js';
export { neuronActivity } from './neuron-activity.js';
export type { NeuronActivityOptions, NeuronActivityState } from './neuron-activity.js';
export { neuronFiredCount } from './neuron-fired-count.js';
export type { NeuronFiredCountOptions, NeuronFiredCountState } from './neuron-fired-count.js';
export { featureDensity } from './feature-density.js';
export type { FeatureDensityOptions, FeatureDensityState } from './feature-density.js';
export { l0Norm } from './l0-norm.js';
export type { L0NormOptions, L0NormState } from './l0-norm.js';
export { capacity, calculateCapacities } from './capacity.js';
export type { CapacityState } from './capacity.js';
export { reconstructionScore } from './reconstruction-score.js';
export type { ReconstructionScoreOptions, ReconstructionScoreState } from './reconstruction-score.js';
export { topActivations, MAX_TOP_K } from './top-activations.js';
export type { TopActivationsOptions, TopActivationsMetricState, TopActivationsResult } from './top-activations.js';
export { deadFeaturesOverWindow } from './dead-features-over-window.js';
export type { DeadFeaturesOverWindowOptions, DeadFeaturesOverWindowState, DeadFeaturesOverWindowResult } from './dead-features-over-window.js';
export type { TopActivationsState } from './parts/top-activations.js';
export type { LastFiredState } from './parts/last-fired.js';
export { featureFrequencyStats, frequencySummary } from './feature-frequency-stats.js';
export type { FeatureFrequencyStatsOptions, FeatureFrequencyStatsState, FeatureFrequencyStatsResult, FrequencySummary } from './feature-frequency-stats.js';
export { featureActivationStats } from './feature-activation-stats.js';
export type { FeatureActivationStatsOptions, FeatureActivationStatsState, FeatureActivationStatsResult } from './feature-activation-stats.js';
export { featureActivationHistogram, histogramQuantiles, histogramEdges } from './feature-activation-histogram.js';
export type {
  FeatureActivationHistogramOptions,
  FeatureActivationHistogramState,
  FeatureActivationHistogramResult,
} from './feature-activation-histogram.js';
export type { ActivationMomentsState } from './parts/activation-moments.js';
export type { ActivationHistogramState } from './parts/activation-histogram.js';
export { explainedVariance } from './explained-variance.js';
export type { ExplainedVarianceOptions, ExplainedVarianceState } from './explained-variance.js';
export { fractionOfVarianceUnexplained } from './fraction-of-variance-unexplained.js';
export type { FractionOfVarianceUnexplainedOptions, FractionOfVarianceUnexplainedState } from './fraction-of-variance-unexplained.js';
export { cosineSimilarity } from './cosine-similarity.js';
export type { CosineSimilarityOptions, CosineSimilarityState } from './cosine-similarity.js';
export { l2Ratio } from './l2-ratio.js';
export type { L2RatioOptions, L2RatioState } from './l2-ratio.js';
export { relativeReconstructionBias } from './relative-reconstruction-bias.js';
export type { RelativeReconstructionBiasOptions, RelativeReconstructionBiasState } from './relative-reconstruction-bias.js';
export { normalizedMse, normalizedMseZeroNorms } from './normalized-mse.js';
export type { NormalizedMseOptions, NormalizedMseState } from './normalized-mse.js';
export type { VectorSumState, MomentsState } from './parts/reconstruction.js';
export type { RowLossSumState, RowLossItemsState } from './parts/row-losses.js';
export type { FiredCountState } from './parts/fired-count.js';
export type { NonZeroCountState } from './parts/non-zero-count.js';
export type { ActivationListState } from './parts/activation-list.js';
export type { LossSumsState } from './parts/loss-sums.js';
