// The JSON shapes GRID shows to people and scripts, shared by grid-cli's --output json and the
// HTTP door: the API's messages (src/gen) with state names instead of enum numbers, and the
// status view's `workers` map.

import { ExecutionState, ExecutorState, TaskState, type Execution, type Executor, type Task } from '../gen/grid/v1/types.js';

export function executionStateName(s: ExecutionState): string {
  return (ExecutionState[s] ?? 'UNKNOWN').replace('EXECUTION_STATE_', '');
}

export function taskStateName(s: TaskState): string {
  return (TaskState[s] ?? 'UNKNOWN').replace('TASK_STATE_', '');
}

export function executorStateName(s: ExecutorState): string {
  return (ExecutorState[s] ?? 'UNKNOWN').replace('EXECUTOR_STATE_', '');
}

export interface WorkerJson {
  state: string;
  exit_code: number | null;
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
  reason: string;
}

function isoOrNull(ms: number): string | null {
  return ms ? new Date(ms).toISOString() : null;
}

/**
 * Tasks keyed by executor name. A pool task not yet taken is keyed by its task key; if two tasks
 * have the same name (a pool retried on the same executor), the later ones get ` (key)` added.
 */
export function workersMap(tasks: Task[]): Record<string, WorkerJson> {
  const out = new Map<string, WorkerJson>();
  for (const t of tasks) {
    let name = t.executorName || t.executorId || t.key || '(unassigned)';
    if (out.has(name)) name = `${name} (${t.key || out.size})`;
    out.set(name, {
      state: taskStateName(t.state),
      exit_code: t.exitCode ?? null,
      attempts: t.attempts,
      started_at: isoOrNull(t.startedAtMs),
      finished_at: isoOrNull(t.finishedAtMs),
      reason: t.reason,
    });
  }
  return Object.fromEntries(out);
}

/** The Execution as grid-cli prints it in JSON: the message's fields with state names. */
export function executionJson(e: Execution) {
  return {
    ...e,
    state: executionStateName(e.state),
    tasks: e.tasks.map((t) => ({ ...t, state: taskStateName(t.state) })),
  };
}

/** `grid-cli status --output json`: the Execution plus the `workers` map. */
export function statusJson(e: Execution) {
  return { ...executionJson(e), workers: workersMap(e.tasks) };
}

/** An Executor as grid-cli prints it in JSON: the message's fields with its state's name. */
export function executorJson(e: Executor) {
  return { ...e, state: executorStateName(e.state) };
}
