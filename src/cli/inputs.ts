/**
 * The inputs of a run: every FILE's learned activations (and, for l2 / loss, the source and
 * decoded activations that go with them), opened and checked against each other before any data
 * is read.
 *
 * @module
 */
import { stat, type FileHandle } from 'node:fs/promises';
import { CliError, UsageError } from './errors.js';
import { DTYPE_BYTES, fileTensor, openActivationFile, type ActivationFile, type FileDType, type TensorRef } from './formats.js';

/** One FILE's part of the stream: its rows of learned (and source, decoded) activations. */
export interface Segment {
  readonly rows: number;
  readonly learned: TensorRef;
  readonly source: TensorRef | undefined;
  readonly decoded: TensorRef | undefined;
}

/** The checked inputs of a run. */
export interface Inputs {
  readonly segments: readonly Segment[];
  /** Activation vectors in all files. */
  readonly vectors: number;
  /** Whether the learned activations have a component axis (`[N, C, F]`). */
  readonly componentAxis: boolean;
  readonly components: number;
  /** Learned features. */
  readonly features: number;
  /** Features of the source / decoded activations, when given. */
  readonly inputFeatures: number | undefined;
  /** The dtypes read, in first-seen order. */
  readonly dtypes: readonly FileDType[];
  /** Bytes of activation data to read in all. */
  readonly bytes: number;
  /** Every file opened (FILEs, and .npy --source / --decoded files), in the order opened. */
  readonly files: readonly InputFile[];
  /** Closes every open file. */
  close(): Promise<void>;
}

/** A file opened: its path as given, size and header (the bytes before its data). */
export interface InputFile {
  readonly path: string;
  readonly handle: FileHandle;
  readonly size: number;
  /** Bytes of its header (its data starts after them). */
  readonly headerBytes: number;
}

/** What {@link openInputs} needs from the command line. */
export interface InputOptions {
  readonly files: readonly string[];
  readonly tensor: string | undefined;
  readonly source: string | undefined;
  readonly decoded: string | undefined;
  readonly components: number | undefined;
  /** Output files of the run, refused when one is an input (see {@link refuseOutputsOverInputs}). */
  readonly histogram?: string | undefined;
  readonly topOut?: string | undefined;
  readonly actHistOut?: string | undefined;
  readonly stateOut?: string | undefined;
}

/** What tells two paths of one file apart from two files: the device and the inode. */
export interface FileId {
  readonly dev: number;
  readonly ino: number;
}

/**
 * The first of `outputs` (an option and its path, if given) that is one of the files `ids` gives,
 * by device and inode, and the index of that file. The names do not tell: a `.npy` file is known
 * by its magic, whatever its name, and a path has many spellings. An output that does not exist
 * yet is no file; `ids` is called only when one does.
 */
export async function outputOverFile(
  outputs: readonly (readonly [string, string | undefined])[],
  ids: () => Promise<readonly (FileId | undefined)[]>,
): Promise<{ readonly option: string; readonly path: string; readonly index: number } | undefined> {
  let files: readonly (FileId | undefined)[] | undefined;
  for (const [option, path] of outputs) {
    if (path === undefined) continue;
    const out = await stat(path).catch(() => undefined);
    if (out === undefined) continue;
    files ??= await ids();
    const index = files.findIndex((f) => f !== undefined && f.dev === out.dev && f.ino === out.ino);
    if (index >= 0) return { option, path, index };
  }
  return undefined;
}

/**
 * Refuses an output path that names an opened input file (see {@link outputOverFile}): `acts.json`
 * can be a `.npy` input.
 *
 * @throws {UsageError} naming the option, the output and the input.
 */
export async function refuseOutputsOverInputs(o: Pick<InputOptions, 'histogram' | 'topOut' | 'actHistOut' | 'stateOut'>, files: readonly Pick<InputFile, 'path' | 'handle'>[]): Promise<void> {
  const outputs = [
    ['--histogram', o.histogram],
    ['--top-out', o.topOut],
    ['--acthist-out', o.actHistOut],
    ['--state-out', o.stateOut],
  ] as const;
  const hit = await outputOverFile(outputs, () => Promise.all(files.map((f) => f.handle.stat())));
  if (hit !== undefined) {
    const input = (files[hit.index] as Pick<InputFile, 'path'>).path;
    throw new UsageError(hit.option, `${JSON.stringify(hit.path)} is the input file ${JSON.stringify(input)}: it would be written over; write the output elsewhere`);
  }
}

function formatShape(shape: readonly number[]): string {
  return `[${shape.join(', ')}]`;
}

function describe(ref: TensorRef): string {
  return ref.name === undefined ? `shape ${formatShape(ref.shape)}` : `tensor ${JSON.stringify(ref.name)} has shape ${formatShape(ref.shape)}`;
}

function sameTail(a: readonly number[], b: readonly number[]): boolean {
  return a.length === b.length && a.every((d, i) => i === 0 || d === b[i]);
}

/** Checks a learned-activations tensor's rank, axes and component count. */
function checkLearned(ref: TensorRef, components: number | undefined): void {
  const s = ref.shape;
  if (s.length !== 2 && s.length !== 3) {
    throw new CliError(ref.path, `${describe(ref)}: expected rank 2 [vectors, features] or rank 3 [vectors, components, features]`);
  }
  if (s[s.length - 1] === 0) throw new CliError(ref.path, `${describe(ref)}: no features on its last axis`);
  if (s.length === 3 && s[1] === 0) throw new CliError(ref.path, `${describe(ref)}: no components on axis 1`);
  if (components === undefined) return;
  if (s.length === 2 && components !== 1) {
    throw new CliError(ref.path, `${describe(ref)}, with no component axis, but --components is ${components}`);
  }
  if (s.length === 3 && s[1] !== components) {
    throw new CliError(ref.path, `${describe(ref)}, with ${s[1]} components on axis 1, but --components is ${components}`);
  }
}

/** Checks source or decoded activations against the learned ones they go with. */
function checkPaired(ref: TensorRef, learned: TensorRef, option: string): void {
  const s = ref.shape;
  const l = learned.shape;
  const want = l.length === 3 ? '[vectors, components, features]' : '[vectors, features]';
  if (s.length !== l.length) {
    throw new CliError(ref.path, `${option} ${describe(ref)}: expected rank ${l.length} ${want}, as the learned activations ${formatShape(l)}`);
  }
  if (s[0] !== l[0]) {
    throw new CliError(ref.path, `${option} ${describe(ref)}: ${s[0]} vectors, but the learned activations have ${l[0]} ${formatShape(l)}`);
  }
  if (s.length === 3 && s[1] !== l[1]) {
    throw new CliError(ref.path, `${option} ${describe(ref)}: ${s[1]} components, but the learned activations have ${l[1]} ${formatShape(l)}`);
  }
  if (s[s.length - 1] === 0) throw new CliError(ref.path, `${option} ${describe(ref)}: no features on its last axis`);
}

/**
 * Opens every FILE (and .npy source / decoded files), reads and checks their headers and shapes.
 * Every file is closed again when a check fails.
 *
 * @throws {UsageError} when --tensor is given for .npy files, or .npy --source / --decoded go with
 *   more than one FILE.
 * @throws {CliError} naming the file and the problem.
 */
export async function openInputs(o: InputOptions): Promise<Inputs> {
  const open: ActivationFile[] = [];
  const close = async (): Promise<void> => {
    await Promise.all(open.splice(0).map((f) => f.handle.close().catch(() => undefined)));
  };
  try {
    const segments: Segment[] = [];
    const reconstruction = o.source !== undefined && o.decoded !== undefined;
    for (const path of o.files) {
      const file = await openActivationFile(path);
      open.push(file);
      let learned: TensorRef;
      let source: TensorRef | undefined;
      let decoded: TensorRef | undefined;
      if (file.header.format === 'npy') {
        if (o.tensor !== undefined) throw new UsageError('--tensor', `names a tensor of a .safetensors file, but ${path} is a .npy file`);
        learned = fileTensor(file, undefined, [], 'FILE');
        if (reconstruction) {
          if (o.files.length !== 1) {
            throw new UsageError('--source', 'with .npy files, --source and --decoded are .npy files that go with one FILE; give one FILE');
          }
          const s = await openActivationFile(o.source as string);
          open.push(s);
          const d = await openActivationFile(o.decoded as string);
          open.push(d);
          if (s.header.format !== 'npy') throw new CliError(s.path, '--source for a .npy FILE must be a .npy file');
          if (d.header.format !== 'npy') throw new CliError(d.path, '--decoded for a .npy FILE must be a .npy file');
          source = fileTensor(s, undefined, [], '--source');
          decoded = fileTensor(d, undefined, [], '--decoded');
        }
      } else {
        const others = reconstruction ? [o.source as string, o.decoded as string] : [];
        learned = fileTensor(file, o.tensor, others, '--tensor');
        if (reconstruction) {
          source = fileTensor(file, o.source, [], '--source');
          decoded = fileTensor(file, o.decoded, [], '--decoded');
        }
      }
      checkLearned(learned, o.components);
      const first = segments[0];
      if (first !== undefined && !sameTail(first.learned.shape, learned.shape)) {
        throw new CliError(
          path,
          `${describe(learned)}, but ${first.learned.path} has ${formatShape(first.learned.shape)}: the files must agree on every axis but the first`,
        );
      }
      if (source !== undefined && decoded !== undefined) {
        checkPaired(source, learned, '--source');
        checkPaired(decoded, learned, '--decoded');
        if (formatShape(source.shape) !== formatShape(decoded.shape)) {
          throw new CliError(
            decoded.path,
            `--decoded ${describe(decoded)}, but --source ${source.path}${source.name === undefined ? '' : ` ${JSON.stringify(source.name)}`} has ${formatShape(source.shape)}: they must be the same`,
          );
        }
        const firstSource = first?.source;
        if (firstSource !== undefined && !sameTail(firstSource.shape, source.shape)) {
          throw new CliError(
            source.path,
            `--source ${describe(source)}, but in ${firstSource.path} it has ${formatShape(firstSource.shape)}: the files must agree on every axis but the first`,
          );
        }
      }
      segments.push({ rows: learned.shape[0] as number, learned, source, decoded });
    }
    await refuseOutputsOverInputs(o, open);
    const first = (segments[0] as Segment).learned;
    const vectors = segments.reduce((n, s) => n + s.rows, 0);
    if (vectors === 0) throw new CliError(first.path, `no activation vectors: every file's first axis is 0`);
    const refs = segments.flatMap((s) => [s.learned, ...(s.source ? [s.source] : []), ...(s.decoded ? [s.decoded] : [])]);
    const bytes = refs.reduce((n, r) => n + r.shape.reduce((a, b) => a * b, 1) * DTYPE_BYTES[r.dtype], 0);
    const source = segments[0]?.source;
    return {
      segments,
      vectors,
      componentAxis: first.shape.length === 3,
      components: first.shape.length === 3 ? (first.shape[1] as number) : 1,
      features: first.shape[first.shape.length - 1] as number,
      inputFeatures: source === undefined ? undefined : (source.shape[source.shape.length - 1] as number),
      dtypes: [...new Set(refs.map((r) => r.dtype))],
      bytes,
      files: open.map((f) => ({ path: f.path, handle: f.handle, size: f.size, headerBytes: f.header.dataStart })),
      close,
    };
  } catch (error) {
    await close();
    throw error;
  }
}
