// The execution pipeline's logs end to end, over real processes: `getlogs --follow` shows lines
// while the job still runs and exits with the job's result; a job printing 50 MB completes, its
// log keeps the head, a "dropped" marker and the tail (log_max_bytes_per_task = 4 MiB), and the
// controller and executors stay within a memory bound while it runs.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rssBytes, startFleet, streamCli, TERMINAL, type Fleet } from '../harness/pipeline-fleet.js';

const MiB = 1024 * 1024;
const LOG_CAP = 4 * MiB;
/** RSS bound for the controller and each executor while a task prints 50 MB. */
const RSS_BOUND = 300 * 1000 * 1000;

let fleet: Fleet;

beforeAll(async () => {
  // db-1 keeps everything (for following a large log whole); the others cap at LOG_CAP.
  fleet = await startFleet({ executorConfig: { log_max_bytes_per_task: LOG_CAP }, perExecutor: { 'db-1': { log_max_bytes_per_task: 256 * MiB } } });
});

afterAll(async () => {
  await fleet?.stop();
});

describe('getlogs --follow', () => {
  it('shows the first lines before the job ends and exits 0 when it succeeds', async () => {
    const job = await fleet.createJob({ name: 'ticker', shell: 'for i in 1 2 3 4 5 6 7 8 9 10; do echo "tick $i"; sleep 0.2; done' });
    const id = await fleet.execute(job, ['--target', 'node:web-1']);
    const run = streamCli(fleet.controller.address, ['getlogs', id, '--follow']);
    try {
      const { code } = await run.exited;
      const s = await fleet.status(id);
      expect(s.state).toBe('SUCCEEDED');
      const task = s.tasks[0]!;
      const finishedAt = task.finishedAtMs;
      const out = run.lines.filter((l) => l.stream === 'stdout');
      expect(
        out.map((l) => l.line),
        JSON.stringify(run.lines),
      ).toEqual(Array.from({ length: 10 }, (_, i) => `tick ${i + 1}`));
      expect(run.lines.filter((l) => l.stream === 'stderr')).toEqual([]);
      expect(code).toBe(0);
      // Streamed, not collected: the first line reached the operator before the job ended.
      expect(task.executorName).toBe('web-1');
      expect(finishedAt).toBeGreaterThan(0);
      expect(out[0]!.atMs, `first line at ${out[0]!.atMs}, task finished at ${finishedAt}`).toBeLessThan(finishedAt);
    } finally {
      run.kill();
    }
  });

  it('exits non-zero, with one line saying why, when the job exits 3', async () => {
    const job = await fleet.createJob({ name: 'fails-late', shell: 'echo starting; sleep 1; echo giving up; exit 3' });
    const id = await fleet.execute(job, ['--target', 'node:web-2']);
    const run = streamCli(fleet.controller.address, ['getlogs', id, '--follow']);
    try {
      const { code } = await run.exited;
      expect(code, JSON.stringify(run.lines)).toBe(1);
      expect(run.lines.filter((l) => l.stream === 'stdout').map((l) => l.line)).toEqual(['starting', 'giving up']);
      const err = run.lines.filter((l) => l.stream === 'stderr').map((l) => l.line);
      expect(err).toHaveLength(1);
      expect(err[0]).toMatch(new RegExp(`^execution ${id} FAILED: `));
      const s = await fleet.status(id);
      expect(s.state).toBe('FAILED');
      expect(s.tasks[0]).toMatchObject({ state: 'FAILED', exitCode: 3 });
    } finally {
      run.kill();
    }
  });
});

describe('getlogs --follow of a large log', () => {
  it('delivers every byte, including chunks still on their way when the execution ends', async () => {
    // 60 MB of numbered lines: the client falls behind, so many chunks are still buffered in
    // the controller when the execution becomes terminal; none may be dropped.
    const lines = 600_000;
    const job = await fleet.createJob({ name: 'bulk', shell: `seq -w 1 ${lines} | sed 's/$/ ${'x'.repeat(93)}/'` });
    const id = await fleet.execute(job, ['--target', 'node:db-1']);
    const r = await fleet.cli(['getlogs', id, '--follow'], 'operator', 120_000);
    expect(r.code, r.stderr).toBe(0);
    const out = r.stdout.split('\n').filter(Boolean);
    expect(out.length).toBe(lines);
    expect(out[lines - 1]).toMatch(new RegExp(`^${lines} x+$`));
  }, 150_000);
});

describe('a job printing 50 MB', () => {
  it('completes; the log has the head, a dropped marker and the tail; memory stays bounded', async () => {
    const job = await fleet.createJob({
      name: 'firehose',
      shell: "echo BEGIN; head -c 50000000 /dev/zero | tr '\\0' x | fold -w 100; echo; echo END",
      timeout_seconds: 120,
    });
    const pids = {
      controller: fleet.controller.pid,
      'web-1': fleet.executors['web-1'].pid,
      'web-2': fleet.executors['web-2'].pid,
      'db-1': fleet.executors['db-1'].pid,
    };
    const peak: Record<string, number> = Object.fromEntries(Object.keys(pids).map((k) => [k, 0]));
    let sampling = true;
    let samples = 0;
    const sampler = (async () => {
      while (sampling) {
        for (const [name, pid] of Object.entries(pids)) peak[name] = Math.max(peak[name]!, rssBytes(pid));
        samples++;
        await delay(200);
      }
    })();

    let state = '';
    try {
      const id = await fleet.execute(job, ['--target', 'node:web-1']);
      const until = Date.now() + 90_000;
      while (Date.now() < until) {
        const s = await fleet.status(id);
        state = s.state;
        if (TERMINAL.has(state)) break;
        await delay(200);
      }
      expect(state).toBe('SUCCEEDED');

      const r = await fleet.cli(['getlogs', id], 'operator', 60_000);
      expect(r.code, r.stderr).toBe(0);
      const out = r.stdout.split('\n');
      expect(out[0]).toBe('BEGIN');
      expect(out[1]).toBe('x'.repeat(100));
      expect(out[out.length - 1]).toBe('');
      expect(out[out.length - 2]).toBe('END');
      expect(out[out.length - 4]).toBe('x'.repeat(100));
      // Bounded: about the cap, not 50 MB.
      expect(r.stdout.length).toBeLessThanOrEqual(LOG_CAP + 1024);
      expect(r.stdout.length).toBeGreaterThan(LOG_CAP - 2 * 1024);
      // The marker comes as the executor's own line on stderr.
      const marker = r.stderr.trim().split('\n');
      expect(marker, r.stderr).toHaveLength(1);
      expect(marker[0]).toMatch(/^\[grid: .* dropped.*\]$/);
    } finally {
      sampling = false;
      await sampler;
    }
    expect(samples).toBeGreaterThan(1);
    for (const [name, bytes] of Object.entries(peak)) {
      expect(bytes, `${name} peak RSS ${(bytes / MiB).toFixed(0)} MiB`).toBeGreaterThan(0);
      expect(bytes, `${name} peak RSS ${(bytes / MiB).toFixed(0)} MiB`).toBeLessThan(RSS_BOUND);
    }
  });
});
