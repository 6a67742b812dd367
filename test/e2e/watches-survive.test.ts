// etcd watches that survive, over a real controller process (issue 14, item 4): etcd compacting
// past a watch (a WatchExecution of an old execution; watches that fell behind while the
// controller's link to etcd stalled) and etcd killed -9 and started again. Every kind of watch the
// controller keeps (the jobs and executors caches, the alive/ watch that expires executors, a
// serialize lock's line, a WatchExecution) is read afresh with one WARN line naming it, and sees
// the next change; the controller stays up throughout. Which watches etcd sets aside as too
// slow, and so compacts past, depends on timing; etcd before 3.4.32 can leave one of them silent
// instead (etcd-io/etcd#17529), which the controller's own check notices (key-watch-silence.test.ts).
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GridClient } from '../../src/client/client.js';
import { FleetLocks, type HeldLock } from '../../src/executor/lock.js';
import { ExecutorState } from '../../src/gen/grid/v1/types.js';
import { EtcdExecutionStore } from '../../src/store/etcd-executions.js';
import { Kv } from '../../src/store/kv.js';
import { createLogger } from '../../src/util/log.js';
import { startFaultableServers, type FaultableServers } from '../harness/faultable-servers.js';
import { registerDirect } from '../harness/grpc-tls.js';
import { cleanupProcesses, REGISTRATION_TOKEN, startController, type RunningController } from '../harness/processes.js';
import { runningExecution } from '../harness/records.js';
import { uniqueName } from '../harness/servers.js';
import { stallProxy, type StallProxy } from '../harness/stall-proxy.js';
import { adminClient } from './crash-helpers.js';

const PING_DEADLINE_S = 20;
let servers: FaultableServers;
let proxy: StallProxy;
let controller: RunningController;
let readyAt = 0;
let kv: Kv;
let store: EtcdExecutionStore;
let admin: GridClient;
/** Holds and waits for the serialize locks; heartbeats throughout. */
let a: TestExecutor;
const executors: TestExecutor[] = [];
const streams: Follower[] = [];

beforeAll(async () => {
  servers = await startFaultableServers();
  // The controller reaches etcd through the proxy, which can stall; the test talks to etcd directly.
  proxy = await stallProxy(Number(new URL(servers.etcdEndpoint).port));
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: proxy.endpoint,
    config: { lock_ttl_seconds: 120, executor_ping_deadline_seconds: PING_DEADLINE_S },
  });
  readyAt = Date.now();
  kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: controller.prefix });
  store = new EtcdExecutionStore(kv);
  admin = adminClient(controller.address);
  a = await executor('watch-a');
}, 120_000);

afterAll(async () => {
  for (const s of streams) s.stop();
  for (const e of executors) {
    e.stop();
    e.client.close();
  }
  admin?.close();
  await cleanupProcesses();
  await proxy?.close();
  kv?.close();
  await servers?.stop();
});

// ---- the controller, and waiting on it ----

/** Throws, with the controller's last output, if it is no longer running. */
async function expectUp(): Promise<void> {
  const code = await Promise.race([controller.exited, delay(0).then(() => undefined)]);
  if (code !== undefined) throw new Error(`the controller exited (${code}); its last output:\n${controller.logs().split('\n').slice(-40).join('\n')}`);
}

/** Polls until `pred` holds; a failing probe counts as "not yet", a controller that exited fails at once. */
async function until<T>(what: string, probe: () => Promise<T>, pred: (v: T) => boolean, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last = '(no answer yet)';
  for (;;) {
    await expectUp();
    try {
      const v = await probe();
      if (pred(v)) return v;
      last = JSON.stringify(v);
    } catch (err) {
      last = `error: ${(err as Error).message}`;
    }
    if (Date.now() > end) throw new Error(`${what}: not within ${timeoutMs} ms; last: ${last}`);
    await delay(200);
  }
}

/** Waits for one WARN line per watch, each saying why it was read afresh (`why`, a regex alternation). */
async function expectResumed(since: number, why: string, watches: string[]): Promise<void> {
  const line = (w: string) => new RegExp(`WARN +\\S*etcd: watch read afresh and resumed: (?:${why}) watch=${w.replace(/[*.]/g, '\\$&')} `);
  await until(
    `a WARN line (${why}) for each of ${watches.join(', ')}`,
    async () => watches.filter((w) => !line(w).test(controller.logs().slice(since))),
    (missing) => missing.length === 0,
    30_000,
  );
}

/**
 * When the controller's expiry grace ends: one ping deadline after the last one began (at start,
 * or when etcd answered again after a long outage; its log says which). Waits while the
 * controller still counts etcd as down.
 */
async function expiryGraceEnd(): Promise<number> {
  const at = (line: string | undefined) => Date.parse(/\d{4}-\d\d-\d\dT[\d:.]+Z/.exec(line ?? '')?.[0] ?? '') || 0;
  const lines = await until(
    'the controller to count etcd as answering',
    async () => controller.logs().split('\n'),
    (ls) => ls.findLastIndex((l) => l.includes('etcd is not answering')) <= ls.findLastIndex((l) => l.includes('etcd answers again')),
    30_000,
  );
  return Math.max(readyAt, at(lines.findLast((l) => l.includes('executors have one ping deadline to heartbeat')))) + PING_DEADLINE_S * 1000 + 1000;
}

async function compactNow(): Promise<void> {
  await kv.client.kv.compact({ revision: await kv.revision(), physical: true });
}

/** Events etcd holds for watch streams and has not sent yet (its buffer per stream holds 128). */
async function pendingEvents(): Promise<number> {
  const metrics = await (await fetch(`${servers.etcdEndpoint}/metrics`)).text();
  const value = /^etcd_debugging_mvcc_pending_events_total (\S+)$/m.exec(metrics)?.[1];
  if (value === undefined) throw new Error('etcd reports no etcd_debugging_mvcc_pending_events_total');
  return Number(value);
}

/** Some revisions that no watch of the controller's sees. */
async function advance(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await kv.put(kv.key('scratch', 'x'), i);
}

// ---- what the watches are on ----

interface TestExecutor {
  id: string;
  secret: string;
  client: GridClient;
  /** Stops its heartbeats. */
  stop(): void;
}

/** A registered executor (no process: the test makes its calls), heartbeating every 3 s until stopped. */
async function executor(name: string): Promise<TestExecutor> {
  const r = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name, concurrency: 4 });
  const [id, secret, client] = [r.res.executorId, r.res.executorSecret, r.client];
  const beat = () => client.call(client.executors, client.executors.heartbeat, { executorId: id, executorSecret: secret, version: 'test', runningTasks: 0, load: 0, draining: false, running: [] });
  await beat();
  let stopped = false;
  void (async () => {
    while (!stopped) {
      await delay(3_000);
      if (!stopped) await beat().catch(() => {});
    }
  })();
  const e = { id, secret, client, stop: () => void (stopped = true) };
  executors.push(e);
  return e;
}

interface Follower {
  reasons: string[];
  /** How the stream ended, if it did. */
  ended?: string;
  stop(): void;
}

/** A WatchExecution of `id` (as the CLI's `status --watch` does), keeping each snapshot's reason. */
function follow(id: string): Follower {
  const ac = new AbortController();
  const f: Follower = { reasons: [], stop: () => ac.abort() };
  void (async () => {
    for await (const x of admin.ctl.watchExecution(id, ac.signal)) f.reasons.push(x.reason);
  })().then(
    () => void (f.ended = 'ended'),
    (err: Error) => void (f.ended = `failed: ${err.message}`),
  );
  streams.push(f);
  return f;
}

async function expectSnapshot(f: Follower, reason: string): Promise<void> {
  await until(`a WatchExecution snapshot with reason "${reason}"`, async () => ({ reasons: f.reasons, ended: f.ended }), (s) => s.reasons.includes(reason), 15_000);
}

interface LockLine {
  job: string;
  holder: HeldLock;
  /** The second task's acquire: its call is held by the controller on the lock's watch. */
  waiting: Promise<HeldLock | undefined>;
}

/** A serialized job with two tasks on executor a: the first holds the lock, the second waits for it. */
async function lockLine(): Promise<LockLine> {
  const job = uniqueName('watch-lock');
  await admin.ctl.createJob({
    definitionJson: JSON.stringify({ name: job, description: 'before', command: ['true'], serialize: true, env_vars: { args: [], secrets: [] } }),
    replace: false,
    expectedVersion: 0,
  });
  const claimed = async (): Promise<string> => {
    const { executionId } = await admin.ctl.execute({ job, args: {}, target: 'node:watch-a', timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false });
    const claim = await a.client.call(a.client.executors, a.client.executors.beginTask, { executorId: a.id, executorSecret: a.secret, session: 's1', executionId, taskKey: a.id, attempt: 0, retryOf: 0 });
    expect(claim.proceed, claim.reason).toBe(true);
    return executionId;
  };
  const [first, second] = [await claimed(), await claimed()];
  // Each call may be held 30 s: a waiter woken sooner was woken by the watch.
  const locks = new FleetLocks({ client: a.client, executorId: a.id, executorSecret: a.secret, log: createLogger({ level: 'error', write: () => {} }), waitMs: 30_000 });
  const signal = new AbortController().signal;
  const holder = (await locks.acquire({ executionId: first, taskKey: a.id, signal }))!;
  let waits = false;
  const waiting = locks.acquire({ executionId: second, taskKey: a.id, signal, onWaiting: () => void (waits = true) });
  await until('the second task to wait for the lock', async () => waits, Boolean, 10_000);
  await delay(500); // its next call is now held on the lock's watch
  return { job, holder, waiting };
}

interface Armed {
  record: string;
  stream: Follower;
  line: LockLine;
  /** Heartbeats until the alive/ check stops them and deletes its alive key. */
  b: TestExecutor;
  /** The watches, as the WARN lines name them. */
  watches: string[];
}

/** One live watch of each kind in the controller. */
async function arm(label: string): Promise<Armed> {
  const record = uniqueName(label);
  await store.create(runningExecution(record, 'armed'));
  const stream = follow(record);
  await expectSnapshot(stream, 'armed');
  const line = await lockLine();
  const b = await executor(uniqueName(`${label}-b`));
  return { record, stream, line, b, watches: ['jobs/*', 'executors/*', 'alive/*', `lock-queue/${line.job}/*`, `executions/${record}`] };
}

/**
 * The next change to each watched thing reaches the controller, each by its own watch. All five
 * are tried; the error names each that missed its change.
 */
async function expectEachWatchSeesTheNextChange(w: Armed): Promise<void> {
  const checks: Array<[string, () => Promise<void>]> = [
    [`executions/${w.record} (a WatchExecution stream)`, async () => {
      await store.update(w.record, (x) => ((x.reason = 'next'), true));
      await expectSnapshot(w.stream, 'next');
    }],
    ['jobs/* (the definitions cache, read by DescribeJob)', async () => {
      await kv.update<{ definition: { description: string } }>(kv.key('jobs', w.line.job), (j) => j && { ...j, definition: { ...j.definition, description: 'next' } });
      await until('DescribeJob to show the new description', async () => (await admin.ctl.describeJob(w.line.job)).definition?.description, (d) => d === 'next', 15_000);
    }],
    ['executors/* (the registry cache, which a dry run plans over)', async () => {
      const group = uniqueName('g');
      await kv.update<{ groups: string[] }>(kv.key('executors', a.id), (r) => r && { ...r, groups: [...r.groups, group] });
      const dryRun = async () =>
        (await admin.ctl.execute({ job: w.line.job, args: {}, target: `group:${group}`, timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: true })).dryRun.map((r) => r.executorName);
      await until(`a dry run on group ${group} to plan for watch-a`, dryRun, (names) => names.includes('watch-a'), 15_000);
    }],
    ['alive/* (expiry)', async () => {
      // Deletions during a grace (after start, after etcd answers again) are left to its end.
      const graceLeft = (await expiryGraceEnd()) - Date.now();
      if (graceLeft > 0) await delay(graceLeft);
      // Its lease would lapse only PING_DEADLINE_S after its last heartbeat. The watch sees the
      // deletion at once; the controller, which took that heartbeat, expires it once the ping
      // deadline after it has passed (src/controller/expiry.ts). A watch that missed the
      // deletion never would.
      w.b.stop();
      await kv.delete(kv.key('alive', w.b.id));
      await until('the executor whose alive key went to be EXPIRED', async () => (await admin.ctl.describeExecutor(w.b.id)).state, (s) => s === ExecutorState.EXECUTOR_STATE_EXPIRED, PING_DEADLINE_S * 1000 + 8_000);
    }],
    [`lock-queue/${w.line.job}/* (a waiting AcquireLock)`, async () => {
      await w.line.holder.release();
      const next = await Promise.race([w.line.waiting, delay(5_000).then(() => 'late' as const)]);
      if (next === 'late') throw new Error('the waiting task did not take the lock within 5 s of its release');
      expect(next?.token).toBeGreaterThan(w.line.holder.token);
      await next!.release();
    }],
  ];
  const missed: string[] = [];
  for (const [what, check] of checks) {
    try {
      await check();
    } catch (err) {
      await expectUp();
      missed.push(`${what}: ${(err as Error).message}`);
    }
  }
  if (missed.length) throw new Error(`watches that missed the next change:\n${missed.join('\n')}`);
  await expectUp();
  expect((await admin.ctl.whoAmI()).name).toBe('admin');
}

describe('etcd watches that survive', () => {
  it('WatchExecution of an execution whose revision etcd compacted: the current snapshot, then each change; the controller stays up', async () => {
    const record = uniqueName('old');
    await store.create(runningExecution(record, 'old'));
    await advance(3);
    await compactNow();
    // A viewer that looks and goes away (grid-cli status --watch, then Ctrl-C)...
    const glance = follow(record);
    await expectSnapshot(glance, 'old');
    await delay(500);
    glance.stop();
    await delay(1_000);
    await expectUp();
    // ...and one that stays and sees each change.
    const stream = follow(record);
    await expectSnapshot(stream, 'old');
    await store.update(record, (x) => ((x.reason = 'changed'), true));
    await expectSnapshot(stream, 'changed');
    await expectUp();
  });

  it('watches that fell behind while etcd compacted past them: each sees the next change, read afresh (one WARN line) where etcd cut it off; the controller stays up', async () => {
    const w = await arm('behind');
    // Keys whose deletion alone reaches the delete-only watches (alive/, the lock's line).
    const [alive, ticket] = [kv.key('alive', uniqueName('nobody')), kv.key('lock-queue', w.line.job, 'zz-nobody')];
    await kv.put(alive, '');
    await kv.put(ticket, { ticket: 'zz-nobody', executor_id: 'nobody', holder: 'nobody', lease: '0' });
    // A busy execution, followed: its changes fill the stream while it stalls.
    const busy = uniqueName('busy');
    await store.create(runningExecution(busy, 'busy'));
    await expectSnapshot(follow(busy), 'busy');
    const mark = controller.logs().length;

    proxy.stall();
    try {
      // Changes until etcd holds a full buffer of events it cannot send down the stalled stream
      // (the gauge counts every stream's; only the controller's has any to send), so that it
      // sets aside each watch with a change from here on as too slow...
      const pad = 'x'.repeat(16 * 1024);
      const base = await pendingEvents();
      for (let i = 0; (await pendingEvents()) - base < 120; i++) {
        if (i >= 60) throw new Error('etcd still sends everything down the stalled stream after 1500 changes');
        for (let j = 0; j < 25; j++) await kv.put(store.key(busy), runningExecution(busy, `${pad} ${i}.${j}`));
      }
      for (let j = 0; j < 25; j++) await kv.put(store.key(busy), runningExecution(busy, `${pad} ${j}`));
      // ...as each of these does...
      await kv.update<{ definition: { description: string } }>(kv.key('jobs', w.line.job), (j) => j && { ...j, definition: { ...j.definition, description: 'during the stall' } });
      await kv.update<{ labels: Record<string, string> }>(kv.key('executors', a.id), (r) => r && { ...r, labels: { ...r.labels, touched: '1' } });
      await kv.delete(alive);
      await kv.delete(ticket);
      await store.update(w.record, (x) => ((x.reason = 'during the stall'), true));
      // ...and then compacts past where they are.
      await advance(3);
      await compactNow();
    } finally {
      proxy.flow();
    }

    await expectEachWatchSeesTheNextChange(w);
    // The busy one, at least, fell behind and was read afresh: etcd compacted past it, or
    // (before 3.4.32) left it silent.
    await expectResumed(mark, 'etcd compacted the revision it was at|etcd held a change it did not deliver', [`executions/${busy}`]);
  });

  it('etcd killed -9 and started again: each watch is read afresh (one WARN line) and sees the next change; the controller stays up', async () => {
    const w = await arm('restart');
    const mark = controller.logs().length;
    await servers.kill9('etcd');
    await delay(2_000);
    await servers.restart('etcd');
    await expectEachWatchSeesTheNextChange(w);
    await expectResumed(mark, 'the connection to etcd was lost', w.watches);
  });
});
