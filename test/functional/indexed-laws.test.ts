/**
 * The monoid laws of TopActivations and DeadFeaturesOverWindow (fast-check): identity,
 * associativity of the shift-merge (of parts of one stream, and of states numbered from any
 * origins: both sides refuse or agree), homomorphism (`update(x ++ y)` equals
 * `merge(update(x), update(y))`, a merge putting the receiver's vectors first, `y`'s declared
 * first vectors absolute, as in the one stream), the merge of a batch's shard partials (each carrying its
 * first vector, `start`) in any tree, and purity. States compared by their encoded bits and their
 * results. Values come from a small set, so ties are everywhere.
 */
import { describe, it, expect } from 'vitest';
import fc from 'fast-check';
import { tensor, encodeState, StateMergeError } from '../../src/index.js';
import { topActivations, deadFeaturesOverWindow, type Batch, type MetricDefinition, type MetricState } from '../../src/functional/index.js';

const RUNS = 60;
const VALUES = fc.constantFrom(0, 0, 0, -0, -1, 0.5, 1, 1, 2, NaN, Infinity);

interface Shape {
  readonly features: number;
  readonly components: number | undefined;
}

interface RawBatch {
  readonly rows: number;
  readonly data: number[];
  /** Vectors skipped before this batch (declared with firstVectorIndex), or undefined. */
  readonly gap: number | undefined;
}

const shapeArb: fc.Arbitrary<Shape> = fc.record({ features: fc.integer({ min: 1, max: 4 }), components: fc.option(fc.integer({ min: 1, max: 3 }), { nil: undefined }) });

function batchArb(shape: Shape): fc.Arbitrary<RawBatch> {
  const width = (shape.components ?? 1) * shape.features;
  return fc.integer({ min: 1, max: 5 }).chain((rows) =>
    fc.record({
      rows: fc.constant(rows),
      data: fc.array(VALUES, { minLength: rows * width, maxLength: rows * width }),
      gap: fc.option(fc.integer({ min: 0, max: 6 }), { nil: undefined, freq: 2 }),
    }),
  );
}

const streamArb = (shape: Shape) => fc.array(batchArb(shape), { minLength: 0, maxLength: 4 });

/** The batches of a stream whose vectors start at `origin` (gaps as absolute firstVectorIndex). */
function batchesOf(shape: Shape, stream: readonly RawBatch[], origin = 0): Batch[] {
  let next = origin;
  return stream.map((b) => {
    const dims = shape.components === undefined ? [b.rows, shape.features] : [b.rows, shape.components, shape.features];
    const t = tensor(Float32Array.from(b.data), dims);
    const first = b.gap === undefined ? undefined : next + b.gap;
    next = (first ?? next) + b.rows;
    return first === undefined ? { learnedActivations: t } : { learnedActivations: t, firstVectorIndex: first };
  });
}

function vectorsOf(stream: readonly RawBatch[]): number {
  return stream.reduce((n, b) => n + (b.gap ?? 0) + b.rows, 0);
}

type AnyDef = MetricDefinition<MetricState<object>, unknown>;

function defsOf(shape: Shape): { name: string; def: AnyDef }[] {
  const o = { numLearnedFeatures: shape.features, ...(shape.components === undefined ? {} : { numComponents: shape.components }) };
  return [
    { name: 'TopActivations', def: topActivations({ ...o, k: 2 }) as unknown as AnyDef },
    { name: 'DeadFeaturesOverWindow', def: deadFeaturesOverWindow({ ...o, windowVectors: 3 }) as unknown as AnyDef },
  ];
}

function run(def: AnyDef, batches: readonly Batch[]): MetricState<object> {
  return batches.reduce((s, b) => def.update(s, b), def.init());
}

function expectSame(def: AnyDef, a: MetricState<object>, b: MetricState<object>, what: string): void {
  expect(encodeState(a), `${what}: state bits`).toBe(encodeState(b));
  expect(JSON.stringify(def.compute(a), replacer), `${what}: result`).toBe(JSON.stringify(def.compute(b), replacer));
}

/** Results as text with NaN, Infinity and -0 told apart. */
function replacer(_key: string, value: unknown): unknown {
  if (typeof value === 'number') return Object.is(value, -0) ? '-0' : Number.isFinite(value) ? value : String(value);
  if (ArrayBuffer.isView(value)) return Array.from(value as Float64Array).map((v) => (Object.is(v, -0) ? '-0' : Number.isFinite(v) ? v : String(v)));
  return value;
}

describe('indexed metrics: monoid laws', () => {
  it('identity: merge(init(), s) and merge(s, init()) equal s', () => {
    fc.assert(
      fc.property(shapeArb.chain((shape) => fc.tuple(fc.constant(shape), streamArb(shape))), ([shape, stream]) => {
        for (const { name, def } of defsOf(shape)) {
          const s = run(def, batchesOf(shape, stream));
          expectSame(def, def.merge(def.init(), s), s, `${name} merge(init, s)`);
          expectSame(def, def.merge(s, def.init()), s, `${name} merge(s, init)`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it('associativity of the shift-merge: merge(merge(a, b), c) equals merge(a, merge(b, c))', () => {
    fc.assert(
      fc.property(
        shapeArb.chain((shape) => fc.tuple(fc.constant(shape), streamArb(shape), streamArb(shape), streamArb(shape))),
        ([shape, x, y, z]) => {
          for (const { name, def } of defsOf(shape)) {
            const origins = [0, vectorsOf(x), vectorsOf(x) + vectorsOf(y)];
            const [a, b, c] = [x, y, z].map((s, i) => run(def, batchesOf(shape, s, origins[i]))) as [MetricState<object>, MetricState<object>, MetricState<object>];
            expectSame(def, def.merge(def.merge(a, b), c), def.merge(a, def.merge(b, c)), `${name} associativity`);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('associativity whatever the origins: both sides refuse (StateMergeError, arguments untouched) or agree', () => {
    fc.assert(
      fc.property(
        shapeArb.chain((shape) =>
          fc.tuple(fc.constant(shape), streamArb(shape), streamArb(shape), streamArb(shape), fc.integer({ min: 0, max: 12 }), fc.integer({ min: 0, max: 12 })),
        ),
        ([shape, x, y, z, ob, oc]) => {
          for (const { name, def } of defsOf(shape)) {
            const states = [run(def, batchesOf(shape, x)), run(def, batchesOf(shape, y, ob)), run(def, batchesOf(shape, z, oc))];
            const [a, b, c] = states as [MetricState<object>, MetricState<object>, MetricState<object>];
            const bits = states.map((s) => encodeState(s));
            const attempt = (f: () => MetricState<object>): MetricState<object> | StateMergeError => {
              try {
                return f();
              } catch (error) {
                expect(error, `${name}: a refusal`).toBeInstanceOf(StateMergeError);
                return error as StateMergeError;
              }
            };
            const left = attempt(() => def.merge(def.merge(a, b), c));
            const right = attempt(() => def.merge(a, def.merge(b, c)));
            expect(left instanceof StateMergeError, `${name}: one side refused`).toBe(right instanceof StateMergeError);
            if (!(left instanceof StateMergeError) && !(right instanceof StateMergeError)) expectSame(def, left, right, `${name} associativity`);
            expect(states.map((s) => encodeState(s)), `${name}: arguments untouched`).toEqual(bits);
          }
        },
      ),
      { numRuns: RUNS * 2 },
    );
  });

  it('homomorphism: update(x ++ y) equals merge(update(x), update(y)), y numbered after x', () => {
    fc.assert(
      fc.property(shapeArb.chain((shape) => fc.tuple(fc.constant(shape), streamArb(shape), streamArb(shape))), ([shape, x, y]) => {
        for (const { name, def } of defsOf(shape)) {
          const whole = run(def, [...batchesOf(shape, x), ...batchesOf(shape, y, vectorsOf(x))]);
          const merged = def.merge(run(def, batchesOf(shape, x)), run(def, batchesOf(shape, y, vectorsOf(x))));
          expectSame(def, whole, merged, `${name} homomorphism`);
        }
      }),
      { numRuns: RUNS },
    );
  });

  it("a batch's shard partials (each with its first vector) merge to the same state in any tree and cut", () => {
    fc.assert(
      fc.property(
        shapeArb.chain((shape) =>
          fc.tuple(fc.constant(shape), streamArb(shape), batchArb(shape), fc.array(fc.integer({ min: 1, max: 3 }), { minLength: 1, maxLength: 5 }), fc.integer({ min: 0, max: 9 })),
        ),
        ([shape, before, raw, cuts, gap]) => {
          for (const { name, def } of defsOf(shape)) {
            const state = run(def, batchesOf(shape, before));
            const [batch] = batchesOf(shape, [{ ...raw, gap }], vectorsOf(before)) as [Batch];
            const rows = raw.rows;
            const ranges: { start: number; end: number }[] = [];
            let at = 0;
            for (const n of cuts) {
              if (at >= rows) break;
              ranges.push({ start: at, end: Math.min(rows, at + n) });
              at = Math.min(rows, at + n);
            }
            if (at < rows) ranges.push({ start: at, end: rows });
            const partials = ranges.map((r) => def.partials(batch, r));
            const key = Object.keys(def.parts)[0] as string;
            const part = def.parts[key] as { merge(a: unknown, b: unknown): unknown };
            const left = partials.map((p) => p[key]).reduce((a, b) => part.merge(a, b));
            const right = partials.map((p) => p[key]).reduceRight((b, a) => part.merge(a, b));
            const viaLeft = def.fold(state, { [key]: left });
            const viaRight = def.fold(state, { [key]: right });
            const whole = def.update(state, batch);
            expectSame(def, viaLeft, whole, `${name} left tree`);
            expectSame(def, viaRight, whole, `${name} right tree`);
          }
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('purity: update, merge and compute leave their arguments as they were', () => {
    fc.assert(
      fc.property(shapeArb.chain((shape) => fc.tuple(fc.constant(shape), streamArb(shape), streamArb(shape))), ([shape, x, y]) => {
        for (const { def } of defsOf(shape)) {
          const a = run(def, batchesOf(shape, x));
          const b = run(def, batchesOf(shape, y, vectorsOf(x)));
          const [ea, eb] = [encodeState(a), encodeState(b)];
          def.merge(a, b);
          def.compute(a);
          for (const batch of batchesOf(shape, y, vectorsOf(x))) def.update(a, batch);
          expect(encodeState(a)).toBe(ea);
          expect(encodeState(b)).toBe(eb);
        }
      }),
      { numRuns: RUNS },
    );
  });
});
