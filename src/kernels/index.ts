/**
 * Kernels: the fused shard pass that computes every metric's partial statistics in one pass over
 * memory. Kernels read tensors and row ranges and return statistics; they know nothing of metric
 * definitions (`src/functional/` builds partial states from their statistics).
 *
 * @module
 */
export { jsFusedKernel } from './js-fused.js';
export type { FusedKernel, KernelBatch, Moments, PositiveEntries, RowRange, ShardNeeds, ShardStats, VectorNorms } from './types.js';
export { splitNeeds, withFallback } from './fallback.js';
export type { NeedName } from './fallback.js';
export { createWasmKernel, wasmFile, wasmModule } from './wasm/index.js';
export type { WasmBuild, WasmKernel } from './wasm/index.js';
export { createChunkedWasmKernel, CHUNK_BYTES } from './wasm/chunked.js';
export type { ChunkedWasmKernelOptions } from './wasm/chunked.js';
export { createGpujsKernel, gpujsAvailable, gpujsBlocker } from './gpujs/index.js';
export type { GpujsKernel } from './gpujs/index.js';
