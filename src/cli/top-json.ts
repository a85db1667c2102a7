/**
 * The JSON file `--top-out` writes: each feature's K largest activations with the global index of
 * the vector each came from, for a feature dashboard. Vectors are numbered from 0 in the order
 * they were read, across all the input files (a row's components share its number); `files`
 * gives each file's first vector, so a vector `i` is row `i - firstVector` of the last file whose
 * `firstVector` is at most `i`.
 *
 * ```text
 * { "format": "sae-metrics/top-activations", "version": 1,
 *   "k": 10, "vectors": 2048, "features": 512, "components": null,
 *   "interrupted": false,
 *   "files": [{ "path": "a.npy", "tensor": null, "firstVector": 0, "vectors": 1024 }, ...],
 *   "top": [{ "values": [3.5, 2.25], "vectors": [17, 1030] }, ...] }
 * ```
 *
 * `top[f]` (with a component axis, `top[c][f]`) lists feature f's activations largest first (ties:
 * the lower vector first) and the vector of each; a feature that fired (x > 0) on fewer than K
 * vectors has fewer entries, none if it never fired. Values are the float32 activations as read,
 * written exactly (`"Infinity"` as a string, which JSON cannot hold).
 *
 * @module
 */
import type { TopActivationsResult } from '../functional/top-activations.js';

/** What the file says about the run besides the activations. */
export interface TopJsonInfo {
  readonly k: number;
  readonly componentAxis: boolean;
  readonly components: number;
  readonly features: number;
  readonly interrupted: boolean;
  /** Each input file (segment) in reading order, with its rows. */
  readonly files: readonly { readonly path: string; readonly tensor: string | undefined; readonly rows: number }[];
}

/** A file's format name and version. */
export const TOP_JSON_FORMAT = 'sae-metrics/top-activations';
export const TOP_JSON_VERSION = 1;

function number(x: number): string {
  return Number.isFinite(x) ? JSON.stringify(x) : `"${String(x)}"`;
}

/** The text of the `--top-out` file (see the module comment for its schema). */
export function topActivationsJson(result: TopActivationsResult, info: TopJsonInfo): string {
  const k = info.k;
  const values = result.values.data as Float64Array;
  const indices = result.indices.data as Float64Array;
  const counts = result.counts.data as Float64Array;
  const feature = (g: number): string => {
    const n = counts[g] as number;
    const v: string[] = [];
    const i: string[] = [];
    for (let e = 0; e < n; e++) {
      v.push(number(values[g * k + e] as number));
      i.push(String(indices[g * k + e]));
    }
    return `{"values":[${v.join(',')}],"vectors":[${i.join(',')}]}`;
  };
  const perComponent = (c: number): string => {
    const rows: string[] = [];
    for (let f = 0; f < info.features; f++) rows.push(feature(c * info.features + f));
    return `[\n${rows.join(',\n')}\n]`;
  };
  let first = 0;
  const files = info.files.map((f) => {
    const entry = { path: f.path, tensor: f.tensor ?? null, firstVector: first, vectors: f.rows };
    first += f.rows;
    return entry;
  });
  const head = JSON.stringify({
    format: TOP_JSON_FORMAT,
    version: TOP_JSON_VERSION,
    k,
    vectors: result.vectors.item(),
    features: info.features,
    components: info.componentAxis ? info.components : null,
    interrupted: info.interrupted,
    files,
  });
  const top = info.componentAxis ? `[${Array.from({ length: info.components }, (_, c) => perComponent(c)).join(',')}]` : perComponent(0);
  return `${head.slice(0, -1)},"top":${top}}\n`;
}
