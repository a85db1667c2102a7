/**
 * Runs every `@example` block in the doc comments of `src/` and every ts/js block of the
 * README, and checks each `expression; // expected` line: the comment (after its last `=`, if any)
 * is evaluated with `tensor(x)` meaning `x`, and compared with the value (tensors as nested arrays)
 * to the number of decimals the comment shows.
 */
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import * as api from '../src/index.js';
import * as functional from '../src/functional/index.js';
import * as kernels from '../src/kernels/index.js';
import { from, lastValueFrom, of, toArray } from 'rxjs';

const root = fileURLToPath(new URL('..', import.meta.url));

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    return statSync(path).isDirectory() ? sourceFiles(path) : path.endsWith('.ts') ? [path] : [];
  });
}

interface Example {
  readonly where: string;
  readonly code: string;
}

function docExamples(path: string): Example[] {
  const text = readFileSync(path, 'utf8');
  const out: Example[] = [];
  const re = /@example\s*\n((?:\s*\*.*\n)*?)\s*\*\s*```ts\n((?:\s*\*.*\n)*?)\s*\*\s*```/g;
  for (const m of text.matchAll(re)) {
    const line = text.slice(0, m.index).split('\n').length;
    const code = (m[2] as string)
      .split('\n')
      .map((l) => l.replace(/^\s*\* ?/, ''))
      .join('\n');
    out.push({ where: `${relative(root, path)}:${line}`, code });
  }
  return out;
}

function readmeExamples(): Example[] {
  const text = readFileSync(join(root, 'README.md'), 'utf8');
  return [...text.matchAll(/```(?:ts|js)\n([\s\S]*?)```/g)].map((m, i) => ({ where: `README.md block ${i + 1}`, code: m[1] as string }));
}

type Normal = number | string | boolean | null | Normal[] | { [k: string]: Normal };

function normalize(value: unknown): Normal {
  if (value instanceof api.Tensor) return value.toArray() as Normal;
  if (Array.isArray(value)) return value.map(normalize);
  if (typeof value === 'object' && value !== null) {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, normalize(v)]));
  }
  return value as Normal;
}

function expectClose(actual: Normal, expected: Normal, tolerance: number, path: string): void {
  if (typeof expected === 'number') {
    expect(typeof actual, path).toBe('number');
    if (Number.isNaN(expected)) expect(Number.isNaN(actual as number), path).toBe(true);
    else expect(Math.abs((actual as number) - expected), `${path}: ${String(actual)} vs ${expected}`).toBeLessThanOrEqual(tolerance);
    return;
  }
  if (Array.isArray(expected)) {
    expect(Array.isArray(actual), path).toBe(true);
    expect((actual as Normal[]).length, path).toBe(expected.length);
    expected.forEach((e, i) => expectClose((actual as Normal[])[i] as Normal, e, tolerance, `${path}[${i}]`));
    return;
  }
  if (typeof expected === 'object' && expected !== null) {
    expect(Object.keys(actual as object).sort(), path).toEqual(Object.keys(expected).sort());
    for (const [k, e] of Object.entries(expected)) expectClose((actual as Record<string, Normal>)[k] as Normal, e, tolerance, `${path}.${k}`);
    return;
  }
  expect(actual, path).toEqual(expected);
}

function depth(text: string): number {
  let d = 0;
  for (const ch of text.replace(/'[^']*'|"[^"]*"/g, '')) {
    if ('([{'.includes(ch)) d++;
    else if (')]}'.includes(ch)) d--;
  }
  return d;
}

/**
 * Turns `expr; // expected` statements (an expression may span lines) into checks; returns the
 * code to run and how many checks it makes.
 */
function instrument(code: string): { body: string; checks: number } {
  let checks = 0;
  const out: string[] = [];
  let pending: string[] = [];
  for (const line of code.split('\n')) {
    if (/^\s*import\s/.test(line)) continue;
    const m = /^(.*?);\s*\/\/\s*(.+)$/.exec(line);
    const statement = [...pending, m ? (m[1] as string) : line].join('\n');
    if (depth(statement) !== 0) {
      pending.push(line);
      continue;
    }
    pending = [];
    if (!m || /^\s*(const|let|var)\s/.test(statement)) {
      out.push(m ? `${statement};` : statement);
      continue;
    }
    const comment = (m[2] as string).trim();
    const expected = comment.includes('=') ? comment.slice(comment.lastIndexOf('=') + 1).trim() : comment;
    const decimals = /\d\.(\d+)/.exec(expected)?.[1]?.length;
    const tolerance = decimals !== undefined && decimals <= 4 ? 0.5 * 10 ** -decimals : 1e-9;
    const expr = statement.trim();
    checks++;
    out.push(
      `__check(${expr}, (() => { const tensor = (x) => x; return (${expected}); })(), ${tolerance}, ${JSON.stringify(expr)});`,
    );
  }
  if (pending.length) throw new Error(`unbalanced example code: ${pending.join('\n')}`);
  return { body: out.join('\n'), checks };
}

const scope: Record<string, unknown> = { of, from, lastValueFrom, toArray, ...kernels, ...functional, ...api };
const examples = [...sourceFiles(join(root, 'src')).flatMap(docExamples), ...readmeExamples()];

describe('doc examples', () => {
  it('finds the examples', () => {
    expect(examples.length).toBeGreaterThanOrEqual(25);
  });

  it.each(examples.map((e) => [e.where, e] as const))('%s runs and its values hold', async (_where, example) => {
    const { body, checks } = instrument(example.code);
    const check = (value: unknown, expected: unknown, tolerance: number, expr: string): void =>
      expectClose(normalize(value), normalize(expected), tolerance, expr);
    const names = Object.keys(scope);
    // Examples may await (a pool, a stream), so they run as an async function.
    const AsyncFunction = (async () => undefined).constructor as new (...args: string[]) => (...a: unknown[]) => Promise<void>;
    const run = new AsyncFunction(...names, '__check', body);
    await run(...names.map((n) => scope[n]), check);
    expect(checks, 'each example states at least one value').toBeGreaterThan(0);
  });
});
