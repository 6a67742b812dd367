// Job definitions live in etcd, not in the controller: they survive a controller restart, and
// two controllers on the same etcd prefix and NATS see the same definitions.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  cleanupProcesses,
  runCli,
  startController,
  tempDir,
  TOKENS,
  uniquePrefix,
  type RunningController,
  type RunResult,
} from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let jobsDir: string;

beforeAll(async () => {
  servers = await startServers();
  jobsDir = tempDir('grid-e2e-jobs-');
});

afterAll(async () => {
  await cleanupProcesses();
  await servers?.stop();
});

function start(prefix: string): Promise<RunningController> {
  return startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint, prefix });
}

function cli(c: RunningController, args: string[]): Promise<RunResult> {
  return runCli(args, { address: c.address, token: TOKENS.admin });
}

function expectOk(r: RunResult): string {
  expect(r, `exit ${r.code}\nstderr: ${r.stderr}`).toMatchObject({ code: 0, stderr: '' });
  return r.stdout;
}

function jobFile(def: Record<string, unknown>): string {
  const path = join(jobsDir, `${uniqueName('job')}.json`);
  writeFileSync(path, JSON.stringify(def));
  return path;
}

interface JobJson {
  name: string;
  version: number;
  description: string;
  command: string[];
}

async function describeJson(c: RunningController, name: string): Promise<JobJson> {
  return JSON.parse(expectOk(await cli(c, ['--output', 'json', 'describe', name]))) as JobJson;
}

describe('job definitions are stored in etcd', () => {
  it('survive a controller restart', async () => {
    const prefix = uniquePrefix();
    const name = uniqueName('persist');
    const first = await start(prefix);
    const path = jobFile({ name, description: 'v1', command: ['echo', 'one'] });
    expectOk(await cli(first, ['create', path]));
    writeFileSync(path, JSON.stringify({ name, description: 'v2', command: ['echo', 'two'] }));
    expectOk(await cli(first, ['create', '--replace', path]));
    const before = await describeJson(first, name);
    expect(before.version).toBe(2);

    expect(await first.stop('SIGTERM'), first.logs()).toBe(0);

    const second = await start(prefix);
    const after = await describeJson(second, name);
    expect(after).toEqual(before);
    expect(after).toMatchObject({ description: 'v2', command: ['echo', 'two'] });
    expect(expectOk(await cli(second, ['list']))).toMatch(new RegExp(`^${name}\\s+host\\s+2\\s`, 'm'));
  });

  it('are shared by two controllers on the same etcd prefix and NATS', async () => {
    const prefix = uniquePrefix();
    const [a, b] = await Promise.all([start(prefix), start(prefix)]);
    expect(a.address).not.toBe(b.address);

    const name = uniqueName('shared');
    const path = jobFile({ name, command: ['echo', 'shared'] });
    expectOk(await cli(a, ['create', path]));

    const listed = JSON.parse(expectOk(await cli(b, ['--output', 'json', 'list']))) as JobJson[];
    expect(listed.map((j) => j.name)).toEqual([name]);

    // Writes through either one are seen by the other, and the version check spans both.
    const dup = await cli(b, ['create', path]);
    expect(dup.code).toBe(1);
    expect(dup.stderr).toMatch(/already exists/);
    writeFileSync(path, JSON.stringify({ name, description: 'changed through b', command: ['echo', 'shared'] }));
    expectOk(await cli(b, ['create', '--replace', path]));
    expect(await describeJson(a, name)).toMatchObject({ version: 2, description: 'changed through b' });

    // A controller on another prefix sees none of it.
    const other = await start(uniquePrefix());
    expect(JSON.parse(expectOk(await cli(other, ['--output', 'json', 'list'])))).toEqual([]);
  });
});
