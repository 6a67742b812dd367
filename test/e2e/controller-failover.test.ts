// An executor given two controller replicas' addresses: when the one it talks to dies, it moves
// to the other and stays ACTIVE past the ping deadline, and runs what that replica sends it.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { listExecutorsCli, startExecutor, stateOf, stopExecutors, type RunningExecutor } from '../harness/executor-process.js';
import { cleanupProcesses, runCli, startController, tempDir, TOKENS, type RunningController } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';
import { adminClient, createJob, readRuns, sideEffectJob } from './crash-helpers.js';

const PING_DEADLINE_S = 4;

let servers: TestServers;
let a: RunningController;
let b: RunningController;
let executor: RunningExecutor;

beforeAll(async () => {
  servers = await startServers();
  a = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, config: { executor_ping_deadline_seconds: PING_DEADLINE_S } });
  // A second replica: the same configuration and etcd prefix.
  b = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, prefix: a.prefix, configFile: a.configFile });
  executor = await startExecutor({ controller: `${a.address},${b.address}`, name: uniqueName('edge'), pingIntervalSeconds: 1 });
}, 120_000);

afterAll(async () => {
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

describe('an executor with a list of controller addresses', () => {
  it('fails over to the next replica when the first dies: stays ACTIVE past the ping deadline and runs its tasks', async () => {
    const job = uniqueName('failover');
    await createJob(adminClient(b.address), { ...sideEffectJob(job), name: job });
    expect(await a.kill9()).toBe(137);
    await delay(2 * PING_DEADLINE_S * 1000 + 1000);

    expect(stateOf(await listExecutorsCli(b.address), executor.name)).toBe('ACTIVE');
    expect(executor.logs()).toMatch(/controller not answering; using the next address.*from=127\.0\.0\.1:\d+ to=127\.0\.0\.1:\d+/);

    const out = join(tempDir(), 'runs.log');
    const ran = await runCli(['execute', job, '--target', `node:${executor.name}`, '--arg', `OUT=${out}`, '--arg', 'SECS=0', '--wait'], {
      address: b.address,
      token: TOKENS.admin,
      timeoutMs: 60_000,
    });
    expect(ran.code, ran.stdout + ran.stderr).toBe(0);
    expect(readRuns(out).map((r) => `${r.executor}#${r.attempt}${r.done ? '' : '(not done)'}`)).toEqual([`${executor.name}#1`]);
  }, 120_000);
});
