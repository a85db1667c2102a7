/**
 * sae-metrics: streaming, mergeable metrics for sparse-autoencoder training, a faithful port of
 * the metrics of the Python library `sparse_autoencoder` (on torchmetrics).
 *
 * @module
 */
export { Tensor, tensor, squeezeIfScalar, shapeSize } from './tensor.js';
export type { DType, NestedArray, TensorLike } from './tensor.js';
export { InvalidBatchError, StateMergeError, StateDecodeError, WorkerError, PoolClosedError } from './errors.js';
export { encodeState, decodeState, STATE_FORMAT, STATE_VERSION, MAX_STATE_DEPTH } from './encoding.js';
export { encodeShardState, mergeEncodedStates, SHARD_STATE_FORMAT, SHARD_STATE_VERSION, type ShardIndex } from './encoding.js';
export type {
  Batch,
  BatchInput,
  LearnedBatch,
  ReconstructionBatch,
  SparseAutoencoderBatch,
  ReconstructionScoreBatch,
  RowRange,
  MetricDefinition,
  MetricState,
  MetricConfig,
  StatePart,
} from './functional/core.js';

export { Metric } from './metrics/metric.js';
export { L1AbsoluteLoss } from './metrics/l1-absolute-loss.js';
export { L2ReconstructionLoss } from './metrics/l2-reconstruction-loss.js';
export { SparseAutoencoderLoss } from './metrics/sparse-autoencoder-loss.js';
export { NeuronActivityMetric } from './metrics/neuron-activity-metric.js';
export { NeuronFiredCountMetric } from './metrics/neuron-fired-count-metric.js';
export { FeatureDensityMetric } from './metrics/feature-density-metric.js';
export { L0NormMetric } from './metrics/l0-norm-metric.js';
export { CapacityMetric } from './metrics/capacity-metric.js';
export { ReconstructionScoreMetric } from './metrics/reconstruction-score-metric.js';
export { TopActivations } from './metrics/top-activations.js';
export { DeadFeaturesOverWindow } from './metrics/dead-features-over-window.js';
export { FeatureFrequencyStats } from './metrics/feature-frequency-stats.js';
export { FeatureActivationStats } from './metrics/feature-activation-stats.js';
export { FeatureActivationHistogram } from './metrics/feature-activation-histogram.js';
export { ExplainedVariance } from './metrics/explained-variance.js';
export { FractionOfVarianceUnexplained } from './metrics/fraction-of-variance-unexplained.js';
export { CosineSimilarity } from './metrics/cosine-similarity.js';
export { L2Ratio } from './metrics/l2-ratio.js';
export { RelativeReconstructionBias } from './metrics/relative-reconstruction-bias.js';
export { NormalizedMse } from './metrics/normalized-mse.js';
export { ClasswiseWrapperWithMean } from './metrics/classwise-wrapper-with-mean.js';
export type { ClasswiseWrapperOptions } from './metrics/classwise-wrapper-with-mean.js';
export { MetricCollection } from './collection.js';
export type { AnyMetric, CollectionResult, MetricResult } from './collection.js';

export { accumulateMetric, forwardMetric, reduceMetric, computeEvery, fromBatches } from './operators/index.js';
export type { FromBatchesOptions } from './operators/index.js';
export type { ComputeEveryOptions, ComputeWindow, MetricOperatorOptions, MetricTarget, TargetResult } from './operators/index.js';
export { createMetricPool, MetricPool } from './pool/metric-pool.js';
export type { MetricPoolOptions } from './pool/metric-pool.js';
export { planShards, treeMerge, DEFAULT_SHARD_ROWS } from './pool/plan.js';
export { BACKEND_ENV, GPUJS_MODE_ENV } from './pool/backend.js';
export type { BackendName, BackendOption, GpujsMode } from './pool/backend.js';

export type {
  L1AbsoluteLossOptions,
  L2ReconstructionLossOptions,
  SparseAutoencoderLossOptions,
  NeuronActivityOptions,
  NeuronFiredCountOptions,
  FeatureDensityOptions,
  L0NormOptions,
  ReconstructionScoreOptions,
  TopActivationsOptions,
  TopActivationsResult,
  DeadFeaturesOverWindowOptions,
  DeadFeaturesOverWindowResult,
  FeatureFrequencyStatsOptions,
  FeatureFrequencyStatsResult,
  FeatureActivationStatsOptions,
  FeatureActivationStatsResult,
  FeatureActivationHistogramOptions,
  FeatureActivationHistogramResult,
  ExplainedVarianceOptions,
  FractionOfVarianceUnexplainedOptions,
  CosineSimilarityOptions,
  L2RatioOptions,
  RelativeReconstructionBiasOptions,
  NormalizedMseOptions,
} from './functional/index.js';
