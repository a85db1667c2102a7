#!/usr/bin/env node
// Compiles the fused WebAssembly SIMD pass (src/kernels/wasm/assembly/fused.ts, AssemblyScript)
// into dist/wasm/fused.wasm with the assemblyscript package's programmatic API.
//
// The module imports its memory (shared, up to 4 GiB) and exports none: the pool's shared
// WebAssembly.Memory is imported by every worker's instance, so shards are read in place.
// Usage: node scripts/build-wasm.mjs [--text] (--text also writes dist/wasm/fused.wat)
import { mkdir } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const source = join(root, 'src/kernels/wasm/assembly/fused.ts');
const outFile = join(root, 'dist/wasm/fused.wasm');

await mkdir(dirname(outFile), { recursive: true });
const args = [
  relative(root, source),
  '--outFile', relative(root, outFile),
  '-O3',
  '--noAssert',
  '--enable', 'simd,threads',
  '--importMemory',
  '--sharedMemory',
  '--initialMemory', '1',
  '--maximumMemory', '65536',
  '--noExportMemory',
  '--runtime', 'stub',
];
if (process.argv.includes('--text')) args.push('--textFile', relative(root, outFile.replace(/\.wasm$/, '.wat')));

const { error, stderr } = await asc.main(args, { baseDir: root, stdout: process.stdout, stderr: process.stderr });
if (error) {
  console.error(`build-wasm: ${error.message}`);
  if (stderr) console.error(stderr.toString());
  process.exit(1);
}
console.log(`build-wasm: wrote ${relative(root, outFile)}`);
