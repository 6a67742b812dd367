import { describe, expect, it } from 'vitest';
import type { Execution, Task, TaskEvent } from '../../src/domain/execution.js';
import { claimTask, mayBegin, unchangedClaim, type Claimant } from '../../src/domain/claim-rules.js';
import { applyEvent, executorExpired, expireWaits, MAX_LOSSES, resolveCount, sendable, settle, stopExecution } from '../../src/domain/execution-rules.js';
import type { OnLost } from '../../src/domain/job.js';
import { assignWaves, planTasks } from '../../src/domain/dispatch-plan.js';
import { parseTarget } from '../../src/domain/target.js';
import { deepFreeze } from '../../src/util/deep-freeze.js';

function task(key: string, extra: Partial<Task> = {}): Task {
  return { key, executor_id: key, executor_name: `n-${key}`, state: 'PENDING', attempts: 0, started_at_ms: 0, finished_at_ms: 0, reason: '', wave: 0, ...extra };
}

function execution(tasks: Task[]): Execution {
  return {
    id: 'X1', job: 'j', job_version: 1, args: {}, secret_names: [], target: 'all', requester: 'me', state: 'DISPATCHED', reason: '',
    created_at_ms: 1, updated_at_ms: 1, finished_at_ms: 0, timeout_seconds: 0, deadline_ms: 0, wait_offline_ms: 0, batch_size: 0, max_failures: 0, tasks,
  };
}

function ev(task_key: string, kind: TaskEvent['kind'], attempt = 1, extra: Partial<TaskEvent> = {}): TaskEvent {
  return { execution_id: 'X1', task_key, executor_id: task_key, executor_name: `n-${task_key}`, attempt, kind, at_ms: 100, ...extra };
}

describe('applyEvent', () => {
  it('moves a task through started → finished and ends the execution when every task is done', () => {
    const x = execution([task('a'), task('b')]);
    expect(applyEvent(x, ev('a', 'started'))).toBe(true);
    expect(x.state).toBe('RUNNING');
    expect(applyEvent(x, ev('a', 'finished', 1, { outcome: 'succeeded', exit_code: 0 }))).toBe(true);
    expect(x.state).toBe('RUNNING');
    applyEvent(x, ev('b', 'finished', 1, { outcome: 'failed', exit_code: 3, reason: 'exit code 3' }));
    expect(x.state).toBe('FAILED');
    expect(x.reason).toBe('1 failed of 2 tasks');
    expect(x.tasks[1]).toMatchObject({ state: 'FAILED', exit_code: 3 });
  });

  it('records a result once: a duplicated or late event changes nothing', () => {
    const x = execution([task('a')]);
    applyEvent(x, ev('a', 'started'));
    applyEvent(x, ev('a', 'finished', 1, { outcome: 'succeeded', exit_code: 0 }));
    const before = structuredClone(x);
    expect(applyEvent(x, ev('a', 'finished', 1, { outcome: 'failed', exit_code: 1 }))).toBe(false);
    expect(applyEvent(x, ev('a', 'started'))).toBe(false);
    expect(applyEvent(x, ev('a', 'finished', 2, { outcome: 'failed' }))).toBe(false);
    expect(x).toEqual(before);
  });

  it('ignores an older attempt after a retry, and counts attempts', () => {
    const x = execution([task('a')]);
    applyEvent(x, ev('a', 'started', 1));
    applyEvent(x, ev('a', 'retrying', 1, { outcome: 'failed', exit_code: 2, reason: 'exit code 2' }));
    expect(x.tasks[0]).toMatchObject({ state: 'PENDING', attempts: 1 });
    applyEvent(x, ev('a', 'started', 2));
    expect(applyEvent(x, ev('a', 'started', 1))).toBe(false);
    applyEvent(x, ev('a', 'finished', 2, { outcome: 'succeeded', exit_code: 0 }));
    expect(x.tasks[0]).toMatchObject({ state: 'SUCCEEDED', attempts: 2 });
    expect(x.state).toBe('SUCCEEDED');
  });

  it('after a cancel, still records how running tasks stopped but keeps the execution CANCELLED', () => {
    const x = execution([task('a'), task('b')]);
    applyEvent(x, ev('a', 'started'));
    expect(stopExecution(x, 'CANCELLED', 'cancelled by me', 200)).toBe(true);
    expect(x.tasks[1]!.state).toBe('CANCELLED');
    expect(x.tasks[0]!.state).toBe('RUNNING');
    applyEvent(x, ev('a', 'finished', 1, { outcome: 'cancelled', exit_code: 143 }));
    expect(x.tasks[0]!.state).toBe('CANCELLED');
    expect(x.state).toBe('CANCELLED');
    expect(stopExecution(x, 'TIMED_OUT', 'late', 300)).toBe(false);
  });
});

describe('applyEvent: a finished event carrying its started event', () => {
  // A short task's started event is folded into its finished one; the record must end exactly
  // as if the two had arrived apart, however often and in whatever company it arrives.
  const started = { at_ms: 50, lock_token: 7, reason: 'holds lock L (token 7)' };
  const combined = () => ev('a', 'finished', 1, { outcome: 'succeeded', exit_code: 0, started });
  const apart = (x: Execution) => {
    applyEvent(x, ev('a', 'started', 1, { at_ms: 50, lock_token: 7, reason: 'holds lock L (token 7)' }));
    applyEvent(x, ev('a', 'finished', 1, { outcome: 'succeeded', exit_code: 0 }));
  };
  // Claimed as BeginTask claims (RUNNING, attempt 1), and not claimed (an executor that does not claim).
  const claimed = () => execution([task('a', { state: 'RUNNING', attempts: 1, started_at_ms: 40 }), task('b')]);
  const unclaimed = () => execution([task('a'), task('b')]);

  it.each([['claimed', claimed], ['not claimed', unclaimed]])('ends a %s task as the two events apart would', (_what, make) => {
    const one = make();
    const two = make();
    expect(applyEvent(one, combined())).toBe(true);
    apart(two);
    expect(one).toEqual(two);
    expect(one.tasks[0]).toMatchObject({ state: 'SUCCEEDED', lock_token: 7, exit_code: 0 });
  });

  it('changes nothing when applied again', () => {
    const x = claimed();
    applyEvent(x, combined());
    const before = structuredClone(x);
    expect(applyEvent(x, combined())).toBe(false);
    expect(x).toEqual(before);
  });

  it('after its started event arrived alone, records the result once and the same', () => {
    const x = claimed();
    const y = claimed();
    applyEvent(x, ev('a', 'started', 1, { at_ms: 50, lock_token: 7, reason: 'holds lock L (token 7)' }));
    expect(applyEvent(x, combined())).toBe(true);
    apart(y);
    expect(x).toEqual(y);
    // ... and the started event arriving after it (a retry of a publish) moves nothing back.
    expect(applyEvent(x, ev('a', 'started', 1, { at_ms: 50, lock_token: 7 }))).toBe(false);
    expect(x).toEqual(y);
  });

  it('of an attempt a later claim superseded, is kept as a late result and moves nothing', () => {
    const x = execution([task('a', { state: 'RUNNING', attempts: 2, started_at_ms: 40 })]);
    expect(applyEvent(x, combined())).toBe(true);
    expect(x.tasks[0]).toMatchObject({ state: 'RUNNING', attempts: 2 });
    expect(x.tasks[0]!.late_results).toEqual([expect.objectContaining({ attempt: 1, outcome: 'succeeded' })]);
    expect(x.tasks[0]!.lock_token).toBeUndefined();
  });
});

describe('executor expiry', () => {
  it('makes running fan-out tasks LOST, hands pool tasks back, skips unstarted ones', () => {
    const x = execution([
      task('a', { state: 'RUNNING', attempts: 1 }),
      task('pool.web', { executor_id: 'a', executor_name: 'n-a', pool: 'web', state: 'RUNNING', attempts: 1 }),
      task('c', { executor_id: 'a', executor_name: 'n-a' }),
    ]);
    expect(executorExpired(x, 'a', 'n-a', 500)).toBe(true);
    expect(x.tasks.map((t) => t.state)).toEqual(['LOST', 'PENDING', 'SKIPPED']);
    expect(x.tasks[1]!.executor_id).toBe('');
    expect(x.state).not.toBe('FAILED');
    // Another pool member takes it over and finishes: the execution ends.
    applyEvent(x, ev('pool.web', 'started', 2, { executor_id: 'b', executor_name: 'n-b' }));
    applyEvent(x, ev('pool.web', 'finished', 2, { executor_id: 'b', executor_name: 'n-b', outcome: 'succeeded', exit_code: 0 }));
    expect(x.tasks[1]).toMatchObject({ state: 'SUCCEEDED', executor_name: 'n-b' });
    expect(x.state).toBe('FAILED');
    expect(x.reason).toBe('1 lost, 1 skipped of 3 tasks');
  });
});

describe('executor removal', () => {
  it('ends the removed executor\'s tasks like an expiry, saying it was removed', () => {
    const x = execution([task('a', { state: 'RUNNING', attempts: 1 }), task('b')]);
    expect(executorExpired(x, 'a', 'n-a', 500, 'was removed')).toBe(true);
    expect(x.tasks[0]).toMatchObject({ state: 'LOST', reason: 'executor n-a was removed while running attempt 1' });
  });
});

describe('claims', () => {
  const A: Claimant = { id: 'a', name: 'n-a', groups: ['all', 'web'], session: 's1' };
  const B: Claimant = { id: 'b', name: 'n-b', groups: ['all', 'web'], session: 's9' };
  const opts = (o: { onLost?: OnLost; retryOf?: number; alive?: string[]; maxAttempts?: number } = {}) => ({
    onLost: o.onLost ?? 'retry',
    maxAttempts: o.maxAttempts ?? 1,
    ...(o.retryOf ? { retryOf: o.retryOf } : {}),
    alive: (id: string) => (o.alive ?? ['a', 'b']).includes(id),
  });
  const pool = () => execution([task('pool.web', { executor_id: '', executor_name: '', pool: 'web' })]);

  it('a claim is the started transition: PENDING → RUNNING for the claimant, attempt 1', () => {
    const x = pool();
    expect(claimTask(x, 'pool.web', A, 50, opts())).toEqual({ claimed: true, attempt: 1, changed: true });
    expect(x.tasks[0]).toMatchObject({ state: 'RUNNING', attempts: 1, executor_id: 'a', executor_name: 'n-a', claim_session: 's1', started_at_ms: 50 });
    expect(x.state).toBe('RUNNING');
    // Its started event then changes nothing.
    expect(applyEvent(x, ev('pool.web', 'started', 1, { executor_id: 'a', executor_name: 'n-a' }))).toBe(false);
  });

  it('a second claim is refused while the claimant is alive: the message waits', () => {
    const x = pool();
    claimTask(x, 'pool.web', A, 50, opts());
    const before = structuredClone(x);
    expect(claimTask(x, 'pool.web', B, 60, opts())).toMatchObject({ claimed: false, later: true, changed: false, reason: expect.stringMatching(/running on executor n-a .*alive/) });
    expect(x).toEqual(before);
    // The same process asking again (the answer to its claim was lost): the same attempt, no write.
    expect(claimTask(x, 'pool.web', A, 60, opts())).toEqual({ claimed: true, attempt: 1, changed: false });
    expect(x).toEqual(before);
  });

  it('a claimant that is gone: retry claims the next attempt elsewhere, fail leaves it LOST, at_most_once ends it UNKNOWN', () => {
    const retry = pool();
    claimTask(retry, 'pool.web', A, 50, opts());
    expect(claimTask(retry, 'pool.web', B, 60, opts({ alive: ['b'] }))).toMatchObject({ claimed: true, attempt: 2 });
    expect(retry.tasks[0]).toMatchObject({ executor_id: 'b', attempts: 2, losses: 1, state: 'RUNNING' });

    const fail = pool();
    claimTask(fail, 'pool.web', A, 50, opts({ onLost: 'fail' }));
    expect(claimTask(fail, 'pool.web', B, 60, opts({ onLost: 'fail', alive: ['b'] }))).toMatchObject({ claimed: false, changed: true, reason: expect.stringMatching(/LOST/) });
    expect(fail.tasks[0]!.state).toBe('LOST');

    const once = pool();
    claimTask(once, 'pool.web', A, 50, opts({ onLost: 'at_most_once' }));
    expect(claimTask(once, 'pool.web', B, 60, opts({ onLost: 'at_most_once', alive: ['b'] }))).toMatchObject({ claimed: false, changed: true });
    expect(once.tasks[0]).toMatchObject({ state: 'UNKNOWN', attempts: 1, reason: expect.stringMatching(/^the outcome is unknown: executor n-a was lost while running attempt 1/) });
    expect(once.state).toBe('FAILED');
    expect(once.reason).toBe('1 unknown of 1 tasks');
  });

  it('the same executor restarted (another session) is another claimant: per on_lost', () => {
    const x = execution([task('a')]);
    claimTask(x, 'a', A, 50, opts());
    expect(claimTask(x, 'a', { ...A, session: 's2' }, 60, opts())).toMatchObject({ claimed: true, attempt: 2 });
    expect(x.tasks[0]).toMatchObject({ claim_session: 's2', losses: 1 });
    const y = execution([task('a')]);
    claimTask(y, 'a', A, 50, opts({ onLost: 'at_most_once' }));
    expect(claimTask(y, 'a', { ...A, session: 's2' }, 60, opts({ onLost: 'at_most_once' }))).toMatchObject({ claimed: false });
    expect(y.tasks[0]!.state).toBe('UNKNOWN');
  });

  it('a retry claims the next attempt only by naming the one it retries, within max_attempts', () => {
    const x = execution([task('a')]);
    claimTask(x, 'a', A, 50, opts({ maxAttempts: 2 }));
    expect(claimTask(x, 'a', A, 60, opts({ maxAttempts: 2, retryOf: 2 }))).toMatchObject({ claimed: false, reason: expect.stringMatching(/at attempt 1, not 2/) });
    expect(claimTask(x, 'a', A, 60, opts({ maxAttempts: 2, retryOf: 1 }))).toMatchObject({ claimed: true, attempt: 2 });
    // The same retry claim again (its answer lost, or its write sent twice and committed by the
    // first try): the same attempt, nothing to write.
    const before = structuredClone(x);
    expect(claimTask(x, 'a', A, 65, opts({ maxAttempts: 2, retryOf: 1 }))).toEqual({ claimed: true, attempt: 2, changed: false });
    expect(x).toEqual(before);
    expect(claimTask(x, 'a', A, 70, opts({ maxAttempts: 2, retryOf: 2 }))).toMatchObject({ claimed: false, reason: expect.stringMatching(/used its 2 attempts/) });
    // The retrying event of attempt 1, arriving after the claim of attempt 2, moves nothing.
    expect(applyEvent(x, ev('a', 'retrying', 1, { outcome: 'failed' }))).toBe(false);
    expect(x.tasks[0]).toMatchObject({ state: 'RUNNING', attempts: 2 });
  });

  it('unchangedClaim answers exactly the claims that change nothing, as claimTask would, without touching the record', () => {
    const C: Claimant = { id: 'c', name: 'n-c', groups: ['all', 'db'], session: 's3' };
    const running = (by: Claimant, extra: Partial<Task> = {}) =>
      task('pool.web', { executor_id: by.id, executor_name: by.name, pool: 'web', state: 'RUNNING', attempts: 1, claim_session: by.session, ...extra });
    const records: Array<[string, () => Execution]> = [
      ['pending', pool],
      ['running on a', () => execution([running(A)])],
      ['running on a, lost once', () => execution([running(A, { attempts: 2, losses: 1 })])],
      ['running on a, lost too often', () => execution([running(A, { losses: MAX_LOSSES })])],
      ['succeeded', () => execution([task('pool.web', { pool: 'web', state: 'SUCCEEDED', attempts: 1, executor_id: 'a' })])],
      ['held', () => execution([task('pool.web', { pool: 'web', held: true })])],
      ['timed out', () => ({ ...pool(), deadline_ms: 55 })],
    ];
    const claimants = [A, { ...A, session: 's2' }, B, C];
    const options = (['retry', 'fail', 'at_most_once'] as OnLost[]).flatMap((onLost) =>
      [undefined, 1, 2].flatMap((retryOf) => [['a', 'b'], ['b'], []].flatMap((alive) => [1, 2].map((maxAttempts) => opts({ onLost, retryOf, alive, maxAttempts })))),
    );
    let unchanged = 0;
    let changing = 0;
    for (const [name, make] of records) {
      for (const c of claimants) {
        for (const o of options) {
          const frozen = deepFreeze(make()); // a change to it would throw
          const look = unchangedClaim(frozen, 'pool.web', c, 60, o);
          const copy = make();
          const { changed, ...answer } = claimTask(copy, 'pool.web', c, 60, o);
          const where = `${name}, claimed by ${c.id}/${c.session}, ${JSON.stringify({ ...o, alive: undefined })}`;
          if (changed) {
            expect(look, where).toBeUndefined();
            changing++;
          } else {
            expect(look, where).toEqual(answer);
            expect(copy, where).toEqual(make());
            unchanged++;
          }
        }
      }
    }
    // Both kinds are among the cases, so neither half of the rule goes untested.
    expect([unchanged > 100, changing > 100]).toEqual([true, true]);
  });

  it('an executor lost too often is not retried again', () => {
    const x = pool();
    let who = A;
    for (let i = 0; i <= MAX_LOSSES + 1; i++) {
      claimTask(x, 'pool.web', who, 50 + i, opts({ alive: [] }));
      who = who === A ? B : A;
    }
    expect(x.tasks[0]).toMatchObject({ state: 'LOST', reason: expect.stringMatching(/lost 4 times, not retried again/) });
  });
});

describe('late results', () => {
  it('the claim\'s own result, arriving after the task was marked LOST, becomes its result', () => {
    const x = execution([task('a', { state: 'RUNNING', attempts: 1 }), task('b', { state: 'SUCCEEDED', attempts: 1 })]);
    executorExpired(x, 'a', 'n-a', 500, 'expired', 'fail');
    expect(x.state).toBe('FAILED');
    expect(applyEvent(x, ev('a', 'finished', 1, { outcome: 'succeeded', exit_code: 0 }))).toBe(true);
    expect(x.tasks[0]).toMatchObject({ state: 'SUCCEEDED', reason: 'reported after the task had been marked LOST: executor n-a expired while running attempt 1' });
    expect(x.state).toBe('SUCCEEDED');
    // …once: a duplicate changes nothing.
    expect(applyEvent(x, ev('a', 'finished', 1, { outcome: 'failed', exit_code: 1 }))).toBe(false);
  });

  it('a result of an attempt a later claim superseded is kept on record and moves nothing', () => {
    const x = execution([task('a', { state: 'RUNNING', attempts: 2 })]);
    expect(applyEvent(x, ev('a', 'finished', 1, { outcome: 'succeeded', exit_code: 0 }))).toBe(true);
    expect(x.tasks[0]).toMatchObject({ state: 'RUNNING', attempts: 2, late_results: [{ attempt: 1, outcome: 'succeeded', exit_code: 0 }] });
    expect(applyEvent(x, ev('a', 'finished', 1, { outcome: 'succeeded', exit_code: 0 }))).toBe(false);
  });
});

describe('waiting for offline executors', () => {
  it('keeps every unstarted task within the window, whenever its executor went away, and skips only offline ones after it', () => {
    const plan = planTasks({ target: parseTarget('all'), executors: [
      { id: 'a', name: 'n-a', groups: [], runners: ['host'], state: 'ACTIVE' },
      { id: 'b', name: 'n-b', groups: [], runners: ['host'], state: 'ACTIVE' },
    ], runner: 'host', waitOfflineMs: 1000, now: 0 });
    const x = execution(plan.tasks);
    expect(x.tasks.map((t) => t.wait_until_ms)).toEqual([1000, 1000]);
    // a goes offline after dispatch: its task waits instead of being SKIPPED.
    expect(executorExpired(x, 'a', 'n-a', 500)).toBe(false);
    expect(x.tasks[0]!.state).toBe('PENDING');
    // After the window, only the task of the executor still offline is skipped.
    expect(expireWaits(x, 1000, (t) => t.executor_id === 'a')).toBe(true);
    expect(x.tasks.map((t) => t.state)).toEqual(['SKIPPED', 'PENDING']);
  });

  it('skips pending tasks whose --wait-offline ran out', () => {
    const x = execution([task('a', { wait_until_ms: 1000 }), task('b')]);
    expect(expireWaits(x, 999)).toBe(false);
    expect(expireWaits(x, 1000)).toBe(true);
    expect(x.tasks[0]!.state).toBe('SKIPPED');
    expect(mayBegin(x, 'a', 'a', [], 1000)).toMatch(/already SKIPPED/);
  });
});

describe('mayBegin', () => {
  it('allows only the right executor, or a member of the pool', () => {
    const x = execution([task('a'), task('pool.web', { executor_id: '', pool: 'web' })]);
    expect(mayBegin(x, 'a', 'a', ['all'], 1)).toBeUndefined();
    expect(mayBegin(x, 'a', 'b', ['all'], 1)).toMatch(/another executor/);
    expect(mayBegin(x, 'pool.web', 'b', ['all', 'web'], 1)).toBeUndefined();
    expect(mayBegin(x, 'pool.web', 'b', ['all', 'db'], 1)).toMatch(/not in group web/);
    expect(mayBegin(x, 'nope', 'a', ['all'], 1)).toMatch(/no task nope/);
  });
});

describe('planTasks', () => {
  const executors = [
    { id: 'E1', name: 'web-1', groups: ['web'], runners: ['host'], state: 'ACTIVE' },
    { id: 'E2', name: 'web-2', groups: ['web'], runners: ['host'], state: 'EXPIRED' },
    { id: 'E3', name: 'k8s-1', groups: ['web'], runners: ['kubernetes'], state: 'ACTIVE' },
  ];
  it('fans out over matching executors, skipping the offline and excluding other runners', () => {
    const p = planTasks({ target: parseTarget('group:web'), executors, runner: 'host', waitOfflineMs: 0, now: 10 });
    expect(p.tasks.map((t) => [t.executor_name, t.state])).toEqual([['web-1', 'PENDING'], ['web-2', 'SKIPPED']]);
    expect(p.excluded.map((e) => e.name)).toEqual(['k8s-1']);
  });
  it('keeps an offline executor\'s task pending with --wait-offline', () => {
    const p = planTasks({ target: parseTarget('node:web-2'), executors, runner: 'host', waitOfflineMs: 5000, now: 10 });
    expect(p.tasks[0]).toMatchObject({ state: 'PENDING', wait_until_ms: 5010 });
  });
  it('makes one task per pool', () => {
    const p = planTasks({ target: parseTarget('any:web,any'), executors, runner: 'host', waitOfflineMs: 0, now: 10 });
    expect(p.tasks.map((t) => t.key)).toEqual(['pool.web', 'pool.all']);
  });
  it('fails with the reason when nothing matches', () => {
    const p = planTasks({ target: parseTarget('node:db-9'), executors, runner: 'host', waitOfflineMs: 0, now: 10 });
    expect(p.failure).toBe('node:db-9: no executor named "db-9"');
  });
});

describe('batched rollouts', () => {
  function rollout(n: number, batch: number, maxFailures = 0): Execution {
    const x = execution(Array.from({ length: n }, (_, i) => task(`e${i}`)));
    assignWaves(x.tasks, batch);
    x.batch_size = batch;
    x.max_failures = maxFailures;
    return x;
  }
  const done = (x: Execution, key: string, outcome: 'succeeded' | 'failed') =>
    applyEvent(x, ev(key, 'finished', 1, { outcome, exit_code: outcome === 'succeeded' ? 0 : 1 }));

  it('sends one wave at a time; the next only when the current one has ended', () => {
    const x = rollout(5, 2);
    expect(x.tasks.map((t) => t.wave)).toEqual([1, 1, 2, 2, 3]);
    expect(sendable(x).map((t) => t.key)).toEqual(['e0', 'e1']);
    done(x, 'e0', 'succeeded');
    expect(sendable(x).map((t) => t.key)).toEqual(['e1']);
    done(x, 'e1', 'succeeded');
    expect(sendable(x).map((t) => t.key)).toEqual(['e2', 'e3']);
    done(x, 'e2', 'succeeded');
    done(x, 'e3', 'failed');
    expect(sendable(x).map((t) => t.key)).toEqual(['e4']);
    done(x, 'e4', 'succeeded');
    expect(x.state).toBe('FAILED');
  });

  it('stops at --max-failures: the waves not started are SKIPPED and the execution says why', () => {
    const x = rollout(3, 1, 1);
    done(x, 'e0', 'failed');
    expect(x.tasks.map((t) => t.state)).toEqual(['FAILED', 'SKIPPED', 'SKIPPED']);
    expect(x.state).toBe('FAILED');
    expect(x.reason).toBe('rollout stopped: 1 task failed (--max-failures 1); 1 failed, 2 skipped of 3 tasks');
  });

  it('releases the next wave at once when a whole wave was skipped at dispatch', () => {
    const x = rollout(4, 2);
    x.tasks[0]!.state = 'SKIPPED';
    x.tasks[1]!.state = 'SKIPPED';
    settle(x, 5);
    expect(sendable(x).map((t) => t.key)).toEqual(['e2', 'e3']);
  });

  it('resolves N and N% against the number of tasks', () => {
    expect(resolveCount('', 10)).toBe(0);
    expect(resolveCount('3', 10)).toBe(3);
    expect(resolveCount('25%', 10)).toBe(3);
    expect(resolveCount('1%', 10)).toBe(1);
    expect(resolveCount('100%', 7)).toBe(7);
  });
});
