// Faults longer than the timeouts, over real processes: a controller down for twice the ping
// deadline while tasks run (they end with their real results, not LOST or SKIPPED), and an
// executor stopped (SIGSTOP, a link down) after its tasks were dispatched with --wait-offline
// (they wait for it and run in submission order once it is back; the task it was running when
// it was declared lost gets its real result when it reports it).
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleet, type Fleet, type StatusJson } from '../harness/pipeline-fleet.js';
import { listExecutorsCli, stateOf } from '../harness/executor-process.js';
import { startController } from '../harness/processes.js';
import { readRuns, sideEffectJob } from './crash-helpers.js';

const PING_DEADLINE_S = 4;

let fleet: Fleet;
let job: string;
let out: string;

beforeAll(async () => {
  fleet = await startFleet({
    controllerConfig: { executor_ping_deadline_seconds: PING_DEADLINE_S },
    executorConfig: { ping_interval_seconds: 1 },
    // db-1 runs one task at a time, so the order in which it takes queued tasks is visible.
    perExecutor: { 'db-1': { concurrency: 1 } },
  });
  out = join(fleet.dir, 'runs.log');
  const { name: _n, ...def } = sideEffectJob('long-fault');
  job = await fleet.createJob({ name: 'long-fault', ...def });
}, 120_000);

afterAll(async () => {
  await fleet?.stop();
});

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(200);
  }
}

const brief = (s: StatusJson) => JSON.stringify({ state: s.state, reason: s.reason, tasks: s.tasks.map((t) => [t.executorName, t.state, t.attempts, t.reason]) });

/** Runs of each execution in the side-effect file, as "executor#attempt" (started, done or not). */
function runsOf(id: string): string[] {
  return readRuns(out).filter((r) => r.execution === id).map((r) => `${r.executor}#${r.attempt}${r.done ? '' : '(not done)'}`).sort();
}

describe('a controller down for twice the ping deadline while tasks run', () => {
  it('its tasks end with their real results, not LOST or SKIPPED, each run once', async () => {
    const id = await fleet.execute(job, ['--target', 'all', '--arg', `OUT=${out}`, '--arg', 'SECS=12']);
    await until('every task RUNNING', async () => {
      const s = await fleet.status(id);
      return s.tasks.length === 3 && s.tasks.every((t) => t.state === 'RUNNING') ? s : undefined;
    });
    const old = fleet.controller;
    expect(await old.kill9()).toBe(137);
    await delay(2 * PING_DEADLINE_S * 1000 + 1000);
    const back = await startController({
      natsUrl: fleet.servers.natsUrl,
      etcdEndpoint: fleet.servers.etcdEndpoint,
      prefix: old.prefix,
      configFile: old.configFile,
      args: ['--grpc-address', old.address],
    });
    expect(back.address).toBe(old.address);

    const s = await fleet.waitTerminal(id, 60_000);
    expect(s.state, brief(s)).toBe('SUCCEEDED');
    for (const t of s.tasks) expect(t, brief(s)).toMatchObject({ state: 'SUCCEEDED', attempts: 1, exitCode: 0 });
    expect(runsOf(id)).toEqual(['db-1#1', 'web-1#1', 'web-2#1']);
    expect(back.logs()).toMatch(/executors have one ping deadline to heartbeat before any is expired/);
    expect(back.logs()).not.toMatch(/executor expired/);
  }, 120_000);
});

describe('an executor stopped (SIGSTOP) after its tasks were dispatched with --wait-offline', () => {
  it('the tasks wait for it and run in submission order once it is back, each once; the task it was running gets its real result', async () => {
    const db = fleet.executors['db-1'];
    // Its one slot is busy, so the five executions after it queue on its consumer. It runs long
    // enough to be running still when the executor is stopped after the five are submitted (a
    // loaded machine takes seconds for that).
    const blocker = await fleet.execute(job, ['--target', 'node:db-1', '--arg', `OUT=${out}`, '--arg', 'SECS=20']);
    await until('the blocker RUNNING', async () => ((await fleet.status(blocker)).tasks[0]?.state === 'RUNNING' ? true : undefined));
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push(await fleet.execute(job, ['--target', 'node:db-1', '--wait-offline', '10m', '--arg', `OUT=${out}`, '--arg', 'SECS=0']));
    process.kill(db.pid, 'SIGSTOP');
    let resumed = false;
    try {
      // Past the ping deadline: it is EXPIRED; its queued tasks keep waiting.
      await until('db-1 EXPIRED', async () => (stateOf(await listExecutorsCli(fleet.controller.address), 'db-1') === 'EXPIRED' ? true : undefined), 30_000);
      const lost = await fleet.status(blocker);
      expect(lost.tasks[0], brief(lost)).toMatchObject({ state: 'LOST' });
      for (const id of ids) {
        const s = await fleet.status(id);
        expect(s.tasks[0], brief(s)).toMatchObject({ state: 'PENDING' });
      }
      process.kill(db.pid, 'SIGCONT');
      resumed = true;
      for (const id of ids) expect((await fleet.waitTerminal(id, 60_000)).state).toBe('SUCCEEDED');
      // In submission order, once each.
      const order = readRuns(out).filter((r) => ids.includes(r.execution)).map((r) => ids.indexOf(r.execution));
      expect(order).toEqual([0, 1, 2, 3, 4]);
      // The blocker ran on while db-1 was stopped: its result replaces LOST.
      const b = await until('the blocker\'s real result', async () => {
        const s = await fleet.status(blocker);
        return s.tasks[0]?.state === 'SUCCEEDED' ? s : undefined;
      });
      expect(b.state).toBe('SUCCEEDED');
      expect(b.tasks[0]!.reason).toMatch(/reported after the task had been marked LOST: executor db-1 expired while running attempt 1/);
      expect(runsOf(blocker)).toEqual(['db-1#1']);
    } finally {
      if (!resumed) process.kill(db.pid, 'SIGCONT');
    }
  }, 120_000);
});
