// `--watch` on the list commands against a real controller: grid-cli runs as a child (not a
// terminal), prints a new table (or, with --output json, a new JSON line) when the list changes,
// never an escape sequence, and stops with exit 0 on SIGINT or SIGTERM.

import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { cleanupProcesses, runCli, startController, startProgram, tempDir, TOKENS, type RunningController, type RunningProgram } from '../harness/processes.js';
import { startServers, uniqueName, type TestServers } from '../harness/servers.js';

let servers: TestServers;
let controller: RunningController;
let job: string;

beforeAll(async () => {
  servers = await startServers();
  controller = await startController({ natsUrl: servers.natsUrl, etcdEndpoint: servers.etcdEndpoint });
  job = uniqueName('watch');
  const file = join(tempDir('grid-e2e-watch-'), 'job.json');
  writeFileSync(file, JSON.stringify({ name: job, command: ['echo', 'hi'] }));
  expect((await cli(['create', file])).code).toBe(0);
}, 120_000);

afterAll(async () => {
  await cleanupProcesses();
  await servers?.stop();
});

function cli(args: string[]) {
  return runCli(args, { address: controller.address, token: TOKENS.admin });
}

function watch(args: string[], ready: RegExp): Promise<RunningProgram> {
  return startProgram('grid-cli', ['--controller', controller.address, '--token', TOKENS.admin, ...args], { ready });
}

/** Starts an execution of the job and returns its id. */
async function execute(): Promise<string> {
  const r = await cli(['execute', job]);
  expect(r.code, r.stderr).toBe(0);
  return /^execution (\S+) /.exec(r.stdout)![1]!;
}

describe('executions list --watch', () => {
  it('prints a new table when an execution starts, with no escape codes, and exits 0 on SIGINT', async () => {
    const w = await watch(['executions', 'list', '--job', job, '--watch'], /no executions match/);
    const id = await execute();
    await vi.waitFor(() => expect(w.stdout()).toContain(id), { timeout: 20_000, interval: 200 });
    const tables = w.stdout().split('\n\n');
    expect(tables[0]).toBe('no executions match');
    expect(tables.at(-1)).toMatch(new RegExp(`^ID\\s+JOB\\s+STATE[^\\n]*\\n${id}\\s+${job}\\s`));
    expect(w.stdout()).not.toContain('\u001b');
    expect(await w.stop('SIGINT')).toBe(0);
    expect(w.stderr()).toBe('');
  });

  it('prints one JSON document a line per change with --output json, and exits 0 on SIGTERM', async () => {
    const w = await watch(['executions', 'list', '--job', job, '--watch', '--output', 'json'], /^\[/m);
    const id = await execute();
    await vi.waitFor(() => expect(w.stdout()).toContain(id), { timeout: 20_000, interval: 200 });
    const docs = w.stdout().trimEnd().split('\n').map((line) => JSON.parse(line) as Array<{ id: string }>);
    expect(docs.length).toBeGreaterThanOrEqual(2);
    expect(docs.at(-1)!.map((e) => e.id)).toContain(id);
    expect(docs[0]!.map((e) => e.id)).not.toContain(id);
    expect(await w.stop('SIGTERM')).toBe(0);
  });

  it('refuses --watch with --page-after in one line (exit 2)', async () => {
    const r = await cli(['executions', 'list', '--watch', '--page-after', 'x']);
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(/^error: --page-after: cannot be used with --watch[^\n]*\n$/);
  });
});

describe('executors list --watch', () => {
  it('prints the list and exits 0 on SIGINT', async () => {
    const w = await watch(['executors', 'list', '--watch'], /no executors registered yet/);
    expect(await w.stop('SIGINT')).toBe(0);
    expect(w.stdout()).toBe('no executors registered yet: executor register adds one\n');
  });
});
