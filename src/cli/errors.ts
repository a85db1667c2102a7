/**
 * The errors of the `sae-metrics` command: each becomes one line on stderr,
 * `sae-metrics: <subject>: <problem>`, and an exit code.
 *
 * @module
 */

/** A problem with an input file (or another run-time problem): exit code 1. */
export class CliError extends Error {
  override readonly name: string = 'CliError';
  /** What the problem is about: a file path, or an option such as `--workers`. */
  readonly subject: string;
  /** The problem, without the subject. */
  readonly problem: string;
  /** The process exit code. */
  readonly exitCode: number;

  constructor(subject: string, problem: string, exitCode = 1) {
    super(`${subject}: ${problem}`);
    this.subject = subject;
    this.problem = problem;
    this.exitCode = exitCode;
  }
}

/** A bad command line (unknown option, bad value, missing file argument): exit code 2. */
export class UsageError extends CliError {
  override readonly name: string = 'UsageError';

  constructor(subject: string, problem: string) {
    super(subject, problem, 2);
  }
}

/** The one line printed for an error: `sae-metrics: <subject>: <problem>` (first line only, no stack). */
export function errorLine(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const first = text.split('\n', 1)[0] ?? '';
  return `sae-metrics: ${first.trim() || 'unknown error'}`;
}
