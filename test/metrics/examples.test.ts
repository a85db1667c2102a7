/**
 * Every example of the Python library with its literal expected value: the seed pages
 * (/work/shared/seeds), the docstring examples of the `sparse_autoencoder` metrics, and the cases
 * of its own tests (sparse_autoencoder/metrics/**\/tests). Each expected value below is written out
 * by hand from those sources (or, where marked, derived by hand), never computed by the code under
 * test. Each example asserts value, shape (0-d is shape []) and dtype (counts are int64), through
 * the class (`forward`, and `compute` after `update`) and through the functional definition.
 *
 * Tolerance: float64 results within 1e-12 absolute of the literal (1e-6 where an input is an
 * irrational number rounded to float32); int64 results exactly.
 */
import { describe, it, expect } from 'vitest';
import {
  tensor,
  Tensor,
  L1AbsoluteLoss,
  L2ReconstructionLoss,
  SparseAutoencoderLoss,
  L0NormMetric,
  NeuronActivityMetric,
  NeuronFiredCountMetric,
  FeatureDensityMetric,
  CapacityMetric,
  ReconstructionScoreMetric,
  ClasswiseWrapperWithMean,
} from '../../src/index.js';
import type { Batch, NestedArray } from '../../src/index.js';

const TOL = 1e-12;

/** Shape of a nested array literal (a number is 0-d). */
function shapeOf(nested: NestedArray): number[] {
  const shape: number[] = [];
  let level: NestedArray = nested;
  while (Array.isArray(level)) {
    shape.push(level.length);
    if (level.length === 0) break;
    level = level[0] as NestedArray;
  }
  return shape;
}

function flatten(nested: NestedArray): number[] {
  return Array.isArray(nested) ? nested.flatMap((x) => flatten(x)) : [nested];
}

/** Asserts dtype, shape (from the literal) and values (exact for int64, within `tol` for float64). */
function expectTensor(
  actual: Tensor,
  expected: NestedArray,
  dtype: 'float64' | 'int64',
  label = '',
  tol = TOL,
): void {
  expect(actual.dtype, `${label} dtype`).toBe(dtype);
  expect([...actual.shape], `${label} shape`).toEqual(shapeOf(expected));
  const want = flatten(expected);
  const got = Array.from(actual.data);
  expect(got.length, `${label} size`).toBe(want.length);
  if (dtype === 'int64') {
    expect(got, `${label} values`).toEqual(want);
    return;
  }
  want.forEach((w, i) => {
    expect(Math.abs((got[i] as number) - w), `${label} [${i}]: expected ${w}, got ${got[i]}`).toBeLessThanOrEqual(tol);
  });
}

/** The API of a metric class with a tensor result. */
interface TensorMetric {
  forward(batch: Batch): Tensor;
  update(batch: Batch): void;
  compute(): Tensor;
  readonly definition: {
    init(): unknown;
    compute(state: never): Tensor;
    update(state: never, batch: Batch): unknown;
  };
}

/**
 * Runs one example three ways: `forward` on a fresh metric, `compute()` after `update` on a fresh
 * metric, and the metric's functional definition `compute(update(init(), batch))`.
 */
function expectExample(
  make: () => TensorMetric,
  batch: Batch,
  expected: NestedArray,
  dtype: 'float64' | 'int64',
  tol = TOL,
): void {
  expectTensor(make().forward(batch), expected, dtype, 'forward', tol);
  const m = make();
  m.update(batch);
  expectTensor(m.compute(), expected, dtype, 'compute after update', tol);
  const d = make().definition as unknown as {
    init(): unknown;
    update(state: unknown, batch: Batch): unknown;
    compute(state: unknown): Tensor;
  };
  expectTensor(d.compute(d.update(d.init(), batch)), expected, dtype, 'functional', tol);
}

/** torch.zeros / torch.ones / full of a shape, as a float32 tensor. */
function full(shape: number[], value: number): Tensor<'float32'> {
  let n = 1;
  for (const s of shape) n *= s;
  return tensor(new Float32Array(n).fill(value), shape);
}
const zeros = (...shape: number[]): Tensor<'float32'> => full(shape, 0);
const ones = (...shape: number[]): Tensor<'float32'> => full(shape, 1);

// ---------------------------------------------------------------------------------------------

describe('seeds (/work/shared/seeds)', () => {
  it('L1AbsoluteLoss: [[[1, 0, 1]], [[0, 1, 0]]] -> tensor(1.5000), 0-d', () => {
    expectExample(
      () => new L1AbsoluteLoss(),
      { learnedActivations: tensor([[[1, 0, 1]], [[0, 1, 0]]]) },
      1.5,
      'float64',
    );
  });

  it('NeuronActivityMetric(numLearnedFeatures=3): [[1, 0, 1], [0, 0, 0]] -> tensor(1), 0-d int64', () => {
    expectExample(
      () => new NeuronActivityMetric({ numLearnedFeatures: 3 }),
      {
        learnedActivations: tensor([
          [1, 0, 1],
          [0, 0, 0],
        ]),
      },
      1,
      'int64',
    );
  });
});

describe('docstring examples of the Python metrics', () => {
  it('L2ReconstructionLoss(numComponents=1): MSEs 4 and 2 -> tensor(3.)', () => {
    expectExample(
      () => new L2ReconstructionLoss({ numComponents: 1 }),
      {
        sourceActivations: tensor([[[4, 2]], [[2, 0]]]),
        decodedActivations: tensor([[[2, 0]], [[0, 0]]]),
      },
      3,
      'float64',
    );
  });

  it('L0NormMetric: 2 and 1 active neurons -> tensor(1.5000)', () => {
    // The docstring's input has one component axis of size 1.
    expectExample(
      () => new L0NormMetric({ numComponents: 1 }),
      { learnedActivations: tensor([[[1, 0, 1]], [[0, 1, 0]]]) },
      1.5,
      'float64',
    );
    // The same vectors without a component axis.
    expectExample(
      () => new L0NormMetric(),
      {
        learnedActivations: tensor([
          [1, 0, 1],
          [0, 1, 0],
        ]),
      },
      1.5,
      'float64',
    );
  });

  it('L0NormMetric(numComponents=2) -> tensor([1.5000, 2.0000])', () => {
    expectExample(
      () => new L0NormMetric({ numComponents: 2 }),
      {
        learnedActivations: tensor([
          [
            [1, 0, 1],
            [1, 0, 1],
          ],
          [
            [0, 1, 0],
            [1, 0, 1],
          ],
        ]),
      },
      [1.5, 2],
      'float64',
    );
  });

  it('NeuronFiredCountMetric(numLearnedFeatures=3) -> tensor([1, 0, 1]) int64', () => {
    expectExample(
      () => new NeuronFiredCountMetric({ numLearnedFeatures: 3 }),
      {
        learnedActivations: tensor([
          [1, 0, 1],
          [0, 0, 0],
        ]),
      },
      [1, 0, 1],
      'int64',
    );
  });

  it('FeatureDensityMetric(numLearnedFeatures=3, numComponents=1) -> tensor([[0.5000, 0.0000, 0.5000]])', () => {
    expectExample(
      () => new FeatureDensityMetric({ numLearnedFeatures: 3, numComponents: 1 }),
      { learnedActivations: tensor([[[1, 0, 1]], [[0, 0, 0]]]) },
      [[0.5, 0, 0.5]],
      'float64',
    );
  });

  it('CapacityMetric: orthogonal -> tensor([[1., 1.]]); the same -> tensor([[0.5000, 0.5000]])', () => {
    const orthogonal = { learnedActivations: tensor([[[1, 0, 1]], [[0, 1, 0]]]) };
    const same = { learnedActivations: tensor([[[1, 1, 1]], [[1, 1, 1]]]) };
    expectExample(() => new CapacityMetric(), orthogonal, [[1, 1]], 'float64');
    expectExample(() => new CapacityMetric(), same, [[0.5, 0.5]], 'float64');

    // The docstring calls forward twice on one metric: each forward gives its batch's value.
    const metric = new CapacityMetric();
    expectTensor(metric.forward(orthogonal), [[1, 1]], 'float64', 'first forward');
    expectTensor(metric.forward(same), [[0.5, 0.5]], 'float64', 'second forward');
    // Derived by hand: over all four vectors a=[1,0,1], b=[0,1,0], c=d=[1,1,1], the squared dot
    // products are a: 4,0,4,4 -> 4/12; b: 0,1,1,1 -> 1/3; c and d: 4,1,9,9 -> 9/23.
    expectTensor(metric.compute(), [[1 / 3, 1 / 3, 9 / 23, 9 / 23]], 'float64', 'compute after both');
  });

  it('CapacityMetric.capacities of [[[1,0,0]],[[0,1,0]],[[0,0,1]]] -> tensor([[1., 1., 1.]])', () => {
    const caps = CapacityMetric.capacities(tensor([[[1, 0, 0]], [[0, 1, 0]], [[0, 0, 1]]]));
    expectTensor(caps, [[1, 1, 1]], 'float64');
  });

  it('ReconstructionScoreMetric(numComponents=1): losses 2, 3, 5 -> tensor(0.6667) (2/3)', () => {
    expectExample(
      () => new ReconstructionScoreMetric({ numComponents: 1 }),
      {
        sourceModelLoss: tensor([2, 2, 2]),
        sourceModelLossWithReconstruction: tensor([3, 3, 3]),
        sourceModelLossWithZeroAblation: tensor([5, 5, 5]),
      },
      2 / 3,
      'float64',
    );
  });

  it('SparseAutoencoderLoss is L1AbsoluteLoss * l1Coefficient + L2ReconstructionLoss', () => {
    // By hand: L1 per vector 2 and 3 (mean 2.5 for component 0) and 1 and 0 (mean 0.5 for
    // component 1); MSE per vector ((1-0)^2 + (2-2)^2) / 2 = 0.5 and (2^2 + 0) / 2 = 2 (mean 1.25),
    // and 0 and ((-1)^2 + 1^2) / 2 = 1 (mean 0.5). With l1Coefficient 0.2:
    // [2.5 * 0.2 + 1.25, 0.5 * 0.2 + 0.5] = [1.75, 0.6].
    const batch = {
      learnedActivations: tensor([
        [
          [1, 0, -1],
          [0, 1, 0],
        ],
        [
          [3, 0, 0],
          [0, 0, 0],
        ],
      ]),
      sourceActivations: tensor([
        [
          [0, 2],
          [1, 1],
        ],
        [
          [2, 0],
          [1, 0],
        ],
      ]),
      decodedActivations: tensor([
        [
          [1, 2],
          [1, 1],
        ],
        [
          [0, 0],
          [0, 1],
        ],
      ]),
    };
    expectExample(() => new L1AbsoluteLoss({ numComponents: 2 }), batch, [2.5, 0.5], 'float64');
    expectExample(() => new L2ReconstructionLoss({ numComponents: 2 }), batch, [1.25, 0.5], 'float64');
    expectExample(
      () => new SparseAutoencoderLoss({ numComponents: 2, l1Coefficient: 0.2 }),
      batch,
      [2.5 * 0.2 + 1.25, 0.5 * 0.2 + 0.5],
      'float64',
    );
    // The port's docstring example: 2 * 0.5 + (2^2 + 2^2) / 2 = 5.
    expectExample(
      () => new SparseAutoencoderLoss({ l1Coefficient: 0.5 }),
      {
        learnedActivations: tensor([[1, 0, 1]]),
        sourceActivations: tensor([[4, 2]]),
        decodedActivations: tensor([[2, 0]]),
      },
      5,
      'float64',
    );
  });
});

// ---------------------------------------------------------------------------------------------
// The original library's tests

/** num_components = shape[1] if the input has rank 3, else 1 (as the Python tests do). */
function componentsOf(t: Tensor): number {
  return t.ndim === 3 ? (t.shape[1] as number) : 1;
}

describe('sparse_autoencoder tests: L1AbsoluteLoss', () => {
  const cases: [string, Tensor<'float32'>, NestedArray][] = [
    ['zeros(2, 3) -> 0', zeros(2, 3), 0],
    ['zeros(2, 2, 3) -> [0, 0]', zeros(2, 2, 3), [0, 0]],
    ['ones(2, 3) -> 3', ones(2, 3), 3],
    ['ones(2, 2, 3) -> [3, 3]', ones(2, 2, 3), [3, 3]],
    ['-ones(2, 2, 3) -> [3, 3]', full([2, 2, 3], -1), [3, 3]],
  ];
  for (const [name, learned, expected] of cases) {
    it(name, () => {
      expectExample(
        () => new L1AbsoluteLoss({ numComponents: componentsOf(learned) }),
        { learnedActivations: learned },
        expected,
        'float64',
      );
    });
  }
});

describe('sparse_autoencoder tests: L2ReconstructionLoss', () => {
  const cases: [string, Tensor<'float32'>, Tensor<'float32'>, NestedArray][] = [
    ['perfect reconstruction (single component) -> 0', ones(2, 3), ones(2, 3), 0],
    ['perfect reconstruction (2 components) -> [0, 0]', ones(2, 2, 3), ones(2, 2, 3), [0, 0]],
    ['all errors 1 (single component) -> 1', zeros(2, 3), ones(2, 3), 1],
    ['all errors 1 (2 components) -> [1, 1]', zeros(2, 2, 3), ones(2, 2, 3), [1, 1]],
  ];
  for (const [name, source, decoded, expected] of cases) {
    it(name, () => {
      expectExample(
        () => new L2ReconstructionLoss({ numComponents: componentsOf(source) }),
        { sourceActivations: source, decodedActivations: decoded },
        expected,
        'float64',
      );
    });
  }
});

describe('sparse_autoencoder tests: SparseAutoencoderLoss (l1Coefficient 0.01)', () => {
  // [name, source, learned, decoded, expected]
  const cases: [string, Tensor<'float32'>, Tensor<'float32'>, Tensor<'float32'>, NestedArray][] = [
    ['perfect reconstruction and sparsity (single component) -> 0', ones(2, 3), zeros(2, 4), ones(2, 3), 0],
    ['perfect reconstruction and sparsity (2 components) -> [0, 0]', ones(2, 2, 3), zeros(2, 2, 4), ones(2, 2, 3), [0, 0]],
    ['just sparsity error (single component) -> 0.04', ones(2, 3), ones(2, 4), ones(2, 3), 0.04],
    ['just sparsity error (2 components) -> [0.04, 0.04]', ones(2, 2, 3), ones(2, 2, 4), ones(2, 2, 3), [0.04, 0.04]],
    ['just reconstruction error (single component) -> 1', zeros(2, 3), zeros(2, 4), ones(2, 3), 1],
    ['just reconstruction error (2 components) -> [1, 1]', zeros(2, 2, 3), zeros(2, 2, 4), ones(2, 2, 3), [1, 1]],
    ['sparsity and reconstruction error (single component) -> 1.04', zeros(2, 3), ones(2, 4), ones(2, 3), 1.04],
    ['sparsity and reconstruction error (2 components) -> [1.04, 1.04]', zeros(2, 2, 3), ones(2, 2, 4), ones(2, 2, 3), [1.04, 1.04]],
  ];
  for (const [name, source, learned, decoded, expected] of cases) {
    it(name, () => {
      expectExample(
        () => new SparseAutoencoderLoss({ numComponents: componentsOf(source), l1Coefficient: 0.01 }),
        { sourceActivations: source, learnedActivations: learned, decodedActivations: decoded },
        expected,
        'float64',
      );
    });
  }
});

/** Test inputs shared by the fired-count family (sparse_autoencoder/metrics/train/tests). */
const oneDeadOneComponent = tensor([[[1, 0, 1]], [[0, 0, 0]]]);
const oneDeadNoAxis = tensor([
  [1, 0, 1],
  [0, 0, 0],
]);
const noneDeadOneComponent = tensor([[[1, 1, 1]], [[0, 0, 0]]]);
const twoComponents = tensor([
  [
    [1, 0, 1],
    [1, 0, 1],
  ],
  [
    [0, 1, 0],
    [1, 0, 1],
  ],
]);

/** numComponents as an optional option (undefined: no component axis). */
function withComponents(numComponents: number | undefined): { numComponents?: number } {
  return numComponents === undefined ? {} : { numComponents };
}

describe('sparse_autoencoder tests: NeuronActivityMetric (threshold 0)', () => {
  const cases: [string, number | undefined, Tensor<'float32'>, NestedArray][] = [
    ['single component, one dead neuron -> 1', 1, oneDeadOneComponent, 1],
    ['no component axis, one dead neuron -> 1', undefined, oneDeadNoAxis, 1],
    ['single component, no dead neurons -> 0', 1, noneDeadOneComponent, 0],
    ['2 components, mixed dead neurons -> [0, 1]', 2, twoComponents, [0, 1]],
  ];
  for (const [name, numComponents, learned, expected] of cases) {
    it(name, () => {
      expectExample(
        () =>
          new NeuronActivityMetric({
            numLearnedFeatures: 3,
            ...withComponents(numComponents),
            thresholdIsDeadPortionFires: 0,
          }),
        { learnedActivations: learned },
        expected,
        'int64',
      );
    });
  }
});

describe('sparse_autoencoder tests: NeuronFiredCountMetric', () => {
  const cases: [string, number | undefined, Tensor<'float32'>, NestedArray][] = [
    ['single component, one dead neuron -> [[1, 0, 1]]', 1, oneDeadOneComponent, [[1, 0, 1]]],
    ['no component axis, one dead neuron -> [1, 0, 1]', undefined, oneDeadNoAxis, [1, 0, 1]],
    ['single component, no dead neurons -> [[1, 1, 1]]', 1, noneDeadOneComponent, [[1, 1, 1]]],
    [
      '2 components -> [[1, 1, 1], [2, 0, 2]]',
      2,
      twoComponents,
      [
        [1, 1, 1],
        [2, 0, 2],
      ],
    ],
  ];
  for (const [name, numComponents, learned, expected] of cases) {
    it(name, () => {
      expectExample(
        () => new NeuronFiredCountMetric({ numLearnedFeatures: 3, ...withComponents(numComponents) }),
        { learnedActivations: learned },
        expected,
        'int64',
      );
    });
  }
});

describe('sparse_autoencoder tests: FeatureDensityMetric', () => {
  const cases: [string, number | undefined, Tensor<'float32'>, NestedArray][] = [
    ['single component axis, all active -> [[1, 1, 1]]', 1, tensor([[[1, 1, 1]]]), [[1, 1, 1]]],
    ['no component axis, all active -> [1, 1, 1]', undefined, tensor([[1, 1, 1]]), [1, 1, 1]],
    ['single component, none active -> [[0, 0, 0]]', 1, tensor([[[0, 0, 0]]]), [[0, 0, 0]]],
    [
      '2 components, mixed activity -> [[0.5, 0.5, 0.5], [0.5, 0.5, 0.5]]',
      2,
      tensor([
        [
          [1, 0, 1],
          [0, 1, 0],
        ],
        [
          [0, 1, 0],
          [1, 0, 1],
        ],
      ]),
      [
        [0.5, 0.5, 0.5],
        [0.5, 0.5, 0.5],
      ],
    ],
  ];
  for (const [name, numComponents, learned, expected] of cases) {
    it(name, () => {
      expectExample(
        () => new FeatureDensityMetric({ numLearnedFeatures: 3, ...withComponents(numComponents) }),
        { learnedActivations: learned },
        expected,
        'float64',
      );
    });
  }
});

describe('sparse_autoencoder tests: L0NormMetric', () => {
  const cases: [string, number | undefined, Tensor<'float32'>, NestedArray][] = [
    ['single component, mixed activity -> 2', 1, tensor([[[1, 0, 1]]]), 2],
    ['no component axis, mixed activity -> 2', undefined, tensor([[1, 0, 1]]), 2],
    ['single component, none active -> 0', 1, tensor([[[0, 0, 0]]]), 0],
    ['2 components, mixed activity -> [1.5, 2]', 2, twoComponents, [1.5, 2]],
  ];
  for (const [name, numComponents, learned, expected] of cases) {
    it(name, () => {
      expectExample(
        () => new L0NormMetric(withComponents(numComponents)),
        { learnedActivations: learned },
        expected,
        'float64',
      );
    });
  }
});

describe('sparse_autoencoder tests: CapacityMetric.capacities', () => {
  it('orthogonal -> [[1, 1]]', () => {
    expectTensor(CapacityMetric.capacities(tensor([[[1, 0, 0]], [[0, 1, 0]]])), [[1, 1]], 'float64');
  });

  it('orthogonal, 2 components -> [[1, 1], [1, 1]]', () => {
    const features = tensor([
      [
        [1, 0, 0],
        [1, 0, 0],
      ],
      [
        [0, 1, 0],
        [0, 1, 0],
      ],
    ]);
    expectTensor(
      CapacityMetric.capacities(features),
      [
        [1, 1],
        [1, 1],
      ],
      'float64',
    );
  });

  it('the same feature twice -> [[0.5, 0.5]]', () => {
    expectTensor(CapacityMetric.capacities(tensor([[[-0.8, -0.8, -0.8]], [[-0.8, -0.8, -0.8]]])), [[0.5, 0.5]], 'float64');
  });

  it('[1, 0, 0], [1/sqrt2, 1/sqrt2, 0], [0, 0, 1] -> [[2/3, 2/3, 1]] (1/sqrt2 rounded to float32: tolerance 1e-6)', () => {
    const r = 1 / Math.sqrt(2);
    const caps = CapacityMetric.capacities(tensor([[[1, 0, 0]], [[r, r, 0]], [[0, 0, 1]]]));
    expectTensor(caps, [[2 / 3, 2 / 3, 1]], 'float64', '', 1e-6);
  });
});

describe('sparse_autoencoder tests: ClasswiseWrapperWithMean', () => {
  for (const numComponents of [1, 2]) {
    const names = Array.from({ length: numComponents }, (_, i) => `mlp_${i}`);

    it(`FeatureDensityMetric, ${numComponents} component(s), prefix feature_density: one row of ones -> [1, 1, 1] each and mean`, () => {
      const wrapped = new ClasswiseWrapperWithMean(new FeatureDensityMetric({ numLearnedFeatures: 3, numComponents }), {
        componentNames: names,
        prefix: 'feature_density',
      });
      const row = Array.from({ length: numComponents }, () => [1, 1, 1]);
      const result = wrapped.forward({ learnedActivations: tensor([row]) });
      expect(Object.keys(result).sort()).toEqual([...names.map((n) => `feature_density/${n}`), 'feature_density/mean'].sort());
      for (const n of names) {
        const value = result[`feature_density/${n}`];
        if (value === undefined) throw new Error(`missing feature_density/${n}`);
        expectTensor(value, [1, 1, 1], 'float64', n);
      }
      const mean = result['feature_density/mean'];
      if (mean === undefined) throw new Error('missing feature_density/mean');
      expectTensor(mean, [1, 1, 1], 'float64', 'mean');
    });

    it(`L0NormMetric, ${numComponents} component(s), prefix l0: [[[1, 0, 1]] * C] -> 2 per component and mean 2`, () => {
      const wrapped = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents }), { componentNames: names, prefix: 'l0' });
      const row = Array.from({ length: numComponents }, () => [1, 0, 1]);
      const result = wrapped.forward({ learnedActivations: tensor([row]) });
      expect(Object.keys(result).sort()).toEqual([...names.map((n) => `l0/${n}`), 'l0/mean'].sort());
      for (const n of names) {
        const value = result[`l0/${n}`];
        if (value === undefined) throw new Error(`missing l0/${n}`);
        expectTensor(value, 2, 'float64', n);
      }
      const mean = result['l0/mean'];
      if (mean === undefined) throw new Error('missing l0/mean');
      expectTensor(mean, 2, 'float64', 'mean');
    });
  }

  it("the port's docstring example: L0 of [1, 0, 1] and [1, 1, 1] -> 2, 3 and mean 2.5", () => {
    const l0 = new ClasswiseWrapperWithMean(new L0NormMetric({ numComponents: 2 }), {
      componentNames: ['mlp_0', 'mlp_1'],
      prefix: 'l0',
    });
    const result = l0.forward({
      learnedActivations: tensor([
        [
          [1, 0, 1],
          [1, 1, 1],
        ],
      ]),
    });
    expect(Object.keys(result).sort()).toEqual(['l0/mean', 'l0/mlp_0', 'l0/mlp_1']);
    const [a, b, mean] = [result['l0/mlp_0'], result['l0/mlp_1'], result['l0/mean']];
    if (a === undefined || b === undefined || mean === undefined) throw new Error('missing key');
    expectTensor(a, 2, 'float64', 'mlp_0');
    expectTensor(b, 3, 'float64', 'mlp_1');
    expectTensor(mean, 2.5, 'float64', 'mean');
  });
});
