/**
 * Which kernel computes shards: gpu.js on a hardware GPU, else the fused WebAssembly SIMD pass,
 * else plain JavaScript. The choice and its reason are visible (`pool.backend`,
 * `pool.backendReason`), and the environment variable `SAE_METRICS_BACKEND` forces one.
 *
 * Nothing here loads gpu.js or `gl` in the calling process: what can be told from the files is
 * checked here, and the hardware probe builds its GL context in a child process, where a pool's
 * GL kernels run too (see `gl-host.ts`).
 *
 * @module
 */
import { existsSync, readFileSync } from 'node:fs';
import { describeValue } from '../errors.js';
import { wasmFile } from '../kernels/wasm/index.js';
import { blockerText, type Blocker } from '../kernels/gpujs/gpu.js';
import { gpujsBlocker } from '../kernels/gpujs/index.js';
import { probeGlProcess, type GlProbe } from './gl-host.js';

/** A kernel family. */
export type BackendName = 'js' | 'wasm' | 'gpujs';
/** What a pool can be asked for. */
export type BackendOption = 'auto' | BackendName;
/** gpu.js modes. */
export type GpujsMode = 'gpu' | 'headlessgl' | 'webgl' | 'webgl2' | 'webgpu' | 'cpu' | 'webasm';

/** The resolved backend. */
export interface BackendChoice {
  readonly backend: BackendName;
  /** The gpu.js mode, for the gpujs backend. */
  readonly gpujsMode?: GpujsMode;
  /** Why this backend (and not a preferred one) was chosen. */
  readonly reason: string;
}

/** What {@link chooseBackend} asks the machine (each replaceable, for tests). */
export interface BackendProbes {
  /** Whether gpu.js runs on a hardware GPU (default: {@link probeHardwareGpu}). */
  readonly hardwareGpu?: () => { ok: boolean; reason: string };
  /** Why the WebAssembly pass cannot run, or undefined (default: {@link wasmUnavailable}). */
  readonly wasm?: () => string | undefined;
  /** Why a gpu.js mode cannot run, from the files, or undefined (default: `gpujsBlocker`). */
  readonly gpujs?: (mode: GpujsMode) => Blocker | undefined;
  /** The environment (default: `process.env`). */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** The environment variable that forces a backend (`js`, `wasm`, `gpujs` or `auto`). */
export const BACKEND_ENV = 'SAE_METRICS_BACKEND';
/** The environment variable that forces a gpu.js mode. */
export const GPUJS_MODE_ENV = 'SAE_METRICS_GPUJS_MODE';

const BACKENDS: readonly BackendOption[] = ['auto', 'wasm', 'gpujs', 'js'];
const MODES: readonly GpujsMode[] = ['gpu', 'headlessgl', 'webgl', 'webgl2', 'webgpu', 'cpu', 'webasm'];
const SOFTWARE_RENDERERS = /llvmpipe|softpipe|swiftshader|software|swrast/i;

/**
 * A module whose one function returns `v128.const 0`: it validates only where SIMD is supported.
 * (Header; type section `() -> v128`; function section; code section with the body.)
 */
const SIMD_PROBE = new Uint8Array([
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00,
  0x01, 0x05, 0x01, 0x60, 0x00, 0x01, 0x7b,
  0x03, 0x02, 0x01, 0x00,
  0x0a, 0x16, 0x01, 0x14, 0x00, 0xfd, 0x0c, ...new Array<number>(16).fill(0), 0x0b,
]);

/** Whether this runtime validates WebAssembly SIMD. */
export function wasmSimdSupported(): boolean {
  try {
    return WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

let wasmCheck: { reason: string | undefined } | undefined;

/** Why the fused WebAssembly pass cannot run here, or undefined when it can (checked once per process). */
export function wasmUnavailable(): string | undefined {
  wasmCheck ??= { reason: checkWasm() };
  return wasmCheck.reason;
}

function checkWasm(): string | undefined {
  if (!wasmSimdSupported()) return 'this runtime does not support WebAssembly SIMD';
  // Pools run the shared-memory build, the calling thread the unshared one: both must be there.
  for (const file of [wasmFile('shared'), wasmFile('local')]) {
    if (!existsSync(file)) return `the compiled kernel ${file} is missing (run npm run build)`;
    try {
      if (!WebAssembly.validate(readFileSync(file))) return `${file} is not a valid module for this runtime`;
    } catch (error) {
      return `${file} cannot be read: ${(error as Error).message}`;
    }
  }
  return undefined;
}

/** Checks a backend option; returns it. */
export function checkBackendOption(fn: string, value: unknown): BackendOption {
  if (!BACKENDS.includes(value as BackendOption)) {
    throw new RangeError(`${fn}: options.backend must be one of ${BACKENDS.map((b) => `'${b}'`).join(', ')}, got ${describeValue(value)}`);
  }
  return value as BackendOption;
}

/** Checks a gpu.js mode option; returns it. */
export function checkGpujsMode(fn: string, value: unknown): GpujsMode {
  if (!MODES.includes(value as GpujsMode)) {
    throw new RangeError(`${fn}: options.gpujsMode must be one of ${MODES.map((m) => `'${m}'`).join(', ')}, got ${describeValue(value)}`);
  }
  return value as GpujsMode;
}

/** Whether a GL renderer string names a software renderer (no hardware GPU behind it). */
export function isSoftwareRenderer(renderer: string | undefined): boolean {
  return renderer === undefined || SOFTWARE_RENDERERS.test(renderer);
}

/**
 * Resolves a backend option (after the environment's override): `auto` takes gpu.js where it
 * runs on a hardware GPU (probed by `hardwareGpu`), else the fused WebAssembly pass, else plain
 * JavaScript. An explicit backend that cannot run here throws.
 *
 * @throws {Error} when an explicitly requested backend cannot run here, saying why.
 */
export function chooseBackend(
  fn: string,
  requested: BackendOption,
  gpujsMode: GpujsMode | undefined,
  probes: BackendProbes = {},
): BackendChoice {
  const { hardwareGpu = probeHardwareGpu, wasm = wasmUnavailable, gpujs = gpujsBlocker, env = process.env } = probes;
  const forced = env[BACKEND_ENV];
  const option = forced ? checkBackendOption(`${fn} (${BACKEND_ENV})`, forced) : requested;
  const forcedMode = env[GPUJS_MODE_ENV];
  const mode = forcedMode ? checkGpujsMode(`${fn} (${GPUJS_MODE_ENV})`, forcedMode) : gpujsMode;
  const via = forced ? ` (forced by ${BACKEND_ENV})` : '';
  if (option === 'js') return { backend: 'js', reason: `requested${via}` };
  if (option === 'wasm') {
    const missing = wasm();
    if (missing) throw new Error(`${fn}: the wasm backend cannot run here: ${missing}`);
    return { backend: 'wasm', reason: `requested${via}` };
  }
  if (option === 'gpujs') {
    const blocked = gpujs(mode ?? 'gpu');
    if (blocked) throw new Error(`${fn}: the gpujs backend (gpu.js mode '${mode ?? 'gpu'}') cannot run here: ${blockerText(blocked)}`);
    return { backend: 'gpujs', gpujsMode: mode ?? 'gpu', reason: `requested${via}` };
  }
  const gpu = hardwareGpu();
  if (gpu.ok) return { backend: 'gpujs', gpujsMode: mode ?? 'gpu', reason: `auto: ${gpu.reason}` };
  const missing = wasm();
  if (!missing) return { backend: 'wasm', reason: `auto: no hardware GPU (${gpu.reason}); WebAssembly SIMD is available` };
  return { backend: 'js', reason: `auto: no hardware GPU (${gpu.reason}) and no WebAssembly pass (${missing})` };
}

/** Whether a gpu.js mode draws through GL (in a pool, its kernels run in the pool's GL process). */
export function isGlMode(mode: GpujsMode | undefined): boolean {
  return mode === 'gpu' || mode === 'headlessgl' || mode === 'webgl' || mode === 'webgl2';
}

/** The hardware decision from what a GL probe found. */
export function hardwareFromProbe(probe: GlProbe): { ok: boolean; reason: string } {
  if ('error' in probe) return { ok: false, reason: probe.error };
  return isSoftwareRenderer(probe.renderer)
    ? { ok: false, reason: `the GL renderer is software: ${probe.renderer}` }
    : { ok: true, reason: `GL renderer ${probe.renderer}` };
}

let hardwareGpu: { ok: boolean; reason: string } | undefined;

/**
 * Whether gpu.js runs on a hardware GPU here (probed once per process). Where gpu.js, a built
 * `gl` and a display are present, a child process builds the kernels and reports the renderer;
 * `gl` is never loaded in this process, so the threads of a pool are free to use it.
 */
export function probeHardwareGpu(): { ok: boolean; reason: string } {
  hardwareGpu ??= (() => {
    const blocked = gpujsBlocker('headlessgl');
    return blocked ? { ok: false, reason: blocked.why } : hardwareFromProbe(probeGlProcess('headlessgl'));
  })();
  return hardwareGpu;
}
