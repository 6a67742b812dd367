// The execution pipeline end to end, over real processes (nats-server, etcd, a controller and
// three executors: web-1, web-2 in group web, db-1 in group db), driven with the real grid-cli:
// every target mode runs where it should, `any:web` spreads 100 executions over the pool with
// each run exactly once, `execute --wait` / `--follow` / `--dry-run`, and bad input answered with
// one line.
//
// Needs the built programs: `npx tsc -p tsconfig.json`.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GridClient } from '../../src/client/client.js';
import { ExecutionState, TaskState } from '../../src/gen/grid/v1/types.js';
import { expectOk, expectOneLineError, startFleet, type Fleet } from '../harness/pipeline-fleet.js';
import { TOKENS } from '../harness/processes.js';
import { testClientTls } from '../harness/grpc-tls.js';

let fleet: Fleet;
/** Echoes where it runs. */
let whereJob: string;

beforeAll(async () => {
  fleet = await startFleet();
  whereJob = await fleet.createJob({ name: 'where', shell: 'echo "ran on $GRID_EXECUTOR"', timeout_seconds: 30 });
});

afterAll(async () => {
  await fleet?.stop();
});

/** getlogs ID as text: lines, each `[executor] text` when the execution had several tasks. */
async function logLines(id: string): Promise<string[]> {
  const out = expectOk(await fleet.cli(['getlogs', id]));
  return out.split('\n').filter((l) => l !== '');
}

describe('targets: each mode runs on the executors it names', () => {
  const cases: Array<{ target: string; expect: string[] | { oneOf: string[] } }> = [
    { target: 'all', expect: ['db-1', 'web-1', 'web-2'] },
    { target: 'group:web', expect: ['web-1', 'web-2'] },
    { target: 'node:db-1', expect: ['db-1'] },
    { target: 'any', expect: { oneOf: ['db-1', 'web-1', 'web-2'] } },
    { target: 'any:web', expect: { oneOf: ['web-1', 'web-2'] } },
    { target: 'group:db,node:web-1', expect: ['db-1', 'web-1'] },
  ];

  for (const c of cases) {
    it(`--target ${c.target}`, async () => {
      const id = await fleet.execute(whereJob, ['--target', c.target]);
      const s = await fleet.waitTerminal(id);
      expect(s.state, JSON.stringify(s)).toBe('SUCCEEDED');
      const names = s.tasks.map((t) => t.executorName).sort();
      for (const t of s.tasks) expect(t, JSON.stringify(s.tasks)).toMatchObject({ state: 'SUCCEEDED', exitCode: 0, attempts: 1 });
      if (Array.isArray(c.expect)) {
        expect(names).toEqual(c.expect);
      } else {
        expect(names).toHaveLength(1);
        expect(c.expect.oneOf).toContain(names[0]);
      }
      expect(Object.keys(s.workers).sort()).toEqual(names);

      // It really ran there: each executor's output names itself, and nobody else printed.
      const lines = await logLines(id);
      const want = names.map((n) => (names.length > 1 ? `[${n}] ran on ${n}` : `ran on ${n}`));
      expect(lines.sort()).toEqual(want.sort());
    });
  }
});

describe('any:web spreads over the pool', () => {
  it('100 executions: all SUCCEEDED once, on web-1 and web-2 (both), never db-1; each ran exactly once', async () => {
    const outFile = join(fleet.dir, 'spread.out');
    const job = await fleet.createJob({
      name: 'spread',
      shell: 'sleep 0.08; echo "$GRID_EXECUTION_ID $GRID_EXECUTOR" >> "$OUT"',
      env_vars: { secrets: [], args: [{ name: 'OUT', required: true }] },
    });
    const client = new GridClient({ address: fleet.controller.address, token: TOKENS.operator, timeoutMs: 15_000, tls: testClientTls() });
    try {
      const ids: string[] = [];
      for (let batch = 0; batch < 10; batch++) {
        const res = await Promise.all(
          Array.from({ length: 10 }, () =>
            client.ctl.execute({
              job,
              args: { OUT: outFile },
              target: 'any:web',
              timeoutSeconds: 0,
              waitOfflineMs: 0,
              batchSize: '',
              maxFailures: '',
              dryRun: false,
            }),
          ),
        );
        ids.push(...res.map((r) => r.executionId || r.execution!.id));
      }
      expect(new Set(ids).size).toBe(100);

      // Wait until all 100 are terminal.
      const until = Date.now() + 60_000;
      let list = (await client.ctl.listExecutions({ job, limit: 1000 })).executions;
      while (Date.now() < until && !(list.length === 100 && list.every((e) => e.finishedAtMs > 0))) {
        await new Promise((r) => setTimeout(r, 250));
        list = (await client.ctl.listExecutions({ job, limit: 1000 })).executions;
      }
      expect(list.map((e) => e.id).sort()).toEqual([...ids].sort());
      const byExecutor = new Map<string, number>();
      for (const e of list) {
        const context = JSON.stringify(e);
        expect(e.state, context).toBe(ExecutionState.EXECUTION_STATE_SUCCEEDED);
        expect(e.tasks, context).toHaveLength(1);
        expect(e.tasks[0], context).toMatchObject({ state: TaskState.TASK_STATE_SUCCEEDED, attempts: 1 });
        const name = e.tasks[0]!.executorName;
        byExecutor.set(name, (byExecutor.get(name) ?? 0) + 1);
      }
      const counts = Object.fromEntries(byExecutor);
      expect(counts['web-1'] ?? 0, JSON.stringify(counts)).toBeGreaterThan(0);
      expect(counts['web-2'] ?? 0, JSON.stringify(counts)).toBeGreaterThan(0);
      expect(counts['db-1'] ?? 0, JSON.stringify(counts)).toBe(0);
      expect((counts['web-1'] ?? 0) + (counts['web-2'] ?? 0)).toBe(100);

      // The side effect: each execution id exactly once, from the executor the record names.
      const lines = readFileSync(outFile, 'utf8').trim().split('\n');
      expect(lines).toHaveLength(100);
      const seen = new Map(lines.map((l) => l.split(' ') as [string, string]));
      expect([...seen.keys()].sort()).toEqual([...ids].sort());
      for (const e of list) expect(seen.get(e.id), e.id).toBe(e.tasks[0]!.executorName);
    } finally {
      client.close();
    }
  });
});

describe('execute --wait, --follow and --dry-run', () => {
  it('--wait prints progress lines and exits 0 when the execution succeeds', async () => {
    const r = await fleet.cli(['execute', whereJob, '--target', 'group:web', '--wait']);
    const out = expectOk(r);
    const lines = out.split('\n');
    expect(lines[0]).toMatch(new RegExp(`^execution \\S+ dispatched: ${whereJob} on group:web$`));
    // Non-TTY: plain progress lines (no bar, no cursor movement), ending with all done.
    expect(out).not.toContain('\x1b[');
    expect(out).not.toMatch(/^0\/0 /m);
    const progress = lines.filter((l) => /^\d+\/2 executors done, \d+ failed, \d+ running$/.test(l));
    expect(progress.length, out).toBeGreaterThanOrEqual(1);
    expect(progress[progress.length - 1]).toBe('2/2 executors done, 0 failed, 0 running');
    expect(out).toMatch(/^State:\s+SUCCEEDED$/m);
    expect(out).toMatch(/^web-1\s+SUCCEEDED\s+0\s+1\s/m);
    expect(out).toMatch(/^web-2\s+SUCCEEDED\s+0\s+1\s/m);
  });

  it('--wait exits 1 when the execution fails, with the exit code in the status', async () => {
    const failing = await fleet.createJob({ name: 'fails', shell: 'echo failing; exit 3' });
    const r = await fleet.cli(['execute', failing, '--target', 'node:db-1', '--wait']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^1\/1 executor done, 1 failed, 0 running$/m);
    expect(r.stdout).toMatch(/^State:\s+FAILED$/m);
    expect(r.stdout).toMatch(/^db-1\s+FAILED\s+3\s+1\s/m);
  });

  it('--follow on several executors: every line names its executor, from the first one on', async () => {
    const r = await fleet.cli(['execute', whereJob, '--target', 'all', '--follow']);
    const out = expectOk({ ...r, stderr: r.stderr.replace(/^execution \S+ dispatched: .*\n/, '') });
    const logs = out.split('\n\n')[0]!.split('\n');
    expect(logs.sort()).toEqual(['[db-1] ran on db-1', '[web-1] ran on web-1', '[web-2] ran on web-2']);
    expect(out).toMatch(/^State:\s+SUCCEEDED$/m);
  });

  it('--dry-run --target group:web lists exactly web-1 and web-2 and runs nothing', async () => {
    const before = (await fleet.cli(['executions', 'list', '--job', whereJob, '--limit', '1000', '--output', 'json'])).stdout;
    const out = expectOk(await fleet.cli(['execute', whereJob, '--target', 'group:web', '--dry-run']));
    expect(out).toMatch(new RegExp(`^dry run: ${whereJob} on group:web would run on 2 of 2 executors$`, 'm'));
    const rows = out.trim().split('\n').slice(2); // the heading line and the table header
    expect(rows.map((r) => r.split(/\s+/)[0]).sort()).toEqual(['web-1', 'web-2']);
    for (const row of rows) expect(row).toMatch(/\syes\b/);

    const json = JSON.parse(expectOk(await fleet.cli(['execute', whereJob, '--target', 'group:web', '--dry-run', '--output', 'json'])));
    expect(json.dryRun.map((r: { executorName: string }) => r.executorName).sort()).toEqual(['web-1', 'web-2']);
    expect(json.dryRun.every((r: { skipped: boolean }) => !r.skipped)).toBe(true);

    const after = (await fleet.cli(['executions', 'list', '--job', whereJob, '--limit', '1000', '--output', 'json'])).stdout;
    expect(JSON.parse(after)).toHaveLength(JSON.parse(before).length);
  });
});

describe('bad input: one line on stderr, exit 2 for bad input and 1 for failures', () => {
  let typed: string;

  beforeAll(async () => {
    typed = await fleet.createJob({
      name: 'typed',
      command: ['echo', '{{COUNT}} {{NAME}}'],
      env_vars: {
        secrets: [],
        args: [
          { name: 'COUNT', type: 'int', required: true },
          { name: 'NAME', required: false, default: 'x' },
        ],
      },
    });
  });

  it('unknown job: exit 1, names it', async () => {
    const line = expectOneLineError(await fleet.cli(['execute', 'no-such-job']), 1);
    expect(line).toMatch(/no-such-job/);
    expect(line).toMatch(/not found/);
  });

  it('missing required arg: exit 2, names it', async () => {
    const line = expectOneLineError(await fleet.cli(['execute', typed]), 2);
    expect(line).toMatch(/COUNT/);
    expect(line).toMatch(/missing/);
  });

  it('wrong type: exit 2, names the arg and the value', async () => {
    const line = expectOneLineError(await fleet.cli(['execute', typed, '--arg', 'COUNT=ten']), 2);
    expect(line).toMatch(/COUNT/);
    expect(line).toMatch(/"ten" is not an int/);
  });

  it('undeclared arg: exit 2, names it and what is declared', async () => {
    const line = expectOneLineError(await fleet.cli(['execute', typed, '--arg', 'COUNT=1', '--arg', 'COLOR=red']), 2);
    expect(line).toMatch(/COLOR/);
    expect(line).toMatch(/not declared/);
  });

  it('bad target syntax: exit 2, says what a target looks like', async () => {
    const line = expectOneLineError(await fleet.cli(['execute', whereJob, '--target', 'grup:web']), 2);
    expect(line).toMatch(/grup:web/);
    expect(line).toMatch(/group:G/);
  });

  it('a target that matches nothing: the execution fails at once, with the reason', async () => {
    const r = await fleet.cli(['execute', whereJob, '--target', 'node:nope', '--wait']);
    expect(r.code, r.stdout + r.stderr).toBe(1);
    expect(r.stdout).toMatch(/^State:\s+FAILED$/m);
    expect(r.stdout).toMatch(/^Reason:\s+.*no executor named "nope"/m);
    expect(r.stdout).toMatch(/^no tasks: it never reached an executor$/m);
    expect(r.stdout).not.toMatch(/executors? done/);

    const id = await fleet.execute(whereJob, ['--target', 'group:nosuch']);
    const s = await fleet.waitTerminal(id, 10_000);
    expect(s).toMatchObject({ state: 'FAILED', tasks: [] });
    expect(s.reason).toMatch(/no executor is in group "nosuch"/);
  });

  it('cancel of a finished execution: exit 1, says it already ended; no id at all: exit 2', async () => {
    const id = await fleet.execute(whereJob, ['--target', 'node:web-1']);
    expect((await fleet.waitTerminal(id)).state).toBe('SUCCEEDED');
    const line = expectOneLineError(await fleet.cli(['cancel', id]), 1);
    expect(line).toContain(id);
    expect(line).toMatch(/already ended: SUCCEEDED/);
    expect((await fleet.status(id)).state).toBe('SUCCEEDED');
    for (const cmd of ['status', 'getlogs', 'cancel']) expect(expectOneLineError(await fleet.cli([cmd]), 2), cmd).toMatch(/name the execution/);
  });

  it('unknown execution id: status, getlogs and cancel exit 1 and name it', async () => {
    const bogus = '01J0000000000000000000NOPE';
    for (const cmd of ['status', 'getlogs', 'cancel']) {
      const line = expectOneLineError(await fleet.cli([cmd, bogus]), 1);
      expect(line, cmd).toContain(bogus);
      expect(line, cmd).toMatch(/not found/);
    }
  });
});
