// BeginTasks (BeginTask for several tasks in one call) against a real controller process, etcd
// and NATS: each task gets the answer BeginTask would give, in the order asked, with secrets only
// for tasks that may run; a wrong executor secret and an oversized call are refused.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { UnauthenticatedError, ValidationError } from '../../src/errors.js';
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
  await executor.call(executor.executors, executor.executors.heartbeat, { executorId: id, executorSecret: secret, version: 'test', runningTasks: 0, load: 0, draining: false });
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
      executorId: id, executorSecret: secret,
      tasks: [
        { executionId: a, taskKey: id, attempt: 1 },
        { executionId: 'NO-SUCH-EXECUTION', taskKey: id, attempt: 1 },
        { executionId: b, taskKey: id, attempt: 1 },
        { executionId: a, taskKey: 'not-a-task', attempt: 1 },
      ],
    });
    expect(res.results).toHaveLength(4);
    expect(res.results[0]).toMatchObject({ proceed: true, secrets: { TOKEN: 's3cr3t-value' } });
    expect(res.results[1]).toMatchObject({ proceed: false, reason: expect.stringContaining('does not exist'), secrets: {} });
    expect(res.results[2]).toMatchObject({ proceed: false, secrets: {} });
    expect(res.results[2]!.reason).not.toBe('');
    expect(res.results[3]).toMatchObject({ proceed: false, secrets: {} });
    // The same answers one by one.
    const single = await executor.call(executor.executors, executor.executors.beginTask, { executorId: id, executorSecret: secret, executionId: b, taskKey: id, attempt: 1 });
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
    const mine = await executor.call(executor.executors, executor.executors.beginTask, { executorId: id, executorSecret: secret, executionId: a, taskKey: id, attempt: 1 });
    expect(mine).toMatchObject({ proceed: true, task: { job: 'begin-job', jobVersion: 1, args: {}, files: [] } });
    expect(JSON.parse(mine.task!.definitionJson)).toMatchObject({ name: 'begin-job', command: ['true'], runner: 'host' });

    // Another registered executor asking for begin-1's task gets nothing, and is named in the log.
    const { res: other, client: otherClient } = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name: 'begin-2' });
    const theirs = await otherClient.call(otherClient.executors, otherClient.executors.beginTask, {
      executorId: other.executorId, executorSecret: other.executorSecret, executionId: a, taskKey: id, attempt: 1,
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
      executor.call(executor.executors, executor.executors.beginTasks, { executorId: id, executorSecret: 'forged', tasks: [{ executionId: a, taskKey: id, attempt: 1 }] }),
    ).rejects.toBeInstanceOf(UnauthenticatedError);
    const many = Array.from({ length: 257 }, () => ({ executionId: a, taskKey: id, attempt: 1 }));
    const err = await executor.call(executor.executors, executor.executors.beginTasks, { executorId: id, executorSecret: secret, tasks: many }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as Error).message).toMatch(/257.*at most 256/);
  });
});
