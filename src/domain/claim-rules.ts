// BeginTask's claim decision: whether a task may start now, and who claims which attempt of it.
// Pure, like the other transitions (execution-rules.ts), whose on_lost rules a claim applies.

import type { OnLost } from './job.js';
import { isTerminalExecution, isTerminalTask, type Execution, type Task } from './execution.js';
import { claimLost, MAX_LOSSES, settle } from './execution-rules.js';
import { findTask } from './task-index.js';

/** mayBegin's answer for a task of a rollout wave not released yet: it may run later. */
export const NOT_YET = 'the task belongs to a later rollout wave; it is not released yet';

/** Whether a task may start now (asked by BeginTask). Undefined = yes, else the reason. */
export function mayBegin(x: Execution, key: string, executorId: string, executorGroups: string[], now: number): string | undefined {
  if (isTerminalExecution(x.state)) return `execution ${x.id} is already ${x.state}`;
  const t = findTask(x.tasks, key);
  if (!t) return `execution ${x.id} has no task ${key}`;
  if (isTerminalTask(t.state)) return `task ${key} is already ${t.state}`;
  if (x.deadline_ms && now >= x.deadline_ms) return `execution ${x.id} timed out`;
  if (t.held) return NOT_YET;
  if (isTaskOf(t, executorId, executorGroups)) return undefined;
  return t.pool ? `this executor is not in group ${t.pool}` : `task ${key} is for another executor`;
}

/** Who asks to claim a task: the executor and the process (session) of it that asks. */
export interface Claimant {
  id: string;
  name: string;
  groups: string[];
  session: string;
}

export type ClaimAnswer =
  | { claimed: true; attempt: number }
  | { claimed: false; reason: string; later?: boolean };

/**
 * BeginTask's claim (a compare-and-swap on the record, done by the caller): PENDING → RUNNING
 * for this claimant, attempt n + 1. A claim held by an executor that is alive is refused (its
 * message waits and is offered again). A claim whose holder is gone — expired, or the same
 * executor restarted (another session) — ends per the definition's on_lost first. The process
 * that holds the claim claims the next attempt only by naming the attempt it retries (`retryOf`);
 * otherwise a repeat of its own claim is answered with the same attempt (its answer was lost).
 * Mutates `x`; `changed` says whether there is something to write.
 */
export function claimTask(x: Execution, key: string, c: Claimant, now: number, o: ClaimOptions): ClaimAnswer & { changed: boolean } {
  const step = claimStep(x, key, c, now, o);
  if ('answer' in step) return { ...step.answer, changed: false };
  const t = step.task;
  if (step.act === 'restarted') {
    // This executor restarted while running it (its earlier process is gone): run it again.
    t.losses = (t.losses ?? 0) + 1;
    t.reason = `executor ${c.name} restarted while running attempt ${t.attempts}`;
  } else if (step.act === 'lost') {
    const state = claimLost(t, o.onLost, t.executor_id === c.id ? 'restarted' : 'was lost', now);
    if (state !== 'PENDING') {
      settle(x, now);
      return { claimed: false, changed: true, reason: `task ${key} is ${state}: ${t.reason}` };
    }
  }
  const attempt = t.attempts + 1;
  Object.assign(t, {
    state: 'RUNNING',
    attempts: attempt,
    executor_id: c.id,
    executor_name: c.name,
    claim_session: c.session,
    started_at_ms: now,
    finished_at_ms: 0,
    reason: t.state === 'RUNNING' ? t.reason : '',
  });
  delete t.exit_code;
  delete t.lock_token;
  settle(x, now);
  return { claimed: true, attempt, changed: true };
}

/**
 * claimTask's answer when the claim would change nothing (a refusal, or a repeat of the
 * claimant's own claim), found without changing `x`, which may be a shared copy; undefined when
 * the claim has something to write. Then claimTask on a copy gives this very answer.
 */
export function unchangedClaim(x: Execution, key: string, c: Claimant, now: number, o: ClaimOptions): ClaimAnswer | undefined {
  const step = claimStep(x, key, c, now, o);
  return 'answer' in step ? step.answer : undefined;
}

export interface ClaimOptions {
  onLost: OnLost;
  maxAttempts: number;
  retryOf?: number;
  alive: (executorId: string) => boolean;
}

/**
 * What a claim does, decided without changing anything: answer at once (nothing to write), or
 * act on the task — claim it as it is, after its holder restarted, or after its holder was lost.
 */
function claimStep(x: Execution, key: string, c: Claimant, now: number, o: ClaimOptions): { answer: ClaimAnswer } | { act: 'claim' | 'restarted' | 'lost'; task: Task } {
  const why = mayBegin(x, key, c.id, c.groups, now);
  if (why) return { answer: { claimed: false, reason: why, ...(why === NOT_YET ? { later: true } : {}) } };
  const t = findTask(x.tasks, key)!;
  if (t.state !== 'RUNNING') return { act: 'claim', task: t };
  const mine = t.executor_id === c.id;
  if (mine && (t.claim_session ?? '') === c.session) {
    // Its own claim again: the answer was lost (the executor runs a task at most once per
    // process and remembers what it finished, so it is not running it). The same attempt.
    if (!o.retryOf) return { answer: { claimed: true, attempt: t.attempts } };
    // Its own retry claim again, the attempt after the one it names: that answer was lost (or
    // the claim's write was sent twice, committed by the first try). The same attempt.
    if (o.retryOf === t.attempts - 1) return { answer: { claimed: true, attempt: t.attempts } };
    if (o.retryOf !== t.attempts) return { answer: { claimed: false, reason: `task ${key} is at attempt ${t.attempts}, not ${o.retryOf}` } };
    if (t.attempts - (t.losses ?? 0) >= Math.max(1, o.maxAttempts)) {
      return { answer: { claimed: false, reason: `task ${key} has used its ${o.maxAttempts} attempts` } };
    }
    return { act: 'claim', task: t };
  }
  if (!mine && t.executor_id && o.alive(t.executor_id)) {
    return { answer: { claimed: false, later: true, reason: `task ${key} is running on executor ${t.executor_name || t.executor_id} (attempt ${t.attempts}), which is alive` } };
  }
  if (mine && o.onLost === 'retry' && (t.losses ?? 0) < MAX_LOSSES) return { act: 'restarted', task: t };
  return { act: 'lost', task: t };
}

/** Whether a task is this executor's to run: planned for it, or in the pool of one of its groups. */
export function isTaskOf(t: Task, executorId: string, executorGroups: string[]): boolean {
  return t.pool ? executorGroups.includes(t.pool) : t.executor_id === executorId;
}
