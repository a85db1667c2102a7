/**
 * removePendingOutputs (a second Ctrl-C, an exit that does not wait for the run) removes every
 * temporary output file made so far, even one whose creation has just completed on the thread
 * pool while its continuation has not run yet: the signal's handler and the open's completion
 * are two callbacks of the same event-loop turn, in either order.
 */
import { readdirSync } from 'node:fs';
import * as fsp from 'node:fs/promises';
import { afterAll, describe, expect, it, vi } from 'vitest';
import { scratchDir } from './files.js';

/** Set by the test: runs right after the real open completes, before prepareOutput sees it. */
let afterOpen: (() => void) | undefined;

vi.mock('node:fs/promises', async (importOriginal) => {
  const real = await importOriginal<typeof fsp>();
  return {
    ...real,
    open: async (...args: Parameters<typeof fsp.open>) => {
      const handle = await real.open(...args);
      afterOpen?.();
      return handle;
    },
  };
});

const { prepareOutput, removePendingOutputs } = await import('../../src/cli/output.js');

describe('removePendingOutputs', () => {
  const tmp = scratchDir('reattack-pool-pending-');
  afterAll(() => tmp.remove());

  it('removes a temporary file whose open completed but whose continuation has not run', async () => {
    const temporaries = (): string[] => readdirSync(tmp.dir).filter((name) => name.endsWith('.tmp'));
    let seen: string[] = [];
    afterOpen = () => {
      seen = temporaries();
      removePendingOutputs();
    };
    const out = await prepareOutput(tmp.path('top.json'), 'the top activations');
    afterOpen = undefined;
    // The file existed when the exit came, and the exit removed it.
    expect(seen).toHaveLength(1);
    expect(temporaries()).toEqual([]);
    await out.discard();
    expect(readdirSync(tmp.dir)).toEqual([]);
  });

  it('still removes files made and not committed, and leaves committed outputs', async () => {
    const a = await prepareOutput(tmp.path('a.json'), 'a');
    const b = await prepareOutput(tmp.path('b.json'), 'b');
    await a.commit('{}');
    removePendingOutputs();
    expect(readdirSync(tmp.dir).sort()).toEqual(['a.json']);
    await b.discard();
    expect(readdirSync(tmp.dir).sort()).toEqual(['a.json']);
  });
});
