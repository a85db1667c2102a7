/**
 * The kernel a thread runs shards with, built from plain data (a worker builds its own from the
 * pool's `workerData`): plain JavaScript, the fused WebAssembly pass over the pool's shared
 * memory, or gpu.js in a given mode.
 *
 * @module
 */
import { jsFusedKernel } from '../kernels/js-fused.js';
import type { FusedKernel } from '../kernels/types.js';
import { createWasmKernel, type ScratchRegion } from '../kernels/wasm/index.js';
import { createGpujsKernel } from '../kernels/gpujs/index.js';
import type { BackendName, GpujsMode } from './backend.js';

/** What a worker needs to build its kernel. */
export interface KernelConfig {
  readonly backend: BackendName;
  readonly gpujsMode?: GpujsMode;
  /** The pool's shared memory, for the wasm backend. */
  readonly memory?: WebAssembly.Memory;
}

/** A thread's kernel and, for the wasm backend, the memory its fields live in. */
export interface KernelHost {
  readonly kernel: FusedKernel;
  readonly memory?: WebAssembly.Memory;
  /** What runs, e.g. `wasm`, `gpujs (cpu)`. */
  readonly describe: string;
  /** The wasm kernel's scratch space for the next shards (see `WasmKernel.useScratch`). */
  readonly useScratch?: (region: ScratchRegion | undefined) => void;
}

/**
 * Builds the kernel for a configuration.
 *
 * @throws {Error} when the backend cannot run (gpu.js fell back to another mode, no memory for wasm).
 */
export function createKernelHost(config: KernelConfig): KernelHost {
  switch (config.backend) {
    case 'js':
      return { kernel: jsFusedKernel, describe: 'js' };
    case 'wasm': {
      if (config.memory === undefined) throw new Error('the wasm backend needs the shared memory of its pool');
      const wasm = createWasmKernel(config.memory);
      return { kernel: wasm.fused, memory: config.memory, describe: 'wasm', useScratch: wasm.useScratch };
    }
    case 'gpujs': {
      const gpu = createGpujsKernel({ mode: config.gpujsMode ?? 'gpu' });
      return { kernel: gpu.fused, describe: `gpujs (${gpu.mode})` };
    }
  }
}
