import { describe, it, expect } from 'vitest';
import { ExecutionState, TaskState, type Execution, type Task } from '../../src/gen/grid/v1/types.js';
import { countTasks, Progress, progressBar, progressText, REDRAW, watchWithProgress } from '../../src/cli/progress.js';

function task(name: string, state: TaskState, extra: Partial<Task> = {}): Task {
  return { executorId: `id-${name}`, executorName: name, state, attempts: 1, startedAtMs: 0, finishedAtMs: 0, reason: '', wave: 0, key: `id-${name}`, lockToken: 0, lateResults: [], ...extra };
}

function execution(states: TaskState[], state = ExecutionState.EXECUTION_STATE_RUNNING): Execution {
  return {
    id: '01JD3V0Q8W4Z5M2K7T9XG6B1RA', job: 'hello-world', jobVersion: 1, args: {}, target: 'all', requester: 'dev-admin', state, reason: '',
    createdAtMs: 1_700_000_000_000, updatedAtMs: 0, finishedAtMs: 0, timeoutSeconds: 0, batchSize: 0, maxFailures: 0, waitOfflineMs: 0,
    tasks: states.map((s, i) => task(`vm-${i + 1}`, s)),
  };
}

const { TASK_STATE_PENDING: P, TASK_STATE_RUNNING: R, TASK_STATE_SUCCEEDED: S, TASK_STATE_FAILED: F, TASK_STATE_SKIPPED: K, TASK_STATE_LOST: L } = TaskState;

async function* from<T>(items: T[]): AsyncIterable<T> {
  for (const i of items) yield i;
}

describe('progress text and bar', () => {
  it('counts done (any final state), failed, running and skipped', () => {
    const c = countTasks(execution([S, S, S, S, S, S, F, R, R, P]));
    expect(c).toEqual({ total: 10, done: 7, failed: 1, running: 2, skipped: 0 });
    expect(progressText(c)).toBe('7/10 executors done, 1 failed, 2 running');
    expect(progressBar(c)).toBe('[#######---]');
  });

  it('lost counts as failed, skipped is shown when there are some', () => {
    const c = countTasks(execution([L, K, S]));
    expect(progressText(c)).toBe('3/3 executors done, 1 failed, 0 running, 1 skipped');
    expect(progressBar(c)).toBe('[##########]');
  });

  it('the bar is full only when every task is done, and empty without tasks', () => {
    const almost = countTasks(execution([...Array(99).fill(S), R]));
    expect(progressBar(almost)).toBe('[#########-]');
    expect(progressBar(countTasks(execution([])))).toBe('[----------]');
    expect(progressText(countTasks(execution([R])))).toBe('0/1 executor done, 0 failed, 1 running');
  });
});

describe('Progress', () => {
  it('off a TTY: a plain line only when the counts change', () => {
    const lines: string[] = [];
    const p = new Progress({ out: (l) => lines.push(l), isTTY: false });
    p.update(execution([P, P, P]));
    p.update(execution([P, P, P])); // same counts: nothing
    p.update(execution([R, P, P]));
    p.update(execution([R, P, P], ExecutionState.EXECUTION_STATE_RUNNING));
    p.update(execution([S, R, F]));
    expect(lines).toEqual([
      '0/3 executors done, 0 failed, 0 running',
      '0/3 executors done, 0 failed, 1 running',
      '2/3 executors done, 1 failed, 1 running',
    ]);
    expect(lines.join('')).not.toContain('\x1b');
  });

  it('prints nothing for an execution without tasks (queued, or failed at dispatch)', () => {
    const lines: string[] = [];
    const p = new Progress({ out: (l) => lines.push(l), isTTY: false });
    p.update(execution([]));
    p.update(execution([], ExecutionState.EXECUTION_STATE_FAILED));
    p.update(execution([R]));
    expect(lines).toEqual(['0/1 executor done, 0 failed, 1 running']);
  });

  it('on a TTY: one line with a bar, redrawn in place on each change', () => {
    const lines: string[] = [];
    const p = new Progress({ out: (l) => lines.push(l), isTTY: true });
    p.update(execution([R, P]));
    p.update(execution([R, P]));
    p.update(execution([S, R]));
    p.update(execution([S, S], ExecutionState.EXECUTION_STATE_SUCCEEDED));
    expect(lines).toEqual([
      '[----------] 0/2 executors done, 0 failed, 1 running',
      `${REDRAW}[#####-----] 1/2 executors done, 0 failed, 1 running`,
      `${REDRAW}[##########] 2/2 executors done, 0 failed, 0 running`,
    ]);
  });
});

describe('watchWithProgress', () => {
  it('returns the terminal snapshot and stops there', async () => {
    const lines: string[] = [];
    const snapshots = [execution([P]), execution([R]), execution([S], ExecutionState.EXECUTION_STATE_SUCCEEDED), execution([F], ExecutionState.EXECUTION_STATE_FAILED)];
    const last = await watchWithProgress(from(snapshots), new Progress({ out: (l) => lines.push(l), isTTY: false }));
    expect(last?.state).toBe(ExecutionState.EXECUTION_STATE_SUCCEEDED);
    expect(lines).toHaveLength(3);
  });

  it('returns the last snapshot when the stream ends early, undefined when empty', async () => {
    expect((await watchWithProgress(from([execution([R])])))?.state).toBe(ExecutionState.EXECUTION_STATE_RUNNING);
    expect(await watchWithProgress(from<Execution>([]))).toBeUndefined();
  });
});
