/**
 * Plain references for the indexed metrics (TopActivations, DeadFeaturesOverWindow), written
 * independently of src/: the whole stream kept as a list of (value, row index) per feature, a
 * full sort, and counters walked vector by vector. Row-major `number[]` data, shape [B, F] or
 * [B, C, F]; vectors (rows) numbered from 0 in arrival order, a batch's `firstVectorIndex`
 * (if any) being its first row's number.
 */

/** One batch: data (float32 values as numbers), shape, and optionally its first row's number. */
export interface RefIndexedBatch {
  readonly data: readonly number[];
  readonly shape: readonly number[];
  readonly firstVectorIndex?: number;
}

/** Per (component, feature), row-major: the entries of each. */
export interface RefTop {
  /** `[C * F]` lists of `[value, index]`, best first, at most k each. */
  readonly entries: [number, number][][];
  readonly vectors: number;
}

function axes(shape: readonly number[]): { rows: number; components: number; features: number } {
  const rows = shape[0] as number;
  const features = shape[shape.length - 1] as number;
  const components = shape.length === 3 ? (shape[1] as number) : 1;
  return { rows, components, features };
}

/** Walks every (row number, component, feature, value) of the stream, in order. */
function walk(
  batches: readonly RefIndexedBatch[],
  visit: (index: number, g: number, value: number) => void,
): { vectors: number; size: number } {
  let next = 0;
  let size = 0;
  for (const b of batches) {
    const { rows, components, features } = axes(b.shape);
    size = components * features;
    const first = b.firstVectorIndex ?? next;
    if (first < next) throw new Error(`reference: firstVectorIndex ${first} below ${next}`);
    for (let r = 0; r < rows; r++) {
      for (let c = 0; c < components; c++) {
        for (let f = 0; f < features; f++) {
          visit(first + r, c * features + f, b.data[(r * components + c) * features + f] as number);
        }
      }
    }
    next = first + rows;
  }
  return { vectors: next, size };
}

/** The top `k` fired activations of each feature over the stream, by a full sort. */
export function refTopActivations(batches: readonly RefIndexedBatch[], k: number): RefTop {
  const all = new Map<number, [number, number][]>();
  const { vectors, size } = walk(batches, (index, g, value) => {
    if (!(value > 0)) return;
    const list = all.get(g) ?? [];
    list.push([value, index]);
    all.set(g, list);
  });
  const entries: [number, number][][] = [];
  for (let g = 0; g < size; g++) {
    const list = [...(all.get(g) ?? [])];
    list.sort((a, b) => (a[0] !== b[0] ? b[0] - a[0] : a[1] - b[1]));
    entries.push(list.slice(0, k));
  }
  return { entries, vectors };
}

/** Last fired row per feature (-1 never), vectors since, and the dead mask for `window`. */
export function refDeadWindow(
  batches: readonly RefIndexedBatch[],
  window: number,
): { last: number[]; since: number[]; dead: number[]; vectors: number } {
  const lastOf = new Map<number, number>();
  const { vectors, size } = walk(batches, (index, g, value) => {
    if (value > 0) lastOf.set(g, index);
  });
  const last: number[] = [];
  const since: number[] = [];
  const dead: number[] = [];
  for (let g = 0; g < size; g++) {
    const l = lastOf.get(g) ?? -1;
    last.push(l);
    // Did it fire on any of the last `window` vectors: rows [vectors - window, vectors)?
    let firedInWindow = false;
    for (let i = Math.max(0, vectors - window); i < vectors; i++) if (i === l) firedInWindow = true;
    // Never fired: counted from the start (as if it fired just before vector 0), so nothing is
    // dead before a whole window has been seen.
    since.push(vectors - 1 - l);
    dead.push(firedInWindow || vectors < window ? 0 : 1);
  }
  return { last, since, dead, vectors };
}
