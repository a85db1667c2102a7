/**
 * Runs `createGpujsKernel({ mode: 'gpu' })` in a child process without DISPLAY, so that no GL
 * context can exist whatever runs the suite, and returns what it said.
 */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

/** A preload that makes the optional `gl` package unresolvable (a machine where it is not built). */
export const NO_GL = fileURLToPath(new URL('../fixtures/no-gl.cjs', import.meta.url));

export function fallbackWithoutDisplay(preload: readonly string[] = []): { mode?: string; error?: string } {
  const index = fileURLToPath(new URL('../../src/kernels/gpujs/index.ts', import.meta.url));
  const script = `const { createGpujsKernel } = await import(${JSON.stringify(index)});
try { const k = createGpujsKernel({ mode: 'gpu' }); console.log(JSON.stringify({ mode: k.mode })); }
catch (e) { console.log(JSON.stringify({ error: e.message })); }`;
  const env = { ...process.env };
  delete env.DISPLAY;
  const args = [...preload.flatMap((p) => ['--require', p]), '--import', 'tsx', '--input-type=module', '-e', script];
  const child = spawnSync(process.execPath, args, { env, encoding: 'utf8' });
  expect(child.status, child.stderr).toBe(0);
  return JSON.parse(child.stdout.trim().split('\n').pop() as string) as { mode?: string; error?: string };
}
