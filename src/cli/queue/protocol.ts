/**
 * What travels through Redis between `sae-metrics coordinate` and `sae-metrics worker`: a shard
 * job's data and its result, versioned and checked on arrival (both are untrusted input).
 *
 * @module
 */
import { createHash } from 'node:crypto';
import type { ShardSpec } from '../args.js';
import type { InputsIdentity } from '../shard.js';

/** The `format` of a shard job's data. */
export const JOB_FORMAT = 'sae-metrics/queue-shard';
/** The version of the job data and results this build writes and reads. */
export const JOB_VERSION = 1;

/** A shard job: what a worker computes, and what it must find on its disk. */
export interface ShardJobData {
  readonly format: typeof JOB_FORMAT;
  readonly version: typeof JOB_VERSION;
  /** The run the shard belongs to (random, one per `coordinate`). */
  readonly run: string;
  /** The run's command line, as a single run takes it. */
  readonly argv: readonly string[];
  /** The coordinator's working directory, which relative paths in `argv` are taken from. */
  readonly cwd: string;
  readonly shard: ShardSpec;
  /** The inputs as the coordinator saw them; a worker that sees others fails the job. */
  readonly identity: InputsIdentity;
  /** Bytes of encoded state returned through Redis; past it, a file beside the inputs. */
  readonly inlineMax: number;
}

/** A shard job's result: the encoded part inline, or where a worker wrote it. */
export interface ShardJobResult {
  readonly run: string;
  readonly shard: number;
  /** SHA-256 of the encoded part's text (UTF-8). */
  readonly sha256: string;
  /** Bytes of that text. */
  readonly bytes: number;
  /** The encoded part, when it is at most `inlineMax` bytes. */
  readonly text?: string;
  /** Otherwise the file it was written to. */
  readonly path?: string;
}

/** SHA-256 of a text's UTF-8 bytes, in hex. */
export function sha256Hex(text: string | Uint8Array): string {
  return createHash('sha256').update(text).digest('hex');
}

/** A run's id: `coordinate` makes 12 hex digits. */
const RUN_ID = /^[A-Za-z0-9_-]{1,64}$/;

const isRecord = (x: unknown): x is Record<string, unknown> => typeof x === 'object' && x !== null && !Array.isArray(x);
const isIndex = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;

/**
 * Checks a job's data; returns why it is not one this build can run, or `undefined`.
 */
export function jobDataProblem(data: unknown): string | undefined {
  if (!isRecord(data) || data.format !== JOB_FORMAT) return `is not a sae-metrics shard job (format ${JSON.stringify(isRecord(data) ? data.format : typeof data)})`;
  if (data.version !== JOB_VERSION) return `is a version ${JSON.stringify(data.version)} shard job; this worker runs version ${JOB_VERSION} (upgrade the workers and the coordinator together)`;
  if (typeof data.run !== 'string' || !Array.isArray(data.argv) || !data.argv.every((a) => typeof a === 'string') || typeof data.cwd !== 'string') return 'has a bad run, argv or cwd';
  // The run names the file a large state is written to: no '/' or '..' may take it elsewhere.
  if (!RUN_ID.test(data.run)) return `has a bad run ${JSON.stringify(data.run)} (1 to 64 letters, digits, '_' or '-')`;
  const s = data.shard;
  if (!isRecord(s) || !isIndex(s.index) || !isIndex(s.count) || s.index >= s.count) return `has a bad shard ${JSON.stringify(s)}`;
  if (!isRecord(data.identity) || !Array.isArray(data.identity.files) || !Array.isArray(data.identity.segments)) return 'has no inputs identity';
  if (!isIndex(data.inlineMax)) return `has a bad inlineMax ${JSON.stringify(data.inlineMax)}`;
  return undefined;
}

/**
 * Checks a job's result for `run`; returns why it is not a result of that run's shard, or
 * `undefined`.
 */
export function jobResultProblem(result: unknown, run: string, count: number): string | undefined {
  if (!isRecord(result)) return `is not a shard result (${typeof result})`;
  if (result.run !== run) return `belongs to run ${JSON.stringify(result.run)}, not ${run}`;
  if (!isIndex(result.shard) || result.shard >= count) return `has a bad shard index ${JSON.stringify(result.shard)} (the run has ${count})`;
  if (typeof result.sha256 !== 'string' || !/^[0-9a-f]{64}$/.test(result.sha256) || !isIndex(result.bytes)) return 'has a bad checksum or size';
  if ((typeof result.text === 'string') === (typeof result.path === 'string')) return 'must hold the state or the path of its file (one of them)';
  return undefined;
}
