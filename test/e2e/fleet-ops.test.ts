// Fleet operations over real processes: serialized jobs (one task at a time fleet-wide, fencing
// tokens, a dead holder's lock lapsing), batched rollouts with --max-failures, and dry runs.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startFleet, type Fleet, type StatusJson } from '../harness/pipeline-fleet.js';

const LOCK_TTL_S = 3;
let fleet: Fleet;

beforeAll(async () => {
  fleet = await startFleet({ controllerConfig: { lock_ttl_seconds: LOCK_TTL_S } });
}, 120_000);

afterAll(async () => {
  await fleet?.stop();
});

function lines(file: string): string[] {
  return existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : [];
}

interface Interval {
  executor: string;
  token: number;
  start: number;
  end: number;
}

/** "start <ns> <executor> <token>" / "end <ns> <executor>" lines → one interval per run. */
function intervals(file: string): Interval[] {
  const open = new Map<string, Interval>();
  const out: Interval[] = [];
  for (const l of lines(file)) {
    const [kind, ns, executor, token] = l.split(' ');
    if (kind === 'start') open.set(executor!, { executor: executor!, token: Number(token), start: Number(BigInt(ns!) / 1000n), end: 0 });
    else {
      const i = open.get(executor!)!;
      i.end = Number(BigInt(ns!) / 1000n);
      out.push(i);
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await delay(150);
  }
}

describe('serialized jobs', () => {
  it('run one task at a time across the fleet, in turn, with strictly increasing fencing tokens', async () => {
    const file = join(fleet.dir, 'serial.txt');
    const job = await fleet.createJob({
      name: 'serial',
      serialize: true,
      shell: 'echo "start $(date +%s%N) $GRID_EXECUTOR $GRID_LOCK_TOKEN" >> "$FILE"; sleep 1; echo "end $(date +%s%N) $GRID_EXECUTOR" >> "$FILE"',
      env_vars: { args: [{ name: 'FILE', description: 'where', required: true }] },
    });
    const id = await fleet.execute(job, ['--target', 'all', '--arg', `FILE=${file}`]);
    // While it runs, status shows who holds the lock and who waits.
    const seen = await until('a holder and a waiter in status', async () => {
      const s = await fleet.status(id);
      const holds = s.tasks.find((t) => t.state === 'RUNNING' && /^holds lock /.test(t.reason));
      // A waiter has claimed its task (RUNNING) and waits in line for the lock.
      const waits = s.tasks.find((t) => t.state === 'RUNNING' && /^waiting for lock /.test(t.reason));
      return holds && waits ? { holds, waits } : undefined;
    });
    // Reported when it started waiting: who held the lock then, or how many were ahead of it.
    expect(seen.waits.reason).toMatch(/^waiting for lock serial-\S+( \(held by [a-z0-9-]+\))?(, \d+ ahead)?$/);

    const s = await fleet.waitTerminal(id, 60_000);
    expect(s.state).toBe('SUCCEEDED');
    const runs = intervals(file);
    expect(runs.map((r) => r.executor).sort()).toEqual(['db-1', 'web-1', 'web-2']);
    for (let i = 1; i < runs.length; i++) {
      expect(runs[i]!.start, `${runs[i]!.executor} started before ${runs[i - 1]!.executor} ended`).toBeGreaterThanOrEqual(runs[i - 1]!.end);
      expect(runs[i]!.token).toBeGreaterThan(runs[i - 1]!.token);
    }
    const tokens = Object.fromEntries(s.tasks.map((t) => [t.executorName, (t as unknown as { lockToken: number }).lockToken]));
    for (const r of runs) expect(tokens[r.executor]).toBe(r.token);
  }, 90_000);

  it('a holder killed mid-task: its lock lapses after the TTL and the next executor proceeds', async () => {
    const job = await fleet.createJob({ name: 'serial-long', serialize: 'long-lock', command: ['sleep', '60'] });
    const id = await fleet.execute(job, ['--target', 'group:web']);
    const holder = await until('a holder', async () => (await fleet.status(id)).tasks.find((t) => /^holds lock /.test(t.reason)));
    const victim = fleet.executors[holder.executorName as 'web-1' | 'web-2'];
    await victim.kill9();
    const killedAt = Date.now();
    const next = await until(
      'the other executor to take the lock',
      async () => (await fleet.status(id)).tasks.find((t) => t.executorName !== holder.executorName && /^holds lock /.test(t.reason)),
      LOCK_TTL_S * 1000 + 15_000,
    );
    expect(next.state).toBe('RUNNING');
    console.log(`  lock taken over ${Date.now() - killedAt} ms after the holder was killed (lock TTL ${LOCK_TTL_S} s)`);
    expect(next.reason).not.toBe(holder.reason); // a new token
    expect((await fleet.cli(['cancel', id])).code).toBe(0);
    await victim.restart();
  }, 90_000);
});

describe('batched rollouts', () => {
  it('--batch-size 1 --max-failures 1 where the first fails: one task runs, two are SKIPPED, exit non-zero', async () => {
    const file = join(fleet.dir, 'rollout-fail.txt');
    const job = await fleet.createJob({
      name: 'rollout',
      shell: 'echo "$GRID_EXECUTOR" >> "$FILE"; [ "$GRID_EXECUTOR" != "db-1" ]',
      env_vars: { args: [{ name: 'FILE', description: 'where', required: true }] },
    });
    // Waves go in executor-name order: db-1 first.
    const r = await fleet.cli(['execute', job, '--target', 'all', '--batch-size', '1', '--max-failures', '1', '--arg', `FILE=${file}`, '--wait'], 'operator', 60_000);
    expect(r.code).toBe(1);
    expect(lines(file)).toEqual(['db-1']);
    const id = /execution (\S+) dispatched/.exec(r.stdout + r.stderr)![1]!;
    const s = await fleet.status(id);
    expect(s.state).toBe('FAILED');
    expect(s.reason).toMatch(/^rollout stopped: 1 task failed \(--max-failures 1\)/);
    expect(s.tasks.map((t) => [t.executorName, t.state])).toEqual([['db-1', 'FAILED'], ['web-1', 'SKIPPED'], ['web-2', 'SKIPPED']]);
  }, 90_000);

  it('--batch-size 1: one wave at a time, each after the one before has ended', async () => {
    const file = join(fleet.dir, 'rollout-ok.txt');
    const job = await fleet.createJob({
      name: 'waves',
      shell: 'echo "start $(date +%s%N) $GRID_EXECUTOR 0" >> "$FILE"; sleep 0.5; echo "end $(date +%s%N) $GRID_EXECUTOR" >> "$FILE"',
      env_vars: { args: [{ name: 'FILE', description: 'where', required: true }] },
    });
    const id = await fleet.execute(job, ['--target', 'all', '--batch-size', '33%', '--arg', `FILE=${file}`]);
    const s: StatusJson = await fleet.waitTerminal(id, 60_000);
    expect(s.state).toBe('SUCCEEDED');
    expect(s.tasks.map((t) => (t as unknown as { wave: number }).wave)).toEqual([1, 2, 3]);
    const runs = intervals(file);
    expect(runs.map((x) => x.executor)).toEqual(['db-1', 'web-1', 'web-2']);
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.start).toBeGreaterThanOrEqual(runs[i - 1]!.end);
    const text = (await fleet.cli(['status', id])).stdout;
    expect(text).toMatch(/WAVE/);
  }, 90_000);

  it('rejects a bad --batch-size with one clear line', async () => {
    const job = await fleet.createJob({ name: 'bad-batch', command: ['true'] });
    for (const [flag, value] of [['--batch-size', '0'], ['--batch-size', '150%'], ['--max-failures', 'x']] as const) {
      const r = await fleet.cli(['execute', job, flag, value]);
      expect(r.code, r.stderr).toBe(2);
      expect(r.stderr.trim().split('\n')).toHaveLength(1);
    }
  });
});

describe('dry runs', () => {
  it('list exactly the executors that a real run then uses, and run nothing', async () => {
    const job = await fleet.createJob({ name: 'dry', command: ['true'] });
    const dry = await fleet.cli(['execute', job, '--target', 'group:web,node:db-1', '--dry-run', '--output', 'json']);
    expect(dry.code, dry.stderr).toBe(0);
    const rows = (JSON.parse(dry.stdout) as { dryRun: Array<{ executorName: string; skipped: boolean }> }).dryRun;
    const planned = rows.filter((r) => !r.skipped).map((r) => r.executorName).sort();
    expect((await fleet.cli(['executions', 'list', '--job', job, '--output', 'json'])).stdout.trim()).toBe('[]');
    const id = await fleet.execute(job, ['--target', 'group:web,node:db-1']);
    const s = await fleet.waitTerminal(id);
    expect(s.tasks.map((t) => t.executorName).sort()).toEqual(planned);
    expect(planned).toEqual(['db-1', 'web-1', 'web-2']);
  });
});
