/**
 * Shards of a run and their merge: `sae-metrics FILE... --shard I/N --state-out PART.json`
 * computes shard I of N (leaves `[floor(I L / N), floor((I + 1) L / N))` of the leaf grid, see
 * `merge-tree.ts`) and writes its *part*; `sae-metrics merge PART.json...` checks that the parts
 * belong together and cover every leaf once, rebuilds the canonical merge tree from their nodes
 * and prints the report of a single run over all the files, bit for bit.
 *
 * A part file is one JSON object:
 * `{"format":"sae-metrics/shard-state","version":2,"sha256":"<hex>","content":{...}}`, where
 * `sha256` is the SHA-256 of the content as written (`JSON.stringify`), checked on read. The
 * content says what the states are of (`setup`: the metrics and their options, the backend, the
 * rows a leaf is folded from; `inputs`: each file's path, size and header hash, each tensor's
 * name, dtype and shape), which shard (`shard`, `leaves`, `rows`), how it ran (`run`) and the
 * states: `exact` (one state of each exact part) and `nodes` (the tree's nodes, each with the
 * states of the other parts), encoded as `encodeState` encodes a state's parts.
 *
 * @module
 */
import { createHash } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { constants } from 'node:buffer';
import type { MetricDefinition, StatePart } from '../functional/core.js';
import type { NonZeroCountState } from '../functional/parts/non-zero-count.js';
import { decodeStateValue, encodeStateValue } from '../encoding.js';
import { METRIC_NAMES, type CommandLine, type MetricName, type ShardSpec } from './args.js';
import { CliError } from './errors.js';
import { computeStates, leafPieceRows, type RunIO } from './compute.js';
import { openInputs, type InputOptions, type Inputs } from './inputs.js';
import { isExactPart, leafGrid, leafRowRange, MergeCounter, shardLeaves, type LeafRange, type TreeNode } from './merge-tree.js';
import { buildDefinitions } from './metrics.js';
import type { InputShape, MetricOptions, ResultInputs, ResultsSource, RunFacts } from './results.js';
import { computedMetrics } from './results.js';
import { foldTree, mergeByPart, partsOf, stateOf } from './stream.js';
import { groupDigits } from './numbers.js';
import { packageVersion } from './version.js';

/** The `format` of a part file. */
export const PART_FORMAT = 'sae-metrics/shard-state';
/** The version of the part files this build writes and reads. */
export const PART_VERSION = 2;

/** A file of the inputs: its path as given, its size, and the SHA-256 of its header bytes. */
export interface FileIdentity {
  readonly path: string;
  readonly bytes: number;
  readonly headerSha256: string;
}

/** A tensor of the inputs. */
export interface TensorIdentity {
  readonly path: string;
  /** Its name in a .safetensors file; null for a .npy file. */
  readonly name: string | null;
  readonly dtype: string;
  readonly shape: readonly number[];
}

/** The identity of a run's inputs: what two machines compare to know they read the same data. */
export interface InputsIdentity {
  /** Every file opened, in order. */
  readonly files: readonly FileIdentity[];
  /** Each FILE's tensors, in order. */
  readonly segments: readonly { readonly learned: TensorIdentity; readonly source: TensorIdentity | null; readonly decoded: TensorIdentity | null }[];
}

/** What the states are of, besides the inputs: every part of a run must agree on all of it. */
export interface PartSetup {
  /** The metrics of the report, in order. */
  readonly metrics: readonly MetricName[];
  /** The metrics whose states the part holds (the report's, and those its outputs need). */
  readonly computed: readonly MetricName[];
  readonly l1Coefficient: number;
  readonly deadThreshold: number;
  readonly topK: number;
  readonly deadWindow: number;
  readonly tensor: string | null;
  readonly source: string | null;
  readonly decoded: string | null;
  /** The kernel that computed the states (kernels may round differently). */
  readonly backend: string;
  /** The rows each leaf's state is folded from: the leaf, or pieces of `--batch-rows` rows. */
  readonly leafPieceRows: number;
  /** The sae-metrics version that computed the states (another build's kernels may round differently). */
  readonly packageVersion: string;
  /** The gpu.js mode of the gpujs backend (its modes round differently), else null. */
  readonly gpujsMode: string | null;
}

/** How a part was computed (for the report's description; not compared). */
export interface PartRun {
  readonly workers: number;
  readonly batchRows: number;
  readonly batches: number;
  readonly bytes: number;
  readonly elapsedSeconds: number;
}

/** Shard `shard.index` of `shard.count` of a run: its states, and what they are of. */
export interface Part {
  readonly shard: ShardSpec;
  /** Leaves of the whole run. */
  readonly leafCount: number;
  /** The leaves this shard covers. */
  readonly leaves: LeafRange;
  /** The rows (numbered across all FILEs) it covers. */
  readonly rows: { readonly start: number; readonly end: number };
  readonly setup: PartSetup;
  readonly inputs: InputsIdentity;
  readonly run: PartRun;
  /** The state of each exact part, by part id. */
  readonly exact: ReadonlyMap<string, unknown>;
  /** The tree's maximal nodes over the leaves, with the state of every other part, by part id. */
  readonly nodes: readonly TreeNode<ReadonlyMap<string, unknown>>[];
}

const sha256 = (data: string | Uint8Array): string => createHash('sha256').update(data).digest('hex');

function tensorIdentity(ref: { path: string; name: string | undefined; dtype: string; shape: readonly number[] } | undefined): TensorIdentity | null {
  return ref === undefined ? null : { path: ref.path, name: ref.name ?? null, dtype: ref.dtype, shape: [...ref.shape] };
}

/** The identity of opened inputs (reads each file's header bytes again, to hash them). */
export async function inputsIdentity(inputs: Inputs): Promise<InputsIdentity> {
  const files: FileIdentity[] = [];
  for (const f of inputs.files) {
    const header = Buffer.alloc(f.headerBytes);
    let at = 0;
    while (at < header.length) {
      const { bytesRead } = await f.handle.read(header, at, header.length - at, at);
      if (bytesRead === 0) throw new CliError(f.path, `the file ended inside its header (${at} of ${header.length} bytes): it changed while it was read`);
      at += bytesRead;
    }
    files.push({ path: f.path, bytes: f.size, headerSha256: sha256(header) });
  }
  const segments = inputs.segments.map((s) => ({
    learned: tensorIdentity(s.learned) as TensorIdentity,
    source: tensorIdentity(s.source),
    decoded: tensorIdentity(s.decoded),
  }));
  return { files, segments };
}

/**
 * The identity of a command line's inputs: opens and checks them as a run does, and closes them.
 *
 * @throws {CliError} or {UsageError} as a run would, for a bad file.
 */
export async function identityOfCommandLine(cl: InputOptions): Promise<InputsIdentity> {
  const inputs = await openInputs(cl);
  try {
    return await inputsIdentity(inputs);
  } finally {
    await inputs.close();
  }
}

function describeTensor(t: TensorIdentity | null): string {
  if (t === null) return 'none';
  return `${t.path}${t.name === null ? '' : ` [${t.name}]`} ${t.dtype} [${t.shape.join(', ')}]`;
}

/**
 * The first difference between two identities, said in words (`b` as seen from `a`), or
 * `undefined` when they are the same inputs.
 */
export function identityDifference(a: InputsIdentity, b: InputsIdentity): string | undefined {
  if (a.files.length !== b.files.length) return `${b.files.length} input files (${b.files.map((f) => f.path).join(', ')}), not ${a.files.length} (${a.files.map((f) => f.path).join(', ')})`;
  for (const [i, fa] of a.files.entries()) {
    const fb = b.files[i] as FileIdentity;
    if (fa.path !== fb.path) return `input file ${i + 1} is ${fb.path}, not ${fa.path}`;
    if (fa.bytes !== fb.bytes) return `${fb.path} has ${groupDigits(fb.bytes)} bytes, not ${groupDigits(fa.bytes)}`;
    if (fa.headerSha256 !== fb.headerSha256) return `${fb.path} has another header (SHA-256 ${fb.headerSha256.slice(0, 12)}..., not ${fa.headerSha256.slice(0, 12)}...)`;
  }
  if (a.segments.length !== b.segments.length) return `${b.segments.length} FILEs, not ${a.segments.length}`;
  for (const [i, sa] of a.segments.entries()) {
    const sb = b.segments[i] as InputsIdentity['segments'][number];
    for (const field of ['learned', 'source', 'decoded'] as const) {
      const x = describeTensor(sa[field]);
      const y = describeTensor(sb[field]);
      if (x !== y) return `the ${field} activations of FILE ${i + 1} are ${y}, not ${x}`;
    }
  }
  return undefined;
}

/** The shape of the inputs an identity describes. */
function shapeOf(inputs: InputsIdentity): InputShape {
  const first = inputs.segments[0]?.learned;
  if (first === undefined) throw new RangeError('shapeOf: no input');
  const s = first.shape;
  const source = inputs.segments[0]?.source;
  return {
    componentAxis: s.length === 3,
    components: s.length === 3 ? (s[1] as number) : 1,
    features: s[s.length - 1] as number,
    inputFeatures: source === null || source === undefined ? undefined : (source.shape[source.shape.length - 1] as number),
  };
}

/** What the report says about the inputs, from their identity and the setup. */
export function resultInputs(setup: PartSetup, inputs: InputsIdentity): ResultInputs {
  const refs = inputs.segments.flatMap((s) => [s.learned, ...(s.source === null ? [] : [s.source]), ...(s.decoded === null ? [] : [s.decoded])]);
  return {
    ...shapeOf(inputs),
    files: inputs.segments.map((s) => s.learned.path),
    tensor: setup.tensor ?? undefined,
    source: setup.source ?? undefined,
    decoded: setup.decoded ?? undefined,
    dtypes: [...new Set(refs.map((r) => r.dtype))],
    segments: inputs.segments.map((s) => ({ path: s.learned.path, tensor: s.learned.name ?? undefined, rows: s.learned.shape[0] as number })),
    totalVectors: inputs.segments.reduce((n, s) => n + (s.learned.shape[0] as number), 0),
  };
}

/** The metrics' definitions a setup's states belong to. */
function definitionsOf(setup: PartSetup, inputs: InputsIdentity): MetricDefinition[] {
  const options: MetricOptions = setup;
  return [...buildDefinitions(setup.computed, shapeOf(inputs), options).values()];
}

/**
 * Computes shard `shard.index` of `shard.count` of the run `cl` describes (its metrics and
 * options; its output options say which states to keep, as a run computes them) and returns its
 * part. Nothing is written.
 *
 * @throws {CliError} for a bad input file; whatever a run throws.
 */
export async function computeShard(cl: CommandLine, shard: ShardSpec, io: RunIO): Promise<Part> {
  const inputs = await openInputs(cl);
  try {
    const identity = await inputsIdentity(inputs);
    const grid = leafGrid(inputs.segments.map((s) => s.rows));
    const leaves = shardLeaves(grid.leaves, shard.index, shard.count);
    const rows = leafRowRange(grid, leaves);
    const computed = computedMetrics(cl.metrics, cl);
    const c = await computeStates(cl, inputs, computed, io, { leaves, progress: !cl.json, totalRows: rows.end - rows.start });
    if (c.result.interrupted) throw new CliError('interrupted', `shard ${shard.index} of ${shard.count} was stopped: nothing was written`, 130);
    return {
      shard,
      leafCount: grid.leaves,
      leaves,
      rows,
      setup: {
        metrics: [...cl.metrics],
        computed,
        l1Coefficient: cl.l1Coefficient,
        deadThreshold: cl.deadThreshold,
        topK: cl.topK,
        deadWindow: cl.deadWindow,
        tensor: cl.tensor ?? null,
        source: cl.source ?? null,
        decoded: cl.decoded ?? null,
        backend: c.backend,
        leafPieceRows: leafPieceRows(c.batchRows),
        packageVersion: packageVersion(),
        gpujsMode: c.gpujsMode ?? null,
      },
      inputs: identity,
      run: { workers: c.workers, batchRows: c.batchRows, batches: c.result.batches, bytes: c.result.bytes, elapsedSeconds: c.elapsedSeconds },
      exact: c.result.exact,
      nodes: c.result.nodes,
    };
  } finally {
    await inputs.close();
  }
}

const encodeStates = (states: ReadonlyMap<string, unknown>): Record<string, unknown> =>
  Object.fromEntries([...states].map(([id, s]) => [id, encodeStateValue(s)]));

/** The longest string this Node can make (V8's limit, about 512 Mi characters): a part file's text must fit in it. */
export const MAX_PART_CHARS = constants.MAX_STRING_LENGTH;

/** Bytes of the typed arrays of some states (what their base64 text is about 4/3 of). */
function stateBytesOf(value: unknown): number {
  if (ArrayBuffer.isView(value)) return value.byteLength;
  if (typeof value !== 'object' || value === null) return 0;
  let n = 0;
  for (const v of value instanceof Map ? value.values() : Object.values(value)) n += stateBytesOf(v);
  return n;
}

/**
 * A part as the text of a part file (see the module's description).
 *
 * @throws {CliError} when the text would be longer than {@link MAX_PART_CHARS} (states of tens of
 *   millions of features, or of a million with acthist).
 */
export function encodePart(part: Part): string {
  const bytes = stateBytesOf(part.exact) + part.nodes.reduce((n, node) => n + stateBytesOf(node.state), 0);
  if (Math.ceil(bytes / 3) * 4 > MAX_PART_CHARS) {
    throw new CliError(
      `shard ${part.shard.index} of ${part.shard.count}`,
      `its states take ${groupDigits(bytes)} bytes, ${groupDigits(Math.ceil(bytes / 3) * 4)} characters of base64: past the ${groupDigits(MAX_PART_CHARS)} a part file (one JSON text) can hold; compute fewer per-feature metrics in each run (the states grow with the features, not the rows)`,
    );
  }
  const content = JSON.stringify({
    shard: part.shard,
    leafCount: part.leafCount,
    leaves: part.leaves,
    rows: part.rows,
    setup: part.setup,
    inputs: part.inputs,
    run: part.run,
    exact: encodeStates(part.exact),
    nodes: part.nodes.map((n) => ({ start: n.start, size: n.size, states: encodeStates(n.state) })),
  });
  return `{"format":${JSON.stringify(PART_FORMAT)},"version":${PART_VERSION},"sha256":"${sha256(content)}","content":${content}}\n`;
}

/** A check of a decoded field: throws a CliError naming the part file and the field. */
class Reader {
  constructor(readonly name: string) {}

  fail(field: string, problem: string): never {
    throw new CliError(this.name, `${field} ${problem}`);
  }

  record(v: unknown, field: string, keys: readonly string[]): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, 'must be an object');
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) if (!keys.includes(k)) this.fail(field, `has an unknown field ${JSON.stringify(k)}`);
    for (const k of keys) if (!Object.hasOwn(o, k)) this.fail(field, `has no field ${JSON.stringify(k)}`);
    return o;
  }

  integer(v: unknown, field: string, min = 0): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min) this.fail(field, `must be an integer >= ${min}, got ${JSON.stringify(v)}`);
    return v as number;
  }

  number(v: unknown, field: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v)) this.fail(field, `must be a finite number, got ${JSON.stringify(v)}`);
    return v as number;
  }

  seconds(v: unknown, field: string): number {
    if (typeof v !== 'number' || !Number.isFinite(v) || v < 0) this.fail(field, `must be a finite number of seconds >= 0, got ${JSON.stringify(v)}`);
    return v as number;
  }

  string(v: unknown, field: string): string {
    if (typeof v !== 'string') this.fail(field, `must be a string, got ${JSON.stringify(v)}`);
    return v as string;
  }

  nullableString(v: unknown, field: string): string | null {
    return v === null ? null : this.string(v, field);
  }

  array(v: unknown, field: string): unknown[] {
    if (!Array.isArray(v)) this.fail(field, 'must be an array');
    return v as unknown[];
  }

  range(v: unknown, field: string): { start: number; end: number } {
    const o = this.record(v, field, ['start', 'end']);
    const start = this.integer(o.start, `${field}.start`);
    const end = this.integer(o.end, `${field}.end`);
    if (end < start) this.fail(field, `must have start <= end, got [${start}, ${end})`);
    return { start, end };
  }

  tensor(v: unknown, field: string): TensorIdentity {
    const o = this.record(v, field, ['path', 'name', 'dtype', 'shape']);
    return {
      path: this.string(o.path, `${field}.path`),
      name: this.nullableString(o.name, `${field}.name`),
      dtype: this.string(o.dtype, `${field}.dtype`),
      shape: this.array(o.shape, `${field}.shape`).map((d, i) => this.integer(d, `${field}.shape[${i}]`)),
    };
  }
}

function readSetup(r: Reader, v: unknown): PartSetup {
  const keys = ['metrics', 'computed', 'l1Coefficient', 'deadThreshold', 'topK', 'deadWindow', 'tensor', 'source', 'decoded', 'backend', 'leafPieceRows', 'packageVersion', 'gpujsMode'] as const;
  const o = r.record(v, 'setup', keys);
  const names = (field: 'metrics' | 'computed'): MetricName[] =>
    r.array(o[field], `setup.${field}`).map((m, i) => {
      if (!(METRIC_NAMES as readonly unknown[]).includes(m)) r.fail(`setup.${field}[${i}]`, `is not a metric name, got ${JSON.stringify(m)}`);
      return m as MetricName;
    });
  const metrics = names('metrics');
  const computed = names('computed');
  if (metrics.length === 0) r.fail('setup.metrics', 'must name at least one metric');
  if (new Set(computed).size !== computed.length) r.fail('setup.computed', `must name each metric once, got ${computed.join(',')}`);
  const missing = metrics.find((m) => !computed.includes(m));
  if (missing !== undefined) r.fail('setup.computed', `must hold every metric of setup.metrics, but not ${missing}`);
  return {
    metrics,
    computed,
    l1Coefficient: r.number(o.l1Coefficient, 'setup.l1Coefficient'),
    deadThreshold: r.number(o.deadThreshold, 'setup.deadThreshold'),
    topK: r.integer(o.topK, 'setup.topK', 1),
    deadWindow: r.integer(o.deadWindow, 'setup.deadWindow', 1),
    tensor: r.nullableString(o.tensor, 'setup.tensor'),
    source: r.nullableString(o.source, 'setup.source'),
    decoded: r.nullableString(o.decoded, 'setup.decoded'),
    backend: r.string(o.backend, 'setup.backend'),
    leafPieceRows: r.integer(o.leafPieceRows, 'setup.leafPieceRows', 1),
    packageVersion: r.string(o.packageVersion, 'setup.packageVersion'),
    gpujsMode: r.nullableString(o.gpujsMode, 'setup.gpujsMode'),
  };
}

function readInputs(r: Reader, v: unknown): InputsIdentity {
  const o = r.record(v, 'inputs', ['files', 'segments']);
  const files = r.array(o.files, 'inputs.files').map((f, i) => {
    const field = `inputs.files[${i}]`;
    const x = r.record(f, field, ['path', 'bytes', 'headerSha256']);
    const headerSha256 = r.string(x.headerSha256, `${field}.headerSha256`);
    if (!/^[0-9a-f]{64}$/.test(headerSha256)) r.fail(`${field}.headerSha256`, 'must be 64 hex digits');
    return { path: r.string(x.path, `${field}.path`), bytes: r.integer(x.bytes, `${field}.bytes`), headerSha256 };
  });
  const segments = r.array(o.segments, 'inputs.segments').map((s, i) => {
    const field = `inputs.segments[${i}]`;
    const x = r.record(s, field, ['learned', 'source', 'decoded']);
    return {
      learned: r.tensor(x.learned, `${field}.learned`),
      source: x.source === null ? null : r.tensor(x.source, `${field}.source`),
      decoded: x.decoded === null ? null : r.tensor(x.decoded, `${field}.decoded`),
    };
  });
  if (segments.length === 0) r.fail('inputs.segments', 'must list at least one FILE');
  for (const [i, s] of segments.entries()) {
    const rank = s.learned.shape.length;
    if (rank !== 2 && rank !== 3) r.fail(`inputs.segments[${i}].learned.shape`, `must have rank 2 or 3, got [${s.learned.shape.join(', ')}]`);
    const first = (segments[0] as (typeof segments)[number]).learned.shape;
    if (s.learned.shape.length !== first.length || s.learned.shape.some((d, k) => k > 0 && d !== first[k])) {
      r.fail(`inputs.segments[${i}].learned.shape`, `must agree with the first FILE's on every axis but the first, got [${s.learned.shape.join(', ')}] and [${first.join(', ')}]`);
    }
    if ((s.source === null) !== (segments[0]?.source === null) || (s.source === null) !== (s.decoded === null)) {
      r.fail(`inputs.segments[${i}]`, 'must have source and decoded activations together, in every FILE or none');
    }
  }
  if ((segments[0]?.learned.shape[segments[0].learned.shape.length - 1] ?? 0) < 1) r.fail('inputs.segments[0].learned.shape', 'must have features');
  if (segments.every((s) => s.learned.shape[0] === 0)) r.fail('inputs.segments', 'must have rows: every FILE has none');
  return { files, segments };
}

/** The row count of a decoded state, where it has one (`vectors`). */
function stateVectors(state: unknown): number | undefined {
  if (typeof state !== 'object' || state === null || !Object.hasOwn(state, 'vectors')) return undefined;
  const v = (state as { vectors: unknown }).vectors;
  return typeof v === 'number' ? v : undefined;
}

/** Decodes and checks the states of `parts` (by id, all and only them), covering `rows` rows. */
function readStates(r: Reader, v: unknown, field: string, parts: readonly StatePart<unknown>[], rows: number): Map<string, unknown> {
  const o = r.record(v, field, parts.map((p) => p.id));
  const out = new Map<string, unknown>();
  for (const part of parts) {
    const at = `${field}[${JSON.stringify(part.id)}]`;
    let state: unknown;
    try {
      state = decodeStateValue(o[part.id], at);
    } catch (error) {
      r.fail(at, `cannot be decoded: ${(error as Error).message}`);
    }
    const reason = part.invalid(state);
    if (reason !== undefined) r.fail(at, `is not a state of ${part.id}: ${reason.replace(/^\./, '')}`);
    const vectors = stateVectors(state);
    if (vectors !== undefined && vectors !== rows) r.fail(at, `counts ${vectors} vectors, but covers ${rows} rows`);
    out.set(part.id, state);
  }
  return out;
}

/** The maximal aligned nodes of a range of leaves, in order (what a counter holds after it). */
export function canonicalNodes(range: LeafRange): { start: number; size: number }[] {
  const out: { start: number; size: number }[] = [];
  let at = range.start;
  while (at < range.end) {
    let size = 1;
    while (at % (2 * size) === 0 && at + 2 * size <= range.end) size *= 2;
    out.push({ start: at, size });
    at += size;
  }
  return out;
}

/**
 * Reads the text of a part file: the format, the version and the checksum first, then every field
 * and every state (each checked as a state of its part, as a state from elsewhere must be).
 *
 * @param name the file's name, for errors.
 * @throws {CliError} naming the file and the problem: not a part file, a newer version, a
 *   checksum that does not match (corrupted or truncated), a field or state that is not valid.
 */
export function decodePart(text: string, name: string): Part {
  const r = new Reader(name);
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw new CliError(name, `is not a shard state: not JSON${text.length === 0 ? ' (empty)' : ' (truncated or corrupted?)'}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new CliError(name, 'is not a shard state: not a JSON object');
  const top = raw as Record<string, unknown>;
  if (top.format !== PART_FORMAT) {
    throw new CliError(name, `is not a shard state of sae-metrics (its format is ${JSON.stringify(top.format) ?? 'missing'}, not ${JSON.stringify(PART_FORMAT)})`);
  }
  if (typeof top.version === 'number' && Number.isInteger(top.version) && top.version > PART_VERSION) {
    throw new CliError(name, `is version ${top.version} of ${PART_FORMAT}, newer than this sae-metrics reads (${PART_VERSION}): merge it with the version that wrote it`);
  }
  if (top.version !== PART_VERSION) throw new CliError(name, `has version ${JSON.stringify(top.version)} of ${PART_FORMAT}; this sae-metrics reads version ${PART_VERSION}`);
  const envelope = r.record(raw, 'the file', ['format', 'version', 'sha256', 'content']);
  const content = r.record(envelope.content, 'content', ['shard', 'leafCount', 'leaves', 'rows', 'setup', 'inputs', 'run', 'exact', 'nodes']);
  const sum = sha256(JSON.stringify(content));
  if (envelope.sha256 !== sum) {
    throw new CliError(name, `is corrupted: the SHA-256 of its content is ${sum.slice(0, 12)}..., but the file says ${String(envelope.sha256).slice(0, 12)}...`);
  }
  const shardO = r.record(content.shard, 'shard', ['index', 'count']);
  const count = r.integer(shardO.count, 'shard.count', 1);
  const index = r.integer(shardO.index, 'shard.index');
  if (index >= count) r.fail('shard.index', `must be in [0, ${count}), got ${index}`);
  const setup = readSetup(r, content.setup);
  const inputs = readInputs(r, content.inputs);
  const grid = leafGrid(inputs.segments.map((s) => s.learned.shape[0] as number));
  const leafCount = r.integer(content.leafCount, 'leafCount');
  if (leafCount !== grid.leaves) r.fail('leafCount', `must be ${grid.leaves} (the inputs' leaves of 1024 rows), got ${leafCount}`);
  const leaves = r.range(content.leaves, 'leaves');
  const want = shardLeaves(grid.leaves, index, count);
  if (leaves.start !== want.start || leaves.end !== want.end) {
    r.fail('leaves', `must be [${want.start}, ${want.end}) for shard ${index} of ${count}, got [${leaves.start}, ${leaves.end})`);
  }
  const rows = r.range(content.rows, 'rows');
  const wantRows = leafRowRange(grid, leaves);
  if (rows.start !== wantRows.start || rows.end !== wantRows.end) {
    r.fail('rows', `must be [${wantRows.start}, ${wantRows.end}) for leaves [${leaves.start}, ${leaves.end}), got [${rows.start}, ${rows.end})`);
  }
  const runO = r.record(content.run, 'run', ['workers', 'batchRows', 'batches', 'bytes', 'elapsedSeconds']);
  const run: PartRun = {
    workers: r.integer(runO.workers, 'run.workers', 1),
    batchRows: r.integer(runO.batchRows, 'run.batchRows', 1),
    batches: r.integer(runO.batches, 'run.batches'),
    bytes: r.integer(runO.bytes, 'run.bytes'),
    elapsedSeconds: r.seconds(runO.elapsedSeconds, 'run.elapsedSeconds'),
  };
  const definitions = ((): MetricDefinition[] => {
    try {
      return definitionsOf(setup, inputs);
    } catch (error) {
      return r.fail('setup', `does not make the metrics: ${(error as Error).message}`);
    }
  })();
  const parts = partsOf(definitions);
  const exactParts = parts.filter(isExactPart);
  const treeParts = parts.filter((p) => !isExactPart(p));
  const exact = readStates(r, content.exact, 'exact', exactParts, rows.end - rows.start);
  // The non-zero count's part knows no features: a count over the rows' activations is checked here.
  const features = (inputs.segments[0] as (typeof inputs.segments)[number]).learned.shape.at(-1) as number;
  for (const p of exactParts) {
    const nonZero = p.recipe.kind === 'nonZeroCount' ? (exact.get(p.id) as NonZeroCountState).nonZero : undefined;
    const over = nonZero?.findIndex((n) => n > (rows.end - rows.start) * features) ?? -1;
    if (over !== -1) r.fail(`exact[${JSON.stringify(p.id)}]`, `counts ${nonZero?.[over]} non-zero activations at index ${over}, more than its ${rows.end - rows.start} rows of ${features} features hold`);
  }
  const wantNodes = canonicalNodes(leaves);
  const nodesRaw = r.array(content.nodes, 'nodes');
  if (nodesRaw.length !== wantNodes.length) r.fail('nodes', `must be the ${wantNodes.length} nodes of leaves [${leaves.start}, ${leaves.end}), got ${nodesRaw.length}`);
  const nodes = nodesRaw.map((n, i) => {
    const field = `nodes[${i}]`;
    const o = r.record(n, field, ['start', 'size', 'states']);
    const start = r.integer(o.start, `${field}.start`);
    const size = r.integer(o.size, `${field}.size`, 1);
    const w = wantNodes[i] as { start: number; size: number };
    if (start !== w.start || size !== w.size) r.fail(field, `must be ${w.size} leaves from ${w.start}, got ${size} from ${start}`);
    const nodeRows = leafRowRange(grid, { start, end: start + size });
    return { start, size, state: readStates(r, o.states, `${field}.states`, treeParts, nodeRows.end - nodeRows.start) as ReadonlyMap<string, unknown> };
  });
  // Each state alone may be possible and the metric's parts still disagree (an acthist or a moment
  // count over the fired count): each metric's state over the shard is checked as a whole, so that
  // such a part is refused here, naming it, and not while the results are being written.
  const whole = new Map<string, unknown>(exact);
  for (const p of treeParts) whole.set(p.id, nodes.reduce((a, n) => p.merge(a, n.state.get(p.id)), p.init()));
  for (const d of definitions) {
    const check: MetricDefinition['assertState'] = d.assertState;
    try {
      check(stateOf(d, whole));
    } catch (error) {
      r.fail('states', `do not make a state of ${d.metric}: ${(error as Error).message.replace(`${d.metric}: `, '')}`);
    }
  }
  return { shard: { index, count }, leafCount, leaves, rows, setup, inputs, run, exact, nodes };
}

/** A part and the name of its file, for messages. */
export interface NamedPart {
  readonly name: string;
  readonly part: Part;
}

function describeSetupValue(key: keyof PartSetup, v: unknown): string {
  if (key === 'metrics' || key === 'computed') return (v as string[]).join(',');
  return JSON.stringify(v);
}

const SETUP_WORDS: Readonly<Record<keyof PartSetup, string>> = {
  metrics: '--metrics',
  computed: 'the states computed (--metrics and the outputs)',
  l1Coefficient: '--l1-coefficient',
  deadThreshold: '--dead-threshold',
  topK: '--top',
  deadWindow: '--dead-window',
  tensor: '--tensor',
  source: '--source',
  decoded: '--decoded',
  backend: 'the backend (give every shard the same --backend)',
  leafPieceRows: 'leaves folded from pieces of this many rows (--batch-rows under 1024; give every shard the same --batch-rows)',
  packageVersion: 'the sae-metrics version that computed it (give every shard the same version)',
  gpujsMode: 'the gpu.js mode of the gpujs backend (give every shard the same SAE_METRICS_GPUJS_MODE, or --backend wasm)',
};

/**
 * Checks that `parts` are the N shards of one run: the same setup and inputs, the same N, every
 * index once. Returns them in shard order.
 *
 * @throws {CliError} naming the part file(s) and the problem.
 */
export function checkParts(parts: readonly NamedPart[]): NamedPart[] {
  const first = parts[0];
  if (first === undefined) throw new CliError('merge', 'no part given');
  for (const p of parts.slice(1)) {
    for (const key of Object.keys(SETUP_WORDS) as (keyof PartSetup)[]) {
      const a = describeSetupValue(key, first.part.setup[key]);
      const b = describeSetupValue(key, p.part.setup[key]);
      if (a !== b) throw new CliError(p.name, `does not belong with ${first.name}: ${SETUP_WORDS[key]} is ${b}, not ${a}`);
    }
    const diff = identityDifference(first.part.inputs, p.part.inputs);
    if (diff !== undefined) throw new CliError(p.name, `does not belong with ${first.name}: other inputs: ${diff}`);
    if (p.part.shard.count !== first.part.shard.count) {
      const rows = (x: NamedPart): string => `rows [${x.part.rows.start}, ${x.part.rows.end})`;
      throw new CliError(
        p.name,
        `is shard ${p.part.shard.index} of ${p.part.shard.count} (${rows(p)}), but ${first.name} is shard ${first.part.shard.index} of ${first.part.shard.count} (${rows(first)}): shards of different N overlap or leave gaps; merge the N shards of one run`,
      );
    }
  }
  const count = first.part.shard.count;
  const byIndex = new Map<number, NamedPart>();
  for (const p of parts) {
    const seen = byIndex.get(p.part.shard.index);
    if (seen !== undefined) throw new CliError(p.name, `is shard ${p.part.shard.index} of ${count} again (${seen.name} is too): give each shard once`);
    byIndex.set(p.part.shard.index, p);
  }
  const missing: number[] = [];
  for (let i = 0; i < count && missing.length < 10; i++) if (!byIndex.has(i)) missing.push(i);
  if (missing.length > 0) {
    const absent = count - byIndex.size;
    throw new CliError(
      'merge',
      `${absent === 1 ? `shard ${missing[0]} of ${count} is` : `${absent} of ${count} shards are`} missing (${absent === 1 ? 'given' : `missing: ${missing.join(', ')}${absent > missing.length ? ', ...' : ''}; given`}: ${[...byIndex.keys()].sort((a, b) => a - b).join(', ')})`,
    );
  }
  const ordered = [...byIndex.entries()].sort(([a], [b]) => a - b).map(([, p]) => p);
  // Shards of one N cover every leaf once; checked again, since everything else rests on it.
  let at = 0;
  for (const p of ordered) {
    if (p.part.leaves.start !== at) throw new CliError(p.name, `covers leaves from ${p.part.leaves.start}, but the shards before it end at ${at}: they overlap or leave a gap`);
    at = p.part.leaves.end;
  }
  if (at !== first.part.leafCount) throw new CliError('merge', `the shards cover leaves [0, ${at}), not all ${first.part.leafCount}`);
  return ordered;
}

/**
 * Merges the N shards of one run, checked by {@link checkParts} and in shard order, as a single run
 * merges its leaves: the exact parts left to right, the others through the canonical tree rebuilt
 * from the parts' nodes. `load` gives each part with its states, one at a time (the parts in
 * `ordered` may have none, to keep only one part's states alive).
 */
export function foldCheckedParts(ordered: readonly NamedPart[], load: (p: NamedPart) => Part): ResultsSource {
  const first = (ordered[0] as NamedPart).part;
  const all = partsOf(definitionsOf(first.setup, first.inputs));
  const exactParts = all.filter(isExactPart);
  const treeParts = all.filter((p) => !isExactPart(p));
  const exact = new Map<string, unknown>(exactParts.map((p) => [p.id, p.init()]));
  const counter = new MergeCounter<ReadonlyMap<string, unknown>>((a, b) => mergeByPart(treeParts, a, b));
  for (const named of ordered) {
    const part = load(named);
    // The decoded states are this merge's own: a part may take the later one's memory.
    for (const p of exactParts) {
      const [a, b] = [exact.get(p.id), part.exact.get(p.id)];
      exact.set(p.id, p.mergeOwned === undefined ? p.merge(a, b) : p.mergeOwned(a, b));
    }
    for (const node of part.nodes) counter.push(node);
  }
  const states = new Map([...exact, ...foldTree(treeParts, counter.nodes())]);
  const inputs = resultInputs(first.setup, first.inputs);
  const sum = (f: (r: PartRun) => number): number => ordered.reduce((n, { part: p }) => n + f(p.run), 0);
  const run: RunFacts = {
    vectors: inputs.totalVectors,
    interrupted: false,
    backend: first.setup.backend,
    workers: sum((r) => r.workers),
    batchRows: first.run.batchRows,
    batches: sum((r) => r.batches),
    bytes: sum((r) => r.bytes),
    elapsedSeconds: sum((r) => r.elapsedSeconds),
  };
  return {
    names: first.setup.metrics,
    computed: first.setup.computed,
    options: first.setup,
    inputs,
    parts: new Map(all.map((p) => [p.id, states.get(p.id)])),
    run,
  };
}

/**
 * Merges the N shards of one run, given in any order (see {@link checkParts} for what is checked,
 * and {@link foldCheckedParts} for how they merge). The result is what a single run's report is
 * made from (`writeResults`).
 *
 * @throws {CliError} when the parts do not belong together.
 */
export function mergeParts(parts: readonly NamedPart[]): ResultsSource {
  return foldCheckedParts(checkParts(parts), (p) => p.part);
}

/** A part without its states (what {@link checkParts} needs). */
function withoutStates(part: Part): Part {
  return { ...part, exact: new Map(), nodes: [] };
}

/** Reads a file as text, with the one-line errors of the command. */
function readText(name: string): string {
  try {
    // A pipe (`merge <(zcat p.json.gz)`) gives its text once, and a FIFO waits for a writer: each
    // part is read twice, so only a regular file will do.
    const s = statSync(name);
    if (!s.isFile() && !s.isDirectory()) {
      throw new CliError(name, `is not a regular file (${s.isFIFO() ? 'a pipe' : 'a device or socket'}): merge reads each part twice (to check them all, then to fold them one at a time); save it to a file first`);
    }
    return readFileSync(name, 'utf8');
  } catch (error) {
    if (error instanceof CliError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ERR_STRING_TOO_LONG') throw new CliError(name, `is longer than the ${groupDigits(MAX_PART_CHARS)} characters a part file can hold: not a part sae-metrics wrote`);
    throw new CliError(name, code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory, not a file' : `cannot read (${code ?? (error as Error).message})`);
  }
}

/**
 * {@link mergeParts} of part files, with one part's states alive at a time: every file is read,
 * decoded and checked, then read again in shard order and folded in (a file that changed in
 * between is refused). `read` reads a file as text (default: from disk, with one-line errors).
 *
 * @throws {CliError} naming the file and the problem.
 */
export function mergePartFiles(names: readonly string[], read: (name: string) => string = readText): ResultsSource {
  const hashes = new Map<string, string>();
  const summaries = names.map((name) => {
    const text = read(name);
    hashes.set(name, sha256(text));
    return { name, part: withoutStates(decodePart(text, name)) };
  });
  return foldCheckedParts(checkParts(summaries), ({ name }) => {
    const text = read(name);
    if (sha256(text) !== hashes.get(name)) throw new CliError(name, 'changed while it was being merged: merge again');
    return decodePart(text, name);
  });
}
