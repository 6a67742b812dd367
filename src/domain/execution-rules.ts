// The transitions of executions and tasks. Pure functions over a copy: each returns whether it
// changed anything, so callers write back only real changes. Terminal states never change, and
// an event for an attempt older than the task's current one is ignored: that is what makes a
// redelivered job or a duplicated event harmless (recording is exactly-once).

import type { OnLost } from './job.js';
import {
  isTerminalExecution,
  isTerminalTask,
  type Execution,
  type ExecutionState,
  type StartedPart,
  type Task,
  type TaskEvent,
  type TaskState,
} from './execution.js';
import { allTasksEnded, findTask } from './task-index.js';

const OUTCOME_STATE: Record<NonNullable<TaskEvent['outcome']>, TaskState> = {
  succeeded: 'SUCCEEDED',
  failed: 'FAILED',
  timed_out: 'TIMED_OUT',
  cancelled: 'CANCELLED',
};

const EVENT_KINDS: ReadonlySet<string> = new Set(['waiting', 'started', 'retrying', 'finished']);
const REASON_MAX = 4096;

/**
 * An event as read off GRID_EVENTS, checked field by field. The executor id is the one in the
 * subject (nats-server lets an executor publish only under its own), never the body's.
 */
export function readEvent(raw: unknown, subject: { executionId: string; executorId: string }): { event: TaskEvent } | { problem: string } {
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return { problem: 'not a JSON object' };
  const r = raw as Record<string, unknown>;
  if (r.execution_id !== subject.executionId) return { problem: `execution_id ${JSON.stringify(r.execution_id)} is not the subject's ${subject.executionId}` };
  if (typeof r.executor_id === 'string' && r.executor_id !== subject.executorId) {
    return { problem: `executor_id ${JSON.stringify(r.executor_id)} is not the subject's ${subject.executorId}` };
  }
  if (typeof r.task_key !== 'string' || r.task_key === '') return { problem: 'task_key missing' };
  if (typeof r.kind !== 'string' || !EVENT_KINDS.has(r.kind)) return { problem: `kind ${JSON.stringify(r.kind)} is not one of ${[...EVENT_KINDS].join(', ')}` };
  if (!Number.isSafeInteger(r.attempt) || (r.attempt as number) < 1) return { problem: `attempt ${JSON.stringify(r.attempt)} is not a whole number ≥ 1` };
  if (typeof r.at_ms !== 'number' || !Number.isFinite(r.at_ms)) return { problem: 'at_ms missing' };
  const kind = r.kind as TaskEvent['kind'];
  if (kind === 'finished' || kind === 'retrying') {
    if (typeof r.outcome !== 'string' || !Object.hasOwn(OUTCOME_STATE, r.outcome)) {
      return { problem: `outcome ${JSON.stringify(r.outcome)} is not one of ${Object.keys(OUTCOME_STATE).join(', ')}` };
    }
  }
  if (r.exit_code !== undefined && !Number.isSafeInteger(r.exit_code)) return { problem: `exit_code ${JSON.stringify(r.exit_code)} is not a whole number` };
  if (r.reason !== undefined && typeof r.reason !== 'string') return { problem: 'reason is not a string' };
  if (r.lock_token !== undefined && !Number.isSafeInteger(r.lock_token)) return { problem: 'lock_token is not a whole number' };
  const started = r.started === undefined ? undefined : readStartedPart(r.started, kind);
  if (typeof started === 'string') return { problem: started };
  const event: TaskEvent = {
    execution_id: subject.executionId,
    task_key: r.task_key,
    executor_id: subject.executorId,
    executor_name: typeof r.executor_name === 'string' ? r.executor_name.slice(0, 253) : '',
    attempt: r.attempt as number,
    kind,
    at_ms: r.at_ms,
  };
  if (r.outcome !== undefined && (kind === 'finished' || kind === 'retrying')) event.outcome = r.outcome as TaskEvent['outcome'];
  if (r.exit_code !== undefined) event.exit_code = r.exit_code as number;
  if (r.reason !== undefined) event.reason = (r.reason as string).slice(0, REASON_MAX);
  if (r.lock_token !== undefined) event.lock_token = r.lock_token as number;
  if (started) event.started = started;
  return { event };
}

/** A finished event's `started` part (see TaskEvent.started), or what is wrong with it. */
function readStartedPart(raw: unknown, kind: TaskEvent['kind']): StartedPart | string {
  if (kind !== 'finished') return `started is carried only by a finished event, not ${kind}`;
  if (!raw || typeof raw !== 'object' || Array.isArray(raw)) return 'started is not a JSON object';
  const s = raw as Record<string, unknown>;
  if (typeof s.at_ms !== 'number' || !Number.isFinite(s.at_ms)) return 'started.at_ms missing';
  if (s.lock_token !== undefined && !Number.isSafeInteger(s.lock_token)) return 'started.lock_token is not a whole number';
  if (s.reason !== undefined && typeof s.reason !== 'string') return 'started.reason is not a string';
  const part: StartedPart = { at_ms: s.at_ms };
  if (s.lock_token !== undefined) part.lock_token = s.lock_token as number;
  if (s.reason !== undefined) part.reason = (s.reason as string).slice(0, REASON_MAX);
  return part;
}

/**
 * Whether an event's sender may report on its task: the executor a fan-out task was planned
 * for; for a pool task, a member of that pool (and, while it runs, the member running it, unless
 * a later attempt was handed to another). Undefined = yes, else why not.
 */
export function senderProblem(x: Execution, ev: TaskEvent, inGroup: (executorId: string, group: string) => boolean): string | undefined {
  const t = findTask(x.tasks, ev.task_key);
  if (!t) return undefined; // nothing to apply it to; applyEvent ignores it
  if (!t.pool) {
    return t.executor_id === ev.executor_id ? undefined : `task ${t.key} is planned for executor ${t.executor_id}, not ${ev.executor_id}`;
  }
  if (!inGroup(ev.executor_id, t.pool)) return `executor ${ev.executor_id} is not a member of pool ${t.pool}`;
  return undefined;
}

/** Most late results kept on a task. */
const LATE_RESULTS_MAX = 5;

/**
 * Applies one executor event. Returns true if the execution changed. A finished event that
 * carries its task's started event is applied as the two in order, so it is as idempotent as
 * they are: applied again, or after the started event arrived alone, it changes nothing more.
 */
export function applyEvent(x: Execution, ev: TaskEvent): boolean {
  if (!ev.started) return applyOne(x, ev);
  const { started, ...finished } = ev;
  const { execution_id, task_key, executor_id, executor_name, attempt } = ev;
  const s: TaskEvent = { execution_id, task_key, executor_id, executor_name, attempt, kind: 'started', at_ms: started.at_ms };
  if (started.lock_token !== undefined) s.lock_token = started.lock_token;
  if (started.reason !== undefined) s.reason = started.reason;
  const a = applyOne(x, s);
  return applyOne(x, finished) || a;
}

function applyOne(x: Execution, ev: TaskEvent): boolean {
  const t = findTask(x.tasks, ev.task_key);
  if (!t) return false;
  if (ev.kind === 'finished' && lateResult(x, t, ev)) return true;
  if (isTerminalTask(t.state)) return false;
  // A pool task taken over by another member: the previous holder's late events do not count.
  if (t.pool && t.executor_id && ev.executor_id !== t.executor_id && ev.attempt <= t.attempts && t.state === 'RUNNING') return false;
  if (ev.attempt < t.attempts) return false;
  let changed = false;
  switch (ev.kind) {
    case 'waiting':
      // Claimed by an executor but queued for the serialize lock.
      if (isTerminalTask(t.state) || t.reason === (ev.reason ?? '')) return false;
      t.reason = ev.reason ?? 'waiting';
      if (t.pool) Object.assign(t, { executor_id: ev.executor_id, executor_name: ev.executor_name });
      changed = true;
      break;
    case 'started':
      // The claim made it RUNNING already; the event adds the lock it holds. Executors that do
      // not claim (older ones) start it here.
      if (t.state === 'RUNNING' && t.attempts === ev.attempt && t.executor_id === ev.executor_id) {
        if (!ev.lock_token || t.lock_token === ev.lock_token) return false;
        Object.assign(t, { lock_token: ev.lock_token, reason: ev.reason ?? '' });
        changed = true;
        break;
      }
      Object.assign(t, { state: 'RUNNING', attempts: ev.attempt, started_at_ms: ev.at_ms, reason: ev.reason ?? '' });
      if (ev.lock_token) t.lock_token = ev.lock_token;
      if (t.pool) Object.assign(t, { executor_id: ev.executor_id, executor_name: ev.executor_name });
      changed = true;
      break;
    case 'retrying':
      Object.assign(t, {
        state: 'PENDING',
        attempts: ev.attempt,
        exit_code: ev.exit_code,
        reason: `attempt ${ev.attempt} ${ev.reason ?? 'failed'}; retrying`,
      });
      changed = true;
      break;
    case 'finished':
      Object.assign(t, {
        state: OUTCOME_STATE[ev.outcome ?? 'failed'],
        attempts: ev.attempt,
        exit_code: ev.exit_code,
        reason: ev.reason ?? '',
        finished_at_ms: ev.at_ms,
        started_at_ms: t.started_at_ms || ev.at_ms,
      });
      if (t.pool) Object.assign(t, { executor_id: ev.executor_id, executor_name: ev.executor_name });
      changed = true;
      break;
  }
  if (changed) settle(x, ev.at_ms);
  return changed;
}

/**
 * A result that arrives after its task moved on. The claim's own result, arriving after the
 * task was marked LOST or UNKNOWN because its executor looked dead (a long stall, a cut link),
 * becomes the task's result: the executor was not dead after all. A result of an attempt that
 * a later claim superseded is kept in late_results, so it is on record but moves nothing.
 */
function lateResult(x: Execution, t: Task, ev: TaskEvent): boolean {
  const own = ev.attempt === t.attempts && ev.executor_id === t.executor_id;
  if (own && (t.state === 'LOST' || t.state === 'UNKNOWN')) {
    const was = `${t.state}: ${t.reason}`;
    Object.assign(t, {
      state: OUTCOME_STATE[ev.outcome ?? 'failed'],
      exit_code: ev.exit_code,
      reason: `${ev.reason ? `${ev.reason}; ` : ''}reported after the task had been marked ${was}`,
      finished_at_ms: ev.at_ms,
    });
    resettle(x, ev.at_ms);
    return true;
  }
  if (ev.attempt >= t.attempts) return false;
  const late = t.late_results ?? [];
  if (late.some((r) => r.attempt === ev.attempt)) return false;
  late.push({ attempt: ev.attempt, executor_name: ev.executor_name, outcome: ev.outcome ?? 'failed', exit_code: ev.exit_code, reason: ev.reason ?? '', at_ms: ev.at_ms });
  t.late_results = late.slice(-LATE_RESULTS_MAX);
  x.updated_at_ms = ev.at_ms;
  return true;
}

/** Derives the execution's state again after a task's result was corrected. */
function resettle(x: Execution, now: number): void {
  if (x.state === 'SUCCEEDED' || x.state === 'FAILED') {
    if (!allTasksEnded(x.tasks)) return;
    const { state, reason } = outcomeOf(x.tasks);
    finish(x, state, reason, x.finished_at_ms || now);
    x.updated_at_ms = now;
    return;
  }
  settle(x, now);
}

/** Recomputes the execution's overall state from its tasks (unless it is already terminal). */
export function settle(x: Execution, now: number): void {
  x.updated_at_ms = now;
  if (isTerminalExecution(x.state)) return;
  advanceRollout(x, now);
  const tasks = x.tasks;
  if (tasks.length > 0 && allTasksEnded(tasks)) {
    const { state, reason } = outcomeOf(tasks);
    const stopped = tasks.find((t) => t.state === 'SKIPPED' && t.reason.startsWith('rollout stopped'));
    finish(x, state, stopped ? `${stopped.reason}; ${reason}` : reason, now);
    return;
  }
  if (x.state !== 'RUNNING' && tasks.some((t) => t.state === 'RUNNING' || isTerminalTask(t.state))) x.state = 'RUNNING';
}

function outcomeOf(tasks: Task[]): { state: ExecutionState; reason: string } {
  const count = (s: TaskState) => tasks.filter((t) => t.state === s).length;
  const ok = count('SUCCEEDED');
  const skipped = count('SKIPPED');
  const bad = tasks.length - ok - skipped;
  if (bad === 0 && ok > 0) {
    return { state: 'SUCCEEDED', reason: skipped ? `${ok} succeeded, ${skipped} skipped` : '' };
  }
  if (ok === 0 && bad === 0) return { state: 'FAILED', reason: 'every task was skipped: no executor ran it' };
  const parts = (['FAILED', 'TIMED_OUT', 'CANCELLED', 'LOST', 'UNKNOWN', 'SKIPPED'] as TaskState[])
    .map((s) => [s, count(s)] as const)
    .filter(([, n]) => n > 0)
    .map(([s, n]) => `${n} ${s.toLowerCase().replace('_', ' ')}`);
  const failedLike = count('FAILED') + count('LOST') + count('UNKNOWN');
  const state: ExecutionState = failedLike > 0 ? 'FAILED' : count('TIMED_OUT') > 0 ? 'TIMED_OUT' : count('CANCELLED') > 0 ? 'CANCELLED' : 'FAILED';
  return { state, reason: `${parts.join(', ')} of ${tasks.length} tasks` };
}

function finish(x: Execution, state: ExecutionState, reason: string, now: number): void {
  x.state = state;
  x.reason = reason;
  x.finished_at_ms = now;
  x.updated_at_ms = now;
}

/**
 * Operator cancel or execution timeout: the execution ends now; tasks that have not started end
 * with it; running tasks keep RUNNING until their executor reports how they stopped.
 */
export function stopExecution(x: Execution, how: 'CANCELLED' | 'TIMED_OUT', reason: string, now: number): boolean {
  if (isTerminalExecution(x.state)) return false;
  for (const t of x.tasks) {
    if (t.state === 'PENDING') Object.assign(t, { state: how, reason, finished_at_ms: now });
  }
  finish(x, how, reason, now);
  return true;
}

/** Fails an execution that cannot be dispatched (no executor matches, unknown job, …). */
export function failExecution(x: Execution, reason: string, now: number): boolean {
  if (isTerminalExecution(x.state)) return false;
  finish(x, 'FAILED', reason, now);
  return true;
}

/** Claims of one task that may end because their executor was lost, before the task is LOST. */
export const MAX_LOSSES = 3;

/**
 * The claim of a RUNNING task ended because its executor is gone (`how`): the definition's
 * on_lost decides. `retry`: a pool task goes back to its pool; a fan-out task waits for its
 * executor while the execution's --wait-offline window is open (nothing else can run it), else
 * it is LOST. `fail`: LOST. `at_most_once`: UNKNOWN, never run again. Returns the new state.
 */
export function claimLost(t: Task, onLost: OnLost, how: string, now: number): TaskState {
  const losses = (t.losses ?? 0) + 1;
  const base = `executor ${t.executor_name || t.executor_id} ${how} while running attempt ${t.attempts}`;
  if (onLost === 'at_most_once') {
    Object.assign(t, { state: 'UNKNOWN', losses, finished_at_ms: now, reason: `the outcome is unknown: ${base}; the job runs at most once` });
  } else if (onLost === 'retry' && losses <= MAX_LOSSES && (t.pool || (t.wait_until_ms ?? 0) > now)) {
    Object.assign(t, { state: 'PENDING', losses, claim_session: '', reason: t.pool ? `${base}; waiting for another pool member` : `${base}; waiting for it to return (--wait-offline)` });
    if (t.pool) Object.assign(t, { executor_id: '', executor_name: '' });
  } else {
    const why = onLost === 'retry' && losses > MAX_LOSSES ? `; lost ${losses} times, not retried again` : '';
    Object.assign(t, { state: 'LOST', losses, finished_at_ms: now, reason: `${base}${why}` });
  }
  return t.state;
}

/**
 * The executor's lease lapsed (or it was removed). Its running tasks end per on_lost (claimLost);
 * its fan-out tasks that had not started are SKIPPED unless --wait-offline lets them wait.
 */
export function executorExpired(x: Execution, executorId: string, executorName: string, now: number, how: 'expired' | 'was removed' = 'expired', onLost: OnLost = 'retry'): boolean {
  let changed = false;
  for (const t of x.tasks) {
    if (t.executor_id !== executorId || isTerminalTask(t.state)) continue;
    if (t.state === 'RUNNING') {
      claimLost(t, onLost, how, now);
      changed = true;
    } else if (!t.pool && !((t.wait_until_ms ?? 0) > now)) {
      Object.assign(t, { state: 'SKIPPED', reason: `executor ${executorName} ${how === 'expired' ? 'went offline' : how} before the task started`, finished_at_ms: now });
      changed = true;
    }
  }
  if (changed) settle(x, now);
  return changed;
}

/**
 * --wait-offline: once its window has ended, a pending task whose executor (or every member of
 * whose pool) is still offline is SKIPPED. Tasks of executors that are online keep their place.
 */
export function expireWaits(x: Execution, now: number, offline: (t: Task) => boolean = () => true): boolean {
  let changed = false;
  for (const t of x.tasks) {
    if (t.state === 'PENDING' && t.wait_until_ms && now >= t.wait_until_ms && offline(t)) {
      Object.assign(t, { state: 'SKIPPED', reason: 'executor stayed offline longer than --wait-offline', finished_at_ms: now });
      changed = true;
    }
  }
  if (changed) settle(x, now);
  return changed;
}

// ---- batched rollouts ----

const FAILED_LIKE: ReadonlySet<TaskState> = new Set(['FAILED', 'LOST', 'UNKNOWN', 'TIMED_OUT']);

/**
 * Batched rollouts: once the tasks of the current wave have all ended, the next wave is
 * released (held → false; the caller sends their job messages). Once --max-failures tasks have
 * failed, the waves not yet started are SKIPPED and the rollout stops.
 */
export function advanceRollout(x: Execution, now: number): void {
  if (!(x.batch_size > 0)) return; // not a batched rollout: no task is held (assignWaves)
  const held = x.tasks.filter((t) => t.held && t.state === 'PENDING');
  if (held.length === 0) return;
  const failed = x.tasks.filter((t) => FAILED_LIKE.has(t.state)).length;
  if (x.max_failures > 0 && failed >= x.max_failures) {
    for (const t of held) {
      Object.assign(t, {
        held: false,
        state: 'SKIPPED',
        finished_at_ms: now,
        reason: `rollout stopped: ${failed} ${failed === 1 ? 'task' : 'tasks'} failed (--max-failures ${x.max_failures})`,
      });
    }
    return;
  }
  const inFlight = x.tasks.some((t) => !t.held && !isTerminalTask(t.state));
  if (inFlight) return;
  const next = Math.min(...held.map((t) => t.wave));
  for (const t of held) if (t.wave === next) Object.assign(t, { held: false, released_at_ms: now });
}

/**
 * The tasks of a broadcast fan-out (Execution.broadcast_group) whose per-executor job message
 * is still due: released and not started, and also running — an executor that restarts while it
 * runs one learns of it only from that message (whose claim then ends the lost attempt).
 */
export function fallbackTasks(x: Execution): Task[] {
  return x.tasks.filter((t) => !t.pool && !t.held && ((t.state === 'PENDING' && t.attempts === 0) || t.state === 'RUNNING'));
}

/** Tasks whose job message must be sent: released and never started. */
export function sendable(x: Execution): Task[] {
  return x.tasks.filter((t) => t.state === 'PENDING' && !t.held && t.attempts === 0);
}

/** Resolves `N` or `N%` of `total` (at least 1 when N > 0); 0 for "". */
export function resolveCount(spec: string | undefined, total: number): number {
  if (!spec) return 0;
  const m = /^(\d+)(%?)$/.exec(spec.trim());
  if (!m) return 0;
  const n = Number(m[1]);
  if (!m[2]) return n;
  return n === 0 ? 0 : Math.max(1, Math.ceil((total * n) / 100));
}
