// Crash tests for the execution pipeline: the controller killed -9 with many executions in flight
// (and in the middle of accepting them), then started again on the same etcd prefix, NATS and
// gRPC port. Real processes throughout; each job run appends `<execution> <attempt> <executor>
// started|done` to a shared file, so runs can be counted against what was recorded.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { GridClient } from '../../src/client/client.js';
import { ExecutionState, type Execution } from '../../src/gen/grid/v1/types.js';
import { EtcdExecutorStore } from '../../src/store/etcd-executors.js';
import { Kv } from '../../src/store/kv.js';
import type { ExecutorRecord } from '../../src/domain/executor.js';
import { startExecutor, stopExecutors, type RunningExecutor } from '../harness/executor-process.js';
import { cleanupProcesses, startController, tempDir, type RunningController } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';
import { adminClient, brief, createJob, groupAlive, killGroup, operatorClient, readRuns, runsOf, sideEffectJob, TERMINAL, tstate, waitFor, xstate, type Run } from './crash-helpers.js';

const PING_DEADLINE_S = 4;
const EXECUTORS = 3;
const CONCURRENCY = 4;
const TOTAL = 200;
const BATCH = 25;
/** The short job: "sleep 0.05-ish". */
const SECS = '0.1';

let servers: TestServers;
let controller: RunningController;
let ops: GridClient;
let dir: string;
const executors: RunningExecutor[] = [];
const measurements: string[] = [];

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    config: { executor_ping_deadline_seconds: PING_DEADLINE_S },
  });
  for (let i = 1; i <= EXECUTORS; i++) {
    executors.push(
      await startExecutor({ controller: controller.address, name: uniqueName(`node-${i}`), pingIntervalSeconds: 1, config: { concurrency: CONCURRENCY } }),
    );
  }
  ops = operatorClient(controller.address);
  dir = tempDir('grid-crash-ctl-');
}, 120_000);

afterAll(async () => {
  if (measurements.length) console.log(`pipeline-crash-controller measurements:\n  ${measurements.join('\n  ')}`);
  ops?.close();
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

/** kill -9 the controller, then start it again on the same config, etcd prefix and gRPC port. */
async function restartController(between?: () => Promise<void>): Promise<{ killedAt: number; readyAt: number }> {
  const old = controller;
  const killedAt = Date.now();
  expect(await old.kill9()).toBe(137);
  await between?.();
  controller = await startController({
    natsUrl: servers.natsUrl,
    etcdEndpoint: servers.etcdEndpoint,
    prefix: old.prefix,
    configFile: old.configFile,
    args: ['--grpc-address', old.address],
  });
  expect(controller.address).toBe(old.address);
  return { killedAt, readyAt: Date.now() };
}

function execute(job: string, out: string) {
  return ops.ctl.execute({ job, args: { OUT: out, SECS }, target: 'any', timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false });
}

const ORDER: Record<string, number> = { QUEUED: 1, DISPATCHED: 2, RUNNING: 3, SUCCEEDED: 4, FAILED: 4, CANCELLED: 4, TIMED_OUT: 4 };

/** Every execution of `job`, remembering each one's sequence of states across calls. */
function tracker(job: string) {
  const histories = new Map<string, string[]>();
  const latest = new Map<string, Execution>();
  /** When each execution was first seen terminal (wall clock). */
  const terminalAt = new Map<string, number>();
  return {
    histories,
    latest,
    terminalAt,
    async poll(): Promise<Map<string, Execution>> {
      const { executions } = await ops.ctl.listExecutions({ job, state: ExecutionState.EXECUTION_STATE_UNSPECIFIED, limit: 1000 });
      for (const x of executions) {
        const h = histories.get(x.id) ?? [];
        if (h[h.length - 1] !== xstate(x)) h.push(xstate(x));
        histories.set(x.id, h);
        latest.set(x.id, x);
        if (TERMINAL.has(xstate(x)) && !terminalAt.has(x.id)) terminalAt.set(x.id, Date.now());
      }
      return latest;
    },
    backwards(): string[] {
      const bad: string[] = [];
      for (const [id, h] of histories) {
        for (let i = 1; i < h.length; i++) if (ORDER[h[i]!]! < ORDER[h[i - 1]!]! || (ORDER[h[i - 1]!] === 4 && h[i] !== h[i - 1])) bad.push(`${id}: ${h.join(' → ')}`);
      }
      return bad;
    },
  };
}

/** Per execution: its runs in the side-effect file. */
function runsById(file: string): Map<string, Run[]> {
  const m = new Map<string, Run[]>();
  for (const r of readRuns(file)) m.set(r.execution, [...(m.get(r.execution) ?? []), r]);
  return m;
}

/** The recorded result must be single and SUCCEEDED; returns problems found, one line each. */
function checkRecorded(x: Execution): string | undefined {
  if (xstate(x) !== 'SUCCEEDED') return `not SUCCEEDED: ${brief(x)}`;
  if (x.tasks.length !== 1) return `${x.tasks.length} tasks: ${brief(x)}`;
  const t = x.tasks[0]!;
  if (tstate(t) !== 'SUCCEEDED' || t.exitCode !== 0) return `task not SUCCEEDED with exit 0: ${brief(x)}`;
  return undefined;
}

describe('the controller killed -9 with executions in flight', () => {
  it(`${TOTAL} executions on ${EXECUTORS} executors: every one SUCCEEDED, each recorded once`, async () => {
    const job = uniqueName('crash-many');
    await createJob(adminClient(controller.address), sideEffectJob(job));
    const out = join(dir, 'many.log');
    const t = tracker(job);

    const ids: string[] = [];
    const submitStart = Date.now();
    for (let i = 0; i < TOTAL; i += BATCH) {
      const batch = await Promise.all(Array.from({ length: Math.min(BATCH, TOTAL - i) }, () => execute(job, out)));
      ids.push(...batch.map((r) => r.executionId));
    }
    const submittedMs = Date.now() - submitStart;
    expect(new Set(ids).size).toBe(TOTAL);

    const before = await t.poll();
    const byState = (m: Map<string, Execution>) => {
      const c: Record<string, number> = {};
      for (const x of m.values()) c[xstate(x)] = (c[xstate(x)] ?? 0) + 1;
      return c;
    };
    const atKill = byState(before);
    const inFlight = [...before.values()].filter((x) => !TERMINAL.has(xstate(x))).length;
    const { killedAt, readyAt } = await restartController();

    const final = await waitFor(
      `all ${TOTAL} executions terminal`,
      () => t.poll(),
      (m) => m.size === TOTAL && [...m.values()].every((x) => TERMINAL.has(xstate(x))),
      90_000,
      500,
      (m) => JSON.stringify(byState(m)),
    );
    const allDoneMs = Date.now() - killedAt;
    const after = ids.filter((id) => (t.terminalAt.get(id) ?? 0) > killedAt).map((id) => t.terminalAt.get(id)! - killedAt).sort((a, b) => a - b);
    const pct = (p: number) => after[Math.min(after.length - 1, Math.floor((after.length * p) / 100))];

    // The record: all SUCCEEDED, one task each, with exit 0; no state ever went backwards.
    const problems = ids.map((id) => checkRecorded(final.get(id)!)).filter(Boolean);
    expect(problems, problems.join('\n')).toEqual([]);
    expect(t.backwards()).toEqual([]);

    // The side effects: every execution ran to its `done` at least once.
    const runs = runsById(out);
    const notDone = ids.filter((id) => !(runs.get(id) ?? []).some((r) => r.done));
    expect(notDone, `no done line for ${notDone.length}: ${notDone.slice(0, 5).map((id) => brief(final.get(id))).join('\n')}`).toEqual([]);
    const twice = ids.filter((id) => (runs.get(id) ?? []).filter((r) => r.started).length > 1);
    const twiceDetail = twice.map((id) => `${id}: runs ${JSON.stringify(runs.get(id))}; recorded ${brief(final.get(id))}`);
    const attempts = ids.map((id) => final.get(id)!.tasks[0]!.attempts);
    const recordedAttemptsAbove1 = attempts.filter((a) => a > 1).length;
    // Each recorded result is the run that has a `done` line with the recorded attempt.
    const mismatched = ids.filter((id) => {
      const task = final.get(id)!.tasks[0]!;
      return !(runs.get(id) ?? []).some((r) => r.done && r.attempt === task.attempts && r.executor === task.executorName);
    });
    expect(mismatched.map((id) => `${id}: ${JSON.stringify(runs.get(id))} vs ${brief(final.get(id))}`)).toEqual([]);

    const count = (re: RegExp) => controller.logs().split('\n').filter((l) => re.test(l)).length;
    // The executors were never lost on the way (the restart took less than the ping deadline).
    const expired = controller.logs().match(/executor expired.*/g) ?? [];
    measurements.push(
      `${TOTAL} executions submitted in ${submittedMs} ms; at the kill: ${JSON.stringify(atKill)} (${inFlight} in flight)`,
      `controller ready again ${readyAt - killedAt} ms after the kill; all ${TOTAL} terminal ${allDoneMs} ms after the kill; ` +
        `of the ${after.length} that ended after the kill, first seen terminal at p0 ${pct(0)} / p25 ${pct(25)} / p50 ${pct(50)} / p90 ${pct(90)} / p100 ${pct(100)} ms after it`,
      `new controller log: ${count(/re-published a request stuck in QUEUED/)} "re-published a request stuck in QUEUED", ${count(/dispatch failed/)} "dispatch failed", ${count(/could not record events/)} "could not record events", ${count(/ WARN | ERROR /)} warnings/errors`,
      `ran more than once: ${twice.length}${twice.length ? `\n    ${twiceDetail.join('\n    ')}` : ''}`,
      `recorded with attempts > 1 (re-offered without a second run, e.g. BeginTask refused while the controller was down): ${recordedAttemptsAbove1}`,
      `executors expired by the new controller: ${expired.length}${expired.length ? ` (${expired.join('; ')})` : ''}`,
    );
    // A second run is allowed only when the message was offered again (attempt > 1).
    for (const id of twice) {
      const started = (runs.get(id) ?? []).filter((r) => r.started);
      expect(started.filter((r) => r.attempt === 1).length, twiceDetail.join('\n')).toBeLessThanOrEqual(1);
    }
    expect(inFlight, `at the kill: ${JSON.stringify(atKill)}`).toBeGreaterThan(0);
  }, 180_000);

  it('killed while accepting executions: every execution it accepted ends SUCCEEDED, each recorded once', async () => {
    const job = uniqueName('crash-accept');
    await createJob(adminClient(controller.address), sideEffectJob(job));
    const out = join(dir, 'accept.log');
    const t = tracker(job);

    // Four clients submit back to back; the controller dies once 20 have been answered, so some
    // calls are cut off mid-way (accepted or not: the client cannot tell).
    const answered: string[] = [];
    let failed = 0;
    let stop = false;
    const submitters = Array.from({ length: 4 }, async () => {
      while (!stop) {
        try {
          answered.push((await execute(job, out)).executionId);
        } catch {
          failed++;
          stop = true;
        }
      }
    });
    await waitFor('some accepted', async () => answered.length, (n) => n >= 20, 30_000, 2);
    const { killedAt } = await restartController();
    stop = true;
    await Promise.all(submitters);

    const final = await waitFor(
      'every accepted execution terminal',
      () => t.poll(),
      (m) => answered.every((id) => m.has(id)) && [...m.values()].every((x) => TERMINAL.has(xstate(x))),
      90_000,
      500,
      (m) => JSON.stringify([...m.values()].filter((x) => !TERMINAL.has(xstate(x))).map(brief)),
    );
    const allDoneMs = Date.now() - killedAt;
    const problems = [...final.values()].map(checkRecorded).filter(Boolean);
    expect(problems, problems.join('\n')).toEqual([]);
    expect(t.backwards()).toEqual([]);
    const runs = runsById(out);
    const notDone = [...final.keys()].filter((id) => !(runs.get(id) ?? []).some((r) => r.done));
    expect(notDone).toEqual([]);
    const unanswered = final.size - answered.length;
    const slow = [...final.keys()].filter((id) => (t.terminalAt.get(id) ?? 0) - killedAt > 10_000);
    const slowStates = new Map<string, number>();
    for (const id of slow) {
      const h = t.histories.get(id)!.join('→');
      slowStates.set(h, (slowStates.get(h) ?? 0) + 1);
    }
    const twice = [...final.keys()].filter((id) => (runs.get(id) ?? []).filter((r) => r.started).length > 1);
    measurements.push(
      `kill while accepting: ${answered.length} answered, ${failed} failed at the client, ${unanswered} of those were accepted anyway ` +
        `(recorded and run to SUCCEEDED); all terminal ${allDoneMs} ms after the kill; ran more than once: ${twice.length}; ` +
        `terminal only > 10 s after the kill: ${slow.length} ${JSON.stringify(Object.fromEntries(slowStates))}`,
    );
    expect(final.size).toBeLessThanOrEqual(answered.length + failed);
    expect(final.size).toBeGreaterThanOrEqual(answered.length);
    expect(failed, 'the kill cut off at least one submission').toBeGreaterThan(0);
  }, 180_000);

  it('a replica that marked an executor EXPIRED and died before marking its tasks: the next controller still ends them LOST', async () => {
    // The expiry watcher marks the executor EXPIRED (CAS) and only then, in memory, marks its
    // running tasks LOST. A controller that dies in between leaves an EXPIRED executor with a
    // RUNNING task; that state is made here directly in etcd, as the dead replica left it.
    const job = uniqueName('crash-lone');
    await createJob(adminClient(controller.address), sideEffectJob(job));
    const out = join(dir, 'lone.log');
    const name = uniqueName('lone');
    const x1 = await startExecutor({ controller: controller.address, name, pingIntervalSeconds: 1 });
    const { executionId: id } = await ops.ctl.execute({ job, args: { OUT: out, SECS: '120' }, target: `node:${name}`, timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false });
    const started = await waitFor('task started', async () => runsOf(out, id), (r) => r.some((v) => v.started), 30_000);
    const pgid = started[0]!.pgid;
    await waitFor('task RUNNING', () => ops.ctl.getExecution(id), (v) => v.tasks[0] !== undefined && tstate(v.tasks[0]) === 'RUNNING', 10_000, 100, brief);

    const kv = new Kv({ endpoints: [servers.etcdEndpoint], prefix: controller.prefix });
    const store = new EtcdExecutorStore(kv);
    try {
      const { readyAt } = await restartController(async () => {
        expect(await x1.kill9()).toBe(137);
        killGroup(pgid); // the host is gone with it
        await waitFor('alive key lapsed', () => store.isAlive(x1.id), (alive) => !alive, (PING_DEADLINE_S + 5) * 1000, 200);
        const rec = await kv.get<ExecutorRecord>(store.recordKey(x1.id));
        expect(rec?.value.state).toBe('ACTIVE');
        const expired: ExecutorRecord = { ...rec!.value, state: 'EXPIRED', lease_id: '', state_changed_at_ms: Date.now() };
        await kv.client.put(store.recordKey(x1.id)).value(JSON.stringify(expired)).exec();
      });
      const x = await waitFor('execution terminal', () => ops.ctl.getExecution(id), (v) => TERMINAL.has(xstate(v)), 30_000, 250, brief);
      measurements.push(`EXPIRED executor with a RUNNING task left by a dead replica: execution ${xstate(x)} ${Date.now() - readyAt} ms after the new controller was ready`);
      expect(xstate(x), brief(x)).toBe('FAILED');
      expect(tstate(x.tasks[0]!)).toBe('LOST');
      expect(x.tasks[0]!.reason).toContain(name);
      expect(await groupAlive(pgid!)).toBe(false);
    } finally {
      kv.client.close();
    }
  }, 120_000);
});
