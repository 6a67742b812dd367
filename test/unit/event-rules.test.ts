// What the recorder believes: events read field by field (the executor id from the subject), and
// only from the executor a task belongs to.

import { describe, expect, it } from 'vitest';
import type { Execution, Task } from '../../src/domain/execution.js';
import { readEvent, senderProblem } from '../../src/domain/execution-rules.js';

const subject = { executionId: 'X1', executorId: 'E1' };
const good = { execution_id: 'X1', task_key: 'E1', executor_id: 'E1', executor_name: 'web-1', attempt: 1, kind: 'finished', at_ms: 5, outcome: 'succeeded', exit_code: 0 };

function problem(raw: unknown): string {
  const r = readEvent(raw, subject);
  return 'problem' in r ? r.problem : '';
}

describe('readEvent', () => {
  it('takes a well-formed event, with the subject\'s executor id', () => {
    const r = readEvent({ ...good, executor_id: undefined }, subject);
    expect(r).toEqual({ event: { ...good, executor_id: 'E1' } });
  });

  it.each([
    [{ ...good, outcome: 'exploded' }, /outcome "exploded" is not one of succeeded, failed, timed_out, cancelled/],
    [{ ...good, outcome: undefined }, /outcome undefined is not one of/],
    [{ ...good, kind: 'hijack' }, /kind "hijack" is not one of waiting, started, retrying, finished/],
    [{ ...good, executor_id: 'E2' }, /executor_id "E2" is not the subject's E1/],
    [{ ...good, execution_id: 'X2' }, /execution_id "X2" is not the subject's X1/],
    [{ ...good, attempt: 0 }, /attempt 0 is not a whole number ≥ 1/],
    [{ ...good, attempt: '1' }, /attempt "1"/],
    [{ ...good, exit_code: 1.5 }, /exit_code 1.5 is not a whole number/],
    [{ ...good, task_key: '' }, /task_key missing/],
    [[1, 2], /not a JSON object/],
  ])('refuses %j', (raw, why) => {
    expect(problem(raw)).toMatch(why);
  });

  it('takes a finished event carrying its started event, and nothing else carrying one', () => {
    const started = { at_ms: 3, lock_token: 9, reason: 'holds lock L (token 9)' };
    expect(readEvent({ ...good, started }, subject)).toEqual({ event: { ...good, started } });
    expect(problem({ ...good, kind: 'retrying', outcome: 'failed', started })).toMatch(/started is carried only by a finished event, not retrying/);
    expect(problem({ ...good, started: { lock_token: 9 } })).toMatch(/started.at_ms missing/);
    expect(problem({ ...good, started: { at_ms: 3, lock_token: 'x' } })).toMatch(/started.lock_token is not a whole number/);
    expect(problem({ ...good, started: [] })).toMatch(/started is not a JSON object/);
  });

  it('caps a long reason', () => {
    const r = readEvent({ ...good, reason: 'x'.repeat(10_000) }, subject);
    expect('event' in r && r.event.reason?.length).toBe(4096);
  });
});

function execution(tasks: Partial<Task>[]): Execution {
  return {
    id: 'X1', job: 'j', job_version: 1, args: {}, secret_names: [], target: 'all', requester: 'r', state: 'RUNNING', reason: '',
    created_at_ms: 0, updated_at_ms: 0, finished_at_ms: 0, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0,
    tasks: tasks.map((t) => ({ key: 'k', executor_id: '', executor_name: '', state: 'PENDING', attempts: 0, started_at_ms: 0, finished_at_ms: 0, reason: '', wave: 0, ...t })),
  };
}

describe('senderProblem', () => {
  const groups: Record<string, string[]> = { E1: ['all', 'web'], E2: ['all', 'db'] };
  const inGroup = (id: string, g: string) => groups[id]?.includes(g) ?? false;
  const ev = (executor: string, key: string) => ({ ...good, executor_id: executor, task_key: key, kind: 'finished' as const, outcome: 'failed' as const });

  it('a fan-out task believes only the executor it was planned for', () => {
    const x = execution([{ key: 'E1', executor_id: 'E1' }]);
    expect(senderProblem(x, ev('E1', 'E1'), inGroup)).toBeUndefined();
    expect(senderProblem(x, ev('E2', 'E1'), inGroup)).toBe('task E1 is planned for executor E1, not E2');
  });

  it('a pool task believes only members of its pool', () => {
    const x = execution([{ key: 'pool.web.0', pool: 'web' }]);
    expect(senderProblem(x, ev('E1', 'pool.web.0'), inGroup)).toBeUndefined();
    expect(senderProblem(x, ev('E2', 'pool.web.0'), inGroup)).toBe('executor E2 is not a member of pool web');
  });
});
