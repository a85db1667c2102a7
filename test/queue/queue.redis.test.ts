/**
 * `sae-metrics coordinate` and `sae-metrics worker` against a real redis-server on a free loopback
 * port (started here, stopped after): the report is the single run's, bit for bit, for any number
 * of shards and worker processes; a worker killed with SIGKILL mid-shard has its job taken by
 * another after the stalled-job timeout; a shard delivered twice counts once; a worker whose files
 * differ fails the job at once and the coordinator exits with that error; Redis unreachable, silent
 * or stopped mid-run is one line and exit code 1 within the connection timeout.
 */
import { mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { Queue, type Job } from 'bullmq';
import { Redis } from 'ioredis';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { comparable, floats } from '../support/reports.js';
import { mulberry32 } from '../support/random.js';
import { npyBytes, safetensorsBytes, scratchDir, write } from '../cli/files.js';
import { cli, requireBuilt } from '../cli/run-cli.js';
import { run } from '../../src/cli/run.js';
import { createMetricPool } from '../../src/index.js';
import { parseCommandLine } from '../../src/cli/args.js';
import { identityOfCommandLine } from '../../src/cli/shard.js';
import { freePort, startCli, startRedis, startWorker, stopAllRedis, stopChild, type CliProcess, type RedisServer } from './processes.js';

const tmp = scratchDir('i14-queue-test-');
const f = tmp.path;

const LEARNED = 'l1,l0,dead,density,fired,top,deadwindow,freq,actstats,acthist';
const RECON = 'l2,loss,ev,fvu,cos,l2ratio,shrinkage,nmse';

let redis: RedisServer;
const workers: CliProcess[] = [];
let queueNumber = 0;
/** A queue of its own for each test: nothing left by one test reaches the next. */
const nextQueue = (): string => `t${++queueNumber}`;

beforeAll(async () => {
  requireBuilt();
  redis = await startRedis();
});
afterEach(async () => {
  await Promise.all(workers.splice(0).map((w) => stopChild(w.child, 'SIGKILL')));
});
afterAll(async () => {
  await redis?.stop();
  await stopAllRedis();
  tmp.remove();
});

/** Files of random sizes (not multiples of 1024, one shorter than a leaf). */
function npySet(tag: string, rowsList: readonly number[], features: number, seed: number): string[] {
  return rowsList.map((n, i) => write(f(`${tag}${i}.npy`), npyBytes(floats(n * features, seed + i, 0.25), [n, features])));
}

/** Runs the single run and the coordinator over the same files; both must exit 0. */
async function bothRuns(url: string, queue: string, args: readonly string[], coordinatorArgs: readonly string[], tag: string) {
  const outputs = (who: string): string[] => ['--top-out', f(`${tag}-${who}-top.json`), '--acthist-out', f(`${tag}-${who}-acthist.json`), '--histogram', f(`${tag}-${who}-hist.svg`)];
  const files = (who: string): string[] => ['top.json', 'acthist.json', 'hist.svg'].map((x) => readFileSync(f(`${tag}-${who}-${x}`), 'utf8'));
  const single = await cli([...args, '--json', '--backend', 'js', ...outputs('single')]);
  expect(single.stderr).toBe('');
  expect(single.code).toBe(0);
  const queued = await cli(['coordinate', '--redis', url, '--queue', queue, ...args, '--json', '--backend', 'js', ...outputs('queue'), ...coordinatorArgs], {}, 150_000);
  expect(queued.stderr).toBe('');
  expect(queued.code).toBe(0);
  return { single, queued, singleFiles: files('single'), queueFiles: files('queue') };
}

describe('coordinate + workers = one run, bit for bit', () => {
  it('N = 1, 3, 5 and more shards than leaves, 2 and 3 worker processes, every metric and output; states inline and in files', async () => {
    const queue = nextQueue();
    const npy = npySet('a', [2500, 700, 1024, 1900], 20, 10);
    // A component axis and source/decoded activations (the reconstruction metrics' float sums).
    const st = [650, 2300].map((n, i) => {
      const source = floats(n * 2 * 6, 30 + i);
      return write(
        f(`s${i}.safetensors`),
        safetensorsBytes({
          learned: { dtype: 'F32', shape: [n, 2, 12], data: floats(n * 2 * 12, 20 + i, 0.3) },
          source: { dtype: 'F32', shape: [n, 2, 6], data: source },
          decoded: { dtype: 'F32', shape: [n, 2, 6], data: source.map((x, j) => x * 0.9 + (j % 5) * 0.013) },
        }),
      );
    });
    workers.push(await startWorker(redis.url, ['--queue', queue]), await startWorker(redis.url, ['--queue', queue, '--workers', '2']));
    const sets = [
      { args: [...npy, '--metrics', LEARNED, '--top', '3', '--dead-window', '1500'], leaves: 3 + 1 + 1 + 2 },
      { args: [...st, '--tensor', 'learned', '--source', 'source', '--decoded', 'decoded', '--metrics', `${LEARNED},${RECON}`, '--top', '2'], leaves: 1 + 3 },
    ];
    let round = 0;
    for (const [k, set] of sets.entries()) {
      for (const shards of [1, 3, 5, set.leaves + 2]) {
        if (round === 2) workers.push(await startWorker(redis.url, ['--queue', queue]));
        // Every other run returns its states through files beside the inputs.
        const inline = round % 2 === 0 ? [] : ['--inline-max', '0'];
        const r = await bothRuns(redis.url, queue, set.args, ['--shards', String(shards), ...inline], `set${k}-n${shards}`);
        expect(comparable(r.queued.stdout), `set ${k}, ${shards} shards`).toEqual(comparable(r.single.stdout));
        expect(r.queueFiles, `set ${k}, ${shards} shards: --top-out, --acthist-out, --histogram`).toEqual(r.singleFiles);
        round++;
      }
    }
    // The state files were written (the workers said so) and removed after the merge.
    expect(workers.some((w) => w.stderrLines().some((l) => /written to .*\.sae-metrics-.*\.json/.test(l)))).toBe(true);
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('.sae-metrics-'))).toEqual([]);
  });
});

describe('runs at once on one queue', () => {
  it('three coordinators sharing two workers, on the same files (other metrics, options and shard counts; states inline and in files): each report is its single run\'s', async () => {
    const queue = nextQueue();
    const files = npySet('c', [3100, 800, 2048], 12, 410);
    workers.push(await startWorker(redis.url, ['--queue', queue]), await startWorker(redis.url, ['--queue', queue, '--workers', '2']));
    const runs = [
      { args: [...files, '--metrics', LEARNED, '--top', '2', '--dead-window', '900'], extra: ['--shards', '5'] },
      { args: [...files, '--metrics', 'top,deadwindow,l0', '--top', '4', '--dead-window', '2000'], extra: ['--shards', '7', '--inline-max', '0'] },
      { args: [...files, '--metrics', 'l1,dead,acthist,actstats'], extra: ['--shards', '3', '--inline-max', '0'] },
    ];
    // Runs 0 and 1 compute top: their --top-out files too.
    const outputs = (k: number, who: string): string[] => (k < 2 ? ['--top-out', f(`c${k}-${who}-top.json`)] : []);
    const singles = await Promise.all(runs.map((r, k) => cli([...r.args, '--json', '--backend', 'js', ...outputs(k, 'single')])));
    const queued = await Promise.all(
      runs.map((r, k) => cli(['coordinate', '--redis', redis.url, '--queue', queue, ...r.args, '--json', '--backend', 'js', ...outputs(k, 'queue'), ...r.extra], {}, 150_000)),
    );
    for (const [k, q] of queued.entries()) {
      const single = singles[k] as (typeof singles)[number];
      expect(single.code).toBe(0);
      expect(q.stderr, `run ${k}`).toBe('');
      expect(q.code).toBe(0);
      expect(comparable(q.stdout), `run ${k}`).toEqual(comparable(single.stdout));
      if (k < 2) expect(readFileSync(f(`c${k}-queue-top.json`), 'utf8'), `run ${k}: --top-out`).toBe(readFileSync(f(`c${k}-single-top.json`), 'utf8'));
    }
    expect(readdirSync(tmp.dir).filter((n) => n.startsWith('.sae-metrics-'))).toEqual([]);
  });
});

describe('a worker that serves many runs', () => {
  it('keeps one thread pool: runs of other --workers and --backend do not pile pools up in a worker that runs for weeks', async () => {
    const queue = nextQueue();
    const files = npySet('k', [1500], 8, 430);
    let open = 0;
    let most = 0;
    let made = 0;
    const stop = new AbortController();
    const out: string[] = [];
    const worker = run(['worker', '--redis', redis.url, '--queue', queue], {
      stdout: { write: () => true },
      stderr: { write: (t: string) => out.push(t) > 0, isTTY: false },
      signal: stop.signal,
      createPool: (options) => {
        const pool = createMetricPool(options);
        made++;
        most = Math.max(most, ++open);
        const close = pool.close.bind(pool);
        return Object.assign(pool, { close: async () => (open--, close()) });
      },
    });
    try {
      for (const [workers, backend] of [['1', 'js'], ['2', 'js'], ['1', 'wasm'], ['3', 'js'], ['1', 'js']] as const) {
        const r = await cli(['coordinate', '--redis', redis.url, '--queue', queue, ...files, '--metrics', 'l1,l0', '--workers', workers, '--backend', backend, '--shards', '2', '--json'], {}, 60_000);
        expect(r.stderr).toBe('');
        expect(r.code).toBe(0);
      }
    } finally {
      stop.abort();
      expect(await worker).toBe(0);
    }
    // Each run's options made a pool (the third and fourth at least differ from those before).
    expect(made).toBeGreaterThanOrEqual(4);
    expect(most, out.join('')).toBe(1);
    expect(open).toBe(0);
  });
});

/** The run queue and parent job the coordinator made on `queue` (polls Redis until it is there). */
async function findRun(client: Redis, queue: string): Promise<{ run: string; parent: Job; runQueue: Queue }> {
  const deadline = Date.now() + 60_000;
  while (Date.now() < deadline) {
    const keys = await client.keys(`bull:${queue}.run.*:meta`);
    const run = keys[0]?.split(':')[1]?.slice(`${queue}.run.`.length);
    if (run !== undefined) {
      const runQueue = new Queue(`${queue}.run.${run}`, { connection: client.duplicate() });
      const [parent] = await runQueue.getJobs(['waiting-children']);
      if (parent !== undefined) return { run, parent, runQueue };
      await runQueue.close();
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`no run on queue ${queue}`);
}

describe('at-least-once delivery', () => {
  it('a worker killed with SIGKILL mid-shard: another takes its job after the stalled-job timeout, and the answer is the same bits', async () => {
    const queue = nextQueue();
    // Shards big enough that a worker is still computing when it is killed.
    const files = npySet('k', [26_000, 21_000, 9_500], 96, 60);
    const args = [...files, '--metrics', 'l1,l0,dead,density,actstats,top', '--top', '4'];
    const stall = ['--queue', queue, '--stalled-ms', '1500'];
    const victim = await startWorker(redis.url, stall);
    workers.push(victim);
    const coordinator = startCli(['coordinate', '--redis', redis.url, '--queue', queue, ...args, '--json', '--backend', 'js', '--shards', '6']);
    const started = await victim.waitFor(/shard \d+ of 6: started/);
    victim.child.kill('SIGKILL');
    await victim.exit();
    const shard = /shard (\d+) of 6/.exec(started)?.[1];
    // It died before finishing the shard it had started.
    expect(victim.stderrLines().filter((l) => new RegExp(`shard ${shard} of 6: (computed|done)`).test(l))).toEqual([]);
    workers.push(await startWorker(redis.url, stall), await startWorker(redis.url, stall));
    const { code } = await coordinator.exit();
    expect(coordinator.stderrLines()).toEqual([]);
    expect(code).toBe(0);
    // Another worker started that shard again, as a job taken over.
    const retaken = workers.slice(1).flatMap((w) => w.stderrLines()).filter((l) => new RegExp(`shard ${shard} of 6: started \\(start 2`).test(l));
    expect(retaken).toHaveLength(1);
    const single = await cli([...args, '--json', '--backend', 'js']);
    expect(single.code).toBe(0);
    expect(comparable(coordinator.stdout())).toEqual(comparable(single.stdout));
  });

  it('a shard delivered twice (a second job for shard 0 in the same flow) counts once', async () => {
    const queue = nextQueue();
    const files = npySet('d', [3000, 1500], 24, 90);
    const args = [...files, '--metrics', `${LEARNED}`, '--top', '3'];
    const coordinator = startCli(['coordinate', '--redis', redis.url, '--queue', queue, ...args, '--json', '--backend', 'js', '--shards', '3']);
    const client = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: null });
    try {
      const { run, parent, runQueue } = await findRun(client, queue);
      const shards = new Queue(queue, { connection: client.duplicate() });
      const first = (await shards.getJob(`${run}.0`)) as Job;
      // The same shard's job again, a child of the same parent: the parent waits for both.
      await shards.add('shard', first.data, { jobId: `${run}.0.again`, parent: { id: parent.id as string, queue: runQueue.qualifiedName } });
      expect(await parent.getDependenciesCount()).toMatchObject({ unprocessed: 4 });
      workers.push(await startWorker(redis.url, ['--queue', queue]));
      const { code } = await coordinator.exit();
      expect(coordinator.stderrLines()).toEqual([]);
      expect(code).toBe(0);
      // Both jobs of shard 0 were computed.
      expect(workers[0]?.stderrLines().filter((l) => /shard 0 of 3: done/.test(l))).toHaveLength(2);
      await shards.close();
      await runQueue.close();
    } finally {
      client.disconnect();
    }
    const single = await cli([...args, '--json', '--backend', 'js']);
    expect(comparable(coordinator.stdout())).toEqual(comparable(single.stdout));
  });

  /**
   * A worker frozen (SIGSTOP) mid-shard past its lock while another takes its job over, then
   * resumed: the run's report must be the single run's. Returns the frozen worker and its shard.
   */
  async function frozenRun(queue: string, args: readonly string[], extra: readonly string[] = []) {
    const stall = ['--queue', queue, '--stalled-ms', '1500'];
    const frozen = await startWorker(redis.url, stall);
    workers.push(frozen);
    const coordinator = startCli(['coordinate', '--redis', redis.url, '--queue', queue, ...args, '--json', '--shards', '3', ...extra]);
    const started = await frozen.waitFor(/shard \d+ of 3: started/);
    frozen.child.kill('SIGSTOP');
    const shard = /shard (\d+) of 3/.exec(started)?.[1] as string;
    const other = await startWorker(redis.url, stall);
    workers.push(other);
    await other.waitFor(new RegExp(`shard ${shard} of 3: started \\(start 2`));
    // Both now compute the same shard; only the lock holder's completion counts.
    frozen.child.kill('SIGCONT');
    const { code } = await coordinator.exit();
    expect(coordinator.stderrLines()).toEqual([]);
    expect(code).toBe(0);
    const single = await cli([...args, '--json']);
    expect(comparable(coordinator.stdout())).toEqual(comparable(single.stdout));
    return { frozen, other, single, shard, run: /run (\w+)/.exec(started)?.[1] as string };
  }

  it('a worker frozen mid-shard (SIGSTOP) past its lock: another takes the job; the frozen one, resumed, finishes late and its completion is refused, and it goes on working', async () => {
    const queue = nextQueue();
    const files = npySet('z', [30_000, 18_000], 96, 200);
    const args = [...files, '--metrics', 'l1,l0,dead,density,actstats', '--backend', 'js'];
    const { frozen, other, single, shard, run } = await frozenRun(queue, args);
    // The resumed worker computed that shard too, and its completion was refused (its lock was gone).
    await frozen.waitFor(new RegExp(`shard ${shard} of 3: computed`));
    // Refused whether the run is still on (the lock is another's) or over (the job is gone).
    await frozen.waitFor(new RegExp(`job ${run}\\.${shard}: this worker's result was refused: (it held the job past its lock|the job is gone)`));
    expect(frozen.stderrLines().filter((l) => new RegExp(`shard ${shard} of 3: done`).test(l))).toEqual([]);
    // It is still a working worker: alone now, it computes a whole run.
    await stopChild(other.child);
    const again = await cli(['coordinate', '--redis', redis.url, '--queue', queue, ...args, '--json', '--shards', '2'], {}, 120_000);
    expect(again.stderr).toBe('');
    expect(comparable(again.stdout)).toEqual(comparable(single.stdout));
  });

  it('a worker frozen past its lock whose state goes through a file (--inline-max 0): its late file is removed when its result is refused, and none is left beside the inputs', async () => {
    const dir = f('late');
    mkdirSync(dir);
    const files = [30_000, 18_000].map((n, i) => write(`${dir}/l${i}.npy`, npyBytes(floats(n * 96, 270 + i, 0.25), [n, 96])));
    const { frozen, shard, run } = await frozenRun(nextQueue(), [...files, '--metrics', 'l1,l0,dead,density,actstats', '--backend', 'js'], ['--inline-max', '0']);
    await frozen.waitFor(new RegExp(`shard ${shard} of 3: computed .*written to`));
    await frozen.waitFor(new RegExp(`job ${run}\\.${shard}: this worker's result was refused`));
    await frozen.waitFor(new RegExp(`job ${run}\\.${shard}: removed its state file`));
    expect(readdirSync(dir).filter((n) => n.startsWith('.sae-metrics-'))).toEqual([]);
  });

  it('SIGTERM lets the job in hand finish: the worker exits 0 and that shard is not computed again', async () => {
    const queue = nextQueue();
    const files = npySet('g', [30_000, 12_000], 96, 230);
    const args = [...files, '--metrics', 'l1,l0,dead,density', '--backend', 'js'];
    const leaving = await startWorker(redis.url, ['--queue', queue, '--stalled-ms', '1500']);
    workers.push(leaving);
    const coordinator = startCli(['coordinate', '--redis', redis.url, '--queue', queue, ...args, '--json', '--shards', '3']);
    const started = await leaving.waitFor(/shard \d+ of 3: started/);
    const shard = /shard (\d+) of 3/.exec(started)?.[1] as string;
    leaving.child.kill('SIGTERM');
    const { code: leftWith } = await leaving.exit();
    expect(leftWith).toBe(0);
    const log = leaving.stderrLines();
    const run = /run (\w+)/.exec(started)?.[1] as string;
    expect(log.slice(-4).map((l) => l.replace(/^sae-metrics worker [^ ]+: /, '').replace(/ in [\d.]+ s .*/, ''))).toEqual([
      'stopping: the job in hand finishes first',
      `run ${run} shard ${shard} of 3: computed`,
      `run ${run} shard ${shard} of 3: done`,
      'stopped',
    ]);
    const rest = await startWorker(redis.url, ['--queue', queue, '--stalled-ms', '1500']);
    workers.push(rest);
    const { code } = await coordinator.exit();
    expect(code).toBe(0);
    expect(rest.stderrLines().filter((l) => new RegExp(`shard ${shard} of 3: started`).test(l))).toEqual([]);
    const single = await cli([...args, '--json']);
    expect(comparable(coordinator.stdout())).toEqual(comparable(single.stdout));
  });
});

describe('seeded chaos', () => {
  it('workers killed, frozen and resumed at random moments of a 12-shard run (3 disruptions a run, so that no job can stall past BullMQ\'s limit): the same bits every time', async () => {
    const files = npySet('c', [30_000, 25_000, 20_000], 96, 320);
    const args = [...files, '--metrics', 'l1,l0,dead,density,actstats,top', '--top', '3', '--backend', 'js'];
    const single = await cli([...args, '--json']);
    expect(single.code).toBe(0);
    let takeovers = 0;
    for (const seed of [11, 12, 13]) {
      const r = mulberry32(seed);
      const queue = nextQueue();
      const stall = ['--queue', queue, '--stalled-ms', '1000'];
      const alive: CliProcess[] = [];
      for (let i = 0; i < 3; i++) alive.push(await startWorker(redis.url, stall));
      workers.push(...alive);
      const coordinator = startCli(['coordinate', '--redis', redis.url, '--queue', queue, ...args, '--json', '--shards', '12']);
      let done = false;
      const exit = coordinator.exit().then((e) => ((done = true), e));
      const actions: string[] = [];
      for (let n = 0; n < 3 && !done; n++) {
        await Promise.race([exit, new Promise((t) => setTimeout(t, 50 + r() * 400))]);
        if (done) break;
        const i = Math.floor(r() * alive.length);
        const victim = alive[i] as CliProcess;
        // The first disruption freezes a worker past its lock: the run sees at least one takeover.
        if (n > 0 && r() < 0.5) {
          actions.push(`kill ${i}`);
          victim.child.kill('SIGKILL');
          const fresh = await startWorker(redis.url, stall);
          alive[i] = fresh;
          workers.push(fresh);
        } else {
          const ms = 1200 + Math.floor(r() * 1800);
          actions.push(`freeze ${i} for ${ms} ms`);
          victim.child.kill('SIGSTOP');
          setTimeout(() => victim.child.kill('SIGCONT'), ms);
        }
      }
      const { code } = await exit;
      expect(coordinator.stderrLines(), `seed ${seed}: ${actions.join(', ')}`).toEqual([]);
      expect(code).toBe(0);
      expect(comparable(coordinator.stdout()), `seed ${seed}: ${actions.join(', ')}`).toEqual(comparable(single.stdout));
      takeovers += workers.flatMap((w) => w.stderrLines()).filter((l) => /started \(start [2-9]/.test(l)).length;
      for (const w of alive) w.child.kill('SIGCONT');
      await Promise.all(workers.splice(0).map((w) => stopChild(w.child, 'SIGKILL')));
    }
    // The disruptions landed: jobs were taken over from workers that stopped.
    expect(takeovers).toBeGreaterThan(0);
  });
});

describe('hostile jobs', () => {
  it('a job of another version, not a job, a bad command line, a missing directory, other inputs or a --top too large fails once with its reason, and the worker goes on', async () => {
    const queue = nextQueue();
    const files = npySet('h', [1500], 8, 300);
    const worker = await startWorker(redis.url, ['--queue', queue]);
    workers.push(worker);
    const client = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: null });
    const shards = new Queue(queue, { connection: client });
    const identity = { files: [], segments: [] };
    const wide = write(f('wide.npy'), npyBytes(floats(3 * 300, 301), [3, 300]));
    const wideIdentity = await identityOfCommandLine(parseCommandLine([wide]));
    const job = { format: 'sae-metrics/queue-shard', version: 1, run: 'h1', argv: files, cwd: '/', shard: { index: 0, count: 1 }, identity, inlineMax: 0 };
    const cases: [string, unknown, string][] = [
      ['v2', { ...job, version: 2 }, 'job v2 is a version 2 shard job; this worker runs version 1 (upgrade the workers and the coordinator together)'],
      ['other', { hello: 'world' }, 'job other is not a sae-metrics shard job (format undefined)'],
      ['argv', { ...job, argv: [...files, '--metrics', 'nope'] }, 'the job\'s command line: --metrics: unknown metric "nope"'],
      ['cwd', { ...job, cwd: '/no/such/dir' }, "cannot enter the coordinator's working directory /no/such/dir (ENOENT): files must be at the same paths on every machine"],
      ['differs', job, "its files differ from the coordinator's: 1 input files (" + files[0] + '), not 0 ()'],
      // Inputs as the coordinator saw them, and a --top that no worker can compute (a usage error: no retry).
      ['top', { ...job, argv: [wide, '--metrics', 'top', '--top', String(2 ** 20)], identity: wideIdentity }, '--top: K = 1048576 is too large for 300 features'],
    ];
    try {
      for (const [id, data] of cases) await shards.add('shard', data, { jobId: id });
      for (const [id, , reason] of cases) {
        const deadline = Date.now() + 30_000;
        let state = '';
        while (Date.now() < deadline && (state = await shards.getJobState(id)) !== 'failed') await new Promise((r) => setTimeout(r, 50));
        expect(state, id).toBe('failed');
        const failed = (await shards.getJob(id)) as Job;
        expect(failed.failedReason, id).toMatch(new RegExp(`^worker [^ ]+: ${reason.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
        expect(failed.attemptsMade, id).toBe(1);
      }
    } finally {
      await shards.close();
      client.disconnect();
    }
    // Still working.
    const r = await cli(['coordinate', '--redis', redis.url, '--queue', queue, ...files, '--json', '--shards', '2'], {}, 60_000);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
  });
});

describe('the coordinator on a terminal', () => {
  it('says how many shards are done on one line, and clears it before the report', async () => {
    const queue = nextQueue();
    const files = npySet('t', [26_000, 21_000, 9_500], 96, 360);
    const out: string[] = [];
    const err: string[] = [];
    // The worker comes 1.5 s after the run is queued: the line has said "0 of 8" (it polls every 0.25 s).
    const late = new Promise<void>((done) => setTimeout(() => void startWorker(redis.url, ['--queue', queue]).then((w) => (workers.push(w), done())), 1500));
    const code = await run(['coordinate', '--redis', redis.url, '--queue', queue, ...files, '--shards', '8'], {
      stdout: { write: (t: string) => out.push(t) > 0 },
      stderr: { write: (t: string) => err.push(t) > 0, isTTY: true },
    });
    await late;
    expect(code).toBe(0);
    const text = err.join('');
    expect(text).toMatch(/^\r\x1b\[2Ksae-metrics: 0 of 8 shards done \(run [0-9a-f]{12} on redis:\/\/127\.0\.0\.1:\d+, queue t\d+\)/);
    expect(text.endsWith('\r\x1b[2K')).toBe(true);
    expect(text).not.toContain('\n');
    expect(out.join('')).toMatch(/^3 files: 56,500 vectors, 96 features/);
  });
});

describe('stopping the coordinator', () => {
  it('Ctrl-C while it waits: exit 130, one line, and the run\'s jobs are gone from Redis', async () => {
    const queue = nextQueue();
    const files = npySet('i', [3000], 8, 260);
    const coordinator = startCli(['coordinate', '--redis', redis.url, '--queue', queue, ...files, '--shards', '3']);
    const client = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: null });
    try {
      const { run, runQueue } = await findRun(client, queue);
      await runQueue.close();
      expect(await client.exists(`bull:${queue}:${run}.0`)).toBe(1);
      coordinator.child.kill('SIGINT');
      const { code } = await coordinator.exit();
      expect(code).toBe(130);
      expect(coordinator.stderrLines()).toEqual(["sae-metrics: interrupted: the run's jobs were removed from the queue; nothing was merged"]);
      expect(await client.keys(`bull:${queue}*${run}*`)).toEqual([]);
      // The shard queue's event stream (which copies every result) is kept short.
      expect(await client.hget(`bull:${queue}:meta`, 'opts.maxLenEvents')).toBe('100');
    } finally {
      client.disconnect();
    }
  });
});

describe('a worker whose files differ from the coordinator\'s', () => {
  it('fails the job at once (no retry), and the coordinator exits 1 with that error in one line', async () => {
    const queue = nextQueue();
    const [a, b] = npySet('m', [2000, 1200], 16, 120) as [string, string];
    const coordinator = startCli(['coordinate', '--redis', redis.url, '--queue', queue, a, b, '--json', '--shards', '2']);
    const client = new Redis(redis.port, '127.0.0.1', { maxRetriesPerRequest: null });
    try {
      const { runQueue } = await findRun(client, queue);
      await runQueue.close();
    } finally {
      client.disconnect();
    }
    // The coordinator has queued its jobs with b's identity; now b has other rows.
    write(b, npyBytes(floats(1300 * 16, 121, 0.25), [1300, 16]));
    const worker = await startWorker(redis.url, ['--queue', queue]);
    workers.push(worker);
    const { code } = await coordinator.exit();
    expect(code).toBe(1);
    expect(coordinator.stdout()).toBe('');
    const lines = coordinator.stderrLines();
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(new RegExp(`^sae-metrics: shard [01] of 2: worker [^ ]+: its files differ from the coordinator's: ${b.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} has 83,328 bytes, not 76,928$`));
    // Each job started once and failed: no retry of a job that cannot succeed.
    const log = worker.stderrLines();
    const started = log.filter((l) => /: started/.test(l));
    expect(started.length).toBeGreaterThan(0);
    expect(new Set(started).size).toBe(started.length);
    expect(log.filter((l) => /: failed: .*its files differ/.test(l))).toHaveLength(started.length);
  });
});

describe('Redis unreachable or gone: one line, exit code 1, within the connection timeout', () => {
  it('nothing listening: coordinate and worker', async () => {
    const port = await freePort();
    const files = npySet('u', [100], 4, 150);
    for (const args of [['coordinate', '--redis', `redis://127.0.0.1:${port}`, '--connect-timeout', '1', ...files], ['worker', '--redis', `redis://127.0.0.1:${port}`, '--connect-timeout', '1']]) {
      const t0 = Date.now();
      const r = await cli(args, {}, 30_000);
      expect(r.code, args[0]).toBe(1);
      expect(r.stderr).toBe(`sae-metrics: --redis: redis://127.0.0.1:${port}: cannot connect to Redis within 1 s (connect ECONNREFUSED 127.0.0.1:${port})\n`);
      expect(r.stdout).toBe('');
      expect(Date.now() - t0).toBeLessThan(25_000);
    }
  });

  it('a server that accepts and never answers', async () => {
    const sockets: Socket[] = [];
    const server: Server = createServer((s) => sockets.push(s));
    const port = await new Promise<number>((resolve) => server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port)));
    try {
      const r = await cli(['worker', '--redis', `redis://127.0.0.1:${port}`, '--connect-timeout', '1.5'], {}, 30_000);
      expect(r.code).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^sae-metrics: --redis: redis://127\\.0\\.0\\.1:${port}: cannot connect to Redis within 1\\.5 s[^\\n]*\\n$`));
    } finally {
      for (const s of sockets) s.destroy();
      server.close();
    }
  });

  it('a password: the right one works, a wrong one is one line that does not show it', async () => {
    const own = await startRedis(['--requirepass', 's3cret']);
    try {
      const queue = nextQueue();
      const files = npySet('p', [2100], 8, 280);
      const good = own.url.replace('redis://', 'redis://:s3cret@');
      workers.push(await startWorker(good, ['--queue', queue]));
      const ok = await cli(['coordinate', '--redis', good, '--queue', queue, ...files, '--json', '--shards', '2'], {}, 60_000);
      expect(ok.stderr).toBe('');
      expect(ok.code).toBe(0);
      const single = await cli([...files, '--json']);
      expect(comparable(ok.stdout)).toEqual(comparable(single.stdout));
      const bad = await cli(['worker', '--redis', own.url.replace('redis://', 'redis://:notmine42@'), '--connect-timeout', '1'], {}, 30_000);
      expect(bad.code).toBe(1);
      expect(bad.stderr).toMatch(new RegExp(`^sae-metrics: --redis: redis://:\\*\\*\\*@127\\.0\\.0\\.1:${own.port}: cannot connect to Redis within 1 s \\((WRONGPASS|ERR)[^\\n]*\\)\\n$`));
      expect(bad.stderr).not.toContain('notmine42');
    } finally {
      await own.stop();
    }
  });

  it('Redis restarted mid-run without its data: the coordinator says the run\'s jobs are gone (exit 1); the worker goes on', async () => {
    let own = await startRedis();
    try {
      const files = npySet('e', [30_000, 20_000], 96, 340);
      const worker = await startWorker(own.url, ['--connect-timeout', '5']);
      workers.push(worker);
      const coordinator = startCli(['coordinate', '--redis', own.url, '--connect-timeout', '5', ...files, '--shards', '8']);
      await worker.waitFor(/started/);
      const port = own.port;
      await own.stop();
      own = await startRedis([], port);
      const c = await coordinator.exit();
      expect(c.code).toBe(1);
      expect(coordinator.stderrLines()).toEqual([`sae-metrics: --redis: ${own.url}: the run's jobs are gone from Redis (restarted without persistence, or flushed): run again`]);
      // The worker reconnected and still works.
      const again = await cli(['coordinate', '--redis', own.url, ...files, '--json', '--shards', '2'], {}, 60_000);
      expect(again.stderr).toBe('');
      expect(again.code).toBe(0);
      expect(worker.child.exitCode).toBe(null);
    } finally {
      await own.stop();
    }
  });

  it('Redis stopped mid-run: the coordinator and the worker each exit 1 with one error line', async () => {
    const own = await startRedis();
    try {
      const files = npySet('r', [26_000, 20_000], 96, 170);
      const worker = await startWorker(own.url, ['--connect-timeout', '2']);
      workers.push(worker);
      const coordinator = startCli(['coordinate', '--redis', own.url, '--connect-timeout', '2', ...files, '--shards', '8']);
      await worker.waitFor(/started/);
      const t0 = Date.now();
      await stopChild(own.process, 'SIGKILL');
      const [c, w] = await Promise.all([coordinator.exit(), worker.exit()]);
      expect(c.code).toBe(1);
      expect(coordinator.stdout()).toBe('');
      expect(coordinator.stderrLines()).toEqual([`sae-metrics: --redis: ${own.url}: the connection to Redis was lost and not back within 2 s (connect ECONNREFUSED 127.0.0.1:${own.port})`]);
      expect(w.code).toBe(1);
      expect(worker.stderrLines().at(-1)).toBe(`sae-metrics: --redis: ${own.url}: the connection to Redis was lost and not back within 2 s (connect ECONNREFUSED 127.0.0.1:${own.port})`);
      expect(Math.max(c.at, w.at) - t0).toBeLessThan(30_000);
    } finally {
      await own.stop();
    }
  });
});
