/**
 * The learned activations themselves, in arrival order (copied, so the caller may reuse its
 * buffers): the state of `CapacityMetric`, which needs every vector at once.
 *
 * @module
 */
import type { StatePart } from '../core.js';
import type { TensorLike } from '../../tensor.js';

/** Chunks of rows in arrival order, and the shape of one row (`[feature]` or `[component, feature]`). */
export interface ActivationListState {
  readonly chunks: readonly Float32Array[];
  readonly rowShape: readonly number[] | null;
}

/** The activation-list part. */
export function activationListPart(): StatePart<ActivationListState> {
  return {
    id: 'activationList',
    recipe: { kind: 'activationList', args: [] },
    reads: ['learnedActivations'],
    init: () => ({ chunks: [], rowShape: null }),
    fromBatch(batch, rows) {
      const t = batch.learnedActivations as TensorLike;
      const rowShape = t.shape.slice(1);
      const width = rowShape.reduce((a, b) => a * b, 1);
      return { chunks: [t.data.slice(rows.start * width, rows.end * width)], rowShape };
    },
    merge(a, b) {
      if (a.rowShape === null) return b;
      if (b.rowShape === null) return a;
      if (a.rowShape.join() !== b.rowShape.join()) {
        throw new TypeError(`rows of shape [${a.rowShape.join(', ')}] and [${b.rowShape.join(', ')}] cannot be concatenated`);
      }
      return { chunks: [...a.chunks, ...b.chunks], rowShape: a.rowShape };
    },
    invalid(v) {
      if (typeof v !== 'object' || v === null || !('chunks' in v) || !('rowShape' in v)) {
        return 'must be an object with chunks, rowShape';
      }
      const s = v as ActivationListState;
      if (!Array.isArray(s.chunks) || !s.chunks.every((c) => c instanceof Float32Array)) {
        return 'chunks must be an array of Float32Arrays';
      }
      if (s.rowShape === null) return s.chunks.length === 0 ? undefined : 'chunks must be empty while rowShape is null';
      if (
        !Array.isArray(s.rowShape) ||
        (s.rowShape.length !== 1 && s.rowShape.length !== 2) ||
        !s.rowShape.every((d) => Number.isSafeInteger(d) && d > 0)
      ) {
        return 'rowShape must be [feature] or [component, feature]';
      }
      const width = s.rowShape.reduce((a, b) => a * b, 1);
      return s.chunks.every((c) => c.length % width === 0) ? undefined : `chunks must hold whole rows of ${width} values`;
    },
  };
}
