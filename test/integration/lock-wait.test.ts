// The executor's side of a serialize lock (FleetLocks) against a real controller process, etcd and
// NATS: a task waiting for the lock is answered at once that it waits, then asks once more and
// the controller holds that call until the holder gives the lock back. No polling in between.
// Behaviour only, no timings.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { FleetLocks } from '../../src/executor/lock.js';
import type { LockRequest } from '../../src/gen/grid/v1/executor.js';
import { createLogger } from '../../src/util/log.js';
import { cleanupProcesses, REGISTRATION_TOKEN, startController, TOKENS, type RunningController } from '../harness/processes.js';
import { registerDirect, testClientTls } from '../harness/grpc-tls.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';
import { waitFor } from '../e2e/crash-helpers.js';

let servers: TestServers;
let controller: RunningController;
let admin: GridClient;
let executor: GridClient;
let id = '';
let secret = '';
const name = 'lock-waiter';

beforeAll(async () => {
  servers = await startServers();
  // A third of the TTL (how long the controller may hold a call) outlasts the test's waits.
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, config: { lock_ttl_seconds: 120 } });
  admin = new GridClient({ address: controller.address, token: TOKENS.admin, timeoutMs: 10_000, tls: testClientTls() });
  const registered = await registerDirect(controller.address, { registrationToken: REGISTRATION_TOKEN, name, concurrency: 4 });
  executor = registered.client;
  id = registered.res.executorId;
  secret = registered.res.executorSecret;
  // One heartbeat makes it ACTIVE, so executions target it (it runs no worker: the test claims the tasks).
  await executor.call(executor.executors, executor.executors.heartbeat, { executorId: id, executorSecret: secret, version: 'test', runningTasks: 0, load: 0, draining: false, running: [] });
}, 60_000);

afterAll(async () => {
  admin?.close();
  executor?.close();
  await cleanupProcesses();
  await servers?.stop();
});

/** Executes the job on this executor and claims its task, as a worker would before taking the lock. */
async function claimedTask(job: string): Promise<string> {
  const { executionId } = await admin.ctl.execute({ job, args: {}, target: `node:${name}`, timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false });
  const claim = await executor.call(executor.executors, executor.executors.beginTask, { executorId: id, executorSecret: secret, session: 's1', executionId, taskKey: id, attempt: 0, retryOf: 0 });
  expect(claim.proceed, claim.reason).toBe(true);
  return executionId;
}

describe('waiting for a serialize lock', () => {
  it('one answer at once, then one call held by the controller until the holder gives the lock back', async () => {
    const job = uniqueName('serial');
    await admin.ctl.createJob({
      definitionJson: JSON.stringify({ name: job, description: 'd', command: ['true'], serialize: true, env_vars: { args: [], secrets: [] } }),
      replace: false,
      expectedVersion: 0,
    });
    const [first, second] = [await claimedTask(job), await claimedTask(job)];
    const locks = new FleetLocks({ client: executor, executorId: id, executorSecret: secret, log: createLogger({ level: 'error', write: () => {} }), waitMs: 30_000 });
    const signal = new AbortController().signal;

    const held = await locks.acquire({ executionId: first, taskKey: id, signal });
    expect(held?.token).toBeGreaterThan(0);

    const call = vi.spyOn(executor, 'call');
    const asks = () => call.mock.calls.filter(([, method, req]) => method === executor.executors.acquireLock && (req as LockRequest).executionId === second);
    let waits: { ahead: number; holder: string } | undefined;
    const waiting = locks.acquire({ executionId: second, taskKey: id, signal, onWaiting: (ahead, holder) => void (waits = { ahead, holder }) });
    await waitFor('the second, held call', async () => asks().length, (n) => n === 2, 10_000);
    expect(waits).toEqual({ ahead: 1, holder: name });
    // Polling would ask again and again meanwhile.
    await delay(1500);
    await held!.release();
    const next = await waiting;
    expect(next?.token).toBeGreaterThan(held!.token);
    expect(next?.lost).toBeUndefined();
    expect(asks().map(([, , req]) => (req as LockRequest).waitMs)).toEqual([0, 30_000]);
    call.mockRestore();
    await next!.release();
  });
});
