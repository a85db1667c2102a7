/**
 * Run with `npm run example` (flags after `--`, e.g. `npm run example -- --learned 512 --seed 2`): an
 * SAE learns the ground-truth features of Sharkey et al.'s toy data while sae-metrics reports its
 * metrics every window; exits with code 1 when MMCS does not reach the target within the budget.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_OPTIONS, train, type TrainOptions } from './train.js';
import type { BackendOption, GpujsMode } from '../../src/index.js';

const FLAGS = {
  features: ['groundTruthFeatures', 'ground-truth features of the toy data'],
  dims: ['inputDims', 'dimensions of the toy data'],
  active: ['activePerSample', 'expected active features per sample'],
  decay: ['probabilityDecay', 'decay of the feature probabilities with their index'],
  learned: ['learnedFeatures', 'learned features of the SAE'],
  batch: ['batchSize', 'vectors per training batch'],
  lr: ['learningRate', "Adam's learning rate"],
  l1: ['l1Coefficient', 'L1 coefficient'],
  window: ['windowVectors', 'vectors per metrics window (one report line)'],
  'resample-inputs': ['resampleInputs', 'vectors whose losses weight the resampling draw'],
  target: ['targetMmcs', 'stop once MMCS reaches this'],
  'max-steps': ['maxSteps', 'step budget'],
  'max-seconds': ['maxSeconds', 'time budget in seconds'],
  seed: ['seed', 'seed of data, weights and resampling'],
} as const satisfies Record<string, readonly [keyof TrainOptions, string]>;

function usage(): string {
  const lines = Object.entries(FLAGS).map(([flag, [key, help]]) => `  --${flag.padEnd(16)} ${help} (default ${String(DEFAULT_OPTIONS[key])})`);
  return [
    'usage: npm run example -- [flags]',
    ...lines,
    `  --${'resample-at'.padEnd(16)} comma-separated steps at which dead neurons are resampled (default ${DEFAULT_OPTIONS.resampleAt.join(',')}; "none" for none)`,
    `  --${'backend'.padEnd(16)} auto | wasm | gpujs | js (default auto; env SAE_METRICS_BACKEND overrides)`,
    `  --${'gpujs-mode'.padEnd(16)} gpu.js mode for --backend gpujs (gpu, headlessgl, cpu, ...)`,
  ].join('\n');
}

function parse(argv: string[]): Partial<TrainOptions> {
  const { values } = parseArgs({
    args: argv,
    strict: true,
    options: {
      ...Object.fromEntries(Object.keys(FLAGS).map((flag) => [flag, { type: 'string' as const }])),
      'resample-at': { type: 'string' },
      backend: { type: 'string' },
      'gpujs-mode': { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(usage());
    process.exit(0);
  }
  const options: Record<string, unknown> = {};
  for (const [flag, [key]] of Object.entries(FLAGS)) {
    const text = (values as Record<string, unknown>)[flag];
    if (typeof text !== 'string') continue;
    const value = Number(text);
    if (text.trim() === '' || !Number.isFinite(value)) throw new RangeError(`train-sae: --${flag} must be a number, got ${JSON.stringify(text)}`);
    options[key] = value;
  }
  const at = values['resample-at'];
  if (typeof at === 'string') {
    options.resampleAt = at === 'none' ? [] : at.split(',').map((s) => {
      const step = Number(s);
      if (s.trim() === '' || !Number.isSafeInteger(step)) throw new RangeError(`train-sae: --resample-at must be a comma-separated list of steps, got ${JSON.stringify(at)}`);
      return step;
    });
  }
  if (typeof values.backend === 'string') options.backend = values.backend as BackendOption;
  if (typeof values['gpujs-mode'] === 'string') options.gpujsMode = values['gpujs-mode'] as GpujsMode;
  return options as Partial<TrainOptions>;
}

let options: Partial<TrainOptions>;
try {
  options = parse(process.argv.slice(2));
} catch (error) {
  console.error((error as Error).message);
  console.error(usage());
  process.exit(2);
}

try {
  const result = await train(options, (line) => console.log(line));
  const target = options.targetMmcs ?? DEFAULT_OPTIONS.targetMmcs;
  console.log(
    `${result.reached ? 'reached' : 'did not reach'} MMCS ${target}: final MMCS ${result.finalMmcs.toFixed(4)} (from ${result.initialMmcs.toFixed(4)}) ` +
      `after ${result.steps} steps (${result.vectors} vectors) in ${result.seconds.toFixed(1)} s on ${result.backend}`,
  );
  process.exitCode = result.reached ? 0 : 1;
} catch (error) {
  // Messages name their source (train-sae, a metric, a kernel): printed as they are, without a stack.
  console.error((error as Error).message);
  process.exitCode = 2;
}
