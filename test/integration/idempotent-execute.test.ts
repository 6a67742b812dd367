// Execute with an idempotency key against a real controller process, etcd and NATS: the same key
// sent ten times at once starts one execution; sent again it returns that execution; with another
// request it is refused; two callers' keys never meet; a malformed key is refused by name.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { FailedPreconditionError, ValidationError } from '../../src/errors.js';
import type { ExecuteRequest } from '../../src/gen/grid/v1/controller.js';
import { cleanupProcesses, REGISTRATION_TOKEN, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { registerDirect, testClientTls } from '../harness/grpc-tls.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;
let admin: GridClient;
let operator: GridClient;
let executor: GridClient;

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  const client = (token: string) => new GridClient({ address: controller.address, token, timeoutMs: 10_000, tls: testClientTls() });
  admin = client(TOKENS.admin);
  operator = client(TOKENS.operator);
  // One ACTIVE executor, so executions are planned onto it (it runs no worker: tasks stay pending).
  const registered = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name: 'idem-1' });
  executor = registered.client;
  const { executorId, executorSecret } = registered.res;
  await executor.call(executor.executors, executor.executors.heartbeat, { executorId, executorSecret, version: 'test', runningTasks: 0, load: 0, draining: false, running: [] });
}, 60_000);

afterAll(async () => {
  admin?.close();
  operator?.close();
  executor?.close();
  await cleanupProcesses();
  await servers?.stop();
});

/** A job of its own for each test, so that counting its executions counts only the test's. */
async function newJob(): Promise<string> {
  const name = uniqueName('idem').toLowerCase();
  await admin.ctl.createJob({
    definitionJson: JSON.stringify({
      name, description: 'd', command: ['echo', '{{WHO}}'],
      env_vars: { args: [{ name: 'WHO', description: 'who', type: 'string', default: 'world' }], secrets: [] },
    }),
    replace: false, expectedVersion: 0,
  });
  return name;
}

function request(job: string, idempotencyKey: string, args: Record<string, string> = { WHO: 'grid' }): ExecuteRequest {
  return { job, args, target: 'node:idem-1', timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false, idempotencyKey };
}

const executionsOf = async (job: string) => (await admin.ctl.listExecutions({ job, limit: 100 })).executions;

describe('Execute with an idempotency key', () => {
  it('the same key sent ten times at once gives one execution', async () => {
    const job = await newJob();
    const key = `deploy-${uniqueName('k')}`;
    const answers = await Promise.all(Array.from({ length: 10 }, () => admin.ctl.execute(request(job, key))));
    const ids = new Set(answers.map((a) => a.executionId));
    const stored = await executionsOf(job);
    console.log(`10 concurrent Execute calls with one key: ${ids.size} execution id(s) answered, ${stored.length} execution(s) stored, ${answers.filter((a) => a.reused).length} answered as reused`);
    expect(ids.size).toBe(1);
    expect(stored.map((x) => x.id)).toEqual([...ids]);
    expect(answers.filter((a) => !a.reused)).toHaveLength(1);
  });

  it('sent again later, it returns the same execution and starts nothing', async () => {
    const job = await newJob();
    const first = await admin.ctl.execute(request(job, 'same-key-twice'));
    expect(first.reused).toBe(false);
    const again = await admin.ctl.execute(request(job, 'same-key-twice'));
    expect(again).toMatchObject({ executionId: first.executionId, reused: true });
    expect(again.execution?.id).toBe(first.executionId);
    expect(await executionsOf(job)).toHaveLength(1);
  });

  it('with other arguments under the same key, it is refused and names the execution', async () => {
    const job = await newJob();
    const first = await admin.ctl.execute(request(job, 'key-then-other-args'));
    const err = await admin.ctl.execute(request(job, 'key-then-other-args', { WHO: 'someone else' })).catch((e: Error) => e);
    expect(err).toBeInstanceOf(FailedPreconditionError);
    expect((err as Error).message).toBe(
      `idempotency key "key-then-other-args" was used within 24 h for a different request (execution ${first.executionId}); use a new key`,
    );
    expect(await executionsOf(job)).toHaveLength(1);
  });

  it("two callers' same key gives each their own execution", async () => {
    const job = await newJob();
    const [a, b] = await Promise.all([admin.ctl.execute(request(job, 'shared-key')), operator.ctl.execute(request(job, 'shared-key'))]);
    expect(a.executionId).not.toBe(b.executionId);
    expect([a.reused, b.reused]).toEqual([false, false]);
    expect(await executionsOf(job)).toHaveLength(2);
    expect((await operator.ctl.execute(request(job, 'shared-key'))).executionId).toBe(b.executionId);
  });

  it('a dry run ignores the key; without a key every call starts an execution', async () => {
    const job = await newJob();
    const dry = await admin.ctl.execute({ ...request(job, 'dry-key'), dryRun: true });
    expect(dry).toMatchObject({ executionId: '', reused: false });
    expect((await admin.ctl.execute(request(job, 'dry-key', { WHO: 'other' }))).reused).toBe(false);
    await admin.ctl.execute(request(job, ''));
    await admin.ctl.execute(request(job, ''));
    expect(await executionsOf(job)).toHaveLength(3);
  });

  it('refuses a malformed key, naming the field, the value and what is valid', async () => {
    const job = await newJob();
    const refusal = async (key: string) => {
      const err = await admin.ctl.execute(request(job, key)).catch((e: Error) => e);
      expect(err, key).toBeInstanceOf(ValidationError);
      return (err as Error).message;
    };
    const rule = 'is not an idempotency key; use 1 to 128 printable ASCII characters without spaces, e.g. a UUID';
    expect(await refusal('has space')).toBe(`idempotency_key: "has space" ${rule}`);
    expect(await refusal('clé')).toBe(`idempotency_key: "clé" ${rule}`);
    expect(await refusal('x'.repeat(129))).toBe(`idempotency_key: "${'x'.repeat(40)}…" (129 characters) ${rule}`);
    expect((await admin.ctl.execute(request(job, 'x'.repeat(128)))).executionId).not.toBe('');
    expect(await executionsOf(job)).toHaveLength(1);
  });
});
