/**
 * How a Tensor shows itself: `console.log` / `util.inspect` print what the README's comments write
 * (`tensor(1.25)`), and `JSON.stringify` writes its values.
 */
import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import { L1AbsoluteLoss, MetricCollection, NeuronActivityMetric, Tensor, tensor } from '../src/index.js';

describe('Tensor display', () => {
  it('inspects as tensor(...), as the README writes results', () => {
    expect(inspect(tensor(1.25))).toBe('tensor(1.25)');
    expect(inspect(tensor([1, 0.5, -2]))).toBe('tensor([1, 0.5, -2])');
    expect(inspect(tensor([[1, 0], [0, 1]]))).toBe('tensor([[1, 0], [0, 1]])');
    expect(inspect(tensor([]))).toBe('tensor([])');
    expect(inspect(new Tensor(new Float64Array([NaN, Infinity]), [2], 'float64'))).toBe('tensor([NaN, Infinity])');
    const metrics = new MetricCollection({ l1: new L1AbsoluteLoss(), dead: new NeuronActivityMetric({ numLearnedFeatures: 3 }) });
    // The README's first example, as console.log prints it.
    expect(inspect(metrics.forward({ learnedActivations: tensor([[1, 0, 1], [0, 0, 0]]) }))).toBe('{ l1: tensor(1), dead: tensor(1) }');
    metrics.update({ learnedActivations: tensor([[0, 3, 0], [0, 0, 0]]) });
    expect(inspect(metrics.compute())).toBe('{ l1: tensor(1.25), dead: tensor(0) }');
  });

  it('summarises past 1000 elements with the first and last 3 of each axis and the shape', () => {
    const big = tensor(Float32Array.from({ length: 4096 }, (_, i) => i % 7), [4096]);
    expect(inspect(big)).toBe('tensor([0, 1, 2, ..., 5, 6, 0], shape=[4096])');
    const matrix = tensor(Float32Array.from({ length: 40 * 30 }, (_, i) => i), [40, 30]);
    expect(inspect(matrix)).toBe(
      'tensor([[0, 1, 2, ..., 27, 28, 29], [30, 31, 32, ..., 57, 58, 59], [60, 61, 62, ..., 87, 88, 89], ..., ' +
        '[1110, 1111, 1112, ..., 1137, 1138, 1139], [1140, 1141, 1142, ..., 1167, 1168, 1169], [1170, 1171, 1172, ..., 1197, 1198, 1199]], shape=[40, 30])',
    );
  });

  it('writes its values to JSON: a number for a 0-d tensor, nested arrays otherwise', () => {
    const metrics = new MetricCollection({ l1: new L1AbsoluteLoss(), dead: new NeuronActivityMetric({ numLearnedFeatures: 3 }) });
    metrics.update({ learnedActivations: tensor([[1, 0, 1], [0, 0, 0]]) });
    metrics.update({ learnedActivations: tensor([[0, 3, 0], [0, 0, 0]]) });
    expect(JSON.stringify(metrics.compute())).toBe('{"l1":1.25,"dead":0}');
    expect(JSON.stringify(tensor([[1, 2], [3, 4]]))).toBe('[[1,2],[3,4]]');
  });
});
