#!/usr/bin/env node
// Compiles the WebAssembly SIMD kernels (AssemblyScript) with the assemblyscript package's
// programmatic API:
// - the fused shard pass, src/kernels/wasm/assembly/fused.ts -> dist/wasm/fused.wasm (importing a
//   shared memory, for the pool's workers) and dist/wasm/fused-local.wasm (the same code importing
//   an unshared memory, for the in-thread path: copying into an unshared buffer is a plain memcpy,
//   into a shared one a slower word-by-word copy);
// - the matrix kernels of the train-sae example, examples/train-sae/assembly/sae.ts ->
//   dist/wasm/train-sae.wasm.
//
// The modules import their memory (up to 4 GiB) and export none: the pool's shared
// WebAssembly.Memory is imported by every worker's instance, so shards are read in place; the
// example's kernels work on the buffers its model allocates in the memory it imports.
// Usage: node scripts/build-wasm.mjs [--text] (--text also writes a .wat beside each .wasm)
import { mkdir, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import asc from 'assemblyscript/asc';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
// A build starts from an empty dist/: tsc never removes the output of a source that is gone.
await rm(join(root, 'dist'), { recursive: true, force: true });

const modules = [
  { source: 'src/kernels/wasm/assembly/fused.ts', outFile: 'dist/wasm/fused.wasm', shared: true },
  { source: 'src/kernels/wasm/assembly/fused.ts', outFile: 'dist/wasm/fused-local.wasm', shared: false },
  { source: 'examples/train-sae/assembly/sae.ts', outFile: 'dist/wasm/train-sae.wasm', shared: true },
];

for (const { source, outFile, shared } of modules) {
  await mkdir(dirname(join(root, outFile)), { recursive: true });
  const args = [
    source,
    '--outFile', outFile,
    '-O3',
    '--noAssert',
    '--enable', shared ? 'simd,threads' : 'simd',
    '--importMemory',
    ...(shared ? ['--sharedMemory'] : []),
    '--initialMemory', '1',
    '--maximumMemory', '65536',
    '--noExportMemory',
    '--runtime', 'stub',
  ];
  if (process.argv.includes('--text')) args.push('--textFile', outFile.replace(/\.wasm$/, '.wat'));

  // The compiler writes its diagnostics to process.stderr itself.
  const { error } = await asc.main(args, { baseDir: root, stdout: process.stdout, stderr: process.stderr });
  if (error) {
    console.error(`build-wasm: ${source}: ${error.message}`);
    process.exit(1);
  }
  console.log(`build-wasm: wrote ${relative(root, join(root, outFile))}`);
}
