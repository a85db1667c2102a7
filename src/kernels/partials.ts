/**
 * Partial states of many parts from one shard: the union of what the parts need is computed by
 * one fused pass, and each part is made from those statistics.
 *
 * @module
 */
import type { Batch, RowRange, StatePart } from '../functional/core.js';
import { jsFusedKernel } from './js-fused.js';
import type { FusedKernel, ShardNeeds } from './types.js';

/** The partial state of one part, made from the JavaScript fused pass (the parts' `fromBatch`). */
export function fromFusedPass<S>(part: StatePart<S>, batch: Batch, rows: RowRange): S {
  const fromStats = part.fromStats as NonNullable<StatePart<S>['fromStats']>;
  return fromStats(jsFusedKernel(batch, rows, part.needs ?? {}), rows, batch);
}

/**
 * The partial state of every distinct part (by `id`) for `rows` of a validated batch, with one
 * fused pass for all the parts that are made from shard statistics.
 */
export function computePartials(
  parts: Iterable<StatePart<unknown>>,
  batch: Batch,
  rows: RowRange,
  kernel: FusedKernel = jsFusedKernel,
): Map<string, unknown> {
  const distinct = new Map<string, StatePart<unknown>>();
  for (const part of parts) if (!distinct.has(part.id)) distinct.set(part.id, part);
  const needs: { -readonly [K in keyof ShardNeeds]: boolean } = {};
  for (const part of distinct.values()) {
    for (const [k, v] of Object.entries(part.needs ?? {})) if (v) needs[k as keyof ShardNeeds] = true;
  }
  const stats = Object.keys(needs).length > 0 ? kernel(batch, rows, needs) : {};
  const out = new Map<string, unknown>();
  for (const [id, part] of distinct) {
    out.set(id, part.fromStats ? part.fromStats(stats, rows, batch) : part.fromBatch(batch, rows));
  }
  return out;
}
