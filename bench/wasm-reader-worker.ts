/**
 * A read-only worker for the benchmark: the `readSum` export of the package's compiled fused
 * module (`dist/wasm/fused.wasm`, the pass behind `createWasmKernel(...).readSum`), instantiated on
 * the shared memory it is given, summing the parts of the arrays it is sent (byte offset and float
 * count in that memory). Plain JavaScript, evaluated by `WasmReaders` in `kernels.ts` (a worker
 * needs no loader for it).
 *
 * @module
 */

/** A part of an array in the shared memory: `length` floats from `byteOffset`. */
export interface ReadPart {
  readonly byteOffset: number;
  readonly length: number;
}

/** The worker's source; its `workerData` is `{ module: WebAssembly.Module, memory: WebAssembly.Memory }`. */
export const WASM_READER_SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { module, memory } = workerData;
const { readSum } = new WebAssembly.Instance(module, { env: { memory } }).exports;
parentPort.on('message', (parts) => {
  let s = 0;
  for (const p of parts) s += readSum(p.byteOffset, p.length);
  parentPort.postMessage(s);
});
`;
