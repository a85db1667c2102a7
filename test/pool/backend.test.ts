import { describe, expect, it } from 'vitest';
import {
  BACKEND_ENV,
  GPUJS_MODE_ENV,
  chooseBackend,
  isSoftwareRenderer,
  wasmSimdSupported,
  type BackendProbes,
} from '../../src/pool/backend.js';

const noGpu = (): { ok: boolean; reason: string } => ({ ok: false, reason: 'no display for headlessgl' });
const gpu = (): { ok: boolean; reason: string } => ({ ok: true, reason: 'GL renderer NVIDIA' });
const wasmOk = (): string | undefined => undefined;
const wasmMissing = (): string => 'the compiled kernel is missing';
const probes = (p: BackendProbes): BackendProbes => ({ env: {}, ...p });

describe('chooseBackend', () => {
  it('auto takes gpu.js on a hardware GPU', () => {
    expect(chooseBackend('t', 'auto', undefined, probes({ hardwareGpu: gpu, wasm: wasmOk }))).toEqual({
      backend: 'gpujs',
      gpujsMode: 'gpu',
      reason: 'auto: GL renderer NVIDIA',
    });
  });

  it('auto takes the WebAssembly pass without a hardware GPU, and says why', () => {
    const choice = chooseBackend('t', 'auto', undefined, probes({ hardwareGpu: noGpu, wasm: wasmOk }));
    expect(choice.backend).toBe('wasm');
    expect(choice.reason).toBe('auto: no hardware GPU (no display for headlessgl); WebAssembly SIMD is available');
  });

  it('auto falls back to plain JavaScript without either, and says why', () => {
    const choice = chooseBackend('t', 'auto', undefined, probes({ hardwareGpu: noGpu, wasm: wasmMissing }));
    expect(choice).toEqual({
      backend: 'js',
      reason: 'auto: no hardware GPU (no display for headlessgl) and no WebAssembly pass (the compiled kernel is missing)',
    });
  });

  it('an explicit backend is taken as asked, with the gpu.js mode', () => {
    expect(chooseBackend('t', 'js', undefined, probes({ hardwareGpu: gpu })).backend).toBe('js');
    expect(chooseBackend('t', 'gpujs', 'webasm', probes({ hardwareGpu: noGpu }))).toEqual({
      backend: 'gpujs',
      gpujsMode: 'webasm',
      reason: 'requested',
    });
  });

  it('an explicit wasm backend that cannot run throws, saying why', () => {
    expect(() => chooseBackend('createMetricPool', 'wasm', undefined, probes({ wasm: wasmMissing }))).toThrow(
      'createMetricPool: the wasm backend cannot run here: the compiled kernel is missing',
    );
  });

  it('the environment forces a backend and a gpu.js mode', () => {
    const env = { [BACKEND_ENV]: 'gpujs', [GPUJS_MODE_ENV]: 'cpu' };
    expect(chooseBackend('t', 'wasm', undefined, { env, hardwareGpu: noGpu, wasm: wasmOk })).toEqual({
      backend: 'gpujs',
      gpujsMode: 'cpu',
      reason: `requested (forced by ${BACKEND_ENV})`,
    });
    expect(chooseBackend('t', 'auto', undefined, { env: { [BACKEND_ENV]: 'js' }, hardwareGpu: gpu }).backend).toBe('js');
  });

  it('rejects an unknown backend or mode, from options or the environment, naming it', () => {
    expect(() => chooseBackend('t', 'auto', undefined, { env: { [BACKEND_ENV]: 'cuda' } })).toThrow(
      new RangeError(`t (${BACKEND_ENV}): options.backend must be one of 'auto', 'wasm', 'gpujs', 'js', got "cuda"`),
    );
    expect(() => chooseBackend('t', 'gpujs', undefined, { env: { [GPUJS_MODE_ENV]: 'opencl' } })).toThrow(
      /^t \(SAE_METRICS_GPUJS_MODE\): options\.gpujsMode must be one of 'gpu', 'headlessgl', .* got "opencl"$/,
    );
  });
});

describe('machine checks', () => {
  it('this runtime (Node 20) validates WebAssembly SIMD', () => {
    expect(wasmSimdSupported()).toBe(true);
  });

  it('tells software GL renderers from hardware ones', () => {
    for (const r of ['llvmpipe (LLVM 15.0.6, 256 bits)', 'softpipe', 'Google SwiftShader', undefined]) {
      expect(isSoftwareRenderer(r), String(r)).toBe(true);
    }
    for (const r of ['NVIDIA GeForce RTX 4090/PCIe/SSE2', 'AMD Radeon Pro 5500M', 'Apple M2']) {
      expect(isSoftwareRenderer(r), r).toBe(false);
    }
  });
});
