#!/usr/bin/env node
/**
 * The `sae-metrics` executable: runs {@link run} with the process's arguments and streams, and
 * exits with its code. Any error that escapes becomes one line on stderr, never a stack trace;
 * Ctrl-C stops the run with what was computed so far (exit code 130).
 *
 * @module
 */
import { errorLine } from './errors.js';
import { removePendingOutputs } from './output.js';
import { run } from './run.js';

// An exit that does not wait for the run (a second Ctrl-C, an error that escaped) leaves no
// temporary output file behind.
process.on('exit', removePendingOutputs);
process.on('uncaughtException', (error) => {
  process.stderr.write(`${errorLine(error)}\n`);
  process.exit(1);
});
// A reader that stops early (`sae-metrics ... | head`) is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(0);
  throw error;
});
process.on('unhandledRejection', (error) => {
  process.stderr.write(`${errorLine(error)}\n`);
  process.exit(1);
});

/**
 * Ends the process at once, as the signal would have (the shell sees 128 + its number), its
 * temporary output files removed first. Not through `process.exit`: its teardown terminates the
 * pool's worker threads, and terminating one that is still loading its ES module aborts Node 20
 * (`v8::Module::IsGraphAsync`, exit code 134), as a second Ctrl-C soon after the start did.
 */
function dieBy(signal: 'SIGINT' | 'SIGTERM'): void {
  removePendingOutputs();
  process.removeAllListeners(signal);
  process.kill(process.pid, signal);
}

// Ctrl-C: the first stops reading and prints what was computed so far; a second exits at once.
const interrupt = new AbortController();
process.on('SIGINT', () => (interrupt.signal.aborted ? dieBy('SIGINT') : interrupt.abort()));

const argv = process.argv.slice(2);
const queueCommand = argv[0] === 'coordinate' || argv[0] === 'worker';
// A worker (or coordinator) stopped by its supervisor finishes as on Ctrl-C.
if (queueCommand) process.on('SIGTERM', () => (interrupt.signal.aborted ? dieBy('SIGTERM') : interrupt.abort()));
// Any other command ends at once, as by default, but without leaving its temporary files behind.
else process.on('SIGTERM', () => dieBy('SIGTERM'));
process.exitCode = await run(argv, { stdout: process.stdout, stderr: process.stderr, signal: interrupt.signal });
// BullMQ's connections may still hold the event loop (reconnecting to a Redis that is gone):
// once stdout and stderr are flushed (pipes are asynchronous on some systems), leave.
if (queueCommand) {
  const flushed = (stream: NodeJS.WriteStream): Promise<void> => new Promise((resolve) => stream.write('', () => resolve()));
  await Promise.all([flushed(process.stdout), flushed(process.stderr)]);
  process.exit(process.exitCode);
}
