/**
 * The file readers of the command, in-process: .npy and .safetensors headers, rows read back
 * exactly (float32, float16, bfloat16), and every malformed file rejected with a CliError that
 * names the file and the problem.
 */
import { mkdirSync, truncateSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { CliError } from '../../src/cli/errors.js';
import {
  fileTensor,
  openActivationFile,
  parsePythonLiteral,
  Tuple,
  type ActivationFile,
} from '../../src/cli/formats.js';
import { RowReader } from '../../src/cli/reader.js';
import { bytesOf, denseActivations, npyBytes, safetensorsBytes, scratchDir, toFloat16, write } from './files.js';

const tmp = scratchDir();
afterAll(() => tmp.remove());

/** The CliError that `promise` rejects with; fails when it resolves or rejects with something else. */
async function cliError(promise: Promise<unknown>): Promise<CliError> {
  try {
    const value = await promise;
    if (typeof value === 'object' && value !== null && 'handle' in value) await (value as ActivationFile).handle.close();
  } catch (error) {
    expect(error).toBeInstanceOf(CliError);
    return error as CliError;
  }
  throw new Error('expected a CliError');
}

async function readAll(file: ActivationFile, name?: string, start = 0, rows?: number): Promise<Float32Array> {
  const ref = fileTensor(file, name, [], '--tensor');
  const reader = new RowReader(ref);
  const n = rows ?? (ref.shape[0] as number) - start;
  const out = new Float32Array(n * reader.rowElements);
  const bytes = await reader.read(start, n, out);
  expect(bytes).toBe(n * reader.rowBytes);
  return out;
}

describe('.npy files', () => {
  const values = denseActivations(7 * 2 * 5, 1);

  for (const version of [1, 2, 3] as const) {
    it(`reads float32 and float16 arrays of format version ${version}.0`, async () => {
      const f32 = write(tmp.path(`v${version}-f32.npy`), npyBytes(values, [7, 2, 5], { version }));
      const f16 = write(tmp.path(`v${version}-f16.npy`), npyBytes(toFloat16(values), [7, 2, 5], { version }));
      for (const [path, dtype] of [[f32, 'F32'], [f16, 'F16']] as const) {
        const file = await openActivationFile(path);
        try {
          expect(file.header).toMatchObject({ format: 'npy', version: `${version}.0`, dtype, shape: [7, 2, 5] });
          expect(file.header.dataStart % 64).toBe(0);
          expect(Array.from(await readAll(file))).toEqual(Array.from(values));
          // Rows 2 to 5 only: the reader seeks to the row.
          expect(Array.from(await readAll(file, undefined, 2, 3))).toEqual(Array.from(values.subarray(2 * 10, 5 * 10)));
        } finally {
          await file.handle.close();
        }
      }
    });
  }

  it("reads float64 ('<f8', numpy's default) rounded to float32, in .npy and in safetensors (F64)", async () => {
    // Values that float32 cannot hold exactly, one past its range, and negative zero.
    const f64 = Float64Array.from({ length: 7 * 10 }, (_, i) => (i === 3 ? 1e39 : i === 4 ? -0 : Math.PI * (i - 35) * 1.000000001));
    const expected = Float32Array.from(f64, (x) => Math.fround(x));
    const npy = write(tmp.path('f64.npy'), npyBytes(f64, [7, 10]));
    const st = write(tmp.path('f64.safetensors'), safetensorsBytes({ x: { dtype: 'F64', shape: [7, 10], data: f64 } }));
    for (const path of [npy, st]) {
      const file = await openActivationFile(path);
      try {
        expect(fileTensor(file, undefined, [], 'FILE').dtype).toBe('F64');
        const got = await readAll(file);
        expect(Array.from(got)).toEqual(Array.from(expected));
        expect(got[3]).toBe(Infinity);
        expect(Object.is(got[4], -0)).toBe(true);
        expect(Array.from(await readAll(file, undefined, 5, 2))).toEqual(Array.from(expected.subarray(50, 70)));
      } finally {
        await file.handle.close();
      }
    }
  });

  it('rejects each malformed file, naming it and the problem', async () => {
    const cases: [string, Buffer, RegExp][] = [
      ['big-endian.npy', npyBytes(values, [7, 10], { descr: '>f4' }), /unsupported dtype '>f4': big-endian/],
      ['big-endian-f8.npy', npyBytes(new Float64Array(70), [7, 10], { descr: '>f8' }), /unsupported dtype '>f8': big-endian; save it little-endian \(arr\.astype\('<f8'\)\)/],
      ['int.npy', npyBytes(values, [7, 10], { descr: '<i4' }), /^unsupported dtype '<i4'; only float32 '<f4', float16 '<f2' and float64 '<f8' are read$/],
      [
        'structured.npy',
        npyBytes(values, [7, 10], { header: "{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (7, 10), }" }),
        /structured dtype/,
      ],
      ['fortran.npy', npyBytes(values, [7, 10], { fortranOrder: true }), /fortran_order is True/],
      ['no-shape.npy', npyBytes(values, [7, 10], { header: "{'descr': '<f4', 'fortran_order': False}" }), /no 'shape' key/],
      ['list-shape.npy', npyBytes(values, [7, 10], { header: "{'descr': '<f4', 'fortran_order': False, 'shape': [7, 10]}" }), /shape must be a tuple/],
      ['not-a-dict.npy', npyBytes(values, [7, 10], { header: "('<f4', False)" }), /not a dict/],
      ['garbage.npy', npyBytes(values, [7, 10], { header: "{'descr': <f4}" }), /not a Python dict literal \(unexpected "<" at character 10\)/],
      ['truncated.npy', npyBytes(values, [7, 10]).subarray(0, 128 + 100), /data is truncated: shape \[7, 10\] of '<f4' needs 280 bytes .* but the file has 100 bytes there$/],
      ['lying.npy', npyBytes(values, [7, 11]), /data is truncated: shape \[7, 11\] of '<f4' needs 308 bytes/],
      ['extra.npy', npyBytes(values, [7, 9]), /the file has 28 bytes more than the header's shape \[7, 9\] of '<f4' needs \(252 bytes of data\)/],
      ['version.npy', Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 4, 0]), Buffer.alloc(60)]), /unsupported .npy format version 4\.0/],
      ['header-past-end.npy', npyBytes(values, [7, 10]).subarray(0, 40), /header length 118 bytes runs past the end of the file \(40 bytes\)/],
      ['short.npy', Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1]), /too short for a .npy header/],
      ['magic.npy', Buffer.from('\u0093NUMPZ not numpy at all'), /not a .npy file: it does not start with the magic/],
      ['arrays.npz', Buffer.from('PK\u0003\u0004 a zip archive'), /^a \.npz archive \(a zip of \.npy files\) is not read: extract its arrays and give the \.npy files \(unzip FILE\.npz, or np\.save each array of np\.load\(FILE\.npz\)\)$/],
      ['renamed-npz.npy', Buffer.from('PK\u0003\u0004 a zip archive'), /^a \.npz archive/],
      ['empty.npz', Buffer.alloc(0), /^a \.npz archive/],
      ['unknown.bin', Buffer.from('hello'), /unknown file type: expected a .safetensors file or a .npy file/],
    ];
    for (const [name, bytes, problem] of cases) {
      const path = write(tmp.path(name), bytes);
      const e = await cliError(openActivationFile(path));
      expect(e.subject, name).toBe(path);
      expect(e.problem, name).toMatch(problem);
      expect(e.exitCode).toBe(1);
    }
  });
});

describe('.safetensors files', () => {
  const learned = denseActivations(6 * 4, 2);
  const source = denseActivations(6 * 3, 3);
  const decoded = denseActivations(6 * 3, 4);
  // bfloat16: the upper halves of float32 values that have no more than 8 significant bits.
  const bf16Values = Float32Array.from({ length: 6 * 3 }, (_, i) => (i - 9) / 4);
  const bf16 = Uint16Array.from(new Uint32Array(bf16Values.buffer), (u) => u >>> 16);
  const file3 = () =>
    safetensorsBytes(
      {
        acts: { dtype: 'F32', shape: [6, 4], data: learned },
        src: { dtype: 'F16', shape: [6, 3], data: toFloat16(source) },
        dec: { dtype: 'BF16', shape: [6, 3], data: bf16 },
      },
      { metadata: { format: 'pt' } },
    );

  it('reads tensors by name in F32, F16 and BF16, and the only tensor by default', async () => {
    const file = await openActivationFile(write(tmp.path('three.safetensors'), file3()));
    try {
      expect(file.header.format).toBe('safetensors');
      expect(Array.from(await readAll(file, 'acts'))).toEqual(Array.from(learned));
      expect(Array.from(await readAll(file, 'src'))).toEqual(Array.from(source));
      expect(Array.from(await readAll(file, 'dec'))).toEqual(Array.from(bf16Values));
      expect(Array.from(await readAll(file, 'acts', 4, 2))).toEqual(Array.from(learned.subarray(16)));
      // With the other two taken by --source and --decoded, the one left is the default.
      expect(fileTensor(file, undefined, ['src', 'dec'], '--tensor').name).toBe('acts');
    } finally {
      await file.handle.close();
    }
    const one = await openActivationFile(write(tmp.path('one.safetensors'), safetensorsBytes({ x: { dtype: 'F32', shape: [6, 4], data: learned } })));
    try {
      expect(fileTensor(one, undefined, [], '--tensor')).toMatchObject({ name: 'x', dtype: 'F32', shape: [6, 4], offset: one.header.dataStart });
      expect(Array.from(await readAll(one))).toEqual(Array.from(learned));
    } finally {
      await one.handle.close();
    }
  });

  it('accepts tensors whose data_offsets cover the data exactly, in any header order, empty tensors included', async () => {
    // The header lists "late" first; its data comes after "acts" in the file.
    const json = JSON.stringify({
      late: { dtype: 'F32', shape: [2, 4], data_offsets: [96, 128] },
      empty: { dtype: 'F32', shape: [0, 4], data_offsets: [96, 96] },
      acts: { dtype: 'F32', shape: [6, 4], data_offsets: [0, 96] },
    });
    const length = Buffer.alloc(8);
    length.writeBigUInt64LE(BigInt(json.length));
    const path = write(tmp.path('reordered.safetensors'), Buffer.concat([length, Buffer.from(json), bytesOf(learned), bytesOf(learned.subarray(0, 8))]));
    const file = await openActivationFile(path);
    try {
      expect(Array.from(await readAll(file, 'acts'))).toEqual(Array.from(learned));
      expect(Array.from(await readAll(file, 'late'))).toEqual(Array.from(learned.subarray(0, 8)));
    } finally {
      await file.handle.close();
    }
  });

  it('rejects each malformed header, naming the file and the problem: sizes, truncation, overlapping or gapped data_offsets', async () => {
    const good = safetensorsBytes({ acts: { dtype: 'F32', shape: [6, 4], data: learned } });
    const headerOf = (json: string): Buffer => {
      const length = Buffer.alloc(8);
      length.writeBigUInt64LE(BigInt(Buffer.byteLength(json)));
      return Buffer.concat([length, Buffer.from(json), bytesOf(learned)]);
    };
    const cases: [string, Buffer, RegExp][] = [
      ['short.safetensors', Buffer.from([1, 2, 3]), /the file has 3 bytes, too short for a safetensors header/],
      ['past-end.safetensors', safetensorsBytes({ acts: { dtype: 'F32', shape: [6, 4], data: learned } }, { headerLength: 10_000n }), /header length 10000 bytes runs past the end of the file \(\d+ bytes\)/],
      ['huge-length.safetensors', safetensorsBytes({ acts: { dtype: 'F32', shape: [6, 4], data: learned } }, { headerLength: 2n ** 63n }), /header length 9223372036854775808 bytes runs past the end/],
      ['json.safetensors', headerOf('{"acts": {"dtype": "F32",'), /the safetensors header is not valid JSON/],
      ['array.safetensors', headerOf('[1, 2]'), /must be a JSON object of tensors by name/],
      ['no-dtype.safetensors', headerOf('{"acts": {"shape": [6, 4], "data_offsets": [0, 96]}}'), /tensor "acts" in the header has no dtype string/],
      ['bad-shape.safetensors', headerOf('{"acts": {"dtype": "F32", "shape": [6, -4], "data_offsets": [0, 96]}}'), /shape must be an array of non-negative integers, got \[6,-4\]/],
      ['bad-offsets.safetensors', headerOf('{"acts": {"dtype": "F32", "shape": [6, 4], "data_offsets": [96, 0]}}'), /data_offsets must be \[begin, end\] with 0 <= begin <= end, got \[96,0\]/],
      [
        'lying.safetensors',
        safetensorsBytes({ acts: { dtype: 'F32', shape: [6, 5], data: learned } }),
        /^tensor "acts": data_offsets \[0, 96\] hold 96 bytes, but shape \[6, 5\] of F32 needs 120 bytes$/,
      ],
      [
        'lying-unread-dtype.safetensors',
        safetensorsBytes({ acts: { dtype: 'F32', shape: [6, 4], data: learned }, ids: { dtype: 'I64', shape: [6], data: learned.subarray(0, 6) } }),
        /^tensor "ids": data_offsets \[96, 120\] hold 24 bytes, but shape \[6\] of I64 needs 48 bytes$/,
      ],
      [
        'truncated.safetensors',
        safetensorsBytes({ acts: { dtype: 'F32', shape: [6, 4], data: learned } }).subarray(0, -10),
        /^tensor "acts": its data ends at byte \d+, past the end of the file \(\d+ bytes\): truncated$/,
      ],
      [
        'offsets-past-end.safetensors',
        safetensorsBytes({ acts: { dtype: 'F32', shape: [6, 4], data: learned, offsets: [1000, 1096] } }),
        /^tensor "acts": its data ends at byte \d+, past the end of the file/,
      ],
      [
        'overlap.safetensors',
        safetensorsBytes({
          a: { dtype: 'F32', shape: [6, 4], data: learned, offsets: [0, 96] },
          b: { dtype: 'F32', shape: [6, 4], data: learned, offsets: [64, 160] },
          c: { dtype: 'F32', shape: [8], data: learned.subarray(0, 8) },
        }),
        /^tensors "a" and "b" overlap: data_offsets \[64, 160\] start before byte 96, where the other ends; each tensor's data must be its own$/,
      ],
      [
        'same-bytes.safetensors',
        safetensorsBytes({
          a: { dtype: 'F32', shape: [6, 4], data: learned, offsets: [0, 96] },
          b: { dtype: 'F32', shape: [6, 4], data: learned, offsets: [0, 96] },
        }),
        /^tensors "a" and "b" overlap: data_offsets \[0, 96\] start before byte 96/,
      ],
      [
        'gap.safetensors',
        safetensorsBytes({
          // 72 bytes written for a tensor of 64: 8 bytes belong to no tensor.
          a: { dtype: 'F32', shape: [4, 4], data: learned.subarray(0, 18), offsets: [0, 64] },
          b: { dtype: 'F32', shape: [2, 4], data: learned.subarray(0, 8), offsets: [72, 104] },
        }),
        /^bytes 64 to 72 of the data belong to no tensor \(after tensor "a", before tensor "b"\): the header's data_offsets leave a gap$/,
      ],
      [
        'gap-first.safetensors',
        safetensorsBytes({ a: { dtype: 'F32', shape: [5, 4], data: learned, offsets: [16, 96] } }),
        /^bytes 0 to 16 of the data belong to no tensor \(before the first tensor, before tensor "a"\)/,
      ],
      [
        'gap-last.safetensors',
        safetensorsBytes({ a: { dtype: 'F32', shape: [5, 4], data: learned, offsets: [0, 80] } }),
        /^bytes 80 to 96 of the data belong to no tensor \(after tensor "a"\): the header's data_offsets leave a gap at the end of the file$/,
      ],
    ];
    for (const [name, bytes, problem] of cases) {
      const path = write(tmp.path(name), bytes);
      const e = await cliError(openActivationFile(path));
      expect(e.subject, name).toBe(path);
      expect(e.problem, name).toMatch(problem);
    }
    expect(good.length).toBeGreaterThan(96);
  });

  it('rejects a tensor that is missing, ambiguous, or of a dtype it does not read', async () => {
    const cases: [string, Buffer, string | undefined, RegExp][] = [
      ['missing.safetensors', file3(), 'nope', /no tensor named "nope" \(--tensor\); the file holds "acts", "src", "dec"/],
      ['several.safetensors', file3(), undefined, /the file holds 3 tensors \("acts", "src", "dec"\); choose one with --tensor NAME/],
      ['empty.safetensors', safetensorsBytes({}, { metadata: { a: 'b' } }), undefined, /the file holds no tensors/],
      ['i64.safetensors', safetensorsBytes({ acts: { dtype: 'I64', shape: [6, 2], data: learned } }), undefined, /tensor "acts" has dtype I64; only F32, F16, BF16 and F64 are supported/],
    ];
    for (const [name, bytes, tensorName, problem] of cases) {
      const path = write(tmp.path(name), bytes);
      const file = await openActivationFile(path);
      try {
        let error: unknown;
        try {
          fileTensor(file, tensorName, [], '--tensor');
        } catch (e) {
          error = e;
        }
        expect(error, name).toBeInstanceOf(CliError);
        expect((error as CliError).subject).toBe(path);
        expect((error as CliError).problem, name).toMatch(problem);
      } finally {
        await file.handle.close();
      }
    }
  });
});

describe('opening files', () => {
  it('names a missing file and a directory', async () => {
    const missing = tmp.path('does-not-exist.npy');
    expect((await cliError(openActivationFile(missing))).message).toBe(`${missing}: no such file`);
    const dir = tmp.path('a-directory.npy');
    mkdirSync(dir);
    expect((await cliError(openActivationFile(dir))).message).toBe(`${dir}: is a directory, not a file`);
  });

  it('reports a file that shrank after its header was read as truncated', async () => {
    const path = write(tmp.path('shrinks.npy'), npyBytes(denseActivations(40, 5), [8, 5]));
    const file = await openActivationFile(path);
    try {
      truncateSync(path, 128 + 60);
      const reader = new RowReader(fileTensor(file, undefined, [], 'FILE'));
      const e = await cliError(reader.read(0, 8, new Float32Array(40)));
      expect(e.message).toBe(`${path}: the file ended at byte 188 while reading rows 0 to 8 of the array (bytes 128 to 288): truncated`);
    } finally {
      await file.handle.close();
    }
  });

  it('refuses row ranges outside the tensor', async () => {
    const file = await openActivationFile(write(tmp.path('range.npy'), npyBytes(denseActivations(40, 5), [8, 5])));
    try {
      const reader = new RowReader(fileTensor(file, undefined, [], 'FILE'));
      await expect(reader.read(6, 3, new Float32Array(15))).rejects.toThrow(/rows \[6, 9\) are outside the tensor's 8 rows/);
      await expect(reader.read(0, 3, new Float32Array(14))).rejects.toThrow(/into holds 14 elements, fewer than 15/);
    } finally {
      await file.handle.close();
    }
  });
});

describe('parsePythonLiteral', () => {
  it('reads the dict literals numpy writes', () => {
    const d = parsePythonLiteral("{'descr': '<f2', 'fortran_order': False, 'shape': (3,), }   \n") as Record<string, unknown>;
    expect(d.descr).toBe('<f2');
    expect(d.fortran_order).toBe(false);
    expect(d.shape).toBeInstanceOf(Tuple);
    expect((d.shape as Tuple).items).toEqual([3]);
    const e = parsePythonLiteral('{"descr": "<f4", "fortran_order": True, "shape": (), "x": [None, -2]}') as Record<string, unknown>;
    expect(e).toMatchObject({ descr: '<f4', fortran_order: true, x: [null, -2] });
    expect((e.shape as Tuple).items).toEqual([]);
  });

  it('says where a literal goes wrong', () => {
    expect(() => parsePythonLiteral("{'a': 1")).toThrow(/expected ',' or '}' at character 7/);
    expect(() => parsePythonLiteral("{'a' 1}")).toThrow(/expected ':' at character 5/);
    expect(() => parsePythonLiteral("{'a': 1} x")).toThrow(/unexpected text after the literal at character 9/);
    expect(() => parsePythonLiteral("{'a: 1}")).toThrow(/unterminated string/);
    expect(() => parsePythonLiteral('{1: 2}')).toThrow(/expected a string key/);
  });
});
