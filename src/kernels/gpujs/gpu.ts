/**
 * The one place that loads gpu.js, with the few types this package uses. gpu.js is CommonJS and
 * its typings declare `input` as a type only, so the module is loaded with `require` (lazily: a
 * worker that never builds a gpu.js kernel never loads it, nor the native `gl` addon it pulls in)
 * and typed by the minimal interfaces below.
 *
 * @module
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

/** A value gpu.js reads with 2-D/3-D indexing (`x[row][feature]`): `input(data, [x, y, z?])`. */
export interface GpuInput {
  readonly value: Float32Array;
  readonly size: readonly number[];
}

/** What a kernel run returns: one typed array per output row (2-D) or plane of rows (3-D). */
export type KernelOutput = Float32Array | readonly Float32Array[] | readonly (readonly Float32Array[])[];

/** The kernel object behind a run shortcut (the one that actually ran, after any fallback). */
export interface GpuKernelObject {
  readonly constructor: Function;
  readonly context?: unknown;
  readonly fallbackReason?: string;
  destroy(removeCanvasReferences?: boolean): void;
}

/** The callable gpu.js returns from `createKernel`. */
export interface KernelRunShortcut {
  (...args: unknown[]): KernelOutput;
  /** The kernel that runs (gpu.js replaces it on a fallback). */
  readonly kernel: GpuKernelObject;
}

/** The settings this package passes to `createKernel`. */
export interface KernelSettings {
  readonly output: readonly number[];
  readonly constants: Readonly<Record<string, number>>;
  readonly loopMaxIterations: number;
  readonly precision: 'single';
  readonly optimizeFloatMemory?: boolean;
  readonly tactic?: 'speed' | 'balanced' | 'precision';
}

/** A gpu.js `GPU` instance. */
export interface GpuInstance {
  /** The GL context its kernels share (GL modes, once a kernel exists). */
  readonly context: unknown;
  createKernel(source: string, settings: KernelSettings): KernelRunShortcut;
  destroy(): Promise<void>;
}

interface KernelClass {
  readonly isSupported: boolean;
}

/** The parts of the gpu.js module this package uses. */
export interface GpuJsModule {
  readonly GPU: new (settings: { mode: string }) => GpuInstance;
  input(value: Float32Array, size: number[]): GpuInput;
  readonly CPUKernel: KernelClass;
  readonly WebAssemblyKernel: KernelClass;
  readonly HeadlessGLKernel: KernelClass;
  readonly WebGLKernel: KernelClass;
  readonly WebGL2Kernel: KernelClass;
  readonly WebGPUKernel: KernelClass;
}

let loaded: { module: GpuJsModule } | { error: Error } | undefined;

/**
 * The gpu.js module, loaded on first use.
 *
 * @throws {Error} when gpu.js is not installed.
 */
export function gpujs(): GpuJsModule {
  loaded ??= (() => {
    try {
      return { module: require('gpu.js') as GpuJsModule };
    } catch (error) {
      return { error: error as Error };
    }
  })();
  if ('error' in loaded) throw new Error(`gpu.js cannot be loaded: ${loaded.error.message}`);
  return loaded.module;
}

/** The gpu.js modes a kernel can actually run in. */
export type ActualMode = 'cpu' | 'webasm' | 'headlessgl' | 'webgl' | 'webgl2' | 'webgpu';

/**
 * The mode of the kernel that actually ran, from its class (the classes' own static `mode` says
 * `gpu` for every GL backend, so it cannot tell headlessgl from webgl).
 */
export function modeOfKernel(kernel: GpuKernelObject): ActualMode | 'unknown' {
  const g = gpujs();
  const c: unknown = kernel.constructor;
  if (c === g.HeadlessGLKernel) return 'headlessgl';
  if (c === g.WebGL2Kernel) return 'webgl2';
  if (c === g.WebGLKernel) return 'webgl';
  if (c === g.WebAssemblyKernel) return 'webasm';
  if (c === g.WebGPUKernel) return 'webgpu';
  if (c === g.CPUKernel) return 'cpu';
  return 'unknown';
}

/** Why the optional native `gl` package cannot be loaded, or undefined when it can. */
export function glLoadError(): string | undefined {
  try {
    const getContext = require('gl') as unknown;
    return typeof getContext === 'function' ? undefined : 'the gl package does not export a function';
  } catch (error) {
    return (error as Error).message.split('\n')[0];
  }
}

interface GlLike {
  readonly RENDERER: number;
  readonly VERSION: number;
  getParameter(name: number): unknown;
  getExtension(name: string): unknown;
}

function isGlLike(value: unknown): value is GlLike {
  const v = value as Partial<GlLike> | null;
  return typeof v === 'object' && v !== null && typeof v.getParameter === 'function' && typeof v.getExtension === 'function';
}

/**
 * The GL drivers this process has loaded (Linux only: read from `/proc/self/maps`): Mesa's DRI
 * drivers (`swrast_dri.so` is Mesa's software rasterizer, llvmpipe when libLLVM is loaded beside
 * it), or NVIDIA's. headless-gl's WebGL reports the renderer `ANGLE` whatever runs below it, so
 * this is what tells a software renderer from a hardware GPU.
 */
function loadedGlDrivers(): string[] {
  let maps: string;
  try {
    maps = readFileSync('/proc/self/maps', 'utf8');
  } catch {
    return [];
  }
  const drivers = new Set<string>();
  let llvm = false;
  for (const line of maps.split('\n')) {
    const path = line.slice(line.indexOf('/'));
    const dri = /\/dri\/([\w-]+)_dri\.so/.exec(path);
    if (dri) drivers.add(`Mesa ${dri[1] as string}_dri.so`);
    if (/libGLX_nvidia|libnvidia-glcore|libEGL_nvidia/.test(path)) drivers.add('NVIDIA');
    if (/libLLVM/.test(path)) llvm = true;
  }
  return [...drivers].map((d) => (d === 'Mesa swrast_dri.so' ? `${d} (${llvm ? 'llvmpipe' : 'softpipe'}, software)` : d));
}

/** The WebGL renderer of a GL context, with the driver below it where it can be found. */
export function glRenderer(context: unknown): string | undefined {
  if (!isGlLike(context)) return undefined;
  let renderer = String(context.getParameter(context.RENDERER));
  const debug = context.getExtension('WEBGL_debug_renderer_info') as { UNMASKED_RENDERER_WEBGL?: number } | null;
  if (debug?.UNMASKED_RENDERER_WEBGL !== undefined) renderer = String(context.getParameter(debug.UNMASKED_RENDERER_WEBGL));
  const version = String(context.getParameter(context.VERSION));
  const drivers = loadedGlDrivers();
  return `${renderer} (${version})${drivers.length > 0 ? `; driver: ${drivers.join(', ')}` : ''}`;
}
