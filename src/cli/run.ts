/**
 * The `sae-metrics` command, callable in-process: {@link run} takes the arguments and the output
 * streams and returns the exit code. `main.ts` calls it with the process's own.
 *
 * @module
 */
import { stat } from 'node:fs/promises';
import { parseCommandLine, parseMergeCommandLine, MERGE_USAGE, USAGE, type CommandLine, type MergeCommandLine } from './args.js';
import { computeStates, type RunIO } from './compute.js';
import { CliError, errorLine, UsageError } from './errors.js';
import { openInputs, outputOverFile, type Inputs } from './inputs.js';
import { groupDigits } from './numbers.js';
import { prepareOutput, type PreparedOutput } from './output.js';
import { packageVersion } from './version.js';
import type { PreparedOutputs } from './results.js';

export { DEFAULT_BATCH_BYTES, MAX_DEFAULT_BATCH_ROWS, defaultBatchRows, stateBytes, type RunIO } from './compute.js';

export { packageVersion } from './version.js';

/**
 * Runs `sae-metrics` with `argv` (the arguments after the program name). Writes the report to
 * `io.stdout` and nothing else there; writes one line to `io.stderr` on an error (and the
 * progress bar when it is a terminal and the output is not JSON). Output paths are checked before
 * any input is read; computed results are always printed, even when the histogram cannot be
 * written. When `io.signal` aborts (Ctrl-C), no more batches are read, the ones read are folded
 * in, and the results so far are printed (or it says that nothing was computed).
 *
 * `sae-metrics merge PART.json...` (`argv[0]` is `merge`) merges shards' parts instead (see
 * {@link runMerge}); `--shard I/N --state-out PART.json` computes one shard and writes its part.
 *
 * @returns the exit code: 0 done, 1 bad input or run-time error, 2 bad command line, 130
 *   interrupted.
 */
export async function run(argv: readonly string[], io: RunIO): Promise<number> {
  if (argv[0] === 'merge') return runMerge(argv.slice(1), io);
  if (argv[0] === 'coordinate') return (await import('./queue/coordinate.js')).runCoordinate(argv.slice(1), io);
  if (argv[0] === 'worker') return (await import('./queue/worker.js')).runWorker(argv.slice(1), io);
  let inputs: Inputs | undefined;
  let outputs: PreparedOutputs | undefined;
  let stateFile: PreparedOutput | undefined;
  try {
    const cl = parseCommandLine(argv, io.env ?? process.env);
    if (cl.help) {
      io.stdout.write(USAGE);
      return 0;
    }
    if (cl.version) {
      io.stdout.write(`sae-metrics ${packageVersion()}\n`);
      return 0;
    }
    if (cl.shard !== undefined) {
      // An output that cannot be written fails now, not after the whole computation.
      stateFile = await prepareOutput(cl.stateOut as string, 'the shard state');
      return await runShard(cl, stateFile, io);
    }
    const { computedMetrics, prepareOutputs, writeResults } = await import('./results.js');
    outputs = await prepareOutputs(cl);
    inputs = await openInputs(cl);
    const computed = computedMetrics(cl.metrics, cl);
    const c = await computeStates(cl, inputs, computed, io, { progress: !cl.json, totalRows: inputs.vectors });
    const { result } = c;
    if (result.vectors === 0) {
      io.stderr.write('sae-metrics: interrupted: nothing was computed\n');
      return 130;
    }
    const source = {
      names: cl.metrics,
      computed,
      options: cl,
      inputs: {
        files: cl.files,
        tensor: inputs.segments[0]?.learned.name,
        source: cl.source,
        decoded: cl.decoded,
        componentAxis: inputs.componentAxis,
        components: inputs.components,
        features: inputs.features,
        inputFeatures: inputs.inputFeatures,
        dtypes: inputs.dtypes,
        segments: inputs.segments.map((g) => ({ path: g.learned.path, tensor: g.learned.name, rows: g.rows })),
        totalVectors: inputs.vectors,
      },
      parts: result.parts,
      run: {
        vectors: result.vectors,
        interrupted: result.interrupted,
        backend: c.backend,
        workers: c.workers,
        batchRows: c.batchRows,
        batches: result.batches,
        bytes: result.bytes,
        elapsedSeconds: c.elapsedSeconds,
      },
    };
    return await writeResults(source, cl, outputs, io);
  } catch (error) {
    io.stderr.write(`${errorLine(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  } finally {
    await outputs?.discard();
    await stateFile?.discard();
    await inputs?.close();
  }
}

/** `--shard I/N --state-out PART.json`: computes the shard, writes its part, says so in one line. */
async function runShard(cl: CommandLine, stateFile: PreparedOutput, io: RunIO): Promise<number> {
  const shard = cl.shard as NonNullable<CommandLine['shard']>;
  const { computeShard, encodePart } = await import('./shard.js');
  const part = await computeShard(cl, shard, io);
  await stateFile.commit(encodePart(part));
  const rows = part.rows.end - part.rows.start;
  io.stdout.write(
    `shard ${shard.index} of ${shard.count}: ${groupDigits(rows)} of ${groupDigits(part.inputs.segments.reduce((n, s) => n + (s.learned.shape[0] as number), 0))} vectors (rows ${groupDigits(part.rows.start)} to ${groupDigits(part.rows.end)}), state written to ${stateFile.path}\n`,
  );
  return 0;
}

/**
 * Refuses an output that is one of the parts by another path than the command line's check
 * tells (a linked folder, a link): see {@link outputOverFile}.
 */
async function refuseOutputsOverParts(cl: MergeCommandLine): Promise<void> {
  const outputs = [['--histogram', cl.histogram], ['--top-out', cl.topOut], ['--acthist-out', cl.actHistOut]] as const;
  const hit = await outputOverFile(outputs, () => Promise.all(cl.parts.map((p) => stat(p).catch(() => undefined))));
  if (hit !== undefined) throw new UsageError(hit.option, `${JSON.stringify(hit.path)} is one of the parts: write the output elsewhere`);
}

/**
 * `sae-metrics merge PART.json... [--json] [--histogram OUT.svg] [--top-out FILE.json]
 * [--acthist-out OUT.json]`: reads the parts (checksums verified, every state checked), checks
 * that they are the N shards of one run, merges them through the canonical tree and prints the
 * run's report, the same bits as a single run over all the files.
 *
 * @returns the exit code: 0 done, 1 a bad, mismatched or missing part (or an output file that
 *   could not be written), 2 bad command line.
 */
export async function runMerge(argv: readonly string[], io: Pick<RunIO, 'stdout' | 'stderr'>): Promise<number> {
  let outputs: PreparedOutputs | undefined;
  try {
    const cl = parseMergeCommandLine(argv);
    if (cl.help) {
      io.stdout.write(MERGE_USAGE);
      return 0;
    }
    await refuseOutputsOverParts(cl);
    const [{ prepareOutputs, writeResults }, { mergePartFiles }] = await Promise.all([import('./results.js'), import('./shard.js')]);
    outputs = await prepareOutputs(cl);
    const merged = mergePartFiles(cl.parts);
    const needs = (option: string, metric: string, has: boolean): void => {
      if (!has) throw new CliError(option, `needs the state of ${metric}, which the parts do not hold (their metrics: ${merged.computed.join(',')}): run the shards with ${metric} in --metrics`);
    };
    if (cl.histogram !== undefined) needs('--histogram', 'dead, density or fired', ['dead', 'density', 'fired'].some((m) => merged.computed.includes(m as never)));
    if (cl.topOut !== undefined) needs('--top-out', 'top', merged.computed.includes('top'));
    if (cl.actHistOut !== undefined) needs('--acthist-out', 'acthist', merged.computed.includes('acthist'));
    return await writeResults(merged, cl, outputs, io);
  } catch (error) {
    io.stderr.write(`${errorLine(error)}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  } finally {
    await outputs?.discard();
  }
}
