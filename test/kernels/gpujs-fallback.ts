/**
 * Runs a snippet in a child process, so that what it loads (gpu.js, the native `gl`), the display
 * it sees and the packages it can resolve are its own, whatever runs the suite; returns the JSON
 * value it prints last.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

/** A preload that makes the optional `gl` package unresolvable (a machine where it is not built). */
export const NO_GL = fileURLToPath(new URL('../fixtures/no-gl.cjs', import.meta.url));

/** The path of a source module, for a snippet's `import()`. */
export const source = (path: string): string => JSON.stringify(fileURLToPath(new URL(`../../src/${path}`, import.meta.url)));

export interface ChildOptions {
  /** Modules to `--require` first. */
  readonly preload?: readonly string[];
  /** Variables to set (`undefined`: removed). DISPLAY is removed unless given. */
  readonly env?: Readonly<Record<string, string | undefined>>;
}

/** Runs an ES module snippet (top-level await allowed) and parses the last line it prints. */
export function inChild<T>(script: string, options: ChildOptions = {}): T {
  const env: Record<string, string | undefined> = { ...process.env, DISPLAY: undefined, ...options.env };
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete env[k];
  const args = [...(options.preload ?? []).flatMap((p) => ['--require', p]), '--import', 'tsx', '--input-type=module', '-e', script];
  const child = spawnSync(process.execPath, args, { env, encoding: 'utf8', timeout: 120_000 });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout.trim().split('\n').pop() as string) as T;
}

/** `createGpujsKernel({ mode: 'gpu' })` in a child without a display: the mode it runs, or its error. */
export function fallbackWithoutDisplay(preload: readonly string[] = []): { mode?: string; error?: string } {
  return inChild(
    `const { createGpujsKernel } = await import(${source('kernels/gpujs/index.ts')});
try { const k = createGpujsKernel({ mode: 'gpu' }); console.log(JSON.stringify({ mode: k.mode })); }
catch (e) { console.log(JSON.stringify({ error: e.message })); }`,
    { preload },
  );
}
