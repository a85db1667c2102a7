/**
 * Every benchmark question in turn (ceiling, kernels, default path, pool, SAE evaluation metrics,
 * small batches, peers),
 * then the README's speed table: the medians of this run, with the machine, the date, the command
 * and the load average at the start and the end. `npm run bench` runs it.
 * Run: node --expose-gc --import tsx bench/all.ts
 *
 * @module
 */
import { cpus, totalmem } from 'node:os';
import { load, type ReadmeRow } from './harness.js';
import { run as ceiling } from './ceiling.js';
import { run as kernels } from './kernels.js';
import { run as defaultPath } from './default-path.js';
import { run as pool } from './pool.js';
import { run as smallBatches } from './small-batches.js';
import { run as saeEval } from './sae-eval.js';
import { run as peers } from './peers.js';

const started = new Date();
const loadAtStart = load();
const rows: ReadmeRow[] = [];
for (const question of [ceiling, kernels, defaultPath, pool, saeEval, smallBatches, peers]) {
  rows.push(...(await question()));
  (globalThis as { gc?: () => void }).gc?.();
}
const cpu = cpus();
console.log('# README table\n');
console.log(
  `Measured ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC by \`npm run bench\` on ${cpu[0]?.model ?? 'unknown'} ` +
    `(${cpu.length} cores, ${(totalmem() / 2 ** 30).toFixed(0)} GiB), Node ${process.version}; load average ${loadAtStart} at the start, ${load()} at the end.\n`,
);
console.log('| path | median | x ceiling (one thread, same script) |\n| --- | ---: | ---: |');
for (const r of rows) console.log(`| ${r.path} | ${r.figure} | ${r.ratio ?? ''} |`);
