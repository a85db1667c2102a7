import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { SparseAutoencoderLoss, tensor, type SparseAutoencoderBatch } from '../../src/index.js';
import { ToyData, normalSampler, seededRandom } from '../../examples/train-sae/data.js';
import { createJsMatrixKernels } from '../../examples/train-sae/kernels.js';
import { SparseAutoencoder } from '../../examples/train-sae/sae.js';
import {
  DEFAULT_OPTIONS,
  Trainer,
  train,
  trainingMetrics,
  weightedSampleWithoutReplacement,
  type TrainOptions,
} from '../../examples/train-sae/train.js';

/** A small configuration: 128 ground-truth features in 64 dimensions, 256 learned; about a second on wasm. */
const SMALL: Partial<TrainOptions> = {
  groundTruthFeatures: 128,
  inputDims: 64,
  learnedFeatures: 256,
  batchSize: 128,
  learningRate: 3e-3,
  l1Coefficient: 5e-3,
  windowVectors: 4096,
  resampleAt: [],
  resampleInputs: 2048,
  targetMmcs: 0.95,
  maxSteps: 20_000,
  maxSeconds: 25,
  seed: 3,
};

/** MMCS in float64, straight from the definition. */
function referenceMmcs(truth: Float32Array, decoder: Float32Array, G: number, F: number, D: number): number {
  let total = 0;
  for (let g = 0; g < G; g++) {
    let best = -Infinity;
    for (let f = 0; f < F; f++) {
      let dot = 0;
      let tt = 0;
      let ww = 0;
      for (let d = 0; d < D; d++) {
        const t = truth[g * D + d] as number;
        const w = decoder[f * D + d] as number;
        dot += t * w;
        tt += t * t;
        ww += w * w;
      }
      best = Math.max(best, dot / Math.sqrt(tt * ww));
    }
    total += best;
  }
  return total / G;
}

describe('examples/train-sae: training', () => {
  it('recovers the ground-truth features: MMCS rises from chance to 0.95, and each window is logged', async () => {
    const lines: string[] = [];
    const result = await train({ ...SMALL, resampleAt: [64, 128] }, (line) => lines.push(line));
    expect(result.reached).toBe(true);
    // Random directions in 64 dimensions: the best of 256 matches a feature only loosely.
    expect(result.initialMmcs).toBeLessThan(0.5);
    expect(result.finalMmcs).toBeGreaterThanOrEqual(0.95);
    expect(result.finalMmcs - result.initialMmcs).toBeGreaterThan(0.45);
    expect(result.windows.length).toBeGreaterThan(0);
    expect(result.steps).toBe(result.windows.length * ((SMALL.windowVectors as number) / (SMALL.batchSize as number)));
    // Three header lines (backend, settings, initial MMCS), then one line per window.
    expect(lines).toHaveLength(3 + result.windows.length);
    expect(lines[0]).toMatch(/^backend: (wasm|js|gpujs)/);
    expect(lines[0]).toContain(result.backend);
    result.windows.forEach((w, i) => {
      const line = lines[3 + i] as string;
      expect(line).toContain(`step ${String(w.step).padStart(6)}`);
      expect(line).toContain(`MMCS ${w.mmcs.toFixed(4)}`);
      expect(line).toContain(`dead ${String(w.dead).padStart(4)}/256`);
    });
  }, 30_000);

  it('reports the values the metric classes give on the same batches, and the MMCS of the decoder', () => {
    const trainer = new Trainer({ ...SMALL, windowVectors: 1024 });
    const batches: SparseAutoencoderBatch[] = [];
    trainer.batches.subscribe((b) => batches.push(b));
    try {
      const reports = [trainer.runWindow(), trainer.runWindow()];
      const perWindow = 1024 / (SMALL.batchSize as number);
      expect(batches).toHaveLength(2 * perWindow);
      reports.forEach((w, k) => {
        const metrics = trainingMetrics(SMALL.learnedFeatures as number, SMALL.l1Coefficient as number);
        for (const b of batches.slice(k * perWindow, (k + 1) * perWindow)) metrics.update(b);
        const r = metrics.compute();
        // The stream sums on the backend's kernel, the classes in their own order: equal to ~1e-15.
        for (const key of ['loss', 'l1', 'l2', 'l0'] as const) {
          expect(Math.abs(w[key] - r[key].item()), key).toBeLessThanOrEqual(1e-9 * Math.abs(r[key].item()));
        }
        expect(w.dead).toBe(r.dead.item());
        expect(Array.from(w.density)).toEqual(Array.from(r.density.data));
        const density = Array.from(r.density.data);
        expect(w.meanDensity).toBeCloseTo(density.reduce((a, b) => a + b, 0) / density.length, 12);
        expect(w.dead).toBe(density.filter((d) => d === 0).length);
        expect(w.vectors).toBe((k + 1) * 1024);
      });
      const { groundTruthFeatures: G, learnedFeatures: F, inputDims: D } = trainer.options;
      expect(reports[1]?.mmcs).toBeCloseTo(referenceMmcs(trainer.data.features, trainer.sae.decoder, G, F, D), 5);
    } finally {
      void trainer.close();
    }
  });

  it('revives neurons found dead: resampled neurons fire in the next window', () => {
    const trainer = new Trainer({ ...SMALL, windowVectors: 1024 });
    try {
      const forced = [0, 5, 17, 64, 127];
      // These neurons can never fire: a bias far below any pre-activation.
      for (const f of forced) trainer.sae.encoderBias[f] = -1e3;
      const before = trainer.runWindow();
      const dead = Array.from(before.density.keys()).filter((f) => before.density[f] === 0);
      expect(dead).toEqual(expect.arrayContaining(forced));
      expect(before.dead).toBe(dead.length);

      const { inputDims: D } = trainer.options;
      const norms = trainer.sae.encoderNorms();
      const alive = Array.from(norms).filter((_, f) => !dead.includes(f));
      const expectedNorm = 0.2 * (alive.reduce((a, b) => a + b, 0) / alive.length);
      expect(trainer.resample(dead)).toBe(dead.length);
      const after = trainer.sae.encoderNorms();
      for (const f of dead) {
        expect(trainer.sae.encoderBias[f]).toBe(0);
        expect(after[f]).toBeCloseTo(expectedNorm, 5);
        let decoderNorm = 0;
        let dot = 0;
        for (let d = 0; d < D; d++) {
          decoderNorm += (trainer.sae.decoder[f * D + d] as number) ** 2;
          dot += (trainer.sae.decoder[f * D + d] as number) * (trainer.sae.encoder[f * D + d] as number);
        }
        expect(Math.sqrt(decoderNorm)).toBeCloseTo(1, 5);
        // The encoder row points the same way as the decoder row.
        expect(dot).toBeCloseTo(after[f] as number, 5);
      }

      const next = trainer.runWindow();
      for (const f of dead) expect(next.density[f], `density of resampled neuron ${f}`).toBeGreaterThan(0);
      expect(next.dead).toBeLessThan(before.dead);
    } finally {
      void trainer.close();
    }
  });

  it('resamples at the scheduled steps, at the end of the window that reaches them', () => {
    const trainer = new Trainer({ ...SMALL, windowVectors: 1024, resampleAt: [8, 9] });
    try {
      for (const f of [3, 4]) trainer.sae.encoderBias[f] = -1e3;
      const first = trainer.runWindow(); // 8 steps of 128 vectors: the first point is reached
      expect(first.step).toBe(8);
      expect(first.dead).toBeGreaterThanOrEqual(2);
      expect(first.resampled).toBe(first.dead);
      const second = trainer.runWindow(); // step 16: past the second point, whose turn it now is
      expect(second.resampled).toBe(second.dead);
      expect(trainer.runWindow().resampled).toBe(0); // no point left
      expect(second.density[3]).toBeGreaterThan(0);
      expect(second.density[4]).toBeGreaterThan(0);
    } finally {
      void trainer.close();
    }
  });
});

describe('examples/train-sae: the model', () => {
  it('computes the gradient of MSE + λ L1 (checked by finite differences)', () => {
    const D = 6;
    const F = 10;
    const B = 5;
    const l1Coefficient = 0.01;
    const sae = new SparseAutoencoder(createJsMatrixKernels(), { inputDims: D, learnedFeatures: F, batchSize: B, l1Coefficient, learningRate: 1e-3, seed: 4 });
    const normal = normalSampler(seededRandom(5));
    for (let i = 0; i < sae.params.length; i++) sae.params[i] = (sae.params[i] as number) + 0.3 * normal();
    const x = Float32Array.from({ length: B * D }, () => Math.abs(normal()));
    const loss = (): number => {
      sae.forward(x, B);
      let se = 0;
      for (let i = 0; i < B * D; i++) se += ((sae.decoded[i] as number) - (x[i] as number)) ** 2;
      let l1 = 0;
      for (let i = 0; i < B * F; i++) l1 += Math.abs(sae.codes[i] as number);
      return se / (B * D) + (l1Coefficient * l1) / B;
    };
    const { mse, l1 } = sae.computeGradients(x, B);
    expect(mse + l1Coefficient * l1).toBeCloseTo(loss(), 6);
    const grads = Float64Array.from(sae.grads);
    const numeric = new Float64Array(sae.params.length);
    const h = 1e-2;
    for (let i = 0; i < sae.params.length; i++) {
      const p = sae.params[i] as number;
      sae.params[i] = p + h;
      const up = loss();
      sae.params[i] = p - h;
      const down = loss();
      sae.params[i] = p;
      numeric[i] = (up - down) / (2 * h);
    }
    // The decoder rows' gradients are projected orthogonal to the rows: project the numeric ones too.
    for (let f = 0; f < F; f++) {
      const o = F * D + f * D;
      let gw = 0;
      let ww = 0;
      for (let d = 0; d < D; d++) {
        gw += (numeric[o + d] as number) * (sae.params[o + d] as number);
        ww += (sae.params[o + d] as number) ** 2;
      }
      for (let d = 0; d < D; d++) numeric[o + d] = (numeric[o + d] as number) - (gw / ww) * (sae.params[o + d] as number);
    }
    const scale = Math.max(...numeric.map(Math.abs));
    expect(scale).toBeGreaterThan(0);
    let worst = 0;
    for (let i = 0; i < numeric.length; i++) worst = Math.max(worst, Math.abs((grads[i] as number) - (numeric[i] as number)));
    expect(worst / scale).toBeLessThan(2e-3);
  });

  it('trains on the loss the package defines: the step loss is SparseAutoencoderLoss of the batch', () => {
    const D = 16;
    const F = 24;
    const B = 32;
    const sae = new SparseAutoencoder(createJsMatrixKernels(), { inputDims: D, learnedFeatures: F, batchSize: B, l1Coefficient: 0.003, learningRate: 1e-3, seed: 6 });
    const data = new ToyData({ features: 20, dims: D, active: 3, decay: 0.95, seed: 6 });
    const x = data.sample(new Float32Array(B * D), B);
    const { mse, l1 } = sae.step(x, B);
    // step() changes the weights after its pass: its twin (same seed, same initial weights) redoes
    // that pass, for the batch the metric sees.
    const twin = new SparseAutoencoder(createJsMatrixKernels(), { inputDims: D, learnedFeatures: F, batchSize: B, l1Coefficient: 0.003, learningRate: 1e-3, seed: 6 });
    twin.forward(x, B);
    const batch = {
      learnedActivations: tensor(twin.codes.slice(), [B, F]),
      sourceActivations: tensor(x.slice(), [B, D]),
      decodedActivations: tensor(twin.decoded.slice(), [B, D]),
    };
    expect(mse + 0.003 * l1).toBeCloseTo(new SparseAutoencoderLoss({ l1Coefficient: 0.003 }).forward(batch).item(), 8);
    // ...and the step moved the weights.
    expect(sae.params.some((p, i) => p !== twin.params[i])).toBe(true);
    expect(sae.steps).toBe(1);
  });

  it('rejects bad options, naming the option and the value', () => {
    const k = createJsMatrixKernels();
    const base = { inputDims: 4, learnedFeatures: 4, batchSize: 2, l1Coefficient: 0.1, learningRate: 0.1, seed: 1 };
    expect(() => new SparseAutoencoder(k, { ...base, learnedFeatures: 0 })).toThrow(/options\.learnedFeatures must be a positive integer, got 0/);
    expect(() => new SparseAutoencoder(k, { ...base, l1Coefficient: -1 })).toThrow(/options\.l1Coefficient must be a positive finite number, got -1/);
    expect(() => new Trainer({ ...SMALL, targetMmcs: 2 })).toThrow(/targetMmcs must be in \(0, 1\], got 2/);
    expect(() => new Trainer({ ...SMALL, resampleAt: [0] })).toThrow(/resampleAt must be a list of positive integer steps/);
    expect(() => new Trainer({ ...SMALL, backend: 'cuda' as never })).toThrow(/options\.backend must be one of/);
    expect(() => new ToyData({ features: 4, dims: 4, active: 5, decay: 0.5, seed: 1 })).toThrow(/options\.active must be positive and at most/);
  });
});

describe('examples/train-sae: the data', () => {
  it('draws sparse non-negative combinations of unit features, each active with its probability', () => {
    const data = new ToyData({ features: 64, dims: 16, active: 5, decay: 0.97, seed: 9 });
    const { numFeatures: G, dims: D } = data;
    for (let g = 0; g < G; g++) {
      let norm = 0;
      for (let d = 0; d < D; d++) norm += (data.features[g * D + d] as number) ** 2;
      expect(Math.sqrt(norm)).toBeCloseTo(1, 5);
    }
    expect(data.probabilities.reduce((a, b) => a + b, 0)).toBeCloseTo(5, 10);
    expect(data.probabilities[1]! / data.probabilities[0]!).toBeCloseTo(0.97, 12);

    const rows = 20_000;
    const x = new Float32Array(rows * D);
    const c = new Float32Array(rows * G);
    data.sample(x, rows, c);
    // Each sample is the combination its coefficients say.
    for (let r = 0; r < 50; r++) {
      for (let d = 0; d < D; d++) {
        let s = 0;
        for (let g = 0; g < G; g++) s += (c[r * G + g] as number) * (data.features[g * D + d] as number);
        expect(x[r * D + d]).toBeCloseTo(s, 5);
      }
    }
    // Coefficients in [0, 1); each feature active with its probability (within 5 standard errors).
    expect(c.every((v) => v >= 0 && v < 1)).toBe(true);
    let active = 0;
    for (let g = 0; g < G; g++) {
      let n = 0;
      for (let r = 0; r < rows; r++) if ((c[r * G + g] as number) > 0) n++;
      active += n;
      const p = data.probabilities[g] as number;
      expect(Math.abs(n / rows - p), `feature ${g}`).toBeLessThan(5 * Math.sqrt((p * (1 - p)) / rows));
    }
    expect(active / rows).toBeGreaterThan(4.9);
    expect(active / rows).toBeLessThan(5.1);
  });

  it('repeats with the seed', () => {
    const a = new ToyData({ features: 8, dims: 4, active: 2, decay: 0.9, seed: 1 }).sample(new Float32Array(40), 10);
    const b = new ToyData({ features: 8, dims: 4, active: 2, decay: 0.9, seed: 1 }).sample(new Float32Array(40), 10);
    const c = new ToyData({ features: 8, dims: 4, active: 2, decay: 0.9, seed: 2 }).sample(new Float32Array(40), 10);
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(Array.from(a)).not.toEqual(Array.from(c));
  });

  it('draws resampling inputs in proportion to their weights, never a zero weight, never twice', () => {
    const weights = Float64Array.from([0, 1, 0, 3, 0, 0]);
    const random = seededRandom(11);
    const counts = [0, 0, 0, 0, 0, 0];
    for (let t = 0; t < 4000; t++) {
      const [first] = weightedSampleWithoutReplacement(weights, 1, random);
      counts[first as number]! += 1;
    }
    expect(counts[0]! + counts[2]! + counts[4]! + counts[5]!).toBe(0);
    expect(counts[3]! / 4000).toBeGreaterThan(0.72);
    expect(counts[3]! / 4000).toBeLessThan(0.78);
    const all = weightedSampleWithoutReplacement(weights, 5, random);
    expect(all.sort()).toEqual([1, 3]); // only two positive weights
  });

  it('has defaults that match the issue: 512 features in 256 dimensions, 5 active, MMCS target 0.95', () => {
    expect(DEFAULT_OPTIONS).toMatchObject({ groundTruthFeatures: 512, inputDims: 256, activePerSample: 5, targetMmcs: 0.95 });
    expect(DEFAULT_OPTIONS.resampleAt.length).toBeGreaterThan(0);
  });
});

describe('examples/train-sae: npm run example (main.ts)', () => {
  const main = fileURLToPath(new URL('../../examples/train-sae/main.ts', import.meta.url));
  const run = (...args: string[]) => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', main, ...args], { encoding: 'utf8', timeout: 60_000 });
    return { status: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  const small = ['--features', '128', '--dims', '64', '--learned', '256', '--batch', '128', '--lr', '3e-3', '--l1', '5e-3', '--window', '4096', '--resample-at', '64', '--resample-inputs', '2048'];

  it('exits 0 when MMCS reaches the target, 1 when the budget ends first', () => {
    const reached = run(...small);
    expect(reached.stderr).toBe('');
    expect(reached.status).toBe(0);
    expect(reached.stdout).toMatch(/^backend: /);
    expect(reached.stdout).toMatch(/\nreached MMCS 0\.95: final MMCS 0\.9[5-9]\d\d \(from 0\.[0-4]\d\d\d\) after \d+ steps/);

    const short = run(...small, '--max-steps', '32');
    expect(short.status).toBe(1);
    expect(short.stdout).toMatch(/\ndid not reach MMCS 0\.95: final MMCS .* after 32 steps/);
  }, 30_000);

  it('--help lists every flag the README documents for the example, with its default', () => {
    const readme = readFileSync(fileURLToPath(new URL('../../README.md', import.meta.url)), 'utf8');
    const table = readme.slice(readme.indexOf('Flags go after `--`'), readme.indexOf('## Example: a Node service'));
    const documented = [...table.matchAll(/^\| `(--[\w-]+)` \|\s*([^|]*?)\s*\|/gm)].map((m) => [m[1] as string, (m[2] as string).trim()] as const);
    expect(documented.map(([flag]) => flag)).toEqual(expect.arrayContaining(['--backend', '--gpujs-mode', '--seed']));
    const help = run('--help');
    expect(help.status).toBe(0);
    for (const [flag, fallback] of documented) {
      const line = help.stdout.split('\n').find((l) => l.trimStart().startsWith(`${flag} `));
      expect(line, flag).toBeDefined();
      if (fallback !== '') expect(line, flag).toContain(fallback);
    }
  }, 30_000);

  it('rejects a bad flag with a one-line error, the usage and exit code 2', () => {
    const bad = run('--lr', 'fast');
    expect(bad.status).toBe(2);
    expect(bad.stdout).toBe('');
    expect(bad.stderr.split('\n')[0]).toBe('train-sae: --lr must be a number, got "fast"');
    expect(bad.stderr).toContain('usage: npm run example -- [flags]');
    expect(bad.stderr).not.toMatch(/\n\s+at /); // no stack trace

    const backend = run('--backend', 'cuda', '--max-steps', '1');
    expect(backend.status).toBe(2);
    expect(backend.stderr.trim()).toBe("train-sae: options.backend must be one of 'auto', 'wasm', 'gpujs', 'js', got \"cuda\"");
  }, 30_000);
});
