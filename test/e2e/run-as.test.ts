// Tasks cannot read their executor's identity: the state file (executor secret, NATS seed) is
// 0600 and outside the task's working directory, and with `run_as` a host task runs as another
// user that cannot open it at all. Without run_as the same task reads it: that is the attack.
//
// Needs root (only root may start processes as another user) and the built programs.

import { chmodSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { expectOk, startFleet, type Fleet } from '../harness/pipeline-fleet.js';

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('run_as', () => {
  let fleet: Fleet;
  let workRoot: string;

  beforeAll(async () => {
    // The task's user must be able to reach its working directory: a root it may traverse.
    workRoot = mkdtempSync(join(tmpdir(), 'grid-run-as-'));
    chmodSync(workRoot, 0o711);
    fleet = await startFleet({ perExecutor: { 'web-1': { run_as: 'nobody', work_dir: join(workRoot, 'work') } } });
  });

  afterAll(async () => {
    await fleet?.stop();
    rmSync(workRoot, { recursive: true, force: true });
  });

  it('a task run as another user cannot read the executor state file; without run_as it can', async () => {
    const job = await fleet.createJob({
      name: 'steal-identity',
      shell: 'echo "uid $(id -u)"; cat "$STATE_FILE"',
      env_vars: { args: [{ name: 'STATE_FILE', description: 'what to read', required: true }], secrets: [] },
      timeout_seconds: 30,
    });
    for (const name of ['web-1', 'web-2'] as const) {
      expect(statSync(fleet.executors[name].stateFile).mode & 0o777, `${name}'s state file`).toBe(0o600);
    }

    // The attack, on an executor without run_as: the task prints the executor's secret and NATS seed.
    const open = await fleet.execute(job, ['--target', 'node:web-2', '--arg', `STATE_FILE=${fleet.executors['web-2'].stateFile}`]);
    expect((await fleet.waitTerminal(open)).state).toBe('SUCCEEDED');
    const leaked = expectOk(await fleet.cli(['getlogs', open]));
    expect(leaked).toMatch(/"executor_secret"/);
    expect(leaked).toMatch(/"nats_user_seed": "SU/);

    // With run_as: nobody, the same task runs as nobody and is refused.
    const id = await fleet.execute(job, ['--target', 'node:web-1', '--arg', `STATE_FILE=${fleet.executors['web-1'].stateFile}`]);
    const s = await fleet.waitTerminal(id);
    expect(s.state).toBe('FAILED');
    // The task's stderr is the CLI's stderr.
    const r = await fleet.cli(['getlogs', id]);
    const out = r.stdout + r.stderr;
    expect(out).toMatch(/^uid 65534$/m);
    expect(out).toMatch(/Permission denied/);
    expect(out).not.toMatch(/executor_secret/);
  });
});
