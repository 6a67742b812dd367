// The execution pipeline end to end, over real processes: cancel and timeout reach the job's whole
// process group (leader and background child), a queued task cancelled before it started never
// starts, and a secret argument reaches the job but nothing an operator or etcd can read.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { jetstreamManager } from '@nats-io/jetstream';
import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, processAlive, startFleet, waitGone, type Fleet, type StatusJson } from '../harness/pipeline-fleet.js';

let fleet: Fleet;
/** Leaves a background child and waits for it: `child <pid>` and `leader <pid>` in its output. */
let sleeper: string;

beforeAll(async () => {
  // db-1 runs one task at a time, so a second task for it waits in its queue.
  fleet = await startFleet({ perExecutor: { 'db-1': { concurrency: 1 } } });
  sleeper = await fleet.createJob({ name: 'sleeper', shell: 'sleep 300 & echo child $!; echo leader $$; wait', timeout_seconds: 600 });
});

afterAll(async () => {
  await fleet?.stop();
});

/**
 * Polls getlogs until the job has printed its leader and child pids, and status until its task is
 * recorded as started (the recorder may apply the started event after the first output arrives).
 */
async function pidsOf(id: string): Promise<{ leader: number; child: number }> {
  // 30 s: an idle executor with concurrency 1 may take ~10 s to pull a task (see pullLoop).
  const until = Date.now() + 30_000;
  let out = '';
  let s: StatusJson | undefined;
  while (Date.now() < until) {
    // stderr may hold GRID's own line once the execution has timed out (a loaded machine may
    // get here only then); nothing else.
    const r = await fleet.cli(['getlogs', id]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stderr.split('\n').filter((l) => l && !l.startsWith('[grid: ')), r.stderr).toEqual([]);
    out = r.stdout;
    const leader = /^leader (\d+)$/m.exec(out);
    const child = /^child (\d+)$/m.exec(out);
    if (leader && child) {
      s = await fleet.status(id);
      // Started: RUNNING, or already past it (a 2 s timeout can end it before a loaded machine looks).
      if (s.tasks.length > 0 && s.tasks.every((t) => t.state !== 'PENDING')) return { leader: Number(leader[1]), child: Number(child[1]) };
    }
    await delay(200);
  }
  throw new Error(`execution ${id} did not print its pids and run within 30 s; logs: ${JSON.stringify(out)}; status: ${JSON.stringify(s)}`);
}

/** Polls status until the dispatcher has recorded the execution's tasks. */
async function waitDispatched(id: string): Promise<StatusJson> {
  const until = Date.now() + 10_000;
  let s = await fleet.status(id);
  while (Date.now() < until && s.state === 'QUEUED') {
    await delay(100);
    s = await fleet.status(id);
  }
  return s;
}

/** Polls status until every task is terminal too (the executor has reported how it stopped). */
async function waitTasksDone(id: string): Promise<StatusJson> {
  const until = Date.now() + 20_000;
  let s = await fleet.status(id);
  while (Date.now() < until && s.tasks.some((t) => t.state === 'RUNNING' || t.state === 'PENDING')) {
    await delay(200);
    s = await fleet.status(id);
  }
  return s;
}

describe('cancel and timeout stop the whole process group', () => {
  it('grid-cli cancel ID: CANCELLED, leader and background child gone', async () => {
    const id = await fleet.execute(sleeper, ['--target', 'node:web-1']);
    const { leader, child } = await pidsOf(id);
    expect(processAlive(leader) && processAlive(child), `leader ${leader} and child ${child} run before the cancel`).toBe(true);

    const out = expectOk(await fleet.cli(['cancel', id]));
    expect(out).toMatch(new RegExp(`^cancelled execution ${id} \\(1 running task being stopped\\)\\n$`));
    expect((await fleet.status(id)).state).toBe('CANCELLED');

    expect(await waitGone([leader, child]), 'processes still alive 10 s after the cancel').toEqual([]);
    const s = await waitTasksDone(id);
    expect(s.state).toBe('CANCELLED');
    expect(s.tasks).toHaveLength(1);
    expect(s.tasks[0]).toMatchObject({ executorName: 'web-1', state: 'CANCELLED' });
    expect(s.reason).toMatch(/cancelled by operator/);
  });

  it('execute --timeout 2: TIMED_OUT, leader and background child gone', async () => {
    const id = await fleet.execute(sleeper, ['--target', 'node:web-2', '--timeout', '2']);
    const { leader, child } = await pidsOf(id);
    const s = await fleet.waitTerminal(id, 20_000);
    expect(s.state, JSON.stringify(s)).toBe('TIMED_OUT');
    expect(await waitGone([leader, child]), 'processes still alive 10 s after the timeout').toEqual([]);
    const done = await waitTasksDone(id);
    expect(done.state).toBe('TIMED_OUT');
    expect(done.tasks[0]).toMatchObject({ executorName: 'web-2', state: 'TIMED_OUT' });
  });

  it('a queued task cancelled before it started never starts', async () => {
    // db-1 (concurrency 1) is busy with a sleeper, so the marker task waits in its queue.
    const blocker = await fleet.execute(sleeper, ['--target', 'node:db-1']);
    const blockerPids = await pidsOf(blocker);
    const marker = join(fleet.dir, 'queued-marker');
    const touch = await fleet.createJob({
      name: 'touch',
      shell: 'echo touched; touch "$OUT"',
      env_vars: { secrets: [], args: [{ name: 'OUT', required: true }] },
    });
    const queued = await fleet.execute(touch, ['--target', 'node:db-1', '--arg', `OUT=${marker}`]);
    const before = await waitDispatched(queued);
    expect(before.tasks, JSON.stringify(before)).toHaveLength(1);
    expect(before).toMatchObject({ state: 'DISPATCHED', tasks: [{ executorName: 'db-1', state: 'PENDING' }] });

    const out = expectOk(await fleet.cli(['cancel', queued]));
    expect(out).toBe(`cancelled execution ${queued} (1 task will not start)\n`);

    // Free db-1; its queue is FIFO, so once a later probe has run the cancelled task was taken and dropped.
    expectOk(await fleet.cli(['cancel', blocker]));
    expect(await waitGone([blockerPids.leader, blockerPids.child])).toEqual([]);
    const probe = await fleet.execute(touch, ['--target', 'node:db-1', '--arg', `OUT=${marker}-probe`]);
    expect((await fleet.waitTerminal(probe)).state).toBe('SUCCEEDED');
    expect(existsSync(`${marker}-probe`)).toBe(true);

    expect(existsSync(marker), 'the cancelled task ran').toBe(false);
    const after = await fleet.status(queued);
    expect(after).toMatchObject({ state: 'CANCELLED' });
    expect(after.tasks[0]).toMatchObject({ state: 'CANCELLED', attempts: 0, startedAtMs: 0 });
    expect(expectOk(await fleet.cli(['getlogs', queued]))).toBe('');
    // Slow (~20 s): with concurrency 1 an idle executor long-polls its three consumers in turn,
    // 5 s each, holding its only slot (see the report on src/executor/worker.ts pullLoop).
  }, 120_000);
});

describe('secrets', () => {
  const SECRET = 's3cr3t-value-XYZ';

  it('reach the job, but not etcd, NATS, status, executions list, logs or the programs\' own logs', async () => {
    const job = await fleet.createJob({
      name: 'secret',
      shell: 'echo "key is $API_KEY"',
      env_vars: { secrets: [{ name: 'API_KEY', description: 'the API key' }], args: [] },
    });
    const id = await fleet.execute(job, ['--target', 'node:web-2', '--arg', `API_KEY=${SECRET}`]);
    const s = await fleet.waitTerminal(id);
    expect(s.state, JSON.stringify(s)).toBe('SUCCEEDED');

    // The job saw it (masked on the way out).
    const logs = expectOk(await fleet.cli(['getlogs', id]));
    expect(logs).toBe('key is ****\n');

    const etcd = new Etcd3({ hosts: fleet.servers.etcdEndpoint });
    try {
      const all = await etcd.getAll().strings();
      const dump = Object.entries(all).map(([k, v]) => `${k}=${v}`).join('\n');
      expect(dump, 'the dump holds the execution').toContain(id);
      expect(dump).not.toContain(SECRET);
    } finally {
      etcd.close();
    }

    // Nor any message kept on NATS (requests, jobs, events, logs).
    const nc = await fleet.servers.connectNats('pipeline-control-test');
    try {
      const jsm = await jetstreamManager(nc);
      let maskedSeen = 0;
      for await (const info of jsm.streams.list()) {
        const { first_seq: first, last_seq: last } = info.state;
        for (let seq = first; seq > 0 && seq <= last; seq++) {
          const m = await jsm.streams.getMessage(info.config.name, { seq }).catch(() => null);
          if (!m) continue;
          const text = Buffer.from(m.data).toString('utf8');
          if (text.includes('key is ****')) maskedSeen++;
          expect(text, `${info.config.name} #${seq}`).not.toContain(SECRET);
        }
      }
      expect(maskedSeen, 'the scan found the masked log line').toBe(1);
    } finally {
      await nc.close();
    }

    const views = [
      await fleet.cli(['status', id]),
      await fleet.cli(['status', id, '--output', 'json']),
      await fleet.cli(['executions', 'list', '--output', 'json']),
      await fleet.cli(['executions', 'list']),
      await fleet.cli(['getlogs', id, '--output', 'json']),
    ];
    for (const v of views) {
      expect(v.code, v.stderr).toBe(0);
      expect(v.stdout + v.stderr).not.toContain(SECRET);
    }
    expect(views[1]!.stdout).toContain(id);
    expect(views[2]!.stdout).toContain(id);

    expect(fleet.controller.logs()).not.toContain(SECRET);
    for (const e of Object.values(fleet.executors)) expect(e.logs()).not.toContain(SECRET);
  });
});
