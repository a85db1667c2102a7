/**
 * createMetricPool: one test per option rule with its message, the defaults, and the pool's life
 * cycle (close twice, use after close, close with work in flight).
 */
import { availableParallelism } from 'node:os';
import { describe, expect, it } from 'vitest';
import { from, lastValueFrom } from 'rxjs';
import {
  accumulateMetric,
  createMetricPool,
  DEFAULT_SHARD_ROWS,
  L1AbsoluteLoss,
  MetricPool,
  tensor,
  type MetricPoolOptions,
} from '../../src/index.js';
import { inThreadExecutor } from '../../src/pool/executor.js';

const create = (options: unknown): MetricPool => createMetricPool(options as MetricPoolOptions);

describe('option validation (no pool is started)', () => {
  describe.each(['workers', 'shardRows', 'maxInFlight'])('options.%s', (option) => {
    it.each([
      [0, '0'],
      [-1, '-1'],
      [1.5, '1.5'],
      [Number.NaN, 'NaN'],
      [Number.POSITIVE_INFINITY, 'Infinity'],
    ])('rejects %s with a RangeError', (value, shown) => {
      expect(() => create({ [option]: value })).toThrow(RangeError);
      expect(() => create({ [option]: value })).toThrow(`createMetricPool: options.${option} must be a positive integer, got ${shown}`);
    });

    it('rejects a numeric string with a TypeError', () => {
      expect(() => create({ [option]: '2' })).toThrow(TypeError);
      expect(() => create({ [option]: '2' })).toThrow(`createMetricPool: options.${option} must be a positive integer, got "2"`);
    });
  });

  describe.each(['maxQueuedBytes', 'closeTimeout'])('options.%s', (option) => {
    it.each([
      [0, '0'],
      [-1, '-1'],
      [Number.NaN, 'NaN'],
    ])('rejects %s with a RangeError', (value, shown) => {
      expect(() => create({ [option]: value })).toThrow(new RangeError(`createMetricPool: options.${option} must be a positive number, got ${shown}`));
    });

    it('rejects a numeric string with a TypeError', () => {
      expect(() => create({ [option]: '2' })).toThrow(new TypeError(`createMetricPool: options.${option} must be a positive number, got "2"`));
    });
  });

  it.each(['gpu', 'cpu', 'JS', ''])('options.backend %j is rejected with a RangeError', (backend) => {
    expect(() => create({ backend })).toThrow(RangeError);
    expect(() => create({ backend })).toThrow(
      `createMetricPool: options.backend must be one of 'auto', 'wasm', 'gpujs', 'js', got ${JSON.stringify(backend)}`,
    );
  });

  it.each(['cuda', 'GPU', 3])('options.gpujsMode %j is rejected with a RangeError', (gpujsMode) => {
    expect(() => create({ backend: 'gpujs', gpujsMode })).toThrow(
      new RangeError(
        `createMetricPool: options.gpujsMode must be one of 'gpu', 'headlessgl', 'webgl', 'webgl2', 'webgpu', 'cpu', 'webasm', got ${JSON.stringify(gpujsMode)}`,
      ),
    );
  });

  it('an unknown option is rejected with a TypeError listing the known ones', () => {
    expect(() => create({ threads: 2 })).toThrow(TypeError);
    expect(() => create({ threads: 2 })).toThrow(
      'createMetricPool: unknown option threads (known options: workers, shardRows, backend, gpujsMode, maxInFlight, maxQueuedBytes, closeTimeout, filename)',
    );
  });

  it.each([
    [42, '42'],
    [new URL('file:///tmp/worker.js'), 'a URL'],
    [null, 'null'],
  ])('options.filename %s (not a string) is rejected with a TypeError', (filename, shown) => {
    expect(() => create({ filename })).toThrow(TypeError);
    expect(() => create({ filename })).toThrow(`createMetricPool: options.filename must be a path, got ${shown}`);
  });

  it.each([
    [null, 'null'],
    ['workers=2', '"workers=2"'],
    [4, '4'],
    [true, 'true'],
  ])('options %j (not an object) are rejected with a TypeError', (options, shown) => {
    expect(() => create(options)).toThrow(TypeError);
    expect(() => create(options)).toThrow(`createMetricPool: options must be an object, got ${shown}`);
  });
});

describe('defaults and the pool life cycle', () => {
  const batch = { learnedActivations: tensor([[1, -2, 0], [0.5, 0, 3], [-1, 1, 1]]) };
  const parts = Object.values(new L1AbsoluteLoss().definition.parts);

  it('defaults: workers = availableParallelism(), maxInFlight = 2 * workers, shardRows 1024, backend auto (wasm here: no GPU)', async () => {
    const pool = createMetricPool();
    try {
      expect(pool).toBeInstanceOf(MetricPool);
      expect(pool.workers).toBe(availableParallelism());
      expect(pool.maxInFlight).toBe(2 * availableParallelism());
      expect(pool.shardRows).toBe(1024);
      expect(DEFAULT_SHARD_ROWS).toBe(1024);
      expect(pool.backend).toBe('wasm');
      expect(pool.threads).toBe(availableParallelism());
      expect(pool.inFlight).toBe(0);
      expect(pool.peakInFlight).toBe(0);
      expect(pool.maxQueuedBytes).toBe(2 ** 30);
      expect(pool.closeTimeout).toBe(10_000);
    } finally {
      await pool.close();
    }
  }, 20_000);

  it("explicit options are kept; maxInFlight follows workers; backend 'auto' runs 'wasm' here", async () => {
    const pool = createMetricPool({ workers: 1, shardRows: 2, backend: 'auto' });
    try {
      expect(pool.workers).toBe(1);
      expect(pool.maxInFlight).toBe(2);
      expect(pool.shardRows).toBe(2);
      expect(pool.backend).toBe('wasm');
      expect(pool.threads).toBe(1);
      // It works, with the in-thread executor's bits at the same shardRows.
      const expected = inThreadExecutor(2).evaluate(parts, batch, 3, { batchIndex: 0 });
      expect(await pool.evaluate(parts, batch, 3, { batchIndex: 0 })).toEqual(expected);
    } finally {
      await pool.close();
    }
  }, 20_000);

  it("backend 'js' and an explicit maxInFlight are accepted", async () => {
    const pool = createMetricPool({ workers: 1, backend: 'js', maxInFlight: 5 });
    try {
      expect(pool.backend).toBe('js');
      expect(pool.maxInFlight).toBe(5);
    } finally {
      await pool.close();
    }
  }, 20_000);

  it('close() twice (in turn or at once) is fine; evaluate after close rejects with a clear message', async () => {
    const pool = createMetricPool({ workers: 1 });
    await pool.close();
    await expect(pool.close()).resolves.toBeUndefined();
    await expect(Promise.all([pool.close(), pool.close()])).resolves.toEqual([undefined, undefined]);
    await expect(pool.evaluate(parts, batch, 3, { batchIndex: 0 })).rejects.toThrow('MetricPool: the pool is closed');
    expect(pool.inFlight).toBe(0);
    // Through an operator, the observable errors with the same message.
    await expect(lastValueFrom(from([batch]).pipe(accumulateMetric(new L1AbsoluteLoss(), { pool })))).rejects.toThrow(
      'MetricPool: the pool is closed',
    );
  }, 20_000);

  it('close() rejects batches still waiting for a slot with the closed message', async () => {
    const pool = createMetricPool({ workers: 1, maxInFlight: 1 });
    const first = pool.evaluate(parts, batch, 3, { batchIndex: 0 });
    first.catch(() => undefined);
    const waiting = pool.evaluate(parts, batch, 3, { batchIndex: 1 });
    const closed = pool.close();
    await expect(waiting).rejects.toThrow('MetricPool: the pool is closed');
    await closed;
  }, 20_000);

  it('close() waits for a batch already dispatched (evaluate called before close) and it succeeds', async () => {
    const pool = createMetricPool({ workers: 1, shardRows: 2 });
    const expected = inThreadExecutor(2).evaluate(parts, batch, 3, { batchIndex: 0 });
    const dispatched = pool.evaluate(parts, batch, 3, { batchIndex: 0 });
    expect(pool.inFlight).toBe(1); // it holds a slot
    const closed = pool.close();
    await expect(dispatched).resolves.toEqual(expected);
    await closed;
  }, 20_000);
});

describe('explicit null options', () => {
  it.each(['workers', 'shardRows', 'maxInFlight'])('%s: null is checked, not taken as the default', (option) => {
    expect(() => createMetricPool({ [option]: null } as never)).toThrow(
      new TypeError(`createMetricPool: options.${option} must be a positive integer, got null`),
    );
  });
});
