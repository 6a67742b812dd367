// BeginTasks (BeginTask for several tasks in one call) against a real controller process, etcd
// and NATS: each task gets the answer BeginTask would give, in the order asked, with secrets only
// for tasks that may run; a wrong executor secret and an oversized call are refused.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { Etcd3 } from 'etcd3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Execution } from '../../src/domain/execution.js';
import { GridClient } from '../../src/client/client.js';
import { UnauthenticatedError, ValidationError } from '../../src/errors.js';
import { ExecutionState, TaskState } from '../../src/gen/grid/v1/types.js';
import { cleanupProcesses, REGISTRATION_TOKEN, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { registerDirect, testClientTls } from '../harness/grpc-tls.js';
import { startServers, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;
let admin: GridClient;
let executor: GridClient;
let id = '';
let secret = '';

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  admin = new GridClient({ address: controller.address, token: TOKENS.admin, timeoutMs: 10_000, tls: testClientTls() });
  const registered = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name: 'begin-1', concurrency: 4 });
  executor = registered.client;
  const reg = registered.res;
  id = reg.executorId;
  secret = reg.executorSecret;
  // One heartbeat makes it ACTIVE, so executions target it (it runs no worker: nothing takes the tasks).
  await executor.call(executor.executors, executor.executors.heartbeat, { executorId: id, executorSecret: secret, version: 'test', runningTasks: 0, load: 0, draining: false, running: [] });
  await admin.ctl.createJob({
    definitionJson: JSON.stringify({
      name: 'begin-job', description: 'd', command: ['true'],
      env_vars: { args: [], secrets: [{ name: 'TOKEN', description: 'a secret' }] },
    }),
    replace: false, expectedVersion: 0,
  });
}, 60_000);

afterAll(async () => {
  admin?.close();
  executor?.close();
  await cleanupProcesses();
  await servers?.stop();
});

async function execute(): Promise<string> {
  const res = await admin.ctl.execute({
    job: 'begin-job', args: { TOKEN: 's3cr3t-value' }, target: 'node:begin-1', timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false,
  });
  return res.executionId;
}

describe('BeginTasks', () => {
  it('answers each task as BeginTask would, in the order asked', async () => {
    const [a, b] = [await execute(), await execute()];
    await admin.ctl.cancelExecution(b, 'test');
    const res = await executor.call(executor.executors, executor.executors.beginTasks, {
      executorId: id, executorSecret: secret, session: 's1',
      tasks: [
        { executionId: a, taskKey: id, attempt: 0 },
        { executionId: 'NO-SUCH-EXECUTION', taskKey: id, attempt: 0 },
        { executionId: b, taskKey: id, attempt: 0 },
        { executionId: a, taskKey: 'not-a-task', attempt: 0 },
      ],
    });
    expect(res.results).toHaveLength(4);
    expect(res.results[0]).toMatchObject({ proceed: true, secrets: { TOKEN: 's3cr3t-value' } });
    expect(res.results[1]).toMatchObject({ proceed: false, reason: expect.stringContaining('does not exist'), secrets: {} });
    expect(res.results[2]).toMatchObject({ proceed: false, secrets: {} });
    expect(res.results[2]!.reason).not.toBe('');
    expect(res.results[3]).toMatchObject({ proceed: false, secrets: {} });
    // The same answers one by one.
    const single = await executor.call(executor.executors, executor.executors.beginTask, { executorId: id, executorSecret: secret, executionId: b, taskKey: id, attempt: 0, session: 's1', retryOf: 0 });
    expect(single.reason).toBe(res.results[2]!.reason);
  });

  it('answers with the task as the record has it (the version it was executed with), and only to its executor', async () => {
    const a = await execute();
    // The definition is replaced after the execution was accepted: the task still runs version 1.
    await admin.ctl.createJob({
      definitionJson: JSON.stringify({
        name: 'begin-job', description: 'd2', command: ['echo', 'version-2'],
        env_vars: { args: [], secrets: [{ name: 'TOKEN', description: 'a secret' }] },
      }),
      replace: true, expectedVersion: 0,
    });
    const mine = await executor.call(executor.executors, executor.executors.beginTask, { executorId: id, executorSecret: secret, executionId: a, taskKey: id, attempt: 0, session: 's1', retryOf: 0 });
    expect(mine).toMatchObject({ proceed: true, task: { job: 'begin-job', jobVersion: 1, args: {}, files: [] } });
    expect(JSON.parse(mine.task!.definitionJson)).toMatchObject({ name: 'begin-job', command: ['true'], runner: 'host' });

    // Another registered executor asking for begin-1's task gets nothing, and is named in the log.
    const { res: other, client: otherClient } = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name: 'begin-2' });
    const theirs = await otherClient.call(otherClient.executors, otherClient.executors.beginTask, {
      executorId: other.executorId, executorSecret: other.executorSecret, executionId: a, taskKey: id, attempt: 0, session: 's2', retryOf: 0,
    });
    otherClient.close();
    expect(theirs).toMatchObject({ proceed: false, reason: `task ${id} is for another executor`, secrets: {}, task: undefined });
    const refusal = new RegExp(`BeginTask refused: the task is not this executor's executor=begin-2 id=${other.executorId} execution=${a} task=${id}`);
    for (let i = 0; i < 50 && !refusal.test(controller.logs()); i++) await new Promise((r) => setTimeout(r, 100)); // the log line may lag the answer
    expect(controller.logs()).toMatch(refusal);
  });

  it('refuses a wrong executor secret, and more tasks than one call may carry', async () => {
    const a = await execute();
    await expect(
      executor.call(executor.executors, executor.executors.beginTasks, { executorId: id, executorSecret: 'forged', session: 's1', tasks: [{ executionId: a, taskKey: id, attempt: 0 }] }),
    ).rejects.toBeInstanceOf(UnauthenticatedError);
    const many = Array.from({ length: 257 }, () => ({ executionId: a, taskKey: id, attempt: 0 }));
    const err = await executor.call(executor.executors, executor.executors.beginTasks, { executorId: id, executorSecret: secret, session: 's1', tasks: many }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(/257.*at most 256/);
  });
});

describe('claims, against the state of record', () => {
  type Reg = Awaited<ReturnType<typeof registerDirect>>;
  const members: Reg[] = [];
  const beat = (r: Reg, running: Array<{ executionId: string; taskKey: string; attempt: number }> = []) =>
    r.client.call(r.client.executors, r.client.executors.heartbeat, {
      executorId: r.res.executorId, executorSecret: r.res.executorSecret, version: 'test', runningTasks: running.length, load: 0, draining: false, running,
    });
  const claim = (r: Reg, executionId: string, taskKey: string, session: string, retryOf = 0) =>
    r.client.call(r.client.executors, r.client.executors.beginTask, {
      executorId: r.res.executorId, executorSecret: r.res.executorSecret, executionId, taskKey, attempt: 0, session, retryOf,
    });
  const executePool = async (job: string) =>
    (await admin.ctl.execute({ job, args: {}, target: 'any:claimers', timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false })).executionId;
  const task = async (executionId: string) => (await admin.ctl.getExecution(executionId)).tasks[0]!;

  beforeAll(async () => {
    for (const name of ['claim-a', 'claim-b']) {
      const r = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name, groups: ['claimers'] });
      members.push(r);
      await beat(r);
    }
    for (const on_lost of ['retry', 'at_most_once']) {
      await admin.ctl.createJob({
        definitionJson: JSON.stringify({ name: `claim-${on_lost.replace(/_/g, '-')}`, description: 'd', command: ['true'], on_lost }),
        replace: false, expectedVersion: 0,
      });
    }
  });

  afterAll(() => {
    for (const m of members) m.client.close();
  });

  it('the claim records RUNNING with its claimant; a second claim waits while the claimant is alive', async () => {
    const [a, b] = members as [Reg, Reg];
    const x = await executePool('claim-retry');
    const first = await claim(a, x, 'pool.claimers', 'sa');
    expect(first).toMatchObject({ proceed: true, attempt: 1 });
    expect(await task(x)).toMatchObject({ executorName: 'claim-a', attempts: 1, state: TaskState.TASK_STATE_RUNNING });
    expect(await claim(b, x, 'pool.claimers', 'sb')).toMatchObject({ proceed: false, later: true, reason: expect.stringMatching(/running on executor claim-a .*alive/) });
    // The same process again (its answer was lost): the same attempt.
    expect(await claim(a, x, 'pool.claimers', 'sa')).toMatchObject({ proceed: true, attempt: 1 });
    // A retry of attempt 1 by the same process claims attempt 2.
    expect(await claim(a, x, 'pool.claimers', 'sa', 1)).toMatchObject({ proceed: false, reason: expect.stringMatching(/used its 1 attempts/) });
  });

  it('many claims of one task at once, by two live pool members: exactly one wins', async () => {
    const [a, b] = members as [Reg, Reg];
    const x = await executePool('claim-retry');
    const answers = await Promise.all(Array.from({ length: 10 }, (_, i) => (i % 2 ? claim(a, x, 'pool.claimers', 'sa') : claim(b, x, 'pool.claimers', 'sb'))));
    // The winner's own repeated claims get its attempt back; the other member is refused.
    const winners = new Set(answers.flatMap((r, i) => (r.proceed ? [i % 2 ? 'a' : 'b'] : [])));
    expect(winners.size).toBe(1);
    expect(answers.filter((r) => r.proceed).every((r) => r.attempt === 1)).toBe(true);
    expect(answers.filter((r) => !r.proceed).every((r) => r.later)).toBe(true);
    expect((await task(x)).attempts).toBe(1);
  });

  it('an at_most_once task whose executor restarted ends UNKNOWN and is never run again', async () => {
    const [a] = members as [Reg, Reg];
    const x = await executePool('claim-at-most-once');
    expect(await claim(a, x, 'pool.claimers', 'before-restart')).toMatchObject({ proceed: true, attempt: 1 });
    const again = await claim(a, x, 'pool.claimers', 'after-restart');
    expect(again).toMatchObject({ proceed: false, reason: expect.stringMatching(/UNKNOWN: the outcome is unknown: executor claim-a restarted while running attempt 1/) });
    expect(await task(x)).toMatchObject({ state: TaskState.TASK_STATE_UNKNOWN, attempts: 1 });
    expect((await admin.ctl.getExecution(x)).state).toBe(ExecutionState.EXECUTION_STATE_FAILED);
  });

  it('answers from its own copy of a record only when the claim\'s write proves no one else changed it', async () => {
    // This controller created the record and wrote the claim: it holds its own copy of both.
    // Another writer (a second replica, here etcd written directly) then changes the record.
    const [a, b] = members as [Reg, Reg];
    const etcd = new Etcd3({ hosts: servers.etcdEndpoint });
    const rewrite = async (executionId: string, change: (x: Execution) => void) => {
      const key = `${controller.prefix}executions/${executionId}`;
      const x = JSON.parse((await etcd.get(key).string())!) as Execution;
      change(x);
      await etcd.put(key).value(JSON.stringify(x));
    };
    try {
      // Cancelled elsewhere after its claim: the same process asking again (its answer lost)
      // would make no write, so nothing proves the copy; the answer comes from a fresh read.
      const x = await executePool('claim-retry');
      expect(await claim(a, x, 'pool.claimers', 'sa')).toMatchObject({ proceed: true, attempt: 1 });
      await rewrite(x, (r) => Object.assign(r, { state: 'CANCELLED', reason: 'cancelled by another replica' }));
      expect(await claim(a, x, 'pool.claimers', 'sa')).toMatchObject({ proceed: false, reason: expect.stringMatching(/CANCELLED/) });

      // Claimed elsewhere before this controller saw a claim: the claim's compare fails, and the
      // record as stored decides (claim-b holds it and is alive).
      const y = await executePool('claim-retry');
      await rewrite(y, (r) => Object.assign(r.tasks[0]!, { state: 'RUNNING', attempts: 1, executor_id: b.res.executorId, executor_name: 'claim-b', claim_session: 'sb' }));
      expect(await claim(a, y, 'pool.claimers', 'sa')).toMatchObject({ proceed: false, later: true, reason: expect.stringMatching(/running on executor claim-b/) });
      expect(await task(y)).toMatchObject({ executorName: 'claim-b', attempts: 1 });
    } finally {
      etcd.close();
    }
  });

  it('a cancel the executor missed reaches it in the heartbeat\'s answer; so does a claim another attempt took over', async () => {
    const [a] = members as [Reg, Reg];
    const x = await executePool('claim-retry');
    await claim(a, x, 'pool.claimers', 'sa');
    expect((await beat(a, [{ executionId: x, taskKey: 'pool.claimers', attempt: 1 }])).stop).toEqual([]);
    await admin.ctl.cancelExecution(x, 'test');
    expect((await beat(a, [{ executionId: x, taskKey: 'pool.claimers', attempt: 1 }])).stop).toEqual([
      { executionId: x, taskKey: 'pool.claimers', reason: 'cancelled', note: expect.stringMatching(/cancelled by/) },
    ]);
    const y = await executePool('claim-retry');
    await claim(a, y, 'pool.claimers', 'sa');
    await claim(a, y, 'pool.claimers', 'sa-restarted'); // attempt 2, by the restarted process
    expect((await beat(a, [{ executionId: y, taskKey: 'pool.claimers', attempt: 1 }])).stop).toMatchObject([{ executionId: y, reason: 'superseded' }]);
  });
});
