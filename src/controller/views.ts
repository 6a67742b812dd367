// What the use-cases hand to a front door: records as callers may see them. An execution's view
// never carries its sealed secrets, nor what only the controller uses (the definition snapshot,
// file digests, who dispatched it); a secret argument shows as SECRET_SHOWN. Executors' views are
// ExecutorView (domain/executor.ts) and definitions' are StoredJob (domain/job.ts): neither holds
// anything secret.

import type { Execution, LateResult, Task } from '../domain/execution.js';

/** How a secret argument's value is shown. */
export const SECRET_SHOWN = '(secret)';

/** A task as shown: its executor named (a pool task not taken yet as `(pool <group>)`). */
export type TaskView = Pick<Task, 'key' | 'executor_id' | 'executor_name' | 'state' | 'exit_code' | 'attempts' | 'started_at_ms' | 'finished_at_ms' | 'reason' | 'wave'> & {
  /** The serialize lock's fencing token while it holds the lock; 0 = none. */
  lock_token: number;
  late_results: LateResult[];
};

/** An execution as shown: `args` holds every argument given, a secret one as SECRET_SHOWN. */
export type ExecutionView = Pick<
  Execution,
  | 'id' | 'job' | 'job_version' | 'args' | 'secret_names' | 'target' | 'requester' | 'state' | 'reason'
  | 'created_at_ms' | 'updated_at_ms' | 'finished_at_ms' | 'timeout_seconds' | 'wait_offline_ms' | 'batch_size' | 'max_failures'
> & { tasks: TaskView[] };

export function executionView(x: Execution): ExecutionView {
  const args = { ...x.args };
  for (const name of x.secret_names) args[name] = SECRET_SHOWN;
  return {
    id: x.id,
    job: x.job,
    job_version: x.job_version,
    args,
    secret_names: [...x.secret_names],
    target: x.target,
    requester: x.requester,
    state: x.state,
    reason: x.reason,
    created_at_ms: x.created_at_ms,
    updated_at_ms: x.updated_at_ms,
    finished_at_ms: x.finished_at_ms,
    timeout_seconds: x.timeout_seconds,
    wait_offline_ms: x.wait_offline_ms,
    batch_size: x.batch_size,
    max_failures: x.max_failures,
    tasks: x.tasks.map(taskView),
  };
}

function taskView(t: Task): TaskView {
  return {
    key: t.key,
    executor_id: t.executor_id,
    executor_name: t.executor_name || (t.pool ? `(pool ${t.pool})` : ''),
    state: t.state,
    ...(t.exit_code !== undefined ? { exit_code: t.exit_code } : {}),
    attempts: t.attempts,
    started_at_ms: t.started_at_ms,
    finished_at_ms: t.finished_at_ms,
    reason: t.reason,
    wave: t.wave,
    lock_token: t.lock_token ?? 0,
    late_results: t.late_results ?? [],
  };
}
