/**
 * Run with `npm run example:service`: a Node service that computes SAE metrics on a worker pool from a
 * stream of activation events and logs them every 8192 activation vectors.
 */
import { runService } from './service.js';

const started = Date.now();
const windows = await runService({
  batches: 64,
  batchRows: 512,
  learnedFeatures: 1024,
  inputFeatures: 256,
  logEvery: 8192,
  workers: 2,
  seed: 1,
  log: (line) => console.log(line),
});
console.log(`${windows.length} windows of 8192 vectors in ${Date.now() - started} ms`);
