/**
 * gpu.js kernels for every partial reduction the metrics need, on any gpu.js mode that runs
 * synchronously: `cpu`, `webasm` (single-threaded), and the GL modes (`headlessgl` in Node, under
 * a display; `gpu` picks the best GL backend).
 *
 * One kernel per statistic, each over blocks so that every output cell sums a bounded run of
 * float32 values; the blocks are summed outside the kernel in float64 (counts in exact integers):
 *
 * | statistic | kernel output | cell computes | outside the kernel |
 * | --- | --- | --- | --- |
 * | `abs` | `[vectors, featureBlocks]` | `sum |x|` over one block of features | sum of the blocks, per vector |
 * | `nonZero` | `[vectors, featureBlocks]` | `count(x != 0)` over one block of features | sum of the blocks and of the vectors of each component |
 * | `fired` | `[features, components, rowBlocks]` | `count(x > 0)` over one block of rows | sum of the row blocks |
 * | `mse` | `[vectors, featureBlocks]` | `sum (decoded - source)^2` over one block | sum of the blocks, divided by the feature count |
 *
 * Known gpu.js traps, and how they are avoided here:
 * - flat indexing `x[r * F + f]` is computed in float32 in `webasm` and the GL modes, and reads the
 *   wrong element past 2^24: every array is an `input(data, [F, vectors])` (or `[F, C, rows]`)
 *   read with 2-D/3-D indexing, which gpu.js computes in integers;
 * - a loop bound passed as an argument is silently capped at `loopMaxIterations`: every loop bound
 *   is a constant, and `loopMaxIterations` is set above it;
 * - `cpu` mode with `dynamicArguments` strides wrongly: kernels have fixed sizes, one set per shard
 *   shape `(rows, components, features)`, built on first use and cached;
 * - threaded `webasm` starts a worker pool of its own (a pool inside each pool worker): kernels run
 *   synchronously, which gpu.js runs single-threaded (its pool is only used under `asyncMode`);
 * - outputs are float32: a count in one output cell is at most a block size (far below 2^24, so
 *   exact), and cells are summed outside in float64.
 *
 * A silent fallback to another mode is an error: the mode that ran is checked when the kernel
 * object is created and after every kernel run.
 *
 * @module
 */
import { describeValue } from '../../errors.js';
import type { TensorLike } from '../../tensor.js';
import { jsFusedKernel } from '../js-fused.js';
import type { FusedKernel, ShardStats } from '../types.js';
import { withFallback, type NeedName } from '../fallback.js';
import {
  type ActualMode,
  type Blocker,
  blockerText,
  glInstall,
  glLoadError,
  gpujsPath,
  glRenderer,
  type GpuInstance,
  gpujs,
  type KernelOutput,
  type KernelRunShortcut,
  modeOfKernel,
  NO_GPUJS,
  noDisplay,
} from './gpu.js';

/** The statistics gpu.js kernels compute; the plain JavaScript kernel does the rest. */
export const GPUJS_NEEDS: ReadonlySet<NeedName> = new Set<NeedName>(['abs', 'nonZero', 'fired', 'mse']);

export type { ActualMode as GpujsActualMode, Blocker as GpujsBlocker } from './gpu.js';

/** The gpu.js modes that can be requested (`gpu`: the best GL backend gpu.js finds). */
export type GpujsMode = 'gpu' | 'headlessgl' | 'webgl' | 'webgl2' | 'webgpu' | 'cpu' | 'webasm';

const MODES: readonly GpujsMode[] = ['gpu', 'headlessgl', 'webgl', 'webgl2', 'webgpu', 'cpu', 'webasm'];
const GL_MODES: readonly ActualMode[] = ['headlessgl', 'webgl', 'webgl2'];

/** Options of {@link createGpujsKernel}. */
export interface GpujsKernelOptions {
  /** The gpu.js mode to run in. */
  readonly mode: GpujsMode;
  /**
   * Features summed by one output cell (default 256): a float32 sum over at most this many values,
   * so the per-vector sums stay within about 1e-6 relative of float64 on typical data.
   */
  readonly featureBlock?: number;
  /** Rows counted by one output cell of the fired-count kernel (default 256). */
  readonly rowBlock?: number;
  /** How many shard shapes keep their kernels (default 8; the least recently used is destroyed). */
  readonly maxShapes?: number;
}

/** A gpu.js fused kernel: the kernels, the mode that runs them, and how to release them. */
export interface GpujsKernel {
  /** The mode gpu.js actually runs (for a requested `gpu`, the GL backend it chose). */
  readonly mode: ActualMode;
  /** The mode that was requested. */
  readonly requestedMode: GpujsMode;
  /**
   * For the GL modes: the WebGL renderer and, where it can be found, the driver below it (e.g.
   * `ANGLE (WebGL 1.0 stack-gl 8.1.6); driver: Mesa swrast_dri.so (llvmpipe, software)`), so a
   * software renderer can be told from a hardware GPU. Undefined for `cpu` and `webasm`.
   */
  readonly renderer?: string;
  /** The shard pass: same contract and results as `jsFusedKernel`, within float32 tolerance. */
  readonly fused: FusedKernel;
  /** Destroys every kernel and the GL context; `fused` throws afterwards. */
  destroy(): Promise<void>;
}

/** Whether a gpu.js mode can run here, and if not, why. */
export type GpujsAvailability = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** Whether a GL context can be had in this thread (loads gl here), after {@link gpujsBlocker}'s checks. */
function glContextAvailable(): GpujsAvailability {
  const loadError = glLoadError();
  if (loadError !== undefined) return { ok: false, reason: blockerText(loadError) };
  if (gpujs().HeadlessGLKernel.isSupported) return { ok: true };
  return {
    ok: false,
    reason: `gl cannot create a WebGL context on display ${process.env.DISPLAY ?? ''}: check that its X server is running, with GLX (glxinfo -B)`,
  };
}

/**
 * Why a gpu.js mode cannot run here, from what can be told without loading gpu.js or `gl` (so
 * without tying `gl` to the calling thread), or undefined when nothing rules it out: gpu.js not
 * installed; for the GL modes, `gl` not installed or not built, or no display; `webgl`/`webgl2`
 * outside a browser; `webgpu` always (see {@link gpujsAvailable}). `why` is short; `todo` says
 * what to do.
 *
 * @example
 * ```ts
 * gpujsBlocker('cpu'); // undefined
 * gpujsBlocker('webgl')?.why; // 'webgl needs a browser canvas, and there is none in Node'
 * ```
 */
export function gpujsBlocker(mode: GpujsMode): Blocker | undefined {
  if (!MODES.includes(mode)) {
    return { why: `unknown gpu.js mode ${describeValue(mode)}`, todo: `use one of ${MODES.join(', ')}` };
  }
  if (gpujsPath() === undefined) return NO_GPUJS;
  const gl = { todo: "use 'gpu' or 'headlessgl'" };
  switch (mode) {
    case 'cpu':
      return undefined;
    case 'webasm':
      return typeof WebAssembly === 'object' ? undefined : { why: 'this runtime has no WebAssembly', todo: "use 'cpu'" };
    case 'webgl':
    case 'webgl2':
      return typeof (globalThis as { document?: unknown }).document === 'object'
        ? undefined
        : { why: `${mode} needs a browser canvas, and there is none in Node`, ...gl };
    case 'webgpu':
      return (globalThis as { navigator?: { gpu?: unknown } }).navigator?.gpu === undefined
        ? { why: 'there is no navigator.gpu in this runtime (Node has no WebGPU)', ...gl }
        : { why: "gpu.js's webgpu kernels return Promises (readback is asynchronous) and a FusedKernel is synchronous", ...gl };
    case 'gpu':
    case 'headlessgl': {
      const install = glInstall();
      return 'main' in install ? noDisplay() : install;
    }
  }
}

/**
 * Whether a gpu.js mode can run here; never throws. The reasons name what is missing and what to
 * do: gpu.js, the `gl` package or a display for `headlessgl` and `gpu`, a browser for
 * `webgl`/`webgl2`, `navigator.gpu` for `webgpu`. For the GL modes this loads `gl` in the calling
 * thread (the one that would run the kernels): `gl` loads in one thread of a process only.
 *
 * @example
 * ```ts
 * gpujsAvailable('cpu'); // { ok: true }
 * gpujsAvailable('webgl').ok; // false
 * ```
 */
export function gpujsAvailable(mode: GpujsMode): GpujsAvailability {
  try {
    const blocked = gpujsBlocker(mode);
    if (blocked !== undefined) return { ok: false, reason: `${mode === 'gpu' ? 'no GL backend: ' : ''}${blockerText(blocked)}` };
    const g = gpujs();
    switch (mode) {
      case 'cpu':
        return { ok: true };
      case 'webasm':
        return g.WebAssemblyKernel.isSupported ? { ok: true } : { ok: false, reason: 'this runtime has no WebAssembly' };
      case 'webgl':
      case 'webgl2':
        return (mode === 'webgl' ? g.WebGLKernel : g.WebGL2Kernel).isSupported
          ? { ok: true }
          : { ok: false, reason: `${mode} needs a browser canvas, and gpu.js found none` };
      case 'webgpu':
        return { ok: false, reason: 'gpu.js webgpu kernels are asynchronous' }; // gpujsBlocker answers first
      case 'headlessgl':
        return glContextAvailable();
      case 'gpu': {
        if (g.HeadlessGLKernel.isSupported || g.WebGL2Kernel.isSupported || g.WebGLKernel.isSupported) return { ok: true };
        const gl = glContextAvailable();
        return gl.ok ? { ok: false, reason: 'no GL backend found by gpu.js' } : { ok: false, reason: `no GL backend: ${gl.reason}` };
      }
    }
  } catch (error) {
    return { ok: false, reason: (error as Error).message };
  }
}

/** Sums of |x| over one block of features of one vector: output `[vectors, featureBlocks]`. */
const ABS_SOURCE = `function(x) {
  let s = 0;
  for (let k = 0; k < this.constants.B; k++) {
    const f = this.thread.y * this.constants.B + k;
    if (f < this.constants.F) {
      s += Math.abs(x[this.thread.x][f]);
    }
  }
  return s;
}`;

/** Counts of x != 0 over one block of features of one vector: output `[vectors, featureBlocks]`. */
const NON_ZERO_SOURCE = `function(x) {
  let n = 0;
  for (let k = 0; k < this.constants.B; k++) {
    const f = this.thread.y * this.constants.B + k;
    if (f < this.constants.F) {
      if (x[this.thread.x][f] !== 0) {
        n += 1;
      }
    }
  }
  return n;
}`;

/** Counts of x > 0 over one block of rows, per component and feature: output `[features, components, rowBlocks]`. */
const FIRED_SOURCE = `function(x) {
  let n = 0;
  for (let k = 0; k < this.constants.RB; k++) {
    const r = this.thread.z * this.constants.RB + k;
    if (r < this.constants.R) {
      if (x[r][this.thread.y][this.thread.x] > 0) {
        n += 1;
      }
    }
  }
  return n;
}`;

/** Sums of (decoded - source)^2 over one block of features of one vector: output `[vectors, featureBlocks]`. */
const SQUARED_ERROR_SOURCE = `function(d, s) {
  let acc = 0;
  for (let k = 0; k < this.constants.B; k++) {
    const f = this.thread.y * this.constants.B + k;
    if (f < this.constants.F) {
      const e = d[this.thread.x][f] - s[this.thread.x][f];
      acc += e * e;
    }
  }
  return acc;
}`;

type Statistic = 'abs' | 'nonZero' | 'fired' | 'mse';

/** The kernels of one shard shape, built on first use. */
interface ShapeKernels {
  readonly rows: number;
  readonly components: number;
  readonly features: number;
  readonly kernels: Map<Statistic, KernelRunShortcut>;
}

function axes(t: TensorLike): { components: number; features: number } {
  const shape = t.shape;
  return { components: shape.length === 3 ? (shape[1] as number) : 1, features: shape[shape.length - 1] as number };
}

/** The output rows of a kernel, in storage order (z, then y): each a `Float32Array` along x. */
function outputRows(output: KernelOutput): Float32Array[] {
  if (output instanceof Float32Array) return [output];
  const rows: Float32Array[] = [];
  for (const item of output) {
    if (item instanceof Float32Array) rows.push(item);
    else for (const row of item) rows.push(row);
  }
  return rows;
}

/** `out[i] = sum_b rows[b][i]` in float64. */
function sumRows(rows: readonly Float32Array[], length: number): Float64Array {
  const out = new Float64Array(length);
  for (const row of rows) {
    if (row.length !== length) throw new Error(`gpu.js kernel: an output row has ${row.length} cells, expected ${length}`);
    for (let i = 0; i < length; i++) out[i] = (out[i] as number) + (row[i] as number);
  }
  return out;
}

/** 2^-100: a vector's sum below it (or not finite) is recomputed in float64, as the WebAssembly pass does. */
const TINY = 2 ** -100;

/**
 * Per-vector sums from float32 blocks, made float64 where the blocks could not hold them: a block
 * that overflowed (two values of 3e38) or a sum below 2^-100 (a GPU may flush subnormal values and
 * squares to zero) is recomputed from the values by `exact(v)`. NaN stays NaN.
 */
function refine(sums: Float64Array, exact: (v: number) => number): Float64Array {
  for (let v = 0; v < sums.length; v++) {
    const x = sums[v] as number;
    if (!(x >= TINY && x < Infinity)) sums[v] = exact(v);
  }
  return sums;
}

function positiveInteger(fn: string, name: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (!Number.isSafeInteger(value) || (value as number) < 1) {
    throw new RangeError(`${fn}: options.${name} must be a positive integer, got ${describeValue(value)}`);
  }
  return value as number;
}

const FN = 'createGpujsKernel';

/**
 * Builds gpu.js kernels in one mode. The mode that actually runs is checked by running a small
 * kernel: if gpu.js fell back to another mode, this throws rather than hide it.
 *
 * `fused(batch, rows, needs)` has `jsFusedKernel`'s contract: the needed statistics of rows
 * `[start, end)` of a validated batch. Sums are float32 within a block of `featureBlock` features
 * and float64 across blocks (a vector whose sum overflows or comes below 2^-100 is summed again in
 * float64); counts are exact integers. Kernels are built once per shard shape
 * `(rows, components, features)` and cached. A shard with no rows, components or features is
 * computed by `jsFusedKernel` (no gpu.js kernel can have an empty output).
 *
 * @throws {RangeError} when an option is out of range.
 * @throws {Error} when the mode cannot run here (the reason says why, see {@link gpujsAvailable}),
 *   or when gpu.js runs another mode than the one requested.
 *
 * @example
 * ```ts
 * const gpu = createGpujsKernel({ mode: 'cpu' });
 * const stats = gpu.fused({ learnedActivations: tensor([[1, -2, 0], [0, 3, 0]]) }, { start: 0, end: 2 }, { abs: true, fired: true });
 * Array.from(stats.abs); // [3, 3]
 * Array.from(stats.fired); // [1, 1, 0]
 * gpu.mode; // 'cpu'
 * await gpu.destroy();
 * ```
 */
export function createGpujsKernel(options: GpujsKernelOptions): GpujsKernel {
  if (typeof options !== 'object' || options === null) {
    throw new TypeError(`${FN}: options must be an object, got ${describeValue(options)}`);
  }
  const requested = options.mode;
  if (!MODES.includes(requested)) {
    throw new RangeError(`${FN}: options.mode must be one of ${MODES.map((m) => `'${m}'`).join(', ')}, got ${describeValue(requested)}`);
  }
  const featureBlock = positiveInteger(FN, 'featureBlock', options.featureBlock, 256);
  const rowBlock = positiveInteger(FN, 'rowBlock', options.rowBlock, 256);
  const maxShapes = positiveInteger(FN, 'maxShapes', options.maxShapes, 8);
  // Checked first, so that the error says what is missing and what to do. For 'gpu', gpu.js then
  // picks a GL backend itself: the probe below checks what it picked.
  const available = gpujsAvailable(requested);
  if (!available.ok) {
    throw new Error(`${FN}: gpu.js mode '${requested}' cannot run here: ${available.reason}`);
  }

  const g = gpujs();
  const gpu: GpuInstance = new g.GPU({ mode: requested });
  const isGl = (m: string): boolean => (GL_MODES as readonly string[]).includes(m);
  const accepts = (actual: string): boolean => (requested === 'gpu' ? isGl(actual) : actual === requested);

  // The probe: a small kernel whose answer is known, run once, then checked for mode and value.
  let mode: ActualMode;
  let renderer: string | undefined;
  {
    const probe = gpu.createKernel('function(x) { return x[this.thread.x] * 2; }', {
      output: [3],
      constants: {},
      loopMaxIterations: 1,
      precision: 'single',
      tactic: 'precision',
    });
    let result: KernelOutput;
    try {
      result = probe(new Float32Array([1, 2, 3]));
    } catch (error) {
      void gpu.destroy().catch(() => undefined);
      throw new Error(`${FN}: gpu.js mode '${requested}' failed to run a kernel: ${(error as Error).message}`);
    }
    const actual = modeOfKernel(probe.kernel);
    if (!accepts(actual)) {
      const reason = probe.kernel.fallbackReason;
      void gpu.destroy().catch(() => undefined);
      throw new Error(
        `${FN}: requested gpu.js mode '${requested}' but gpu.js runs '${actual}'${reason ? ` (${reason})` : ''}`,
      );
    }
    const values = outputRows(result)[0];
    if (values === undefined || values[0] !== 2 || values[1] !== 4 || values[2] !== 6) {
      void gpu.destroy().catch(() => undefined);
      throw new Error(`${FN}: gpu.js mode '${actual}' computed ${describeValue(values)} for [1, 2, 3] * 2`);
    }
    mode = actual as ActualMode;
    if (isGl(mode)) renderer = glRenderer(gpu.context ?? probe.kernel.context);
    probe.kernel.destroy(false);
  }

  // GLSL may flush subnormal floats to zero (Mesa's llvmpipe does): a kernel there counts none of
  // them as fired or non-zero, where every other kernel (and the fired entries the per-feature
  // parts read) counts them. Asked here, before any other kernel is built (a kernel destroyed
  // between others' runs disturbed their results under GL), with a kernel whose answer is known.
  let keepsSubnormals: boolean;
  {
    const probe = gpu.createKernel('function(x) { if (x[this.thread.x] > 0) { return 1; } return 0; }', {
      output: [2],
      constants: {},
      loopMaxIterations: 1,
      precision: 'single',
      tactic: 'precision',
    });
    // The smallest and the largest subnormal float32.
    const values = outputRows(probe(new Float32Array([1e-45, 1.1754942e-38])))[0];
    keepsSubnormals = values !== undefined && values[0] === 1 && values[1] === 1;
    probe.kernel.destroy(false);
  }

  const shapes = new Map<string, ShapeKernels>();
  let destroyed = false;


  function shapeOf(rows: number, components: number, features: number): ShapeKernels {
    const key = `${rows}x${components}x${features}`;
    let shape = shapes.get(key);
    if (shape !== undefined) {
      shapes.delete(key); // re-inserted below: the map's order is least recently used first
    } else {
      shape = { rows, components, features, kernels: new Map() };
      if (shapes.size >= maxShapes) {
        const [oldestKey, oldest] = shapes.entries().next().value as [string, ShapeKernels];
        shapes.delete(oldestKey);
        for (const k of oldest.kernels.values()) k.kernel.destroy(false);
      }
    }
    shapes.set(key, shape);
    return shape;
  }

  function kernelFor(shape: ShapeKernels, statistic: Statistic): KernelRunShortcut {
    let kernel = shape.kernels.get(statistic);
    if (kernel !== undefined) return kernel;
    const { rows: R, components: C, features: F } = shape;
    const B = Math.min(featureBlock, F);
    const RB = Math.min(rowBlock, R);
    // GL: outputs packed four floats to a texel, in a texture as square as gpu.js can make it (an
    // unpacked output [x, y] is an x by y texture, over the size limit when x > 16384).
    const common = {
      loopMaxIterations: Math.max(B, RB) + 1,
      precision: 'single',
      tactic: 'precision',
      ...(isGl(mode) ? { optimizeFloatMemory: true } : {}),
    } as const;
    const featureBlocks = Math.ceil(F / B);
    if (statistic === 'fired') {
      kernel = gpu.createKernel(FIRED_SOURCE, { ...common, output: [F, C, Math.ceil(R / RB)], constants: { R, RB } });
    } else {
      const source = statistic === 'abs' ? ABS_SOURCE : statistic === 'nonZero' ? NON_ZERO_SOURCE : SQUARED_ERROR_SOURCE;
      kernel = gpu.createKernel(source, { ...common, output: [R * C, featureBlocks], constants: { F, B } });
    }
    shape.kernels.set(statistic, kernel);
    return kernel;
  }

  function run(kernel: KernelRunShortcut, args: unknown[]): Float32Array[] {
    const output = kernel(...args);
    const actual = modeOfKernel(kernel.kernel);
    if (actual !== mode) {
      const reason = kernel.kernel.fallbackReason;
      throw new Error(`gpu.js kernel: expected to run in mode '${mode}', but gpu.js ran '${actual}'${reason ? ` (${reason})` : ''}`);
    }
    return outputRows(output);
  }

  const ownPass: FusedKernel = (batch, rows, needs) => {
    if (destroyed) throw new Error(`gpu.js kernel (${mode}): used after destroy()`);
    const R = rows.end - rows.start;
    const out: { -readonly [K in keyof ShardStats]: ShardStats[K] } = {};
    const input = g.input;
    if (needs.abs || needs.nonZero || needs.fired) {
      const t = batch.learnedActivations as TensorLike;
      const { components: C, features: F } = axes(t);
      if (R === 0 || C === 0 || F === 0) {
        Object.assign(out, jsFusedKernel({ learnedActivations: t }, rows, { abs: !!needs.abs, nonZero: !!needs.nonZero, fired: !!needs.fired }));
      } else {
        const V = R * C;
        const data = t.data.subarray(rows.start * C * F, rows.end * C * F);
        const shape = shapeOf(R, C, F);
        if (needs.abs) {
          out.abs = refine(sumRows(run(kernelFor(shape, 'abs'), [input(data, [F, V])]), V), (v) => {
            let sum = 0;
            for (let f = v * F; f < (v + 1) * F; f++) sum += Math.abs(data[f] as number);
            return sum;
          });
        }
        if ((needs.nonZero || needs.fired) && !keepsSubnormals) {
          // Exact counts that a flushing GPU would miss: from the JavaScript pass.
          Object.assign(out, jsFusedKernel({ learnedActivations: t }, rows, { nonZero: !!needs.nonZero, fired: !!needs.fired }));
        } else if (needs.nonZero) {
          const perVector = sumRows(run(kernelFor(shape, 'nonZero'), [input(data, [F, V])]), V);
          const nonZero = new Float64Array(C);
          for (let v = 0; v < V; v++) nonZero[v % C] = (nonZero[v % C] as number) + (perVector[v] as number);
          out.nonZero = nonZero;
        }
        if (needs.fired && out.fired === undefined) {
          const planes = run(kernelFor(shape, 'fired'), [input(data, [F, C, R])]);
          // planes are (rowBlock, component) in storage order; each holds the F features.
          const fired = new Float64Array(C * F);
          planes.forEach((plane, i) => {
            const o = (i % C) * F;
            if (plane.length !== F) throw new Error(`gpu.js kernel: a fired plane has ${plane.length} cells, expected ${F}`);
            for (let f = 0; f < F; f++) fired[o + f] = (fired[o + f] as number) + (plane[f] as number);
          });
          out.fired = fired;
        }
      }
    }
    if (needs.mse) {
      const d = batch.decodedActivations as TensorLike;
      const s = batch.sourceActivations as TensorLike;
      const { components: C, features: F } = axes(d);
      if (R === 0 || C === 0 || F === 0) {
        out.mse = jsFusedKernel({ decodedActivations: d, sourceActivations: s }, rows, { mse: true }).mse as Float64Array;
      } else {
        const V = R * C;
        const first = rows.start * C * F;
        const last = rows.end * C * F;
        const dd = d.data.subarray(first, last);
        const ss = s.data.subarray(first, last);
        const sums = refine(sumRows(run(kernelFor(shapeOf(R, C, F), 'mse'), [input(dd, [F, V]), input(ss, [F, V])]), V), (v) => {
          let sum = 0;
          for (let f = v * F; f < (v + 1) * F; f++) {
            const e = (dd[f] as number) - (ss[f] as number);
            sum += e * e;
          }
          return sum;
        });
        for (let v = 0; v < V; v++) sums[v] = (sums[v] as number) / F;
        out.mse = sums;
      }
    }
    return out as ShardStats;
  };

  const fused = withFallback(ownPass, GPUJS_NEEDS);
  const kernel: GpujsKernel = {
    mode,
    requestedMode: requested,
    fused,
    async destroy(): Promise<void> {
      if (destroyed) return;
      destroyed = true;
      shapes.clear();
      await gpu.destroy();
    },
  };
  return renderer === undefined ? kernel : { ...kernel, renderer };
}
