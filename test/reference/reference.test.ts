/**
 * Self-test of the float64 reference implementations. Every expected value below is a literal
 * written out by hand (from the Python library's docstrings/tests, or derived by hand), never
 * computed by the reference itself.
 */
import { describe, it, expect } from 'vitest';
import {
  type RefArray,
  fromNested,
  toNested,
  squeezeIfScalar,
  refL1AbsoluteLoss,
  refL2ReconstructionLoss,
  refSparseAutoencoderLoss,
  refL0Norm,
  refNeuronFiredCount,
  refFeatureDensity,
  refNeuronActivity,
  refCapacities,
  refCapacityMetric,
  refReconstructionScore,
  refCalculateAbsSum,
  refCalculateMse,
  refClasswiseWithMean,
} from './index.js';

/** Literal RefArray constructor (keeps the expected values visibly hand-written). */
function arr(shape: number[], data: number[]): RefArray {
  return { shape, data };
}

/** Assert exact shape and values within `tol` (NaN must match NaN). */
function expectRef(actual: RefArray, shape: number[], data: number[], tol = 1e-12): void {
  expect(actual.shape).toEqual(shape);
  expect(actual.data.length).toBe(data.length);
  for (let i = 0; i < data.length; i++) {
    const a = actual.data[i];
    const e = data[i];
    if (a === undefined || e === undefined) throw new Error('length mismatch');
    if (Number.isNaN(e)) {
      expect(Number.isNaN(a), `element ${i}: expected NaN, got ${a}`).toBe(true);
    } else {
      expect(Math.abs(a - e), `element ${i}: expected ${e}, got ${a}`).toBeLessThanOrEqual(tol);
    }
  }
}

function full(shape: number[], value: number): RefArray {
  let n = 1;
  for (const d of shape) n *= d;
  const data: number[] = [];
  for (let i = 0; i < n; i++) data.push(value);
  return { shape, data };
}

describe('helpers', () => {
  it('fromNested / toNested', () => {
    expect(fromNested(3)).toEqual(arr([], [3]));
    expect(fromNested([1, 2])).toEqual(arr([2], [1, 2]));
    expect(fromNested([[[1, 0, 1]], [[0, 1, 0]]])).toEqual(arr([2, 1, 3], [1, 0, 1, 0, 1, 0]));
    expect(fromNested([])).toEqual(arr([0], []));
    expect(toNested(arr([], [7]))).toBe(7);
    expect(toNested(arr([2, 1], [2, 1]))).toEqual([[2], [1]]);
    expect(toNested(arr([2, 3], [1, 2, 3, 4, 5, 6]))).toEqual([
      [1, 2, 3],
      [4, 5, 6],
    ]);
    expect(() => fromNested([[1, 2], [3]])).toThrow();
  });

  it('squeezeIfScalar', () => {
    expect(squeezeIfScalar(arr([1, 1], [5]))).toEqual(arr([], [5]));
    expect(squeezeIfScalar(arr([1], [5]))).toEqual(arr([], [5]));
    expect(squeezeIfScalar(arr([], [5]))).toEqual(arr([], [5]));
    expect(squeezeIfScalar(arr([1, 2], [5, 6]))).toEqual(arr([1, 2], [5, 6]));
  });

  it('rejects invalid input', () => {
    expect(() => refL1AbsoluteLoss([arr([2, 3], [1, 2, 3])], { keepBatchDim: false })).toThrow();
    expect(() =>
      refL1AbsoluteLoss([arr([1, 3], [1, 2, 3]), arr([1, 1, 3], [1, 2, 3])], {
        keepBatchDim: false,
      }),
    ).toThrow();
    expect(() =>
      refL0Norm([arr([1, 3], [1, 2, 3]), arr([1, 2], [1, 2])]),
    ).toThrow();
    expect(() => refL0Norm([arr([3], [1, 2, 3])])).toThrow();
  });
});

describe('static helpers', () => {
  it('calculateAbsSum', () => {
    expectRef(refCalculateAbsSum(fromNested([[[1, 0, 1]], [[0, -1, 0]]])), [2, 1], [2, 1]);
    expectRef(refCalculateAbsSum(fromNested([[1, -2], [0, 0.5]])), [2], [3, 0.5]);
  });

  it('calculateMse', () => {
    expectRef(
      refCalculateMse(fromNested([[[2, 0]], [[0, 0]]]), fromNested([[[4, 2]], [[2, 0]]])),
      [2, 1],
      [4, 2],
    );
    expectRef(refCalculateMse(fromNested([[1, 1, 1]]), fromNested([[0, 0, 4]])), [1], [11 / 3]);
  });
});

describe('L1AbsoluteLoss', () => {
  it('docstring example -> 1.5', () => {
    const r = refL1AbsoluteLoss([fromNested([[[1, 0, 1]], [[0, 1, 0]]])], { keepBatchDim: false });
    expectRef(r, [], [1.5]);
  });

  it('Python test suite cases', () => {
    expectRef(refL1AbsoluteLoss([full([2, 3], 0)], { keepBatchDim: false }), [], [0]);
    expectRef(refL1AbsoluteLoss([full([2, 2, 3], 0)], { keepBatchDim: false }), [2], [0, 0]);
    expectRef(refL1AbsoluteLoss([full([2, 3], 1)], { keepBatchDim: false }), [], [3]);
    expectRef(refL1AbsoluteLoss([full([2, 2, 3], 1)], { keepBatchDim: false }), [2], [3, 3]);
    expectRef(refL1AbsoluteLoss([full([2, 2, 3], -1)], { keepBatchDim: false }), [2], [3, 3]);
  });

  it('keepBatchDim -> [[2],[1]]', () => {
    const r = refL1AbsoluteLoss([fromNested([[[1, 0, 1]], [[0, 1, 0]]])], { keepBatchDim: true });
    expectRef(r, [2, 1], [2, 1]);
    expect(toNested(r)).toEqual([[2], [1]]);
  });

  it('keepBatchDim concatenates batches in order (rank 2 -> [N])', () => {
    const r = refL1AbsoluteLoss([fromNested([[1, 0, 1]]), fromNested([[0, 1, 0], [3, 0, -3]])], {
      keepBatchDim: true,
    });
    expectRef(r, [3], [2, 1, 6]);
  });

  it('accumulation: split batch equals single batch', () => {
    const one = refL1AbsoluteLoss([fromNested([[[1, 0, 1]], [[0, 1, 0]]])], {
      keepBatchDim: false,
    });
    const two = refL1AbsoluteLoss([fromNested([[[1, 0, 1]]]), fromNested([[[0, 1, 0]]])], {
      keepBatchDim: false,
    });
    expectRef(one, [], [1.5]);
    expectRef(two, [], [1.5]);
    // Two components, uneven split: component 0 L1s 2, 1, 4 -> 7/3; component 1 L1s 0, 2, 2 -> 4/3
    const split = refL1AbsoluteLoss(
      [
        fromNested([[[1, 0, 1], [0, 0, 0]]]),
        fromNested([
          [[0, 1, 0], [1, 1, 0]],
          [[2, -2, 0], [0, 0, -2]],
        ]),
      ],
      { keepBatchDim: false },
    );
    expectRef(split, [2], [7 / 3, 4 / 3]);
  });

  it('no batches -> NaN', () => {
    expectRef(refL1AbsoluteLoss([], { keepBatchDim: false }), [], [NaN]);
    expect(() => refL1AbsoluteLoss([], { keepBatchDim: true })).toThrow();
  });
});

describe('L2ReconstructionLoss', () => {
  it('docstring example -> 3', () => {
    const r = refL2ReconstructionLoss(
      [{ source: fromNested([[[4, 2]], [[2, 0]]]), decoded: fromNested([[[2, 0]], [[0, 0]]]) }],
      { keepBatchDim: false },
    );
    expectRef(r, [], [3]);
  });

  it('keepBatchDim -> per-vector MSE', () => {
    const r = refL2ReconstructionLoss(
      [{ source: fromNested([[[4, 2]], [[2, 0]]]), decoded: fromNested([[[2, 0]], [[0, 0]]]) }],
      { keepBatchDim: true },
    );
    expectRef(r, [2, 1], [4, 2]);
  });

  it('accumulation: split batch equals single batch', () => {
    const r = refL2ReconstructionLoss(
      [
        { source: fromNested([[[4, 2]]]), decoded: fromNested([[[2, 0]]]) },
        { source: fromNested([[[2, 0]]]), decoded: fromNested([[[0, 0]]]) },
      ],
      { keepBatchDim: false },
    );
    expectRef(r, [], [3]);
  });
});

describe('SparseAutoencoderLoss', () => {
  const learned = fromNested([[[1, 0, 1]], [[0, 1, 0]]]);
  const source = fromNested([[[4, 2]], [[2, 0]]]);
  const decoded = fromNested([[[2, 0]], [[0, 0]]]);

  it('l1Coefficient 0.001 -> 3.0015', () => {
    const r = refSparseAutoencoderLoss([{ learned, source, decoded }], {
      l1Coefficient: 0.001,
      keepBatchDim: false,
    });
    expectRef(r, [], [3.0015]);
  });

  it('keepBatchDim -> [[4.002],[2.001]]', () => {
    const r = refSparseAutoencoderLoss([{ learned, source, decoded }], {
      l1Coefficient: 0.001,
      keepBatchDim: true,
    });
    expectRef(r, [2, 1], [4.002, 2.001]);
  });
});

describe('L0NormMetric', () => {
  it('single component (no component axis) -> 1.5', () => {
    expectRef(refL0Norm([fromNested([[1, 0, 1], [0, 1, 0]])]), [], [1.5]);
  });

  it('two components -> [1.5, 2.0]', () => {
    const r = refL0Norm(
      [
        fromNested([
          [[1, 0, 1], [1, 0, 1]],
          [[0, 1, 0], [1, 0, 1]],
        ]),
      ],
      { numComponents: 2 },
    );
    expectRef(r, [2], [1.5, 2.0]);
  });

  it('negatives and NaN count as non-zero', () => {
    expectRef(refL0Norm([fromNested([[-1, 0, NaN], [0, 0, -0]])]), [], [1]);
  });

  it('accumulation: split batch equals single batch', () => {
    expectRef(refL0Norm([fromNested([[1, 0, 1]]), fromNested([[0, 1, 0]])]), [], [1.5]);
    const r = refL0Norm([
      fromNested([[[1, 0, 1], [1, 0, 1]]]),
      fromNested([[[0, 1, 0], [1, 0, 1]]]),
    ]);
    expectRef(r, [2], [1.5, 2.0]);
  });

  it('no batches -> NaN', () => {
    expectRef(refL0Norm([]), [], [NaN]);
    expectRef(refL0Norm([], { numComponents: 2 }), [2], [NaN, NaN]);
  });
});

describe('NeuronFiredCountMetric', () => {
  it('docstring example -> [1, 0, 1]', () => {
    expectRef(refNeuronFiredCount([fromNested([[1, 0, 1], [0, 0, 0]])]), [3], [1, 0, 1]);
  });

  it('only x > 0 fires; accumulates over batches; [C, F] shape', () => {
    const r = refNeuronFiredCount([
      fromNested([[[1, -1, 0], [NaN, 2, 0.5]]]),
      fromNested([[[3, 0, 0], [1, 1, 1]]]),
    ]);
    expectRef(r, [2, 3], [2, 0, 0, 1, 2, 2]);
  });
});

describe('FeatureDensityMetric', () => {
  it('docstring example -> [[0.5, 0, 0.5]]', () => {
    const r = refFeatureDensity([fromNested([[[1, 0, 1]], [[0, 0, 0]]])]);
    expectRef(r, [1, 3], [0.5, 0, 0.5]);
  });

  it('accumulation: split batch equals single batch', () => {
    const r = refFeatureDensity([fromNested([[[1, 0, 1]]]), fromNested([[[0, 0, 0]]])]);
    expectRef(r, [1, 3], [0.5, 0, 0.5]);
    const r2 = refFeatureDensity([
      fromNested([[1, 0, 1], [0, 0, 1]]),
      fromNested([[0, 0, 1], [1, 0, 0]]),
    ]);
    expectRef(r2, [3], [0.5, 0, 0.75]);
  });

  it('single element is squeezed', () => {
    expectRef(refFeatureDensity([fromNested([[1], [0]])]), [], [0.5]);
  });
});

describe('NeuronActivityMetric', () => {
  it('Python test suite cases (threshold 0)', () => {
    expectRef(
      refNeuronActivity([fromNested([[1, 0, 1], [0, 0, 0]])], {
        thresholdIsDeadPortionFires: 0,
        numLearnedFeatures: 3,
      }),
      [],
      [1],
    );
    expectRef(
      refNeuronActivity([fromNested([[[1, 0, 1]], [[0, 0, 0]]])], {
        thresholdIsDeadPortionFires: 0,
        numLearnedFeatures: 3,
        numComponents: 1,
      }),
      [],
      [1],
    );
    expectRef(
      refNeuronActivity([fromNested([[[1, 1, 1]], [[0, 0, 0]]])], {
        thresholdIsDeadPortionFires: 0,
        numLearnedFeatures: 3,
        numComponents: 1,
      }),
      [],
      [0],
    );
    expectRef(
      refNeuronActivity(
        [
          fromNested([
            [[1, 0, 1], [1, 0, 1]],
            [[0, 1, 0], [1, 0, 1]],
          ]),
        ],
        { thresholdIsDeadPortionFires: 0, numLearnedFeatures: 3, numComponents: 2 },
      ),
      [2],
      [0, 1],
    );
  });

  it('threshold examples (hand-derived)', () => {
    // 4 rows; fired counts: neuron 0 -> 1, neuron 1 -> 0, neuron 2 -> 2
    const batches = [
      fromNested([[1, 0, 1], [0, 0, 0]]),
      fromNested([[0, -1, 2], [0, 0, 0]]),
    ];
    const run = (t: number): RefArray =>
      refNeuronActivity(batches, { thresholdIsDeadPortionFires: t, numLearnedFeatures: 3 });
    expectRef(run(0), [], [1]); // only neuron 1
    expectRef(run(0.2), [], [1]); // threshold 0.8: neuron 0 (1 fire) alive
    expectRef(run(0.25), [], [2]); // threshold 1: neuron 0 (1 <= 1) dead
    expectRef(run(0.5), [], [3]); // threshold 2: all dead
    expectRef(run(1), [], [3]);
  });

  it('no batches: every neuron is dead', () => {
    expectRef(
      refNeuronActivity([], { thresholdIsDeadPortionFires: 0, numLearnedFeatures: 3 }),
      [],
      [3],
    );
    expectRef(
      refNeuronActivity([], {
        thresholdIsDeadPortionFires: 0.5,
        numLearnedFeatures: 4,
        numComponents: 2,
      }),
      [2],
      [4, 4],
    );
  });

  it('accumulation: a neuron firing only in the second batch is alive', () => {
    const r = refNeuronActivity([fromNested([[[1, 0, 0]]]), fromNested([[[0, 1, 0]]])], {
      thresholdIsDeadPortionFires: 0,
      numLearnedFeatures: 3,
      numComponents: 1,
    });
    expectRef(r, [], [1]);
  });
});

describe('CapacityMetric', () => {
  it('orthogonal -> [[1, 1]]', () => {
    expectRef(refCapacityMetric([fromNested([[[1, 0, 1]], [[0, 1, 0]]])]), [1, 2], [1, 1]);
  });

  it('identical -> [[0.5, 0.5]]', () => {
    expectRef(refCapacityMetric([fromNested([[[1, 1, 1]], [[1, 1, 1]]])]), [1, 2], [0.5, 0.5]);
  });

  it('capacities of orthogonal features -> [[1, 1, 1]]', () => {
    expectRef(refCapacities(fromNested([[[1, 0, 0]], [[0, 1, 0]], [[0, 0, 1]]])), [1, 3], [1, 1, 1]);
  });

  it('capacities: rank 2 input and 0/0 -> NaN (hand-derived)', () => {
    // dots: x0.x0 = 1, x0.x1 = 1, x1.x1 = 2 -> d = [[1,1],[1,4]] -> [1/2, 4/5]
    expectRef(refCapacities(fromNested([[1, 0], [1, 1]])), [2], [0.5, 0.8]);
    // zero vector: 0/0 -> NaN; the other is orthogonal to it -> 1
    expectRef(refCapacities(fromNested([[[0, 0]], [[1, 0]]])), [1, 2], [NaN, 1]);
  });

  it('accumulates by concatenation; components handled separately', () => {
    // component 0: (1,0),(1,1) -> [0.5, 0.8]; component 1: (0,1),(0,2) identical direction:
    // d = [[1,4],[4,16]] -> [1/5, 16/20]
    const r = refCapacityMetric([
      fromNested([[[1, 0], [0, 1]]]),
      fromNested([[[1, 1], [0, 2]]]),
    ]);
    expectRef(r, [2, 2], [0.5, 0.8, 0.2, 0.8]);
  });
});

describe('ReconstructionScoreMetric', () => {
  it('docstring example -> 0.6667', () => {
    const r = refReconstructionScore(
      [
        {
          sourceModelLoss: fromNested([2, 2, 2]),
          sourceModelLossWithReconstruction: fromNested([3, 3, 3]),
          sourceModelLossWithZeroAblation: fromNested([5, 5, 5]),
        },
      ],
      { numComponents: 1 },
    );
    expect(r.shape).toEqual([]);
    expect(Math.abs((r.data[0] ?? NaN) - 0.6667)).toBeLessThan(1e-4);
    expectRef(r, [], [2 / 3]);
  });

  it('per-component sums with componentIdx (hand-derived)', () => {
    const r = refReconstructionScore(
      [
        {
          sourceModelLoss: fromNested([1]),
          sourceModelLossWithReconstruction: fromNested([2]),
          sourceModelLossWithZeroAblation: fromNested([5]),
          componentIdx: 1,
        },
        {
          sourceModelLoss: fromNested([1, 1]),
          sourceModelLossWithReconstruction: fromNested([1, 3]),
          sourceModelLossWithZeroAblation: fromNested([3, 3]),
        },
        {
          sourceModelLoss: fromNested(1),
          sourceModelLossWithReconstruction: fromNested(1),
          sourceModelLossWithZeroAblation: fromNested(1),
          componentIdx: 1,
        },
      ],
      { numComponents: 2 },
    );
    // component 0: (6 - 4) / (6 - 2) = 0.5; component 1: (6 - 3) / (6 - 2) = 0.75
    expectRef(r, [2], [0.5, 0.75]);
  });
});

describe('ClasswiseWrapperWithMean', () => {
  for (const numComponents of [1, 2]) {
    it(`feature density, ${numComponents} component(s)`, () => {
      const row: number[][] = [];
      for (let c = 0; c < numComponents; c++) row.push([1, 1, 1]);
      const density = refFeatureDensity([fromNested([row])]);
      const names = numComponents === 1 ? ['mlp_0'] : ['mlp_0', 'mlp_1'];
      const res = refClasswiseWithMean(density, names, 'feature_density');
      for (const name of names) {
        const v = res[`feature_density/${name}`];
        if (v === undefined) throw new Error(`missing key ${name}`);
        expectRef(v, [3], [1, 1, 1]);
      }
      const mean = res['feature_density/mean'];
      if (mean === undefined) throw new Error('missing mean');
      expectRef(mean, [3], [1, 1, 1]);
      expect(Object.keys(res)).toEqual([
        ...names.map((n) => `feature_density/${n}`),
        'feature_density/mean',
      ]);
    });

    it(`L0 with prefix l0, ${numComponents} component(s)`, () => {
      const row: number[][] = [];
      for (let c = 0; c < numComponents; c++) row.push([1, 0, 1]);
      const l0 = refL0Norm([fromNested([row])], { numComponents });
      const names = numComponents === 1 ? ['mlp_0'] : ['mlp_0', 'mlp_1'];
      const res = refClasswiseWithMean(l0, names, 'l0');
      for (const name of names) {
        const v = res[`l0/${name}`];
        if (v === undefined) throw new Error(`missing key ${name}`);
        expectRef(v, [], [2]);
      }
      const mean = res['l0/mean'];
      if (mean === undefined) throw new Error('missing mean');
      expectRef(mean, [], [2]);
    });
  }

  it('mean of differing components (hand-derived)', () => {
    const res = refClasswiseWithMean(arr([2], [1.5, 2]), ['a', 'b'], 'p');
    expect(res).toEqual({
      'p/a': arr([], [1.5]),
      'p/b': arr([], [2]),
      'p/mean': arr([], [1.75]),
    });
  });
});

describe('performance', () => {
  it('4096 x 512 batches are fast for the non-capacity metrics', () => {
    const rows = 4096;
    const feats = 512;
    const data: number[] = [];
    for (let i = 0; i < rows * feats; i++) data.push(((i * 7919) % 13) - 6);
    const batch = arr([rows, feats], data);
    const start = Date.now();
    refL1AbsoluteLoss([batch], { keepBatchDim: false });
    refL1AbsoluteLoss([batch], { keepBatchDim: true });
    refL2ReconstructionLoss([{ decoded: batch, source: batch }], { keepBatchDim: false });
    refSparseAutoencoderLoss([{ learned: batch, decoded: batch, source: batch }], {
      l1Coefficient: 0.001,
      keepBatchDim: false,
    });
    refL0Norm([batch]);
    refNeuronFiredCount([batch]);
    refFeatureDensity([batch]);
    refNeuronActivity([batch], { thresholdIsDeadPortionFires: 1e-5, numLearnedFeatures: feats });
    const elapsed = Date.now() - start;
    expect(elapsed).toBeLessThan(2000);
  });
});
