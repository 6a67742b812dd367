// Turns a target resolved against the registry into an execution's task list (pure).

import { isTerminalExecution, type Execution, type Task } from './execution.js';
import { failExecution, resolveCount, sendable, settle } from './execution-rules.js';
import type { JobDefinition } from './job.js';
import { ALL_GROUP, parseTarget, resolveTarget, type Target, type TargetExecutor } from './target.js';

export interface PlanInput {
  target: Target;
  executors: TargetExecutor[];
  runner: string;
  waitOfflineMs: number;
  now: number;
}

export interface Plan {
  tasks: Task[];
  /** Set when nothing can run: why, in words (the execution fails with it). */
  failure?: string;
  /** Executors matched but not targeted (wrong runner), for dry runs and the status reason. */
  excluded: Array<{ name: string; reason: string }>;
}

export function poolKey(group: string): string {
  return `pool.${group}`;
}

export function planTasks(p: PlanInput): Plan {
  const r = resolveTarget(p.target, p.executors, p.runner);
  const tasks: Task[] = [];
  const blank = { attempts: 0, started_at_ms: 0, finished_at_ms: 0, wave: 0 };
  const offline = (why: string): Partial<Task> =>
    p.waitOfflineMs > 0
      ? { state: 'PENDING', reason: `${why}; waiting up to --wait-offline`, wait_until_ms: p.now + p.waitOfflineMs }
      : { state: 'SKIPPED', reason: why, finished_at_ms: p.now };

  for (const e of r.fanout) {
    tasks.push({
      key: e.id,
      executor_id: e.id,
      executor_name: e.name,
      ...blank,
      state: 'PENDING',
      reason: '',
      ...(e.skipped ? offline(`executor offline at dispatch (${e.state})`) : {}),
    } as Task);
  }
  for (const pool of r.pools) {
    const offering = p.executors.filter((e) => (pool.group === ALL_GROUP || e.groups.includes(pool.group)) && e.runners.includes(p.runner));
    if (offering.length === 0) continue; // reported in r.problems
    tasks.push({
      key: poolKey(pool.group),
      executor_id: '',
      executor_name: '',
      pool: pool.group,
      ...blank,
      state: 'PENDING',
      reason: '',
      ...(pool.members.length === 0 ? offline(`no member of pool ${pool.group} is ACTIVE`) : {}),
    } as Task);
  }
  // --wait-offline covers every task that has not started, whenever its executor goes away.
  if (p.waitOfflineMs > 0) for (const t of tasks) if (t.state === 'PENDING') t.wait_until_ms = p.now + p.waitOfflineMs;
  if (tasks.length === 0) {
    return { tasks, excluded: r.excluded, failure: r.problems.length ? r.problems.join('; ') : 'the target matches no executor' };
  }
  return { tasks, excluded: r.excluded };
}

/**
 * Batched rollouts: puts the runnable fan-out tasks (in name order) into waves of `batchSize`;
 * wave 1 is released, later waves are held until the one before has ended.
 */
export function assignWaves(tasks: Task[], batchSize: number): void {
  if (batchSize <= 0) return;
  let i = 0;
  for (const t of tasks) {
    if (t.state !== 'PENDING' || t.pool) continue;
    t.wave = Math.floor(i / batchSize) + 1;
    if (t.wave > 1) t.held = true;
    i++;
  }
}

/**
 * The group whose executors may all be told of a dispatched execution with one broadcast pointer:
 * a target of one `all` or `group:G` term, no pool, every task released at once (no waves).
 * Undefined for any other execution: its tasks get per-executor messages only.
 */
export function broadcastGroup(x: Execution): string | undefined {
  if (x.state === 'QUEUED' || isTerminalExecution(x.state) || x.batch_size > 0) return undefined;
  const t = parseTarget(x.target);
  if (t.pools.length || t.fanout.length !== 1) return undefined;
  const term = t.fanout[0]!;
  if (term.kind === 'all') return ALL_GROUP;
  return term.kind === 'group' ? term.group : undefined;
}

/**
 * Dispatch of a QUEUED execution (pure on `x`): resolves its target against the registry now and
 * records the task set, or fails it when nothing can run. The tasks to send now are marked with
 * `released_at_ms` (a job message lost to a crash is sent again from that). Returns whether `x`
 * changed, and the failure if it failed.
 */
export function dispatchExecution(x: Execution, def: JobDefinition, executors: TargetExecutor[], now: number): { changed: boolean; failure?: string } {
  if (x.state !== 'QUEUED') return { changed: false };
  const plan = planTasks({ target: parseTarget(x.target), executors, runner: def.runner, waitOfflineMs: x.wait_offline_ms, now });
  if (plan.failure) return { changed: failExecution(x, plan.failure, now), failure: plan.failure };
  x.tasks = plan.tasks;
  x.state = 'DISPATCHED';
  const fanout = plan.tasks.filter((t) => !t.pool && t.state === 'PENDING').length;
  x.batch_size = resolveCount(x.batch_spec, fanout);
  x.max_failures = resolveCount(x.max_failures_spec, plan.tasks.length);
  if (x.batch_size > 0 && x.batch_size < fanout) {
    assignWaves(x.tasks, x.batch_size);
    x.definition = def; // later waves are sent from this snapshot
  }
  if (plan.excluded.length) x.reason = plan.excluded.map((r) => `${r.name} ${r.reason}`).join('; ');
  settle(x, now);
  for (const t of sendable(x)) t.released_at_ms = now;
  return { changed: true };
}
