// A fan-out's broadcast job pointer against a real controller process, etcd and NATS, with
// executors' workers in this process, each on the NATS user its Register minted (so the
// permission to hear its groups' pointers is the server's to enforce): a copy of the pointer
// that an executor never hears is made up by its per-executor message, an executor that is not
// in the task set is refused, and copies too many run nothing twice.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NatsConnection } from '@nats-io/nats-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { connectBus } from '../../src/bus/connect.js';
import { encode } from '../../src/bus/messages.js';
import { subjects } from '../../src/bus/subjects.js';
import { GridClient } from '../../src/client/client.js';
import { groupsOf } from '../../src/domain/executor.js';
import { Worker } from '../../src/executor/worker.js';
import { ExecutionState, TaskState, type Execution } from '../../src/gen/grid/v1/types.js';
import { NoopRunner } from '../../src/runners/noop/index.js';
import type { LogSink, RunningTask, TaskSpec } from '../../src/runners/runner.js';
import { createLogger } from '../../src/util/log.js';
import { registerDirect, testClientTls } from '../harness/grpc-tls.js';
import { cleanupProcesses, REGISTRATION_TOKEN, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;
let admin: GridClient;
let workDir: string;
const quiet = createLogger({ level: 'error', name: 'test', write: () => {} });

/** An executor of the test: its worker, and the runs its runner started, by execution id. */
interface TestExecutor {
  id: string;
  name: string;
  runs: string[];
  /**
   * Its process dies (its NATS connection is cut, nothing is drained or handed back) and another
   * starts: a new worker, with a new session, on a new connection.
   */
  restart(): Promise<void>;
  /** BeginTasks as this executor, for its own task of an execution (what a pointer makes it ask). */
  begin(executionId: string): Promise<{ proceed: boolean; reason: string }>;
  stop(): Promise<void>;
}
const executors: TestExecutor[] = [];

/** The noop runner, counting what it is asked to run. */
class CountingRunner extends NoopRunner {
  constructor(private readonly runs: string[]) {
    super({ name: 'host' });
  }

  override start(spec: TaskSpec, logs: LogSink, signal: AbortSignal): Promise<RunningTask> {
    this.runs.push(spec.executionId);
    return super.start(spec, logs, signal);
  }
}

/**
 * Registers an executor and starts its worker; `hearsPointers: false` leaves its fan-out
 * subscriptions out, as if every copy of the pointer were lost on the way to it.
 */
async function startExecutor(name: string, groups: string[], hearsPointers: boolean): Promise<TestExecutor> {
  const { res, client, natsKey } = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name, groups, concurrency: 2 });
  const beat = () =>
    client.call(client.executors, client.executors.heartbeat, {
      executorId: res.executorId, executorSecret: res.executorSecret, version: 'test', runningTasks: 0, load: 0, draining: false, running: [],
    });
  await beat();
  const beating = setInterval(() => void beat().catch(() => {}), 2_000);
  const runs: string[] = [];
  const startWorker = async () => {
    const nc: NatsConnection = await connectBus({
      servers: res.nats!.servers,
      name,
      user: { jwt: res.nats!.userJwt, seed: natsKey.seed },
      inboxPrefix: res.nats!.inboxPrefix,
    });
    const worker = new Worker({
      nc,
      client,
      executorId: res.executorId,
      executorSecret: res.executorSecret,
      executorName: name,
      jobConsumer: res.nats!.jobConsumer,
      poolConsumers: res.nats!.poolConsumers,
      ...(hearsPointers ? { groups: groupsOf({ groups }) } : {}),
      runners: [new CountingRunner(runs)],
      concurrency: 2,
      workDir: join(workDir, name),
      logMaxBytes: 1 << 20,
      log: quiet,
      pullExpiresMs: 1_000,
    });
    await worker.start();
    return { nc, worker };
  };
  let current = await startWorker();
  const e: TestExecutor = {
    id: res.executorId,
    name,
    runs,
    restart: async () => {
      await current.nc.close();
      current = await startWorker();
    },
    begin: async (executionId) => {
      const r = await client.call(client.executors, client.executors.beginTasks, {
        executorId: res.executorId, executorSecret: res.executorSecret, session: 'test-session', tasks: [{ executionId, taskKey: res.executorId, attempt: 0 }],
      });
      return r.results[0]!;
    },
    stop: async () => {
      clearInterval(beating);
      await current.worker.drain(Date.now() + 1_000);
      await current.nc.close();
      client.close();
    },
  };
  executors.push(e);
  return e;
}

async function execute(target: string, job = 'fan-job', args: Record<string, string> = {}): Promise<string> {
  const res = await admin.ctl.execute({ job, args, target, timeoutSeconds: 90, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false });
  return res.executionId;
}

async function ended(id: string): Promise<Execution> {
  for (const deadline = Date.now() + 60_000; Date.now() < deadline; ) {
    const x = await admin.ctl.getExecution(id);
    if (x.state !== ExecutionState.EXECUTION_STATE_RUNNING && x.state !== ExecutionState.EXECUTION_STATE_DISPATCHED) return x;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`execution ${id} did not end within 60 s`);
}

beforeAll(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'grid-fanout-'));
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  admin = new GridClient({ address: controller.address, token: TOKENS.admin, timeoutMs: 10_000, tls: testClientTls() });
  await admin.ctl.createJob({
    definitionJson: JSON.stringify({ name: 'fan-job', description: 'd', command: ['true'] }),
    replace: false,
    expectedVersion: 0,
  });
  // The noop runner sleeps this long: a task still running when its executor restarts.
  await admin.ctl.createJob({
    definitionJson: JSON.stringify({
      name: 'fan-slow', description: 'd', command: ['true'],
      env_vars: { args: [{ name: 'GRID_NOOP_SLEEP_MS', description: 'how long it runs', required: true }], secrets: [] },
    }),
    replace: false,
    expectedVersion: 0,
  });
}, 60_000);

afterAll(async () => {
  await Promise.allSettled(executors.map((e) => e.stop()));
  admin?.close();
  await cleanupProcesses();
  await servers?.stop();
  await rm(workDir, { recursive: true, force: true });
});

describe('a fan-out broadcast pointer', () => {

  it('runs on every target executor exactly once, also on one that never hears the pointer; one outside the task set runs nothing; copies too many are harmless', async () => {
    const hears1 = await startExecutor('fan-1', ['fan'], true);
    const hears2 = await startExecutor('fan-2', ['fan'], true);
    const deaf = await startExecutor('fan-deaf', ['fan'], false);
    const outsider = await startExecutor('other-1', ['other'], true);

    const id = await execute('group:fan');
    // Still running (the executor that never hears the pointer gets its message only after a
    // delay): the outsider asking for a task of it, as a pointer makes it, is refused.
    const refused = await outsider.begin(id);
    expect(refused.proceed).toBe(false);
    expect(refused.reason).toContain('has no task');
    const x = await ended(id);
    expect(x.state).toBe(ExecutionState.EXECUTION_STATE_SUCCEEDED);
    const targets = [hears1, hears2, deaf];
    expect(x.tasks.map((t) => t.executorName).sort()).toEqual(targets.map((e) => e.name).sort());
    for (const t of x.tasks) expect([t.state, t.attempts]).toEqual([TaskState.TASK_STATE_SUCCEEDED, 1]);
    for (const e of targets) expect(e.runs.filter((id) => id === x.id)).toEqual([x.id]);

    // The pointer again, twice, on the group and on `all`: every executor that hears it asks for
    // its task; the ones that ran theirs run nothing more, the one outside the task set is refused.
    const nc = await servers.connectNats('test-pointers');
    try {
      for (const group of ['fan', 'fan', 'all']) nc.publish(subjects.fanout(group), encode({ execution_id: x.id }));
      await nc.flush();
    } finally {
      await nc.close();
    }
    // And an `all` fan-out that the outsider is part of, to know it hears pointers at all.
    const y = await ended(await execute('all'));
    expect(y.state).toBe(ExecutionState.EXECUTION_STATE_SUCCEEDED);
    expect(outsider.runs).toEqual([y.id]);
    for (const e of targets) expect(e.runs.filter((id) => id === x.id)).toEqual([x.id]);
    const again = await admin.ctl.getExecution(x.id);
    for (const t of again.tasks) expect([t.state, t.attempts]).toEqual([TaskState.TASK_STATE_SUCCEEDED, 1]);
  }, 90_000);

  it('a task taken from the pointer whose executor restarts while it runs is run again, as its next attempt, once its message follows', async () => {
    const e = await startExecutor('restart-1', ['restart'], true);
    const id = await execute('group:restart', 'fan-slow', { GRID_NOOP_SLEEP_MS: '20000' });
    for (const deadline = Date.now() + 20_000; !e.runs.includes(id) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
    expect(e.runs).toEqual([id]);
    await e.restart();
    // The restarted process has no pointer to hear: the per-executor message of the running
    // task, one ack wait after dispatch, is how it learns of it; its claim ends attempt 1.
    const x = await ended(id);
    expect(x.state).toBe(ExecutionState.EXECUTION_STATE_SUCCEEDED);
    expect([x.tasks[0]!.state, x.tasks[0]!.attempts]).toEqual([TaskState.TASK_STATE_SUCCEEDED, 2]);
    expect(e.runs).toEqual([id, id]);
  }, 120_000);

  it('an executor\'s NATS user hears the pointers of its own groups only, and may not send one', async () => {
    const { res, client, natsKey } = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name: 'perm-1', groups: ['perm'] });
    client.close();
    const nc = await connectBus({ servers: res.nats!.servers, name: 'perm-1', user: { jwt: res.nats!.userJwt, seed: natsKey.seed }, inboxPrefix: res.nats!.inboxPrefix });
    const admin = await servers.connectNats('test-pointers');
    try {
      const heard: string[] = [];
      const errors: string[] = [];
      const listen = (subject: string) => nc.subscribe(subject, { callback: (err, m) => void (err ? errors.push(`${subject}: ${err.message}`) : heard.push(m.subject)) });
      for (const subject of [subjects.fanout('perm'), subjects.fanout('all'), subjects.fanout('fan')]) listen(subject);
      await nc.flush();
      nc.publish(subjects.fanout('perm'), encode({ execution_id: 'FORGED' })); // refused by the server
      await nc.flush();
      for (const group of ['perm', 'all', 'fan']) admin.publish(subjects.fanout(group), encode({ execution_id: 'X' }));
      await admin.flush();
      for (const deadline = Date.now() + 10_000; (heard.length < 2 || errors.length < 1) && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
      expect(heard.sort()).toEqual([subjects.fanout('all'), subjects.fanout('perm')]);
      expect(errors).toEqual([expect.stringMatching(/^grid\.fan\.fan: .*[Pp]ermission/)]);
    } finally {
      await nc.close().catch(() => {});
      await admin.close();
    }
  }, 30_000);
});
