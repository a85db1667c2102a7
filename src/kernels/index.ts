/**
 * Kernels: the fused shard pass that computes every metric's partial statistics in one pass over
 * memory, and the helper that turns its statistics into the parts' partial states.
 *
 * @module
 */
export { jsFusedKernel } from './js-fused.js';
export { computePartials, fromFusedPass } from './partials.js';
export type { FusedKernel, ShardNeeds, ShardStats } from './types.js';
export { createWasmKernel, wasmFile, wasmModule } from './wasm/index.js';
export type { WasmKernel } from './wasm/index.js';
export { createGpujsKernel, gpujsAvailable } from './gpujs/index.js';
export type { GpujsKernel } from './gpujs/index.js';
