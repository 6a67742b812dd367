// Task lookups that do not walk a fan-out's record on every claim and event: the answers must be
// those a walk gives, whatever order tasks end in and however the array changed since. And the
// store's copy of a record before a change: deep wherever a change reaches.

import { describe, expect, it } from 'vitest';
import type { Task, TaskState } from '../../src/domain/execution.js';
import { allTasksEnded, copyExecution, findTask } from '../../src/domain/task-index.js';
import { executionRecord } from '../harness/records.js';

function tasks(n: number): Task[] {
  return Array.from({ length: n }, (_, i) => ({ key: `e${i}`, executor_id: `e${i}`, executor_name: `web-${i}`, state: 'PENDING', attempts: 0, started_at_ms: 0, finished_at_ms: 0, reason: '', wave: 0 }));
}

describe('findTask', () => {
  it('finds every task of a large array, and none that is not there', () => {
    const ts = tasks(1_000);
    for (const i of [0, 1, 517, 999]) expect(findTask(ts, `e${i}`)).toBe(ts[i]);
    expect(findTask(ts, 'e1000')).toBeUndefined();
    expect(findTask(tasks(3), 'e2')?.key).toBe('e2');
  });

  it('follows the array when it changes: a task added, one put in another\'s place', () => {
    const ts = tasks(100);
    expect(findTask(ts, 'e50')).toBe(ts[50]);
    ts.push({ ...ts[0]!, key: 'late' });
    expect(findTask(ts, 'late')).toBe(ts[100]);
    const other = { ...ts[50]!, key: 'swapped' };
    ts[50] = other;
    expect(findTask(ts, 'swapped')).toBe(other);
    expect(findTask(ts, 'e50')).toBeUndefined();
    ts.reverse();
    expect(findTask(ts, 'e0')).toBe(ts[100]);
  });
});

describe('allTasksEnded', () => {
  it('answers as a walk does while tasks end in any order, through retries of those not ended', () => {
    const ts = tasks(500);
    const order = ts.map((_, i) => i).sort((a, b) => ((a * 7919) % 500) - ((b * 7919) % 500));
    const ends: TaskState[] = ['SUCCEEDED', 'FAILED', 'LOST', 'SKIPPED'];
    for (const [k, i] of order.entries()) {
      expect(allTasksEnded(ts)).toBe(false);
      // A task not ended yet may go back to PENDING (a retry) before it ends.
      const t = ts[(i + 1) % 500]!;
      if (t.state === 'PENDING') t.state = 'RUNNING';
      else if (t.state === 'RUNNING') t.state = 'PENDING';
      ts[i]!.state = ends[k % ends.length]!;
      expect(allTasksEnded(ts)).toBe(ts.every((x) => ['SUCCEEDED', 'FAILED', 'LOST', 'SKIPPED'].includes(x.state)));
    }
    expect(allTasksEnded(ts)).toBe(true);
  });

  it('sees a task added after every earlier one had ended', () => {
    const ts = tasks(40).map((t) => ({ ...t, state: 'SUCCEEDED' as TaskState }));
    expect(allTasksEnded(ts)).toBe(true);
    ts.push(tasks(1)[0]!);
    expect(allTasksEnded(ts)).toBe(false);
    expect(allTasksEnded([])).toBe(true);
  });
});

describe('copyExecution', () => {
  it('copies deeply what a change may touch: the original stays as it was', () => {
    const x = executionRecord('X', { args: { A: 'b' }, tasks: tasks(100) });
    x.tasks[3]!.late_results = [{ attempt: 1, executor_name: 'web-3', outcome: 'failed', reason: 'r', at_ms: 1 }];
    const before = JSON.parse(JSON.stringify(x)) as unknown;
    const c = copyExecution(x);
    expect(c).toStrictEqual(x);
    Object.assign(c.tasks[0]!, { state: 'RUNNING', attempts: 1 });
    delete (c.tasks[1] as Partial<Task>).reason;
    c.tasks[3]!.late_results!.push({ attempt: 2, executor_name: 'web-3', outcome: 'failed', reason: 'r', at_ms: 2 });
    c.tasks[3]!.late_results![0]!.reason = 'changed';
    c.args['A'] = 'changed';
    c.state = 'FAILED';
    expect(x).toStrictEqual(before);
  });

  it('keeps what was known of the tasks, and it stays right for each', () => {
    const x = executionRecord('X', { tasks: tasks(200) });
    for (const t of x.tasks.slice(0, 150)) t.state = 'SUCCEEDED';
    expect(allTasksEnded(x.tasks)).toBe(false);
    expect(findTask(x.tasks, 'e120')).toBe(x.tasks[120]);
    const c = copyExecution(x);
    expect(findTask(c.tasks, 'e120')).toBe(c.tasks[120]);
    expect(findTask(c.tasks, 'e120')).not.toBe(x.tasks[120]);
    for (const t of c.tasks) t.state = 'FAILED';
    expect(allTasksEnded(c.tasks)).toBe(true);
    expect(allTasksEnded(x.tasks)).toBe(false);
    c.tasks.reverse();
    expect(findTask(c.tasks, 'e0')).toBe(c.tasks[199]);
    expect(findTask(x.tasks, 'e0')).toBe(x.tasks[0]);
  });
});
