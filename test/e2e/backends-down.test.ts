// grid-cli when the controller's NATS or etcd is down: one line that names the server and says
// to retry, and exit code 3 (unavailable), also where the controller calls etcd or NATS directly
// (an execution's group commit, a log read); execute is retried with its idempotency key first.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startExecutor, stopExecutors } from '../harness/executor-process.js';
import { cleanupProcesses, expectOneLineError, runCli, startController, tempDir, TOKENS, type RunningController, type RunResult } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  await startExecutor({ controller: controller.address, name: uniqueName('node') });
});

afterAll(async () => {
  await stopExecutors();
  await cleanupProcesses();
  await servers?.stop();
});

const cli = (args: string[]): Promise<RunResult> => runCli(args, { address: controller.address, token: TOKENS.admin, timeoutMs: 60_000 });
const quoted = (s: string): string => s.replace(/[.:/]/g, '\\$&');

describe('grid-cli with a backend down', () => {
  it('NATS down: getlogs says NATS is not answering and exits 3; etcd down: reads and execute say so of etcd and exit 3', async () => {
    const job = uniqueName('echo');
    const file = join(tempDir(), 'job.json');
    writeFileSync(file, JSON.stringify({ name: job, command: ['echo', 'hello'] }));
    expect((await cli(['create', file])).code).toBe(0);
    const ran = await cli(['execute', job, '--wait']);
    expect(ran.code, ran.stderr).toBe(0);
    const id = /execution (\S+) dispatched/.exec(ran.stdout + ran.stderr)![1]!;
    expect((await cli(['getlogs', id])).stdout).toBe('hello\n');

    process.kill(servers.natsPid, 'SIGKILL');
    const logs = await cli(['getlogs', id]);
    expect(expectOneLineError(logs, 3)).toMatch(new RegExp(`^error: NATS at ${quoted(servers.natsUrl)} is not answering; retry \\(`));

    process.kill(servers.etcdPid, 'SIGKILL');
    const etcdDown = new RegExp(`^error: etcd at ${quoted(servers.etcdEndpoint)} is not answering; retry \\(`);
    expect(expectOneLineError(await cli(['list']), 3)).toMatch(etcdDown);
    // Execute writes the execution in a group commit (a transaction made on the etcd client
    // itself). grid-cli sends it again with the same idempotency key (here for 2 s, not the
    // default 30 s), a line each time, then fails with the error.
    const exec = await cli(['execute', job, '--retry-for', '2s']);
    expect(exec.code, exec.stderr).toBe(3);
    const lines = exec.stderr.trimEnd().split('\n');
    expect(lines.length, exec.stderr).toBeGreaterThan(1);
    for (const l of lines.slice(0, -1)) expect(l).toMatch(/^unavailable: etcd at .* is not answering; retry .*; retrying execute with the same idempotency key in [\d.]+s$/);
    expect(lines.at(-1)).toMatch(etcdDown);
    expect(controller.logs()).not.toMatch(/internal error|call failed/);
  }, 120_000);
});
