/**
 * `sae-metrics coordinate` and `worker` without Redis (in `npm test`): their command lines (each
 * bad one is exit code 2 and one line naming the option, before any connection), the job and
 * result checks of the protocol, and one result kept per shard. Their runs against a real
 * redis-server are in test/queue/queue.redis.test.ts (`npm run test:redis`).
 */
import { writeFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { npyBytes, scratchDir, write } from './files.js';
import { run } from '../../src/cli/run.js';
import { parseCoordinateCommandLine, parseWorkerCommandLine } from '../../src/cli/queue/args.js';
import { defaultShardCount, onePerShard, partText } from '../../src/cli/queue/coordinate.js';
import { JOB_FORMAT, JOB_VERSION, jobDataProblem, jobResultProblem, sha256Hex } from '../../src/cli/queue/protocol.js';
import { redactUrl } from '../../src/cli/queue/redis.js';
import { partFilePath } from '../../src/cli/queue/worker.js';

async function sae(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { stdout: { write: (s: string) => out.push(s) > 0 }, stderr: { write: (s: string) => err.push(s) > 0, isTTY: false } });
  return { code, stdout: out.join(''), stderr: err.join('') };
}

describe('command lines', () => {
  const bad: [string, readonly string[], string][] = [
    ['no --redis', ['coordinate', 'a.npy'], '--redis: is required: sae-metrics coordinate --redis redis://HOST:PORT ...'],
    ['no --redis (worker)', ['worker'], '--redis: is required: sae-metrics worker --redis redis://HOST:PORT ...'],
    ['not a URL', ['coordinate', '--redis', 'localhost:6379', 'a.npy'], '--redis: must be a redis:// or rediss:// URL, got "localhost:6379"'],
    ['another scheme, password hidden', ['worker', '--redis', 'http://u:secret@h:1'], '--redis: must be a redis:// or rediss:// URL, got "http://u:***@h:1/"'],
    ['a path that is not a database', ['worker', '--redis', 'redis://h:1/x'], '--redis: the path must be a database number, got "redis://h:1/x"'],
    ['--redis without a value', ['coordinate', 'a.npy', '--redis'], '--redis: needs a value'],
    ['--shard', ['coordinate', '--redis', 'redis://h', 'a.npy', '--shard', '0/2', '--state-out', 'p.json'], '--shard: is set by coordinate for each shard job: give --shards N instead'],
    ['--state-out', ['coordinate', '--redis', 'redis://h', 'a.npy', '--state-out=p.json'], '--state-out: is set by coordinate for each shard job: give --shards N instead'],
    ['--shards 0', ['coordinate', '--redis', 'redis://h', 'a.npy', '--shards', '0'], '--shards: must be a positive integer, got "0"'],
    ['--shards past the most', ['coordinate', '--redis', 'redis://h', 'a.npy', '--shards', '1000001'], '--shards: must be an integer in [1, 1000000], got "1000001"'],
    ['--inline-max -1', ['coordinate', '--redis', 'redis://h', 'a.npy', '--inline-max=-1'], '--inline-max: must be an integer number of bytes >= 0, got "-1"'],
    ['--queue with a colon', ['worker', '--redis', 'redis://h', '--queue', 'a:b'], `--queue: must be 1 to 100 letters, digits, '_', '.' or '-', got "a:b"`],
    ['--connect-timeout 0', ['worker', '--redis', 'redis://h', '--connect-timeout', '0'], '--connect-timeout: must be a number of seconds in [0.1, 3600], got "0"'],
    ['--stalled-ms 50', ['worker', '--redis', 'redis://h', '--stalled-ms', '50'], '--stalled-ms: must be at least 100, got "50"'],
    ['a worker takes no FILE', ['worker', '--redis', 'redis://h', 'a.npy'], 'command line: Unexpected argument \'a.npy\'. This command does not take positional arguments'],
    ['a run option that is wrong', ['coordinate', '--redis', 'redis://h', 'a.npy', '--metrics', 'nope'], '--metrics: unknown metric "nope"'],
    ['no FILE', ['coordinate', '--redis', 'redis://h'], 'FILE: no activation file given (see sae-metrics --help)'],
  ];
  for (const [name, args, line] of bad) {
    it(`${name}: exit code 2, one line`, async () => {
      const r = await sae(args);
      expect(r.code).toBe(2);
      expect(r.stdout).toBe('');
      expect(r.stderr.split('\n').length).toBe(2);
      expect(r.stderr.startsWith(`sae-metrics: ${line}`), r.stderr).toBe(true);
    });
  }

  it('--help of each prints its usage and exits 0 without connecting', async () => {
    for (const [command, first] of [
      ['coordinate', 'Usage: sae-metrics coordinate --redis URL FILE... [options]'],
      ['worker', 'Usage: sae-metrics worker --redis URL [options]'],
    ] as const) {
      const r = await sae([command, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout.split('\n')[0]).toBe(first);
      expect(r.stderr).toBe('');
    }
  });

  it('coordinate takes its own options anywhere and leaves the run\'s command line as given', () => {
    const c = parseCoordinateCommandLine(['a.npy', '--redis', 'redis://u:p@h:7/2', '--metrics', 'l1,top', '--shards=4', 'b.npy', '--inline-max', '0', '--queue', 'q.1', '--connect-timeout', '2.5'], {});
    if (c.help) throw new Error('help');
    expect(c.runArgv).toEqual(['a.npy', '--metrics', 'l1,top', 'b.npy']);
    expect(c.run.files).toEqual(['a.npy', 'b.npy']);
    expect([c.shards, c.inlineMax, c.queue, c.connectTimeoutMs, c.redis.port, c.redis.pathname]).toEqual([4, 0, 'q.1', 2500, '7', '/2']);
    expect(redactUrl(c.redis)).toBe('redis://u:***@h:7/2');
    const w = parseWorkerCommandLine(['--redis', 'rediss://h', '--workers', '3', '--stalled-ms', '1500']);
    if (w.help) throw new Error('help');
    expect([w.workers, w.stalledMs, w.queue, w.redis.protocol]).toEqual([3, 1500, 'sae-metrics', 'rediss:']);
  });
});

describe('the protocol', () => {
  const identity = { files: [{ path: 'd/a.npy', bytes: 10, headerSha256: 'x' }], segments: [] };
  const job = { format: JOB_FORMAT, version: JOB_VERSION, run: 'r1', argv: ['a.npy'], cwd: '/w', shard: { index: 1, count: 3 }, identity, inlineMax: 0 };

  it('a job this build can run passes; any other is refused, saying why', () => {
    expect(jobDataProblem(job)).toBeUndefined();
    expect(jobDataProblem({ ...job, version: 2 })).toBe('is a version 2 shard job; this worker runs version 1 (upgrade the workers and the coordinator together)');
    expect(jobDataProblem({ ...job, format: 'x' })).toBe('is not a sae-metrics shard job (format "x")');
    expect(jobDataProblem(null)).toBe('is not a sae-metrics shard job (format "object")');
    expect(jobDataProblem({ ...job, shard: { index: 3, count: 3 } })).toBe('has a bad shard {"index":3,"count":3}');
    expect(jobDataProblem({ ...job, argv: [1] })).toBe('has a bad run, argv or cwd');
    expect(jobDataProblem({ ...job, identity: {} })).toBe('has no inputs identity');
    expect(jobDataProblem({ ...job, inlineMax: -1 })).toBe('has a bad inlineMax -1');
    // The run names the file a worker writes a large state to: it must not lead out of the inputs' folder.
    for (const run of ['../../../tmp/x', 'a/b', '..', '', 'r'.repeat(65)]) {
      expect(jobDataProblem({ ...job, run }), run).toBe(`has a bad run ${JSON.stringify(run)} (1 to 64 letters, digits, '_' or '-')`);
    }
  });

  it('results: of this run, a shard of it, a checksum, and the state or its path', () => {
    const sha256 = sha256Hex('text');
    const ok = { run: 'r1', shard: 2, sha256, bytes: 4, text: 'text' };
    expect(jobResultProblem(ok, 'r1', 3)).toBeUndefined();
    expect(jobResultProblem({ ...ok, run: 'r2' }, 'r1', 3)).toBe('belongs to run "r2", not r1');
    expect(jobResultProblem({ ...ok, shard: 3 }, 'r1', 3)).toBe('has a bad shard index 3 (the run has 3)');
    expect(jobResultProblem({ ...ok, sha256: 'abc' }, 'r1', 3)).toBe('has a bad checksum or size');
    expect(jobResultProblem({ ...ok, path: '/p' }, 'r1', 3)).toBe('must hold the state or the path of its file (one of them)');
    expect(jobResultProblem('x', 'r1', 3)).toBe('is not a shard result (string)');
  });

  it('one result per shard, in shard order, whatever the keys and repeats; a bad one is named', () => {
    const r = (shard: number, text: string) => ({ run: 'r', shard, sha256: sha256Hex(text), bytes: text.length, text });
    const kept = onePerShard({ 'bull:q:r.2': r(2, 'c'), 'bull:q:r.0.again': r(0, 'a2'), 'bull:q:r.0': r(0, 'a'), 'bull:q:r.1': r(1, 'b') }, 'r', 3);
    expect(kept.map((a) => [a.key, a.result.shard])).toEqual([
      ['bull:q:r.0', 0],
      ['bull:q:r.1', 1],
      ['bull:q:r.2', 2],
    ]);
    expect(() => onePerShard({ 'bull:q:r.0': { ...r(0, 'a'), run: 'other' } }, 'r', 3)).toThrow('shard job bull:q:r.0: its result belongs to run "other", not r');
  });

  it('a state file goes beside the first input; the default shard count follows the input size', () => {
    expect(partFilePath({ identity, cwd: '/w', run: 'r1', shard: { index: 1, count: 3 } })).toBe('/w/d/.sae-metrics-r1-shard-1-of-3.json');
    const id = (bytes: number, rows: number) => ({ files: [{ path: 'a', bytes, headerSha256: '' }], segments: [{ learned: { path: 'a', name: null, dtype: 'F32', shape: [rows, 8] }, source: null, decoded: null }] });
    expect(defaultShardCount(id(100, 10))).toBe(1);
    expect(defaultShardCount(id(3 * 256 * 1024 * 1024 + 1, 10_000_000))).toBe(4);
    expect(defaultShardCount(id(3 * 256 * 1024 * 1024 + 1, 2048))).toBe(2);
  });

  it('a state returned in a file is read and its checksum verified; a changed, short or missing file is one line naming it', async () => {
    const tmp = scratchDir('i14-queue-part-');
    try {
      const text = '{"a part": 1}';
      const path = tmp.path('p.json');
      writeFileSync(path, text);
      const result = { run: 'r', shard: 1, sha256: sha256Hex(text), bytes: text.length, path };
      expect(await partText({ key: 'k', result })).toBe(text);
      expect(await partText({ key: 'k', result: { run: 'r', shard: 1, sha256: sha256Hex(text), bytes: text.length, text } })).toBe(text);
      writeFileSync(path, text.replace('1', '2'));
      await expect(partText({ key: 'k', result })).rejects.toThrow(`${path}: shard 1's state does not match the checksum its worker returned (changed or truncated)`);
      writeFileSync(path, text.slice(0, 5));
      await expect(partText({ key: 'k', result })).rejects.toThrow(`${path}: shard 1's state does not match the checksum its worker returned (changed or truncated)`);
      await expect(partText({ key: 'k', result: { ...result, path: tmp.path('gone.json') } })).rejects.toThrow(
        `${tmp.path('gone.json')}: cannot read shard 1's state that a worker wrote there (ENOENT): files must be at the same paths on every machine`,
      );
      await expect(partText({ key: 'bull:q:r.1', result: { run: 'r', shard: 1, sha256: sha256Hex(text), bytes: text.length, text: `${text} ` } })).rejects.toThrow(
        "shard job bull:q:r.1: shard 1's state does not match the checksum its worker returned (changed or truncated)",
      );
    } finally {
      tmp.remove();
    }
  });

  it('--top K too large for the inputs: exit 2 before any connection, as a run', async () => {
    const tmp = scratchDir('i14-queue-top-');
    try {
      const file = write(tmp.path('wide.npy'), npyBytes(new Float32Array(3 * 300), [3, 300]));
      const args = [file, '--metrics', 'top', '--top', String(2 ** 20)];
      const single = await sae(args);
      // Nothing listens on port 1: a connection attempt would be exit 1 after the timeout.
      const queued = await sae(['coordinate', '--redis', 'redis://127.0.0.1:1', '--connect-timeout', '0.1', ...args]);
      expect(single.code).toBe(2);
      expect(queued.code).toBe(2);
      expect(queued.stderr).toBe(single.stderr);
      expect(queued.stderr).toMatch(/^sae-metrics: --top: K = 1048576 is too large for 300 features/);
    } finally {
      tmp.remove();
    }
  });
});
