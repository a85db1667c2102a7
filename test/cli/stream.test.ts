/**
 * The command in-process (`run` from src/cli/run.ts): memory stays bounded over a file of many
 * batches (counted at the pool: allocations outstanding, whatever the file size), the progress bar
 * on a terminal, and none in --json mode.
 */
import { readdirSync, readFileSync, truncateSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import {
  createMetricPool,
  FeatureDensityMetric,
  L0NormMetric,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  tensor,
  type MetricPool,
  type MetricPoolOptions,
  type Tensor,
} from '../../src/index.js';
import { run } from '../../src/cli/run.js';
import { denseActivations, npyBytes, safetensorsBytes, scratchDir, sparseActivations, toFloat16, write } from './files.js';

const tmp = scratchDir();
afterAll(() => tmp.remove());

const N = 3000;
const F = 16;
/**
 * Batches of 50 rows: each leaf of the grid (1024, 1024 and 952 rows; see src/cli/merge-tree.ts)
 * is read in pieces of 50 rows, the last piece of each shorter (24, 24 and 2 rows).
 */
const PIECES_OF_50 = 21 + 21 + 20;
const SHORT_PIECES_OF_50 = 3;
const D = 8;
const learned = sparseActivations(N, F, 51);
const source = denseActivations(N * D, 52);
const decoded = denseActivations(N * D, 53);
const npy = write(tmp.path('many.npy'), npyBytes(learned, [N, F]));
const st = write(
  tmp.path('many.safetensors'),
  safetensorsBytes({
    learned: { dtype: 'F16', shape: [N, F], data: toFloat16(learned) },
    source: { dtype: 'F32', shape: [N, D], data: source },
    decoded: { dtype: 'F32', shape: [N, D], data: decoded },
  }),
);

/** A pool whose allocate / release are counted: tensors outstanding now, at most, and allocations in all. */
interface Counted {
  pool: MetricPool;
  allocations: number;
  outstanding: number;
  peak: number;
  peakBytes: number;
  bytes: number;
}

function countingPool(extra: Partial<MetricPoolOptions>, into: Counted[]): (o: MetricPoolOptions) => MetricPool {
  return (options) => {
    const pool = createMetricPool({ ...options, ...extra });
    const c: Counted = { pool, allocations: 0, outstanding: 0, peak: 0, peakBytes: 0, bytes: 0 };
    const held = new Set<Tensor<'float32'>>();
    const allocate = pool.allocate.bind(pool);
    const release = pool.release.bind(pool);
    pool.allocate = (shape) => {
      const t = allocate(shape);
      held.add(t);
      c.allocations++;
      c.outstanding++;
      c.bytes += t.data.byteLength;
      c.peak = Math.max(c.peak, c.outstanding);
      c.peakBytes = Math.max(c.peakBytes, c.bytes);
      return t;
    };
    pool.release = (t) => {
      if (held.delete(t)) {
        c.outstanding--;
        c.bytes -= t.data.byteLength;
      }
      release(t);
    };
    into.push(c);
    return pool;
  };
}

function sink(isTTY = false): { writes: string[]; stream: { write(s: string): boolean; isTTY: boolean; columns: number } } {
  const writes: string[] = [];
  return { writes, stream: { write: (s: string) => writes.push(s) > 0, isTTY, columns: 100 } };
}

describe('memory stays bounded', () => {
  it('over a file of 62 batches: at most maxInFlight + 1 batches of tensors from the pool (+ a leaf\'s shorter last piece), all released at the end', async () => {
    const cases = [
      { file: npy, args: [] as string[], fields: 1, backend: 'wasm', maxInFlight: 2 },
      { file: st, args: ['--tensor', 'learned', '--source', 'source', '--decoded', 'decoded'], fields: 3, backend: 'js', maxInFlight: 1 },
    ];
    for (const c of cases) {
      const counted: Counted[] = [];
      const out = sink();
      const err = sink();
      const code = await run([c.file, ...c.args, '--json', '--batch-rows', '50', '--workers', '1', '--backend', c.backend], {
        stdout: out.stream,
        stderr: err.stream,
        createPool: countingPool({ maxInFlight: c.maxInFlight }, counted),
      });
      expect(err.writes).toEqual([]);
      expect(code).toBe(0);
      const result = JSON.parse(out.writes.join('')) as { batches: number; backend: string; metrics: Record<string, unknown> };
      expect(result.batches).toBe(PIECES_OF_50);
      expect(result.backend).toBe(c.backend);
      const k = counted[0] as Counted;
      // Without reuse or release, every batch would take new tensors: 62 x fields. Full pieces
      // reuse maxInFlight + 1 tensors; a leaf's shorter last piece takes its own (one at a time:
      // 21 pieces a leaf).
      expect(k.peak).toBeLessThanOrEqual((c.maxInFlight + 2) * c.fields);
      expect(k.allocations).toBeLessThanOrEqual((c.maxInFlight + 1 + SHORT_PIECES_OF_50) * c.fields);
      expect(k.peakBytes).toBeLessThanOrEqual(((c.maxInFlight + 1) * 50 + 24) * 4 * (F + (c.fields > 1 ? 2 * D : 0)));
      expect(k.outstanding).toBe(0);
      // And the numbers are right.
      const batch = {
        learnedActivations: tensor(learned, [N, F]),
        sourceActivations: tensor(source, [N, D]),
        decodedActivations: tensor(decoded, [N, D]),
      };
      const l1 = new L1AbsoluteLoss();
      l1.update(batch);
      expect(result.metrics.l1).toBeCloseTo(l1.compute().item(), 10);
      if (c.fields === 3) {
        const l2 = new L2ReconstructionLoss();
        l2.update(batch);
        expect(result.metrics.l2).toBeCloseTo(l2.compute().item(), 10);
      }
    }
  }, 30_000);

  it('when batches finish out of order: later batches wait for the first, and no more are read meanwhile', async () => {
    const counted: Counted[] = [];
    const out = sink();
    const filename = fileURLToPath(new URL('./slow-first-batch-worker.ts', import.meta.url));
    const started = performance.now();
    const code = await run([npy, '--json', '--batch-rows', '50', '--workers', '2', '--backend', 'js'], {
      stdout: out.stream,
      stderr: sink().stream,
      createPool: countingPool({ maxInFlight: 2, filename }, counted),
    });
    expect(code).toBe(0);
    // Batch 0 was held back 400 ms, while the pool's slots freed up again and again.
    expect(performance.now() - started).toBeGreaterThan(400);
    const k = counted[0] as Counted;
    expect(JSON.parse(out.writes.join(''))).toMatchObject({ batches: PIECES_OF_50 });
    expect(k.peak).toBeLessThanOrEqual(2 + 2);
    expect(k.outstanding).toBe(0);
  }, 30_000);

  it('gives a shorter last batch of a file its own tensors and releases them', async () => {
    const counted: Counted[] = [];
    const out = sink();
    const code = await run([npy, npy, '--json', '--batch-rows', '700', '--workers', '1', '--backend', 'wasm'], {
      stdout: out.stream,
      stderr: sink().stream,
      createPool: countingPool({ maxInFlight: 1 }, counted),
    });
    expect(code).toBe(0);
    const result = JSON.parse(out.writes.join('')) as { batches: number; vectors: number; metrics: { l0: number } };
    // 3000 rows = leaves of 1024, 1024 and 952 rows, each read as 700 rows and the rest, twice.
    expect(result.batches).toBe(12);
    expect(result.vectors).toBe(2 * N);
    const k = counted[0] as Counted;
    expect(k.outstanding).toBe(0);
    // Full batches share their tensors (at most 2: one in flight, one being read); each leaf's
    // shorter last piece (324, 324, 252 rows) takes one of its own.
    expect(k.allocations).toBeGreaterThanOrEqual(1 + 6);
    expect(k.allocations).toBeLessThanOrEqual(2 + 6);
    const l0 = new L0NormMetric();
    l0.update({ learnedActivations: tensor(learned, [N, F]) });
    expect(result.metrics.l0).toBeCloseTo(l0.compute().item(), 12);
  }, 30_000);
});

describe('the progress bar', () => {
  it('is drawn on a terminal stderr, at most every 100 ms, then cleared; the report still goes to stdout', async () => {
    const out = sink();
    const err = sink(true);
    let clock = 0;
    let calls = 0;
    const code = await run([npy, '--batch-rows', '50', '--workers', '1', '--metrics', 'density'], {
      stdout: out.stream,
      stderr: err.stream,
      now: () => {
        calls++;
        return (clock += 30);
      },
    });
    expect(code).toBe(0);
    const draws = err.writes.slice(0, -1);
    expect(err.writes[err.writes.length - 1]).toBe('\r\x1b[K');
    expect(draws.length).toBeGreaterThan(0);
    // One clock reading per batch after the start, 30 ms apart: a redraw every 4th at most.
    expect(calls).toBe(PIECES_OF_50 + 1);
    expect(draws.length).toBeLessThanOrEqual(Math.ceil(PIECES_OF_50 / 4) + 1);
    let before = 0;
    for (const line of draws) {
      // 30 ms a batch: never 2 s, so no time left is shown; the file is.
      const m = /^\r\[[#-]+\] +(\d+)% ([\d,]+)\/3,000 vectors {2}(\d+\.\d\d) GB\/s {2}(\d+:\d\d) elapsed {2}\S*many\.npy\x1b\[K$/.exec(line);
      expect(m, JSON.stringify(line)).not.toBeNull();
      const vectors = Number((m as RegExpExecArray)[2]?.replace(/,/g, ''));
      expect(vectors).toBeGreaterThan(before);
      expect(Number((m as RegExpExecArray)[1])).toBe(Math.floor((100 * vectors) / N));
      before = vectors;
    }
    const report = out.writes.join('');
    expect(report).toMatch(/^\S+many\.npy: 3,000 vectors, 16 features \(F32\)/);
    expect(report).not.toContain('\r');
    const density = new FeatureDensityMetric({ numLearnedFeatures: F });
    density.update({ learnedActivations: tensor(learned, [N, F]) });
    const d = Array.from(density.compute().data);
    const mean = d.reduce((a, b) => a + b, 0) / F;
    const cells = (report.split('\n').find((l) => l.startsWith('density')) as string).split(/\s{2,}/);
    expect(Number((cells[1] as string).split(',')[0])).toBeCloseTo(mean, 5);
  }, 30_000);

  it('is not drawn in --json mode, even on a terminal', async () => {
    const out = sink();
    const err = sink(true);
    const code = await run([npy, '--json', '--batch-rows', '100', '--workers', '1'], { stdout: out.stream, stderr: err.stream });
    expect(code).toBe(0);
    expect(err.writes).toEqual([]);
    expect(JSON.parse(out.writes.join(''))).toMatchObject({ vectors: N });
  }, 30_000);
});

describe('an interrupted run (Ctrl-C)', () => {
  /** A pool that aborts `controller` when its `at`-th batch is handed to it. */
  function interruptingPool(controller: AbortController, at: number): (o: MetricPoolOptions) => MetricPool {
    return (options) => {
      const pool = createMetricPool(options);
      const evaluate = pool.evaluate.bind(pool);
      let calls = 0;
      pool.evaluate = (...args) => {
        if (++calls === at) controller.abort();
        return evaluate(...args);
      };
      return pool;
    };
  }

  it('clears the bar, prints the results over the batches read so far, says so, and exits 130', async () => {
    const controller = new AbortController();
    const out = sink();
    const err = sink(true);
    const histogram = tmp.path('interrupted.svg');
    const code = await run([npy, '--batch-rows', '50', '--workers', '1', '--metrics', 'l1,l0,density', '--histogram', histogram], {
      stdout: out.stream,
      stderr: err.stream,
      signal: controller.signal,
      createPool: interruptingPool(controller, 3),
    });
    expect(code).toBe(130);
    // The three batches handed to the pool were folded in; none after.
    const last = err.writes[err.writes.length - 1] as string;
    expect(last).toBe('sae-metrics: interrupted: the results are over the first 150 of 3,000 vectors\n');
    expect(err.writes[err.writes.length - 2]).toBe('\r\x1b[K');
    const report = out.writes.join('');
    expect(report).toMatch(/^\S+many\.npy: 150 of 3,000 vectors \(interrupted\), 16 features/);
    expect(report).toContain(`histogram written to ${histogram}`);
    const l1 = new L1AbsoluteLoss();
    l1.update({ learnedActivations: tensor(learned.subarray(0, 150 * F), [150, F]) });
    const cells = (report.split('\n').find((l) => l.startsWith('l1 ')) as string).split(/\s{2,}/);
    expect(Number(cells[1])).toBeCloseTo(l1.compute().item(), 4);
  }, 30_000);

  it('in --json mode: the values over the vectors read, with interrupted: true', async () => {
    const controller = new AbortController();
    const out = sink();
    const err = sink();
    const code = await run([npy, '--json', '--batch-rows', '100', '--workers', '2', '--metrics', 'l0,density'], {
      stdout: out.stream,
      stderr: err.stream,
      signal: controller.signal,
      createPool: interruptingPool(controller, 2),
    });
    expect(code).toBe(130);
    const result = JSON.parse(out.writes.join('')) as { vectors: number; totalVectors: number; interrupted: boolean; metrics: { density: number[] } };
    expect(result).toMatchObject({ vectors: 200, totalVectors: N, interrupted: true });
    const density = new FeatureDensityMetric({ numLearnedFeatures: F });
    density.update({ learnedActivations: tensor(learned.subarray(0, 200 * F), [200, F]) });
    expect(result.metrics.density).toEqual(Array.from(density.compute().data));
    expect(err.writes).toEqual(['sae-metrics: interrupted: the results are over the first 200 of 3,000 vectors\n']);
  }, 30_000);

  it('before any batch: says nothing was computed, prints nothing on stdout, leaves no output file', async () => {
    const controller = new AbortController();
    controller.abort();
    const out = sink();
    const err = sink();
    const dir = scratchDir('sae-metrics-interrupt-');
    try {
      const code = await run([npy, '--histogram', dir.path('h.svg')], { stdout: out.stream, stderr: err.stream, signal: controller.signal });
      expect(code).toBe(130);
      expect(out.writes).toEqual([]);
      expect(err.writes).toEqual(['sae-metrics: interrupted: nothing was computed\n']);
      expect(readdirSync(dir.dir)).toEqual([]);
    } finally {
      dir.remove();
    }
  }, 30_000);
});

describe('output files', () => {
  it('are checked before any input is read: a bad --histogram path fails before the pool starts', async () => {
    let pools = 0;
    const err = sink();
    const code = await run([npy, '--histogram', tmp.path('missing-dir/h.svg')], {
      stdout: sink().stream,
      stderr: err.stream,
      createPool: (o) => {
        pools++;
        return createMetricPool(o);
      },
    });
    expect(code).toBe(1);
    expect(pools).toBe(0);
    expect(err.writes).toEqual([`sae-metrics: ${tmp.path('missing-dir/h.svg')}: cannot write the histogram (no such directory)\n`]);
  });

  it('never cost the results: when the histogram cannot be written at the end, the report is printed, then the error', async () => {
    const dir = scratchDir('sae-metrics-vanishing-');
    const out = sink();
    const err = sink();
    // The directory is there when the command starts, and gone when the histogram is written.
    const code = await run([npy, '--json', '--workers', '1', '--histogram', dir.path('h.svg')], {
      stdout: out.stream,
      stderr: err.stream,
      createPool: (o) => {
        dir.remove();
        return createMetricPool(o);
      },
    });
    expect(code).toBe(1);
    expect(JSON.parse(out.writes.join(''))).toMatchObject({ vectors: N, interrupted: false });
    expect(err.writes).toEqual([`sae-metrics: ${dir.path('h.svg')}: cannot write the histogram (no such directory)\n`]);
  }, 30_000);

  it('leave an existing file as it was when the run fails, and replace it when it succeeds', async () => {
    const path = tmp.path('kept.svg');
    writeFileSync(path, 'old');
    const bad = write(tmp.path('bad-late.npy'), npyBytes(learned, [N, F]));
    // The file shrinks after its header is read: reading fails mid-way.
    const code = await run([bad, '--histogram', path, '--batch-rows', '100'], {
      stdout: sink().stream,
      stderr: sink().stream,
      createPool: (o) => {
        truncateSync(bad, 500);
        return createMetricPool(o);
      },
    });
    expect(code).toBe(1);
    expect(readFileSync(path, 'utf8')).toBe('old');
    expect(readdirSync(tmp.dir).filter((n) => n.endsWith('.tmp'))).toEqual([]);
    expect(await run([npy, '--histogram', path], { stdout: sink().stream, stderr: sink().stream })).toBe(0);
    expect(readFileSync(path, 'utf8')).toMatch(/^<\?xml/);
  }, 30_000);
});
