/**
 * Every backend through the pooled operators: the same results as the plain classes within the
 * backend's tolerance (1e-12 for js's float64 accumulation, 1e-6 for wasm's float32 blocks carried
 * into float64, 1e-5 for gpu.js's float32 kernels), the
 * backend that actually runs is the one reported, in-thread and pooled runs of one backend give
 * the same bits, and a batch past 2^24 elements is counted exactly.
 */
import { from, lastValueFrom } from 'rxjs';
import { afterAll, describe, expect, it } from 'vitest';
import {
  BACKEND_ENV,
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  MetricCollection,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  SparseAutoencoderLoss,
  createMetricPool,
  reduceMetric,
  tensor,
  type Batch,
  type MetricPool,
  type Tensor,
} from '../../src/index.js';
import { mulberry32 as random } from '../support/random.js';

const TIMEOUT = 60_000;


function makeBatch(rows: number, components: number | undefined, features: number, inputs: number, seed: number): Batch {
  const r = random(seed);
  const c = components ?? 1;
  const learned = new Float32Array(rows * c * features).map(() => (r() < 0.7 ? 0 : r() * 2 - 0.5));
  const source = new Float32Array(rows * c * inputs).map(() => r() * 2 - 1);
  const decoded = source.map((x) => x + (r() - 0.5) * 0.3);
  const shape = (f: number): number[] => (components === undefined ? [rows, f] : [rows, components, f]);
  return {
    learnedActivations: tensor(learned, shape(features)),
    sourceActivations: tensor(source, shape(inputs)),
    decodedActivations: tensor(decoded, shape(inputs)),
  };
}

function metrics(features: number, components: number | undefined): MetricCollection {
  const c = components === undefined ? {} : { numComponents: components };
  return new MetricCollection({
    sae: new SparseAutoencoderLoss(c),
    l1: new L1AbsoluteLoss(c),
    l2: new L2ReconstructionLoss(c),
    l0: new L0NormMetric(c),
    density: new FeatureDensityMetric({ numLearnedFeatures: features, ...c }),
    dead: new NeuronActivityMetric({ numLearnedFeatures: features, ...c }),
    fired: new NeuronFiredCountMetric({ numLearnedFeatures: features, ...c }),
  });
}

function expectClose(actual: Record<string, Tensor>, expected: Record<string, Tensor>, relative: number): void {
  expect(Object.keys(actual).sort()).toEqual(Object.keys(expected).sort());
  for (const [key, e] of Object.entries(expected)) {
    const a = actual[key] as Tensor;
    expect(a.shape, key).toEqual(e.shape);
    expect(a.dtype, key).toBe(e.dtype);
    if (e.dtype === 'int64') {
      expect(Array.from(a.data), key).toEqual(Array.from(e.data));
      continue;
    }
    e.data.forEach((x, i) => {
      const y = a.data[i] as number;
      expect(Math.abs(y - x), `${key}[${i}]: ${y} vs ${x}`).toBeLessThanOrEqual(relative * Math.max(1, Math.abs(x)));
    });
  }
}

function bits(r: Record<string, Tensor>): Record<string, number[]> {
  return Object.fromEntries(Object.entries(r).map(([k, t]) => [k, Array.from(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength))]));
}

const CASES = [
  { name: 'js', options: { backend: 'js' as const }, relative: 1e-12, expected: 'js' },
  { name: 'wasm', options: { backend: 'wasm' as const }, relative: 1e-6, expected: 'wasm' },
  { name: 'gpujs (cpu)', options: { backend: 'gpujs' as const, gpujsMode: 'cpu' as const }, relative: 1e-5, expected: 'gpujs' },
  { name: 'gpujs (webasm)', options: { backend: 'gpujs' as const, gpujsMode: 'webasm' as const }, relative: 1e-5, expected: 'gpujs' },
];

const pools: MetricPool[] = [];
afterAll(async () => {
  await Promise.all(pools.map((p) => p.close()));
});

describe.each(CASES)('backend $name', ({ options, relative, expected }) => {
  const shapes = [
    { rows: 300, components: undefined, features: 37, inputs: 11 },
    { rows: 129, components: 2, features: 64, inputs: 8 },
  ];

  it.each(shapes)(
    'pooled and in-thread results match the plain classes ($rows rows, $components components, $features features)',
    async ({ rows, components, features, inputs }) => {
      const pool = createMetricPool({ workers: 2, shardRows: 64, ...options });
      pools.push(pool);
      expect(pool.backend).toBe(expected);
      const batches = [0, 1, 2].map((i) => makeBatch(rows - i * 7, components, features, inputs, 100 * rows + i));
      const pooled = (await lastValueFrom(from(batches).pipe(reduceMetric(metrics(features, components), { pool })))) as Record<string, Tensor>;
      const inThread = (await lastValueFrom(
        from(batches).pipe(reduceMetric(metrics(features, components), { shardRows: 64, ...options })),
      )) as Record<string, Tensor>;
      const plain = metrics(features, components);
      for (const b of batches) plain.update(b);
      const expectedValues = plain.compute() as Record<string, Tensor>;
      // The classes run the default backend (the WebAssembly pass here: within 1e-6 of float64).
      expectClose(pooled, expectedValues, Math.max(relative, 1e-6));
      expect(bits(inThread)).toEqual(bits(pooled));
    },
    TIMEOUT,
  );
});

describe.each(['js', 'wasm'] as const)('the %s backend past 2^24 elements', (backend) => {
  it('counts a batch allocated by the pool exactly', async () => {
    const rows = 1100;
    const features = 16384; // 18 022 400 elements > 2^24
    const pool = createMetricPool({ workers: 2, shardRows: 550, backend });
    pools.push(pool);
    const learned = pool.allocate([rows, features]);
    // Row r fires features f with (f + r) % 4 == 0 at value 1 (and -1 where (f + r) % 4 == 2).
    for (let r = 0; r < rows; r++) {
      for (let f = 0; f < features; f++) {
        const k = (f + r) % 4;
        learned.data[r * features + f] = k === 0 ? 1 : k === 2 ? -1 : 0;
      }
    }
    const m = new MetricCollection({
      l1: new L1AbsoluteLoss(),
      l0: new L0NormMetric(),
      fired: new NeuronFiredCountMetric({ numLearnedFeatures: features }),
    });
    const out = (await lastValueFrom(from([{ learnedActivations: learned }]).pipe(reduceMetric(m, { pool })))) as Record<string, Tensor>;
    expect(out.l1?.item()).toBe(features / 2); // 1/4 ones and 1/4 minus ones per row
    expect(out.l0?.item()).toBe(features / 2);
    // Feature f fires in rows r with (f + r) % 4 == 0: 275 of the 1100 rows, for every f.
    expect(new Set(out.fired?.data)).toEqual(new Set([rows / 4]));
    pool.release(learned);
  }, TIMEOUT);
});

describe('backend choice', () => {
  it('SAE_METRICS_BACKEND forces the backend, and the reason says so', () => {
    const saved = process.env[BACKEND_ENV];
    process.env[BACKEND_ENV] = 'js';
    try {
      const pool = createMetricPool({ workers: 1, backend: 'wasm' });
      pools.push(pool);
      expect(pool.backend).toBe('js');
      expect(pool.backendReason).toBe(`requested (forced by ${BACKEND_ENV})`);
    } finally {
      if (saved === undefined) delete process.env[BACKEND_ENV];
      else process.env[BACKEND_ENV] = saved;
    }
  });

  it('auto picks the wasm pass on this machine (no hardware GPU), and says why', () => {
    const pool = createMetricPool({ workers: 1 });
    pools.push(pool);
    expect(pool.backend).toBe('wasm');
    expect(pool.backendReason).toMatch(/^auto: no hardware GPU \(.+\); WebAssembly SIMD is available$/);
  });
});
