/**
 * Rebuilds a state part from its plain-data recipe, so that a worker thread can compute the same
 * partial states as the thread that declared the part.
 *
 * @module
 */
import type { PartRecipe, StatePart } from '../core.js';
import { activationHistogramPart } from './activation-histogram.js';
import { activationListPart } from './activation-list.js';
import { activationMomentsPart } from './activation-moments.js';
import { firedCountPart } from './fired-count.js';
import { lastFiredPart } from './last-fired.js';
import { lossSumsPart } from './loss-sums.js';
import { nonZeroCountPart } from './non-zero-count.js';
import { isVectorQuantity, momentsPart, vectorSumPart } from './reconstruction.js';
import { rowLossItemsPart, rowLossSumPart, type RowLoss } from './row-losses.js';
import { topActivationsPart } from './top-activations.js';

const num = (v: unknown): number => v as number;
const opt = (v: unknown): number | undefined => (v === null ? undefined : (v as number));

const FACTORIES: Readonly<Record<string, (args: readonly unknown[]) => StatePart<unknown>>> = {
  rowLossSum: (a) => rowLossSumPart(a[0] as RowLoss, num(a[1])) as StatePart<unknown>,
  rowLossItems: (a) => rowLossItemsPart(a[0] as RowLoss, num(a[1])) as StatePart<unknown>,
  firedCount: (a) => firedCountPart(num(a[0]), opt(a[1])) as StatePart<unknown>,
  nonZeroCount: (a) => nonZeroCountPart(opt(a[0])) as StatePart<unknown>,
  activationList: () => activationListPart() as StatePart<unknown>,
  lossSums: (a) => lossSumsPart(num(a[0])) as StatePart<unknown>,
  lastFired: (a) => lastFiredPart(num(a[0]), opt(a[1])) as StatePart<unknown>,
  topActivations: (a) => topActivationsPart(num(a[0]), opt(a[1]), num(a[2])) as StatePart<unknown>,
  activationMoments: (a) => activationMomentsPart(num(a[0]), opt(a[1])) as StatePart<unknown>,
  activationHistogram: (a) =>
    activationHistogramPart(num(a[0]), opt(a[1]), { lowLog10: num(a[2]), highLog10: num(a[3]), binsPerDecade: num(a[4]) }) as StatePart<unknown>,
  vectorSum: (a) => {
    if (!isVectorQuantity(a[0])) throw new TypeError(`partFromRecipe: unknown vector quantity ${JSON.stringify(a[0])}`);
    return vectorSumPart(a[0], num(a[1])) as StatePart<unknown>;
  },
  moments: (a) => momentsPart(a[0] === 'residual' ? 'residual' : 'source', num(a[1]), num(a[2])) as StatePart<unknown>,
};

/**
 * The part a recipe describes.
 *
 * @throws {TypeError} for an unknown recipe kind.
 */
export function partFromRecipe(recipe: PartRecipe): StatePart<unknown> {
  const make = FACTORIES[recipe.kind];
  if (make === undefined) throw new TypeError(`partFromRecipe: unknown part kind ${JSON.stringify(recipe.kind)}`);
  return make(recipe.args);
}
