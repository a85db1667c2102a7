/**
 * The learned activations themselves, in arrival order (copied, so the caller may reuse its
 * buffers): the state of `CapacityMetric`, which needs every vector at once.
 *
 * @module
 */
import type { StatePart } from '../core.js';
import type { TensorLike } from '../../tensor.js';
import { describeValue } from '../../errors.js';
import { notRecord } from './arrays.js';

/**
 * The most values one row may declare (`rowShape`'s product) in a state from elsewhere: 2^31 - 1.
 * A row must also fit in the chunks the state holds.
 */
export const MAX_ROW_WIDTH = 2 ** 31 - 1;

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
      const reason = notRecord(v, ['chunks', 'rowShape']);
      if (reason !== undefined) return reason;
      const s = v as ActivationListState;
      if (!Array.isArray(s.chunks)) return `.chunks must be an array of Float32Arrays, got ${describeValue(s.chunks)}`;
      if (s.rowShape === null) return s.chunks.length === 0 ? undefined : '.chunks must be empty while rowShape is null';
      if (
        !Array.isArray(s.rowShape) ||
        (s.rowShape.length !== 1 && s.rowShape.length !== 2) ||
        !s.rowShape.every((d) => Number.isSafeInteger(d) && d > 0)
      ) {
        const shape = s.rowShape as unknown;
        return `.rowShape must be [feature] or [component, feature] of positive integers, got ${
          Array.isArray(shape) && shape.every((d) => typeof d === 'number') ? JSON.stringify(shape) : describeValue(shape)
        }`;
      }
      const width = s.rowShape.reduce((a, b) => a * b, 1);
      if (width > MAX_ROW_WIDTH) {
        return `.rowShape declares ${width} values per row, more than the limit of ${MAX_ROW_WIDTH}`;
      }
      if (s.chunks.length === 0) return '.chunks must not be empty while rowShape is set (it is set by the first batch)';
      for (let i = 0; i < s.chunks.length; i++) {
        const c = s.chunks[i];
        if (!(c instanceof Float32Array)) return `.chunks[${i}] must be a Float32Array, got ${describeValue(c)}`;
        if (c.length === 0 || c.length % width !== 0) {
          return `.chunks[${i}] must hold whole rows of ${width} values (rowShape ${JSON.stringify(s.rowShape)}; at least one row), got ${c.length} values`;
        }
      }
      return undefined;
    },
  };
}
