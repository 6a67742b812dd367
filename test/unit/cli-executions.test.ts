// The execution commands end to end through runCli, against a fake client (no server).

import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, expect, it, vi } from 'vitest';
import type { ExecuteRequest, ExecuteResponse } from '../../src/gen/grid/v1/controller.js';
import { ExecutionState, TaskState, type Execution, type LogChunk, type Task } from '../../src/gen/grid/v1/types.js';
import { NotFoundError, UnavailableError } from '../../src/errors.js';

interface Fake {
  execute: ReturnType<typeof vi.fn>;
  getExecution: ReturnType<typeof vi.fn>;
  listExecutions: ReturnType<typeof vi.fn>;
  cancelExecution: ReturnType<typeof vi.fn>;
  watchExecution: ReturnType<typeof vi.fn>;
  getLogs: ReturnType<typeof vi.fn>;
  clientOptions: Array<{ timeoutMs?: number }>;
}

const fake = vi.hoisted(() => ({}) as Fake);

vi.mock('../../src/client/client.js', () => ({
  GridClient: class {
    readonly ctl: Fake;
    constructor(opts: { timeoutMs?: number }) {
      fake.clientOptions.push(opts);
      this.ctl = fake;
    }
    close() {}
  },
}));

const { runCli } = await import('../../src/cli/main.js');

const T0 = Date.UTC(2026, 10, 22, 2, 37, 24);
const ID = '01JD3V0Q8W4Z5M2K7T9XG6B1RA';

function task(name: string, state: TaskState, extra: Partial<Task> = {}): Task {
  return { executorId: `id-${name}`, executorName: name, state, attempts: 1, startedAtMs: T0, finishedAtMs: 0, reason: '', wave: 0, key: `id-${name}`, lockToken: 0, lateResults: [], ...extra };
}

function execution(state: ExecutionState, tasks: Task[], extra: Partial<Execution> = {}): Execution {
  return {
    id: ID, job: 'hello-world', jobVersion: 1, args: {}, target: 'all', requester: 'dev-admin', state, reason: '',
    createdAtMs: T0, updatedAtMs: T0, finishedAtMs: 0, timeoutSeconds: 0, batchSize: 0, maxFailures: 0, waitOfflineMs: 0, tasks, ...extra,
  };
}

function logChunk(name: string, text: string, stream = 'stdout'): LogChunk {
  return { executionId: ID, executorId: `id-${name}`, executorName: name, stream, data: Buffer.from(text), seq: 0, atMs: T0 };
}

async function* from<T>(items: T[]): AsyncIterable<T> {
  for (const i of items) yield i;
}

const { EXECUTION_STATE_QUEUED: QUEUED, EXECUTION_STATE_RUNNING: RUNNING, EXECUTION_STATE_SUCCEEDED: SUCCEEDED, EXECUTION_STATE_FAILED: FAILED } = ExecutionState;
const { TASK_STATE_PENDING: P, TASK_STATE_RUNNING: R, TASK_STATE_SUCCEEDED: S, TASK_STATE_FAILED: F, TASK_STATE_CANCELLED: C } = TaskState;

const home = mkdtempSync(join(tmpdir(), 'grid-cli-test-'));

async function cli(argv: string[], isTTY = false) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await runCli(argv, {
    out: (s) => out.push(s),
    err: (s) => err.push(s),
    isTTY,
    env: { GRID_CONTROLLER: '127.0.0.1:1', GRID_TOKEN: 't', HOME: home, XDG_CONFIG_HOME: home },
    cwd: home,
  });
  return { code, stdout: out.join('\n'), stderr: err.join('\n') };
}

function queued(tasks: Task[] = [task('web-1', P), task('web-2', P)]): ExecuteResponse {
  return { executionId: ID, execution: execution(QUEUED, tasks), dryRun: [], reused: false };
}

beforeEach(() => {
  Object.assign(fake, {
    execute: vi.fn(async () => queued()),
    getExecution: vi.fn(),
    listExecutions: vi.fn(async () => ({ executions: [] })),
    cancelExecution: vi.fn(),
    watchExecution: vi.fn(),
    getLogs: vi.fn(),
    clientOptions: [],
  });
});

describe('execute', () => {
  it('prints one line with the id; both arg spellings and the Octavius job flag', async () => {
    const r = await cli(['execute', '--job-name', 'hello-world', '--arg', 'NAME=ops', '--args', 'COUNT=3,LIST=a,b', '--target', 'group:web']);
    expect(r).toEqual({ code: 0, stdout: `execution ${ID} queued: hello-world on all`, stderr: '' });
    const req = fake.execute.mock.calls[0]![0] as ExecuteRequest;
    expect(req).toEqual({
      job: 'hello-world', args: { NAME: 'ops', COUNT: '3', LIST: 'a,b' }, target: 'group:web',
      timeoutSeconds: 0, waitOfflineMs: 0, batchSize: '', maxFailures: '', dryRun: false,
      idempotencyKey: expect.stringMatching(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/),
    });
  });

  it('each run has a key of its own unless --idempotency-key gives it; a dry run has none', async () => {
    await cli(['execute', 'hello-world']);
    await cli(['execute', 'hello-world']);
    await cli(['execute', 'hello-world', '--idempotency-key', 'deploy-web-1.4.2']);
    await cli(['execute', 'hello-world', '--dry-run']);
    const keys = fake.execute.mock.calls.map((c) => (c[0] as ExecuteRequest).idempotencyKey);
    expect(keys[0]).not.toBe(keys[1]);
    expect(keys.slice(2)).toEqual(['deploy-web-1.4.2', '']);

    const bad = await cli(['execute', 'hello-world', '--idempotency-key', 'two words']);
    expect(bad).toMatchObject({ code: 2, stdout: '' });
    expect(bad.stderr).toBe('error: --idempotency-key: "two words" is not an idempotency key; use 1 to 128 printable ASCII characters without spaces, e.g. a UUID');
    expect(fake.execute).toHaveBeenCalledTimes(4);
  });

  it('while the controller is unavailable, sends execute again with the same key, one line on stderr per retry', async () => {
    const down = new UnavailableError('cannot reach the controller at 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1');
    fake.execute.mockRejectedValueOnce(down).mockResolvedValueOnce({ ...queued(), reused: true });
    const r = await cli(['execute', 'hello-world', '--idempotency-key', 'k-1']);
    expect(r).toEqual({
      code: 0,
      stdout: `execution ${ID} queued: hello-world on all (started earlier with this idempotency key)`,
      stderr: 'unavailable: cannot reach the controller at 127.0.0.1:1: connect ECONNREFUSED 127.0.0.1:1; retrying execute with the same idempotency key in 0.5s',
    });
    expect(fake.execute.mock.calls.map((c) => (c[0] as ExecuteRequest).idempotencyKey)).toEqual(['k-1', 'k-1']);
  });

  it('--retry-for bounds the retries; 0 sends execute once', async () => {
    fake.execute.mockRejectedValue(new UnavailableError('cannot reach the controller at 127.0.0.1:1: down'));
    const once = await cli(['execute', 'hello-world', '--retry-for', '0']);
    expect(once).toEqual({ code: 3, stdout: '', stderr: 'error: cannot reach the controller at 127.0.0.1:1: down' });
    expect(fake.execute).toHaveBeenCalledTimes(1);
    const bad = await cli(['execute', 'hello-world', '--retry-for', 'soon']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('error: --retry-for: "soon" is not a duration; write e.g. 90s, 10m, 2h, 1h30m or plain seconds such as 45');
  });

  it('never retries without a key, nor an error no retry mends', async () => {
    fake.execute.mockRejectedValue(new UnavailableError('cannot reach the controller at 127.0.0.1:1: down'));
    const dry = await cli(['execute', 'hello-world', '--dry-run']);
    expect(dry).toEqual({ code: 3, stdout: '', stderr: 'error: cannot reach the controller at 127.0.0.1:1: down' });
    fake.execute.mockRejectedValue(new UnavailableError('cannot connect to the controller at 127.0.0.1:1: its certificate is not signed by the CA in ca_file', { retryable: false }));
    const tls = await cli(['execute', 'hello-world']);
    expect(tls.stderr).toBe('error: cannot connect to the controller at 127.0.0.1:1: its certificate is not signed by the CA in ca_file');
    expect(tls.code).toBe(1);
    expect(fake.execute).toHaveBeenCalledTimes(2);
  });

  it('--timeout is the execution timeout and --request-timeout the call deadline, wherever they are written', async () => {
    const r = await cli(['--request-timeout', '5', 'execute', 'hello-world', '--timeout', '90', '--wait-offline', '1h30m', '--batch-size', '25%', '--max-failures', '1']);
    expect(r.code).toBe(0);
    expect(fake.execute.mock.calls[0]![0]).toMatchObject({ timeoutSeconds: 90, waitOfflineMs: 5_400_000, batchSize: '25%', maxFailures: '1' });
    expect(fake.clientOptions[0]!.timeoutMs).toBe(5_000);

    await cli(['execute', 'hello-world', '--timeout=2m']);
    expect(fake.execute.mock.calls[1]![0]).toMatchObject({ timeoutSeconds: 120 });
    expect(fake.clientOptions[1]!.timeoutMs).toBe(15_000);

    await cli(['execute', '--timeout', '1h', 'hello-world', '--request-timeout=1m30s']);
    expect(fake.execute.mock.calls[2]![0]).toMatchObject({ timeoutSeconds: 3600 });
    expect(fake.clientOptions[2]!.timeoutMs).toBe(90_000);
  });

  it('bad input exits 2 with one line, before calling the controller', async () => {
    for (const argv of [
      ['execute', 'hello-world', '--arg', 'NAME'],
      ['execute', 'hello-world', '--wait-offline', 'soon'],
      ['execute', 'hello-world', '--batch-size', '0'],
      ['execute'],
      ['execute', 'a', '--job-name', 'b'],
    ]) {
      const r = await cli(argv);
      expect(r.code, argv.join(' ')).toBe(2);
      expect(r.stderr).toMatch(/^error: [^\n]+$/);
    }
    expect(fake.execute).not.toHaveBeenCalled();
  });

  it('--dry-run lists the executors the target resolves to', async () => {
    fake.execute.mockResolvedValue({
      executionId: '', execution: undefined,
      dryRun: [
        { executorId: 'id-web-1', executorName: 'web-1', skipped: false, reason: '' },
        { executorId: 'id-web-2', executorName: 'web-2', skipped: true, reason: 'executor is EXPIRED' },
      ],
    });
    const r = await cli(['execute', 'hello-world', '--target', 'group:web', '--dry-run', '--wait']);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe(
      [
        'dry run: hello-world on group:web would run on 1 of 2 executors',
        'EXECUTOR  ID        RUN      REASON',
        'web-1     id-web-1  yes      -',
        'web-2     id-web-2  skipped  executor is EXPIRED',
      ].join('\n'),
    );
    expect(fake.watchExecution).not.toHaveBeenCalled();
  });

  it('--wait: progress lines on change, then the status table; exit 1 when it failed', async () => {
    fake.watchExecution.mockImplementation(() =>
      from([
        execution(RUNNING, [task('web-1', R), task('web-2', P)]),
        execution(RUNNING, [task('web-1', R), task('web-2', P)]),
        execution(RUNNING, [task('web-1', S, { exitCode: 0, finishedAtMs: T0 + 1000 }), task('web-2', R)]),
        execution(FAILED, [task('web-1', S, { exitCode: 0, finishedAtMs: T0 + 1000 }), task('web-2', F, { exitCode: 2, finishedAtMs: T0 + 2000, reason: 'exit code 2' })], {
          finishedAtMs: T0 + 2000, reason: '1 of 2 executors failed',
        }),
      ]),
    );
    const r = await cli(['execute', 'hello-world', '--wait']);
    expect(r.code).toBe(1);
    const lines = r.stdout.split('\n');
    expect(lines.slice(0, 5)).toEqual([
      `execution ${ID} queued: hello-world on all`,
      '0/2 executors done, 0 failed, 0 running',
      '0/2 executors done, 0 failed, 1 running',
      '1/2 executors done, 0 failed, 1 running',
      '2/2 executors done, 1 failed, 0 running',
    ]);
    expect(r.stdout).toContain('State:     FAILED');
    expect(r.stdout).toMatch(/web-2 +FAILED +2 +1 /);
    expect(r.stderr).toBe('');
  });

  it('--wait exits 0 when it succeeded; json prints only the final execution', async () => {
    fake.watchExecution.mockImplementation(() => from([execution(SUCCEEDED, [task('web-1', S, { exitCode: 0 })], { finishedAtMs: T0 + 10 })]));
    const r = await cli(['execute', 'hello-world', '--wait', '--output', 'json']);
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.state).toBe('SUCCEEDED');
    expect(j.workers['web-1'].state).toBe('SUCCEEDED');
  });

  it('--follow: prefixed log lines, stderr apart, then the final execution decides the exit code', async () => {
    fake.getLogs.mockImplementation(() => from([logChunk('web-1', 'hel'), logChunk('web-2', 'ready\n'), logChunk('web-1', 'lo\n'), logChunk('web-2', 'warn\n', 'stderr')]));
    fake.getExecution.mockResolvedValue(execution(SUCCEEDED, [task('web-1', S), task('web-2', S)], { finishedAtMs: T0 + 10 }));
    const r = await cli(['execute', 'hello-world', '--follow']);
    expect(r.code).toBe(0);
    expect(fake.getLogs.mock.calls[0]![0]).toEqual({ executionId: ID, follow: true, executor: undefined });
    expect(r.stdout.split('\n').slice(0, 3)).toEqual(['[web-2] ready', '[web-1] hello', '']);
    expect(r.stdout).toContain('State:     SUCCEEDED');
    expect(r.stderr).toBe(`execution ${ID} queued: hello-world on all\n[web-2] warn`);
  });
});

describe('execute --follow right after submit', () => {
  it('waits for the dispatcher to plan the tasks, so the first line of several executors is prefixed too', async () => {
    fake.execute.mockResolvedValue(queued([]));
    fake.watchExecution.mockImplementation(() => from([execution(QUEUED, []), execution(RUNNING, [task('web-1', R), task('web-2', P)])]));
    fake.getLogs.mockImplementation(() => from([logChunk('web-1', 'first\n'), logChunk('web-2', 'second\n')]));
    fake.getExecution.mockResolvedValue(execution(SUCCEEDED, [task('web-1', S), task('web-2', S)], { finishedAtMs: T0 + 10 }));
    const r = await cli(['execute', 'hello-world', '--follow']);
    expect(r.code).toBe(0);
    expect(r.stdout.split('\n').slice(0, 2)).toEqual(['[web-1] first', '[web-2] second']);
  });
});

describe('status, executions list, getlogs, cancel', () => {
  it('status ID and --job-id; json has the workers map', async () => {
    fake.getExecution.mockResolvedValue(execution(RUNNING, [task('web-1', R)]));
    const r = await cli(['status', '--job-id', ID]);
    expect(r.code).toBe(0);
    expect(fake.getExecution).toHaveBeenCalledWith(ID);
    expect(r.stdout).toMatch(/^Execution: 01JD3V0Q8W4Z5M2K7T9XG6B1RA\nState: {5}RUNNING\n/);
    const j = JSON.parse((await cli(['status', ID, '-o', 'json'])).stdout);
    expect(j.workers).toEqual({ 'web-1': expect.objectContaining({ state: 'RUNNING', exit_code: null }) });
  });

  it('status of an unknown execution: one error line, exit 1', async () => {
    fake.getExecution.mockRejectedValue(new NotFoundError('execution', 'nope'));
    const r = await cli(['status', 'nope']);
    expect(r).toEqual({ code: 1, stdout: '', stderr: 'error: execution "nope" not found' });
  });

  it('executions list passes the filters; a wrong state exits 2 naming the valid ones', async () => {
    fake.listExecutions.mockResolvedValue({ executions: [execution(SUCCEEDED, [task('a', S), task('b', S)], { finishedAtMs: T0 + 3000 })] });
    const r = await cli(['executions', 'list', '--job', 'hello-world', '--state', 'succeeded', '--limit', '5']);
    expect(r.code).toBe(0);
    expect(fake.listExecutions).toHaveBeenCalledWith({ job: 'hello-world', state: SUCCEEDED, limit: 5, pageAfter: '' });
    expect(r.stdout.split('\n')[1]).toMatch(/^01JD3V0Q8W4Z5M2K7T9XG6B1RA +hello-world +SUCCEEDED +2\/2 ok +2026-11-22 02:37:24Z +3\.0s$/);

    const bad = await cli(['executions', 'list', '--state', 'done']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('error: --state: "done" is not one of QUEUED, DISPATCHED, RUNNING, SUCCEEDED, FAILED, CANCELLED, TIMED_OUT');
  });

  it('executions list prints the command for the next page, and on the last page whether older ones were pruned', async () => {
    const one = execution(FAILED, [task('a', F)]);
    fake.listExecutions.mockResolvedValue({ executions: [one], nextPage: ID, prunedBeforeMs: 0, retention: '' });
    const first = await cli(['executions', 'list', '--state', 'failed', '--limit', '1']);
    expect(first.stderr).toBe(`more: grid-cli executions list --state failed --limit 1 --page-after ${ID}`);
    fake.listExecutions.mockResolvedValue({ executions: [one], nextPage: '', prunedBeforeMs: Date.UTC(2026, 10, 20), retention: '7 days, at most 100000 finished' });
    const last = await cli(['executions', 'list', '--state', 'failed', '--limit', '1', '--page-after', ID]);
    expect(fake.listExecutions).toHaveBeenLastCalledWith({ job: '', state: FAILED, limit: 1, pageAfter: ID });
    expect(last.stderr).toBe('older executions were pruned: finished ones created up to 2026-11-20T00:00:00.000Z are gone (kept: 7 days, at most 100000 finished)');
    expect(last.stdout.split('\n')).toHaveLength(2);
  });

  it('getlogs without --follow: one executor, no prefix, exit 0 whatever the state', async () => {
    fake.getExecution.mockResolvedValue(execution(FAILED, [task('web-1', F)]));
    fake.getLogs.mockImplementation(() => from([logChunk('web-1', 'line 1\nline'), logChunk('web-1', ' 2')]));
    const r = await cli(['getlogs', ID]);
    expect(r).toEqual({ code: 0, stdout: 'line 1\nline 2', stderr: '' });
  });

  it('getlogs --follow exits with the execution result; --executor filters and drops the prefix', async () => {
    fake.getExecution.mockResolvedValue(execution(FAILED, [task('web-1', F), task('web-2', S)], { reason: '1 of 2 executors failed' }));
    fake.getLogs.mockImplementation(() => from([logChunk('web-1', 'boom\n')]));
    const r = await cli(['getlogs', '--job-id', ID, '--follow', '--executor', 'web-1']);
    expect(fake.getLogs.mock.calls[0]![0]).toEqual({ executionId: ID, follow: true, executor: 'web-1' });
    expect(r).toEqual({ code: 1, stdout: 'boom', stderr: `execution ${ID} FAILED: 1 of 2 executors failed` });
  });

  it('cancel prints how many tasks it stopped', async () => {
    fake.cancelExecution.mockResolvedValue(execution(ExecutionState.EXECUTION_STATE_CANCELLED, [task('a', C), task('b', C), task('c', C), task('d', S)]));
    const r = await cli(['cancel', ID, '--reason', 'wrong target']);
    expect(fake.cancelExecution).toHaveBeenCalledWith(ID, 'wrong target');
    expect(r).toEqual({ code: 0, stdout: `cancelled execution ${ID} (3 tasks stopped)`, stderr: '' });
    fake.cancelExecution.mockResolvedValue(
      execution(ExecutionState.EXECUTION_STATE_CANCELLED, [task('a', R), task('b', C, { startedAtMs: 0 }), task('c', C, { startedAtMs: 0 })]),
    );
    expect((await cli(['cancel', ID])).stdout).toBe(`cancelled execution ${ID} (2 tasks will not start, 1 running task being stopped)`);
    const j = JSON.parse((await cli(['cancel', ID, '-o', 'json'])).stdout);
    expect(j.state).toBe('CANCELLED');
  });

  it('every new command has --help with an Example', async () => {
    for (const path of [['execute'], ['status'], ['executions'], ['executions', 'list'], ['getlogs'], ['cancel']]) {
      const r = await cli([...path, '--help']);
      expect(r.code, path.join(' ')).toBe(0);
      expect(r.stdout, path.join(' ')).toMatch(/Example/);
    }
  });
});
