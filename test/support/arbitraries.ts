/** fast-check arbitraries shared by the property tests. */
import fc from 'fast-check';
import { tensor } from '../../src/index.js';
import type { Tensor } from '../../src/index.js';

/** A float32 tensor of `shape` whose elements are drawn, in order, from `values`. */
export function float32Tensor(values: fc.Arbitrary<number>, shape: readonly number[]): fc.Arbitrary<Tensor<'float32'>> {
  const size = shape.reduce((a, b) => a * b, 1);
  return fc.array(values, { minLength: size, maxLength: size }).map((v) => tensor(Float32Array.from(v), shape));
}
