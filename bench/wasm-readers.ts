/**
 * Read-only worker threads over one shared WebAssembly memory: each runs the `readSum` export of
 * the package's compiled fused module (`dist/wasm/fused.wasm`) over a contiguous share of every
 * array. The two-thread read-only ceiling of the benchmarks.
 *
 * @module
 */
import { Worker } from 'node:worker_threads';
import { wasmModule } from '../src/kernels/wasm/index.js';

/** A part of an array in the shared memory: `length` floats from `byteOffset`. */
interface ReadPart {
  readonly byteOffset: number;
  readonly length: number;
}

/** The worker (plain JavaScript, evaluated: it needs no loader); `workerData` is `{ module, memory }`. */
const SOURCE = `
const { parentPort, workerData } = require('node:worker_threads');
const { module, memory } = workerData;
const { readSum } = new WebAssembly.Instance(module, { env: { memory } }).exports;
parentPort.on('message', (parts) => {
  let s = 0;
  for (const p of parts) s += readSum(p.byteOffset, p.length);
  parentPort.postMessage(s);
});
`;

export class WasmReaders {
  readonly #workers: Worker[];
  readonly #ready: Promise<void>;

  constructor(threads: number, memory: WebAssembly.Memory) {
    const module = wasmModule();
    this.#workers = Array.from({ length: threads }, () => new Worker(SOURCE, { eval: true, workerData: { module, memory }, execArgv: [] }));
    // Ready once every worker has answered an empty job (it has instantiated the module).
    this.#ready = Promise.all(this.#workers.map((w) => this.#send(w, []))).then(() => undefined);
  }

  #send(w: Worker, parts: readonly ReadPart[]): Promise<number> {
    return new Promise<number>((resolve, reject) => {
      const onError = (error: Error): void => reject(error);
      w.once('error', onError);
      w.once('message', (s: number) => {
        w.off('error', onError);
        resolve(s);
      });
      w.postMessage(parts);
    });
  }

  /** Each thread reads its share of every array (views on the readers' memory); the sum of the sums. */
  async read(arrays: readonly Float32Array[]): Promise<number> {
    await this.#ready;
    const threads = this.#workers.length;
    const jobs: ReadPart[][] = this.#workers.map(() => []);
    for (const a of arrays) {
      // Shares of whole 256-float blocks (the pass's unrolled block).
      const per = Math.ceil(a.length / threads / 256) * 256;
      for (let t = 0; t < threads; t++) {
        const s = Math.min(a.length, t * per);
        const e = Math.min(a.length, (t + 1) * per);
        if (e > s) (jobs[t] as ReadPart[]).push({ byteOffset: a.byteOffset + s * 4, length: e - s });
      }
    }
    const sums = await Promise.all(this.#workers.map((w, t) => this.#send(w, jobs[t] as ReadPart[])));
    return sums.reduce((x, y) => x + y, 0);
  }

  async close(): Promise<void> {
    await Promise.all(this.#workers.map((w) => w.terminate()));
  }
}
