// Serialize locks across a controller outage, over real processes: an executor holding a lock
// keeps it through an outage shorter than its lease (its refreshes are retried) while a waiter
// keeps asking, and one that cannot refresh it for longer stops its task and reports it as having
// lost the lock, before another task can take the lock: no two holders ever run at once.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Kv } from '../../src/store/kv.js';
import { startFleet, type Fleet, type StatusJson } from '../harness/pipeline-fleet.js';
import { startController } from '../harness/processes.js';
import { uniqueName } from '../harness/servers.js';
import { waitFor } from './crash-helpers.js';

const LOCK_TTL_S = 20;
let fleet: Fleet;
let kv: Kv;

beforeAll(async () => {
  // Executors stay alive in the record through the outages (their ping deadline is longer).
  fleet = await startFleet({ controllerConfig: { lock_ttl_seconds: LOCK_TTL_S, executor_ping_deadline_seconds: 90 } });
  kv = new Kv({ endpoints: [fleet.servers.etcdEndpoint], prefix: fleet.controller.prefix });
}, 120_000);

afterAll(async () => {
  kv?.close();
  await fleet?.stop();
});

/** kill -9 the controller, run `between`, then start it again on the same config, etcd prefix and port. */
async function controllerOutage(between: () => Promise<unknown>): Promise<void> {
  const old = fleet.controller;
  expect(await old.kill9()).toBe(137);
  await between();
  fleet.controller = await startController({
    natsUrl: fleet.servers.natsUrl,
    etcdEndpoint: fleet.servers.etcdEndpoint,
    prefix: old.prefix,
    configFile: old.configFile,
    args: ['--grpc-address', old.address],
  });
}

const holds = (s: StatusJson, executor: string) => s.tasks.some((t) => t.executorName === executor && /^holds lock /.test(t.reason));

/**
 * Runs until the file $GO exists, writing "start <ns> <executor> <token>" and "end <ns> <executor>"
 * to $FILE; a stop (SIGTERM to its process group) ends it with its end line written.
 */
function holderJob(lock: string): Record<string, unknown> {
  return {
    name: 'outage',
    serialize: lock,
    timeout_seconds: 300,
    shell: [
      'trap \'echo "end $(date +%s%N) $GRID_EXECUTOR" >> "$FILE"; exit 143\' TERM',
      'echo "start $(date +%s%N) $GRID_EXECUTOR $GRID_LOCK_TOKEN" >> "$FILE"',
      'while [ ! -e "$GO" ]; do sleep 0.2; done',
      'echo "end $(date +%s%N) $GRID_EXECUTOR" >> "$FILE"',
    ].join('\n'),
    env_vars: {
      args: [
        { name: 'FILE', description: 'where runs are written', required: true },
        { name: 'GO', description: 'the run ends once this file exists', required: true },
      ],
    },
  };
}

interface Run {
  executor: string;
  token: number;
  start: bigint;
  /** undefined: still running (no end line yet). */
  end: bigint | undefined;
}

function runs(file: string): Run[] {
  const out: Run[] = [];
  for (const l of existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []) {
    const [kind, ns, executor, token] = l.split(' ');
    if (kind === 'start') out.push({ executor: executor!, token: Number(token), start: BigInt(ns!), end: undefined });
    else out.findLast((r) => r.executor === executor && r.end === undefined)!.end = BigInt(ns!);
  }
  return out.sort((a, b) => (a.start < b.start ? -1 : 1));
}

/** Every run began after the one before it ended: never two holders at once. */
function expectOneHolderAtATime(all: Run[]): void {
  for (let i = 1; i < all.length; i++) {
    const [prev, next] = [all[i - 1]!, all[i]!];
    expect(prev.end, `${next.executor} started while ${prev.executor} (token ${prev.token}) was still running`).toBeDefined();
    expect(next.start > prev.end!, `${next.executor} started before ${prev.executor} ended`).toBe(true);
    expect(next.token).toBeGreaterThan(prev.token);
  }
}

describe('serialize locks through a controller outage', () => {
  it('outage shorter than the lock TTL: the holder keeps its lock and its task runs on; a waiter waits through it', async () => {
    const lock = uniqueName('kept');
    const file = join(fleet.dir, `${lock}.txt`);
    const [goA, goB] = [join(fleet.dir, `${lock}.go-a`), join(fleet.dir, `${lock}.go-b`)];
    writeFileSync(goB, '');
    const job = await fleet.createJob(holderJob(lock));
    const a = await fleet.execute(job, ['--target', 'node:web-1', '--arg', `FILE=${file}`, '--arg', `GO=${goA}`]);
    await waitFor('web-1 to hold the lock', () => fleet.status(a), (s) => holds(s, 'web-1'), 30_000);
    const b = await fleet.execute(job, ['--target', 'node:web-2', '--arg', `FILE=${file}`, '--arg', `GO=${goB}`]);
    await waitFor('web-2 to wait for the lock', () => fleet.status(b), (s) => s.tasks.some((t) => /^waiting for lock /.test(t.reason)), 30_000);

    const web1 = fleet.executors['web-1'];
    const mark = web1.logs().length;
    const logged = (text: string) => async () => web1.logs().slice(mark).includes(text);
    // Down until a refresh of web-1's has failed, then started again.
    await controllerOutage(() => waitFor('a refresh to fail', logged('could not refresh the serialize lock'), Boolean, LOCK_TTL_S * 1000));
    await waitFor('a refresh to succeed again', logged('the serialize lock is refreshed again'), Boolean, LOCK_TTL_S * 1000);
    writeFileSync(goA, '');

    const [sa, sb] = [await fleet.waitTerminal(a, 30_000), await fleet.waitTerminal(b, 30_000)];
    expect([sa.state, sb.state]).toEqual(['SUCCEEDED', 'SUCCEEDED']);
    expect(web1.logs().slice(mark)).not.toContain('lost the serialize lock');
    const all = runs(file);
    expect(all.map((r) => r.executor)).toEqual(['web-1', 'web-2']);
    expectOneHolderAtATime(all);
  }, 120_000);

  it('outage longer than the lock TTL: the holder stops its task and reports the lost lock before another can take it', async () => {
    const lock = uniqueName('lapse');
    const file = join(fleet.dir, `${lock}.txt`);
    const go = join(fleet.dir, `${lock}.go`);
    writeFileSync(go, '');
    const job = await fleet.createJob(holderJob(lock));
    const a = await fleet.execute(job, ['--target', 'node:web-1', '--arg', `FILE=${file}`, '--arg', `GO=${join(fleet.dir, `${lock}.never`)}`]);
    await waitFor('web-1 to hold the lock', () => fleet.status(a), (s) => holds(s, 'web-1'), 30_000);
    // db-1 waits in line through the outage.
    const c = await fleet.execute(job, ['--target', 'node:db-1', '--arg', `FILE=${file}`, '--arg', `GO=${go}`]);
    await waitFor('db-1 to wait for the lock', () => fleet.status(c), (s) => s.tasks.some((t) => /^waiting for lock /.test(t.reason)), 30_000);

    // The controller is gone until the lock's lease has lapsed in etcd.
    await controllerOutage(() => waitFor('the lock to lapse in etcd', () => kv.get(kv.key('locks', lock)), (v) => v === undefined, LOCK_TTL_S * 1000 + 15_000));
    // Another task asks for the free lock at once.
    const b = await fleet.execute(job, ['--target', 'node:web-2', '--arg', `FILE=${file}`, '--arg', `GO=${go}`]);
    try {
      expect((await fleet.waitTerminal(b, 60_000)).state).toBe('SUCCEEDED');
      expect((await fleet.waitTerminal(c, 60_000)).state).toBe('SUCCEEDED');
      const all = runs(file);
      expect(all.map((r) => r.executor).sort()).toEqual(['db-1', 'web-1', 'web-2']);
      expect(all[0]!.executor).toBe('web-1');
      expectOneHolderAtATime(all);
      const sa = await fleet.waitTerminal(a, 30_000);
      expect(sa.state).toBe('FAILED');
      expect(sa.tasks[0]!.state).toBe('FAILED');
      expect(sa.tasks[0]!.reason).toMatch(new RegExp(`^lost lock ${lock} \\(token ${all[0]!.token}\\): .+; the task was stopped$`));
      console.log(`  web-1's task: ${sa.tasks[0]!.reason}`);
    } finally {
      await fleet.cli(['cancel', a]);
    }
  }, 120_000);
});
