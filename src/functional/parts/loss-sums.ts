/**
 * Sums of the source model's losses (unchanged, with the SAE's reconstruction, with zero
 * ablation) per component: the state of `ReconstructionScoreMetric`.
 *
 * @module
 */
import type { StatePart } from '../core.js';
import type { TensorLike } from '../../tensor.js';
import { addF64, notF64, notRecord } from './arrays.js';

/** Loss sums per component. */
export interface LossSumsState {
  readonly source: Float64Array;
  readonly reconstruction: Float64Array;
  readonly zeroAblation: Float64Array;
}

function sumRows(t: TensorLike, start: number, end: number): number {
  const width = t.shape.length === 0 ? 1 : t.data.length / (t.shape[0] as number);
  let s = 0;
  for (let i = start * width; i < end * width; i++) s += t.data[i] as number;
  return s;
}

/** The loss-sums part for `numComponents` components. */
export function lossSumsPart(numComponents: number): StatePart<LossSumsState> {
  return {
    id: `lossSums(components=${numComponents})`,
    recipe: { kind: 'lossSums', args: [numComponents] },
    reads: ['sourceModelLoss', 'sourceModelLossWithReconstruction', 'sourceModelLossWithZeroAblation'],
    init: () => ({
      source: new Float64Array(numComponents),
      reconstruction: new Float64Array(numComponents),
      zeroAblation: new Float64Array(numComponents),
    }),
    fromBatch(batch, rows) {
      const index = batch.componentIdx ?? 0;
      const c = index < 0 ? index + numComponents : index;
      const out = {
        source: new Float64Array(numComponents),
        reconstruction: new Float64Array(numComponents),
        zeroAblation: new Float64Array(numComponents),
      };
      out.source[c] = sumRows(batch.sourceModelLoss as TensorLike, rows.start, rows.end);
      out.reconstruction[c] = sumRows(batch.sourceModelLossWithReconstruction as TensorLike, rows.start, rows.end);
      out.zeroAblation[c] = sumRows(batch.sourceModelLossWithZeroAblation as TensorLike, rows.start, rows.end);
      return out;
    },
    merge: (a, b) => ({
      source: addF64(a.source, b.source),
      reconstruction: addF64(a.reconstruction, b.reconstruction),
      zeroAblation: addF64(a.zeroAblation, b.zeroAblation),
    }),
    // Losses may be negative or non-finite (the metric takes any float32 losses): only the shape is checked.
    invalid: (v) =>
      notRecord(v, ['source', 'reconstruction', 'zeroAblation']) ??
      notF64((v as LossSumsState).source, numComponents, 'source') ??
      notF64((v as LossSumsState).reconstruction, numComponents, 'reconstruction') ??
      notF64((v as LossSumsState).zeroAblation, numComponents, 'zeroAblation'),
  };
}
