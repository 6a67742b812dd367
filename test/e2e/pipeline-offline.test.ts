// Offline executors at dispatch, over real processes: SKIPPED by default; with --wait-offline
// their tasks wait in JetStream until the executor returns and then run in submission order; a
// wait that runs out ends SKIPPED and the returning executor does not run it.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleet, type Fleet } from '../harness/pipeline-fleet.js';

let fleet: Fleet;
let job: string;
let marks: string;

beforeAll(async () => {
  // db-1 runs one task at a time, so the order in which it takes queued tasks is visible.
  fleet = await startFleet({ perExecutor: { 'db-1': { concurrency: 1 } } });
  marks = join(fleet.dir, 'marks.txt');
  job = await fleet.createJob({
    name: 'mark',
    shell: 'echo "$TAG" >> "$FILE"',
    env_vars: {
      args: [
        { name: 'TAG', description: 'what to write', required: true },
        { name: 'FILE', description: 'where', required: true },
      ],
    },
  });
  expect(await fleet.executors['db-1'].stop()).toBe(0); // STOPPED: not ACTIVE, so offline for dispatch
}, 120_000);

afterAll(async () => {
  await fleet?.stop();
});

function marked(): string[] {
  return existsSync(marks) ? readFileSync(marks, 'utf8').split('\n').filter(Boolean) : [];
}

describe('an executor offline at dispatch', () => {
  it('is SKIPPED by default, and the execution says no executor ran it', async () => {
    const id = await fleet.execute(job, ['--target', 'node:db-1', '--arg', 'TAG=skipped', '--arg', `FILE=${marks}`]);
    const s = await fleet.waitTerminal(id);
    expect(s.state).toBe('FAILED');
    expect(s.reason).toBe('every task was skipped: no executor ran it');
    expect(s.tasks).toHaveLength(1);
    expect(s.tasks[0]).toMatchObject({ executorName: 'db-1', state: 'SKIPPED', reason: 'executor offline at dispatch (STOPPED)' });
  });

  it('with a --wait-offline that runs out: the task ends SKIPPED', async () => {
    const id = await fleet.execute(job, ['--target', 'node:db-1', '--wait-offline', '2s', '--arg', 'TAG=ran-out', '--arg', `FILE=${marks}`]);
    const s = await fleet.waitTerminal(id);
    expect(s.tasks[0]).toMatchObject({ state: 'SKIPPED', reason: 'executor stayed offline longer than --wait-offline' });
  });

  it('with --wait-offline: waits for it, then runs the queued tasks in submission order, once each', async () => {
    const ids: string[] = [];
    for (const tag of ['first', 'second', 'third']) {
      ids.push(await fleet.execute(job, ['--target', 'node:db-1', '--wait-offline', '10m', '--arg', `TAG=${tag}`, '--arg', `FILE=${marks}`]));
    }
    for (const id of ids) {
      const s = await fleet.status(id);
      expect(s.state).not.toBe('FAILED');
      expect(s.tasks[0]).toMatchObject({ state: 'PENDING' });
      expect(s.tasks[0]!.reason).toMatch(/offline at dispatch.*waiting up to --wait-offline/);
    }
    await delay(500);
    expect(marked()).toEqual([]); // nothing ran while it was away

    await fleet.executors['db-1'].restart();
    for (const id of ids) expect((await fleet.waitTerminal(id, 60_000)).state).toBe('SUCCEEDED');
    // The earlier executions' messages were waiting in the queue too: they were refused, not run.
    expect(marked()).toEqual(['first', 'second', 'third']);
  }, 120_000);
});
