/**
 * The one place that loads gpu.js, with the few types this package uses, and the checks that say
 * why it cannot run. gpu.js is CommonJS and its typings declare `input` as a type only, so the
 * module is loaded with `require` (lazily: a thread that never builds a gpu.js kernel never loads
 * it, nor the native `gl` addon that gpu.js loads with it) and typed by the minimal interfaces
 * below. gpu.js is an optional peer dependency, and `gl` an optional dependency of gpu.js: both
 * are found without being loaded, so that a check never ties `gl` to the thread that checks.
 *
 * @module
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';

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

/** Why gpu.js cannot run (short, for a reason in parentheses) and what to do about it. */
export interface Blocker {
  readonly why: string;
  readonly todo: string;
}

/** A blocker as one line: `why: todo`. */
export function blockerText(b: Blocker): string {
  return `${b.why}: ${b.todo}`;
}

/** gpu.js is not installed. */
export const NO_GPUJS: Blocker = {
  why: 'gpu.js is not installed',
  todo: 'npm install gpu.js (an optional peer dependency of sae-metrics)',
};
/** The Debian packages the `gl` package builds against. */
const GL_BUILD_DEPS = 'Debian: apt-get install g++ make python3 pkg-config libxi-dev libx11-dev libxext-dev mesa-common-dev';

/** Where gpu.js's entry file is, or undefined when it is not installed (found without loading it). */
export function gpujsPath(): string | undefined {
  try {
    return require.resolve('gpu.js');
  } catch {
    return undefined;
  }
}

let loaded: { module: GpuJsModule } | { error: Error } | undefined;

/**
 * The gpu.js module, loaded on first use (which also loads `gl` in this thread, where it is built).
 *
 * @throws {Error} when gpu.js is not installed, saying what to run.
 */
export function gpujs(): GpuJsModule {
  loaded ??= (() => {
    if (gpujsPath() === undefined) return { error: new Error(blockerText(NO_GPUJS)) };
    try {
      return { module: require('gpu.js') as GpuJsModule };
    } catch (error) {
      return { error: new Error(`gpu.js cannot be loaded: ${firstLine(error)}`) };
    }
  })();
  if ('error' in loaded) throw loaded.error;
  return loaded.module;
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0] as string;
}

/**
 * The `gl` package that gpu.js (whose entry file is `gpujsEntry`) loads, found without loading it:
 * its entry file when its native addon is built, else why not and what to do.
 */
export function glInstall(gpujsEntry: string | undefined = gpujsPath()): { readonly main: string } | Blocker {
  if (gpujsEntry === undefined) return NO_GPUJS;
  let main: string;
  try {
    main = createRequire(gpujsEntry).resolve('gl');
  } catch {
    return {
      why: "gl (gpu.js's native GL package) is not installed (its build may have failed)",
      todo: `npm install gl, with its build tools (${GL_BUILD_DEPS})`,
    };
  }
  const root = dirname(main);
  if (!['Release', 'Debug'].some((d) => fs.existsSync(join(root, 'build', d, 'webgl.node')))) {
    return {
      why: "gl (gpu.js's native GL package) is installed but not built",
      todo: `npm rebuild gl, with its build tools (${GL_BUILD_DEPS})`,
    };
  }
  return { main };
}

/** Why `gl` failed to load, and what to do, from its load error's message. */
export function explainGlLoadError(message: string): Blocker {
  const first = message.split('\n')[0] as string;
  if (/did not self-register/.test(message)) {
    return {
      why: 'gl is already loaded in another thread of this process, and it loads in one thread only (it is not context-aware)',
      todo: 'build GL kernels in one thread, or use a pool (createMetricPool), which runs them in a child process',
    };
  }
  const abi = /NODE_MODULE_VERSION (\d+)[\s\S]*NODE_MODULE_VERSION (\d+)/.exec(message);
  if (abi) {
    return { why: `gl was built for another Node.js version (module version ${abi[1] as string}; this Node needs ${abi[2] as string})`, todo: 'npm rebuild gl' };
  }
  const lib = /([\w.+-]+\.so[\w.]*): cannot open shared object file/.exec(message);
  if (lib) {
    return {
      why: `gl needs the system library ${lib[1] as string}, which is missing`,
      todo: 'install it (Debian: apt-get install libgl1 libxi6 libxext6 libx11-6)',
    };
  }
  return { why: `gl cannot be loaded (${first})`, todo: `npm rebuild gl, with its build tools (${GL_BUILD_DEPS})` };
}

/**
 * Why the native `gl` package cannot be loaded in this thread, or undefined when it can. This
 * loads `gl` in the calling thread when it is installed and built.
 */
export function glLoadError(): Blocker | undefined {
  const install = glInstall();
  if (!('main' in install)) return install;
  try {
    const getContext = require(install.main) as unknown;
    return typeof getContext === 'function' ? undefined : { why: 'the gl package does not export a function', todo: 'npm rebuild gl' };
  } catch (error) {
    return explainGlLoadError(error instanceof Error ? error.message : String(error));
  }
}

/**
 * Why no GL context can be had for want of a display, or undefined: on Linux and the BSDs,
 * headless-gl draws through an X server (GLX); macOS and Windows need none.
 */
export function noDisplay(env: Readonly<Record<string, string | undefined>> = process.env): Blocker | undefined {
  if (process.platform === 'darwin' || process.platform === 'win32') return undefined;
  if (env.DISPLAY !== undefined && env.DISPLAY !== '') return undefined;
  return {
    why: 'there is no X display for headlessgl (DISPLAY is not set)',
    todo: 'run under xvfb-run -a (Debian: apt-get install xvfb xauth libgl1-mesa-dri), or in a desktop session',
  };
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
    // Through the module object, so that a test's preload can stand in for the drivers.
    maps = fs.readFileSync('/proc/self/maps', 'utf8');
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
